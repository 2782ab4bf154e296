// The systemd unit for real: the lab VM booted with systemd as PID 1 (`npm test` runs this file alone that way on
// 6.1: runInLab's init 'systemd'), the Debian package installed with dpkg, and vipguard run, reloaded, upgraded and
// stopped by systemd itself — Type=notify readiness, the unit's user, capabilities and sandbox against real IPVS,
// the reload's READY=1 after RELOADING=1, the upgrade's SIGUSR2 restart through Restart=always, the graceful stop.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import { after, before, describe, test } from 'node:test';
import { stringify } from 'yaml';
import { Topology } from '../../src/lab/topology';
import { labPackages } from '../../src/lab/package';
import { parseCapEff, capNames } from '../../src/common/privileges';
import { kprobeMultiAvailable } from '../../src/common/kernel-features';
import { ConnectResult, Load, ipvsWeights, assertKeptOut, must, mustAsync, quarantineAndSample, sleep } from './harness';
import { waitFor } from '../helpers';

const KERNEL = process.env.VIPGUARD_LAB_KERNEL;
const PKG = labPackages();
const PID1 = fs.existsSync('/proc/1/comm') ? fs.readFileSync('/proc/1/comm', 'utf8').trim() : '';
const SKIP = !KERNEL || KERNEL === 'host' ? 'needs IPVS and systemd as PID 1: runs inside the lab VM'
  : PID1 !== 'systemd' ? 'needs systemd as PID 1: npm test runs it in a lab VM of its own (--init systemd)'
    : !fs.existsSync(PKG.from.file) || !fs.existsSync(PKG.to.file) ? `no ${PKG.from.file} — npm test builds it before the lab stage`
      : false;

const CONFIG = '/etc/vipguard/vipguard.yaml';
const PARANOID = '/proc/sys/kernel/perf_event_paranoid';
const EXPIRE = '/proc/sys/net/ipv4/vs/expire_nodest_conn';

function show(...props: string[]): Record<string, string> {
  const out = must('systemctl', ['show', 'vipguard.service', ...props.map((p) => `--property=${p}`)]);
  return Object.fromEntries(out.split('\n').filter((l) => l.includes('=')).map((l) => [l.slice(0, l.indexOf('=')), l.slice(l.indexOf('=') + 1)]));
}

function journal(): string {
  return spawnSync('journalctl', ['-u', 'vipguard.service', '--no-pager', '-o', 'cat'], { encoding: 'utf8', timeout: 60_000 }).stdout ?? '';
}

