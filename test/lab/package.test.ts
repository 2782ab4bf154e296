// The Debian package on a real Debian kernel: installed with the VM's own dpkg, run from /usr/bin/vipguard against
// real IPVS (nothing of this tree's build on the path: the package's /usr/lib/vipguard), upgraded while it runs and
// holds a quarantine, then purged. The upgrade must keep the quarantine and never send a connect to the dead
// backend: the old version stops for a restart (SIGUSR2, what the postinst sends under systemd) leaving weight 0,
// the new one takes the quarantine over from the state file.
//
// The packages are built on the host before the lab stage (src/lab/package.ts); both hold this tree's code, so the
// upgrade tested is the package's mechanics, not a change between two releases. The VM has no systemd as PID 1:
// the postinst's systemctl steps are skipped there (they are guarded by /run/systemd/system), and the test plays
// the service manager's part — the signal, then the start.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import { after, before, describe, test } from 'node:test';
import { Topology } from '../../src/lab/topology';
import { labPackages } from '../../src/lab/package';
import { ConnectResult, Load, ipvsWeights, assertKeptOut, must, mustAsync, quarantineAndSample, sleep, startVipguard, stopVipguard, vgStatus, VipguardProcess } from './harness';
import { labConfig } from '../../src/lab/vipguard-process';
import { NODE_FLAGS } from '../../src/common/node-flags';

const KERNEL = process.env.VIPGUARD_LAB_KERNEL;
const PKG = labPackages();
// One kernel: what is tested here is the package (dpkg, maintainer scripts, the handover restart), not the kernel's
// IPVS or BPF, which every other lab file covers on each. 6.1 is the kernel of the Debian release the packages are
// built on.
const PACKAGE_KERNEL = '6.1';
const SKIP = !KERNEL || KERNEL === 'host' ? 'needs IPVS and a dpkg database of its own: runs inside the lab VM'
  : KERNEL !== PACKAGE_KERNEL ? `the package is tested on ${PACKAGE_KERNEL} only (the other kernels add nothing it depends on)`
  : !fs.existsSync(PKG.from.file) || !fs.existsSync(PKG.to.file)
    ? `no ${PKG.from.file} — npm test builds it before the lab stage; alone: node -e "require('./dist/src/lab/package').buildLabPackages(console.log)"`
    : false;

const PARANOID = '/proc/sys/kernel/perf_event_paranoid';
const STATE_DIR = '/var/lib/vipguard';
const CONFIG = '/etc/vipguard/vipguard.yaml';
const VIPGUARD = ['/usr/bin/vipguard'];

describe('the Debian package', { skip: SKIP }, () => {
  let topo: Topology;
  let vg: VipguardProcess | undefined;
  let paranoidBefore = '';

  before(async () => {
    paranoidBefore = fs.readFileSync(PARANOID, 'utf8').trim();
    topo = await Topology.up({ backends: ['healthy', 'healthy', 'healthy'], ipv6: false });
  });

  after(async () => {
    await stopVipguard(vg);
    // Whatever the test reached: the package and its user go (and the sysctl as it was, should an install ever
    // change it again), so later tests find the VM as they expect it.
    spawnSync('dpkg', ['--purge', 'vipguard'], { timeout: 300_000 });
    spawnSync('userdel', ['vipguard']);
    spawnSync('groupdel', ['vipguard']);
    fs.writeFileSync(PARANOID, paranoidBefore);
    await topo?.down();
  });

  const key = (name: string) => `${topo.backend(name).ip}:${topo.backend(name).port}`;
  const weights = () => ipvsWeights(topo.vip.host, topo.vip.port);

  test('installs with dpkg, runs from /usr/bin/vipguard, is upgraded under load keeping its quarantine, and purges', async () => {
    // --- install ---------------------------------------------------------------------------------------------
    let t = Date.now();
    const installed = must('dpkg', ['-i', PKG.from.file]);
    console.log(`[${KERNEL}] dpkg -i ${PKG.from.version}: ${Date.now() - t} ms`);
    assert.match(installed, /list the services to guard in \/etc\/vipguard\/vipguard\.yaml/, 'a first install says what to do next');
    assert.equal(must('/usr/bin/vipguard', ['--version']).trim(), PKG.from.version);
    assert.match(must('/usr/bin/vipguard', ['check-config']), /\/etc\/vipguard\/vipguard\.yaml: ok \(0 service/, 'the default configuration is valid and guards nothing');
    assert.match(must('getent', ['passwd', 'vipguard']), /^vipguard:x:\d+:\d+:[^:]*:\/var\/lib\/vipguard:\/usr\/sbin\/nologin$/m, 'the system user');
    const st = fs.statSync(STATE_DIR);
    assert.equal(st.mode & 0o777, 0o750, 'state directory mode');
    assert.equal(st.uid, Number(must('id', ['-u', 'vipguard']).trim()), 'state directory owned by vipguard');
    // Nothing host-wide: the perf_event_paranoid snippet (an opt-in for kernels without kprobe.multi) is only an example.
    assert.equal(fs.readFileSync(PARANOID, 'utf8').trim(), paranoidBefore, 'kernel.perf_event_paranoid untouched by the install');
    assert.ok(!fs.existsSync('/usr/lib/sysctl.d/60-vipguard.conf') && !fs.existsSync('/etc/sysctl.d/60-vipguard.conf'), 'no sysctl snippet installed');
    for (const f of ['/lib/systemd/system/vipguard.service', '/usr/lib/sysusers.d/vipguard.conf', '/usr/share/doc/vipguard/examples/60-vipguard.conf',
      '/usr/lib/vipguard/build/bpf/receiver.bpf.o', '/usr/lib/vipguard/native/build/Release/vipguard_native.node']) {
      assert.ok(fs.existsSync(f), `${f} installed`);
    }
    assert.equal(must('dpkg-query', ['-W', '-f', '${Conffiles}', 'vipguard']).includes(CONFIG), true, `${CONFIG} is a conffile`);
    // The installed unit, with its ExecStart present: no complaint at all.
    const verify = spawnSync('systemd-analyze', ['verify', '/lib/systemd/system/vipguard.service'], { encoding: 'utf8', timeout: 120_000 });
    assert.equal(`${verify.stdout}${verify.stderr}`.trim(), '', 'systemd-analyze verify on the installed unit');
    assert.equal(verify.status, 0);

    // --- run it from the package, against real IPVS ----------------------------------------------------------
    const yaml = labConfig({ address: topo.vip.host, port: topo.vip.port }, {
      actuator: { reconcileInterval: '500ms', quarantine: { base: '60s', max: '2m', probeTimeout: '300ms' } },
    });
    vg = await startVipguard(yaml, { dir: STATE_DIR, configPath: CONFIG, command: VIPGUARD });
    // /usr/bin/vipguard execs node, with the launcher's flags, on the package's tree: that is the process running.
    const argv = fs.readFileSync(`/proc/${vg.proc.pid}/cmdline`, 'utf8').split('\0');
    assert.deepEqual(argv.slice(1, 2 + NODE_FLAGS.length), [...NODE_FLAGS, '/usr/lib/vipguard/dist/src/cli/main.js'], `the process runs the package's tree: ${argv.join(' ')}`);
    const load = new Load(topo.vip.host, topo.vip.port, 10, 3000);
    load.start();
    let results: ConnectResult[] = [];
    let quarantinedAt = 0;
    let upgradeEnd = 0;
    let b3Weights: number[] = [];
    let stopSampling = () => {};
    try {
      // b3's weight from its quarantine to the end, every 50 ms: it must never leave 0 while b3 is dead.
      const q = await quarantineAndSample(topo, 'b3', () => load.now(), 15_000);
      ({ quarantinedAt, weights: b3Weights, stop: stopSampling } = q);
      await sleep(1000);

      // --- upgrade while it runs ---------------------------------------------------------------------------
      t = Date.now();
      const upgraded = await mustAsync('dpkg', ['-i', PKG.to.file]); // async: the weight sampler runs meanwhile
      console.log(`[${KERNEL}] dpkg -i ${PKG.to.version} (upgrade, vipguard running): ${Date.now() - t} ms`);
      assert.doesNotMatch(upgraded, /list the services to guard/, 'an upgrade does not repeat the first-install hint');
      assert.equal(must('/usr/bin/vipguard', ['--version']).trim(), PKG.to.version);
      assert.equal(vg.proc.exitCode, null, 'the running vipguard survives its files being replaced');
      assert.match(fs.readFileSync(CONFIG, 'utf8'), new RegExp(topo.vip.host.replace(/\./g, '\\.')), 'the edited conffile is kept');
      // The service manager's part: the stop for a restart, then the new version's start.
      vg.proc.kill('SIGUSR2');
      assert.equal(await vg.exited, 0, 'the stop for a restart exits 0 (Restart=always starts the new version)');
      assert.ok(vg.lines.some((l) => /stopped for a restart: 1 quarantined destination\(s\) left at weight 0/.test(l)), vg.lines.join('\n'));
      assert.equal(weights()[key('b3')], 0, 'between the two processes b3 stays out');
      vg = await startVipguard(yaml, { dir: STATE_DIR, configPath: CONFIG, command: VIPGUARD });
      assert.ok(vg.lines.some((l) => /1 quarantine\(s\) resumed/.test(l)), `the new version takes the quarantine over:\n${vg.lines.join('\n')}`);
      const status = await vgStatus(vg);
      const d = status.services[0].destinations.find((x: { destination: string }) => x.destination === key('b3'));
      assert.equal(d?.state, 'quarantined', 'the new version reports it quarantined');
      upgradeEnd = load.now();
      await sleep(1500);
    } finally {
      stopSampling();
      results = await load.stop();
    }
    // Connects that started once b3 was out, through the upgrade: none failed, none waited for a SYN retransmit.
    const n = assertKeptOut(results, quarantinedAt, b3Weights, 'the upgrade');
    console.log(`[${KERNEL}] upgrade under load: ${n} connects after the quarantine (${results.filter((r) => r.at >= quarantinedAt && r.at <= upgradeEnd).length} during the upgrade), ` +
      `none failed or slow; b3's weight 0 in all ${b3Weights.length} samples`);

    // --- the new version restores, stops gracefully, and the package purges --------------------------------
    await topo.set('b3', 'healthy');
    await stopVipguard(vg);
    vg = undefined;
    assert.equal(weights()[key('b3')], 1, 'a graceful stop gives the weight back');
    must('dpkg', ['--purge', 'vipguard']);
    for (const f of ['/usr/bin/vipguard', '/usr/lib/vipguard', STATE_DIR, CONFIG, '/lib/systemd/system/vipguard.service']) {
      assert.ok(!fs.existsSync(f), `${f} gone after purge`);
    }
    assert.equal(spawnSync('dpkg-query', ['-W', 'vipguard']).status, 1, 'dpkg no longer knows the package');
  });
});