describe('the systemd unit under systemd', { skip: SKIP }, () => {
  let topo: Topology;
  let paranoidBefore = '';
  let expireBefore = '';

  before(async () => {
    paranoidBefore = fs.readFileSync(PARANOID, 'utf8').trim();
    expireBefore = fs.readFileSync(EXPIRE, 'utf8').trim();
    topo = await Topology.up({ backends: ['healthy', 'healthy', 'healthy'], ipv6: false });
  });

  after(async () => {
    if (process.env.VIPGUARD_TEST_DEBUG) console.log(`--- journal:\n${journal()}`);
    spawnSync('systemctl', ['stop', 'vipguard.service'], { timeout: 60_000 });
    spawnSync('dpkg', ['--purge', 'vipguard'], { timeout: 300_000 });
    fs.rmSync('/etc/sysctl.d/60-vipguard.conf', { force: true });
    fs.writeFileSync(PARANOID, paranoidBefore);
    await topo?.down();
  });

  const key = (name: string) => `${topo.backend(name).ip}:${topo.backend(name).port}`;
  const weights = () => ipvsWeights(topo.vip.host, topo.vip.port);
  const config = (extra: Record<string, unknown> = {}) => stringify({
    services: [{ name: 'web', address: topo.vip.host, port: topo.vip.port }],
    receiver: { export: { enabled: false }, prometheus: { enabled: false } },
    actuator: { reconcileInterval: '500ms', quarantine: { base: '60s', max: '2m', probeTimeout: '300ms' }, ...extra },
  });

  test('started, reloaded, upgraded and stopped by systemd: ready when reconciled, least privilege, quarantines kept across the upgrade', async () => {
    must('dpkg', ['-i', PKG.from.file]);
    assert.equal(show('UnitFileState').UnitFileState, 'disabled', 'a first install does not enable the service');
    fs.writeFileSync(CONFIG, config());

    // --- no host-wide change by the package; the opt-in on a kernel without kprobe.multi ----------------------
    // Debian 12's 6.1 has no CONFIG_FPROBE: ip_vs_conn_new takes the classic kprobe, whose perf_event_open Debian's
    // perf_event_paranoid=3 refuses without CAP_SYS_ADMIN. The unit then refuses to start (77, no restart), naming
    // the kernel and the fix; the administrator's opt-in (deploy/README.md) makes it start.
    assert.equal(fs.readFileSync(PARANOID, 'utf8').trim(), paranoidBefore, 'the install changed no sysctl');
    if (!kprobeMultiAvailable()) {
      fs.writeFileSync(PARANOID, '3');
      const refused = spawnSync('systemctl', ['start', 'vipguard.service'], { encoding: 'utf8', timeout: 120_000 });
      assert.notEqual(refused.status, 0, 'start refused at perf_event_paranoid=3');
      const r = show('ActiveState', 'ExecMainStatus', 'NRestarts');
      assert.equal(r.ExecMainStatus, '77', JSON.stringify(r));
      assert.equal(r.NRestarts, '0', 'RestartPreventExitStatus: no restart loop');
      assert.match(journal(), new RegExp(`missing kernel\\.perf_event_paranoid ≤ 2 \\(it is 3\\) .*this kernel \\(${os.release().replace(/[.+]/g, '\\$&')}\\) has no kprobe\\.multi.*set kernel\\.perf_event_paranoid=2`));
      must('cp', ['/usr/share/doc/vipguard/examples/60-vipguard.conf', '/etc/sysctl.d/']);
      must('sysctl', ['-p', '/etc/sysctl.d/60-vipguard.conf']);
      assert.equal(fs.readFileSync(PARANOID, 'utf8').trim(), '2');
      spawnSync('systemctl', ['reset-failed', 'vipguard.service']);
      console.log(`[${KERNEL}] no kprobe.multi: refused at perf_event_paranoid=3 (exit 77), started after the opt-in`);
    }

    // --- start: Type=notify, so `systemctl start` returns once vipguard said READY=1 -------------------------
    let t = Date.now();
    must('systemctl', ['enable', '--now', 'vipguard.service']);
    console.log(`[${KERNEL}] systemctl enable --now: ${Date.now() - t} ms`);
    let s = show('ActiveState', 'SubState', 'MainPID', 'NRestarts', 'StatusText', 'Result');
    assert.equal(s.ActiveState, 'active', JSON.stringify(s));
    assert.equal(s.SubState, 'running');
    assert.match(s.StatusText, /1 service\(s\): web/, 'the STATUS= vipguard sent with READY=1');
    const pid = Number(s.MainPID);
    const status = fs.readFileSync(`/proc/${pid}/status`, 'utf8');
    const uid = Number(must('id', ['-u', 'vipguard']).trim());
    assert.match(status, new RegExp(`^Uid:\\s+${uid}\\s+${uid}\\s+${uid}\\s+${uid}$`, 'm'), 'runs as the vipguard user');
    assert.deepEqual(capNames(parseCapEff(status)).sort(), ['CAP_BPF', 'CAP_NET_ADMIN', 'CAP_PERFMON'], 'exactly the three capabilities');
    assert.equal(fs.readFileSync(EXPIRE, 'utf8').trim(), '1', 'the sandbox lets it manage expire_nodest_conn');
    assert.match(journal(), /receiver: tracing/, 'the receiver attached under the sandbox');
    assert.match(journal(), kprobeMultiAvailable() ? /receiver: active +kprobe\.multi ip_vs_conn_new/ : /receiver: active +kprobe ip_vs_conn_new/,
      'ip_vs_conn_new attached, and the log says how');
    assert.doesNotMatch(journal(), /receiver: INACTIVE/, 'every hook attached');

    // --- a quarantine by the unit's vipguard -----------------------------------------------------------------
    const load = new Load(topo.vip.host, topo.vip.port, 10, 3000);
    load.start();
    let results: ConnectResult[] = [];
    let quarantinedAt = 0;
    let b3: number[] = [];
    let stopSampling = () => {};
    try {
      const q = await quarantineAndSample(topo, 'b3', () => load.now(), 20_000);
      ({ quarantinedAt, weights: b3, stop: stopSampling } = q);

      // --- reload: RELOADING=1 … READY=1; a bad file is refused and the unit stays up ------------------------
      fs.writeFileSync(CONFIG, config({ reconcileInterval: '400ms' }));
      must('systemctl', ['reload', 'vipguard.service']);
      await waitFor(() => /reloaded \/etc\/vipguard\/vipguard\.yaml/.test(journal()), 20_000, 'the reload logged');
      fs.writeFileSync(CONFIG, 'services: [ { name: web } ]\n');
      spawnSync('systemctl', ['reload', 'vipguard.service'], { timeout: 60_000 });
      await waitFor(() => /reload refused, keeping the running configuration/.test(journal()), 20_000, 'the bad file refused');
      s = show('ActiveState', 'MainPID');
      assert.equal(s.ActiveState, 'active', 'a refused reload leaves the unit running');
      assert.equal(Number(s.MainPID), pid, 'the same process');
      fs.writeFileSync(CONFIG, config());

      // --- upgrade: the postinst's SIGUSR2 and Restart=always, no window for the dead backend ---------------
      t = Date.now();
      const upgraded = await mustAsync('dpkg', ['-i', PKG.to.file]); // async: the weight sampler runs meanwhile
      await waitFor(() => { const x = show('ActiveState', 'MainPID'); return x.ActiveState === 'active' && Number(x.MainPID) !== pid && Number(x.MainPID) > 0; },
        60_000, `the new version running (dpkg said: ${upgraded})`);
      await waitFor(() => /1 quarantine\(s\) resumed/.test(journal()), 30_000, 'the new version took the quarantine over');
      console.log(`[${KERNEL}] upgrade through dpkg and systemd: ${Date.now() - t} ms`);
      s = show('NRestarts', 'MainPID');
      assert.equal(s.NRestarts, '1', 'restarted once, by Restart=always after the stop for a restart');
      assert.match(journal(), /stopped for a restart: 1 quarantined destination\(s\) left at weight 0/);
      assert.equal(must('/usr/bin/vipguard', ['--version']).trim(), PKG.to.version);
      await sleep(1500);
    } finally {
      stopSampling();
      results = await load.stop();
    }
    const n = assertKeptOut(results, quarantinedAt, b3, 'the reload and the upgrade');
    console.log(`[${KERNEL}] under systemd: ${n} connects after the quarantine, none failed or slow; b3's weight 0 in all ${b3.length} samples`);

    // --- stop: the graceful way gives the weight back and puts the sysctl back ------------------------------
    must('systemctl', ['stop', 'vipguard.service']);
    s = show('ActiveState', 'Result');
    assert.equal(s.ActiveState, 'inactive');
    assert.equal(s.Result, 'success', 'a clean exit within TimeoutStopSec');
    assert.equal(weights()[key('b3')], 1, 'quarantined weight given back on stop');
    assert.equal(fs.readFileSync(EXPIRE, 'utf8').trim(), expireBefore, 'expire_nodest_conn put back');
    must('dpkg', ['--purge', 'vipguard']);
    assert.equal(show('LoadState').LoadState, 'not-found', 'the unit is gone with the package');
  });
});
