// Fault tests on real IPVS (issue 8; inside the lab VM on 5.10, 6.1, 6.12), each asserting numbers and printing them:
//   - kill -9 of the receiver under steady connect load: no connect fails, tracing resumes after a restart, and the
//     kernel is left with exactly the BPF programs, maps and links it had (nothing pinned);
//   - kill -9 of the actuator (extends actuator.test.ts "kill -9 while quarantined"): the cap still holds after a
//     restart, a quarantine that ended while vipguard was dead is given back at once, and the sock_ops program of
//     synTimeout goes with the process;
//   - IPVS edited by someone else while quarantined: destinations and services deleted, re-added, re-weighted;
//     ownership respected (watched: never re-added; managed: restored), convergence measured, no error spam;
//     and a reload with an invalid file meanwhile, which keeps the running configuration guarding;
//   - every backend failing at once (the client's own egress cut): the cap holds, and vipguard says it is in panic
//     in its status, its log and the vipguard.actuator.panic metric.
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { after, afterEach, before, describe, test } from 'node:test';
import { Topology } from '../../src/lab/topology';
import { OtlpServer } from '../../src/otlp/server';
import { FlatPoint, FlatSpan, flattenMetrics, flattenSpans } from '../../src/otlp/model';
import { Load, authHeader, connectOnce, ipvsWeights, sleep, startVipguard, stopVipguard, vgStatus, VipguardProcess } from './harness';
import { Child, startReceiverProcess, stopChild } from '../receiver-process';
import { waitFor } from '../helpers';

const KERNEL = process.env.VIPGUARD_LAB_KERNEL;
const SKIP = KERNEL && KERNEL !== 'host' ? false : 'needs IPVS: runs inside the lab VM';
const log = (s: string) => console.log(`[${KERNEL}] ${s}`);

/** BPF objects once their count has settled (the kernel frees a closed object's programs and maps asynchronously). */
async function settledBpfObjects(): Promise<ReturnType<typeof bpfObjects>> {
  let prev = bpfObjects();
  for (let i = 0; i < 20; i++) {
    await sleep(300);
    const now = bpfObjects();
    if (JSON.stringify(now) === JSON.stringify(prev)) return now;
    prev = now;
  }
  return prev;
}

/** BPF objects the kernel holds now, as bpftool lists them (system-wide: a dead process's leftovers show here). */
function bpfObjects(): { progs: number; maps: number; links: number; pinned: string[] } {
  const count = (what: string) => (JSON.parse(execFileSync('bpftool', ['-j', what, 'show'], { encoding: 'utf8' }) || '[]') as unknown[]).length;
  const pinned: string[] = [];
  const walk = (dir: string) => {
    for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
      if (e.isDirectory()) walk(path.join(dir, e.name));
      else pinned.push(path.join(dir, e.name));
    }
  };
  if (fs.existsSync('/sys/fs/bpf')) walk('/sys/fs/bpf');
  return { progs: count('prog'), maps: count('map'), links: count('link'), pinned };
}
const brief = (o: ReturnType<typeof bpfObjects>) => `${o.progs} progs, ${o.maps} maps, ${o.links} links, ${o.pinned.length} pinned`;

/** Collects what vipguard exports: spans and metric points. */
async function collector(): Promise<{ server: OtlpServer; port: number; spans: (FlatSpan & { at: number })[]; points: FlatPoint[] }> {
  const spans: (FlatSpan & { at: number })[] = [];
  const points: FlatPoint[] = [];
  const server = new OtlpServer({
    listen: '127.0.0.1:0',
    onTraces: (r) => { const at = Date.now(); for (const s of flattenSpans(r as never)) spans.push({ ...s, at }); },
    onMetrics: (r) => points.push(...flattenMetrics(r as never)),
  });
  return { server, port: await server.start(), spans, points };
}

/** A managed service vipguard creates, and a second watched one (with a short quarantine) "someone else" makes. */
const MANAGED_VIP = '10.99.0.60:80';
const SHORT_VIP = '10.99.0.61:80';

describe('faults on real IPVS', { skip: SKIP }, () => {
  let topo: Topology;
  let vg: VipguardProcess | undefined;
  let rx: Child | undefined;

  before(async () => {
    topo = await Topology.up({ backends: ['healthy', 'healthy', 'healthy'], ipv6: false });
  });

  afterEach(async (t) => {
    if (vg && process.env.VIPGUARD_TEST_DEBUG) console.log(`--- vipguard log (${(t as { name?: string }).name}):\n${vg.lines.join('\n')}`);
    await stopVipguard(vg);
    await stopChild(rx);
    vg = undefined;
    rx = undefined;
    try { execFileSync('tc', ['qdisc', 'del', 'dev', 'vg-cli', 'root'], { stdio: 'ignore' }); } catch { /* none */ }
    for (const v of [MANAGED_VIP, SHORT_VIP]) {
      try { execFileSync('ipvsadm', ['-D', '-t', v], { stdio: 'ignore' }); } catch { /* none */ }
    }
    // Whatever a test deleted or edited: put the topology's service back as built.
    const vip = `${topo.vip.host}:${topo.vip.port}`;
    try { execFileSync('ipvsadm', ['-A', '-t', vip, '-s', 'rr'], { stdio: 'ignore' }); } catch { /* still there */ }
    for (const b of topo.backends) {
      try { execFileSync('ipvsadm', ['-a', '-t', vip, '-r', `${b.ip}:${b.port}`, '-m', '-w', '1'], { stdio: 'ignore' }); } catch { /* still there */ }
      await topo.set(b.name, 'healthy');
      await topo.weight(b.name, 1);
    }
  });

  after(async () => {
    await topo?.down();
  });

  const key = (name: string) => `${topo.backend(name).ip}:${topo.backend(name).port}`;
  const weights = () => { try { return ipvsWeights(topo.vip.host, topo.vip.port); } catch { return {} as Record<string, number>; } };

  /** SHORT_VIP with the topology's backends at weight 1: traffic never goes there, alerts and probes do. */
  function makeShortService(): void {
    execFileSync('ipvsadm', ['-A', '-t', SHORT_VIP, '-s', 'rr']);
    for (const b of topo.backends) execFileSync('ipvsadm', ['-a', '-t', SHORT_VIP, '-r', key(b.name), '-m', '-w', '1']);
  }
  const SHORT_SERVICE = `  - name: short
    address: ${SHORT_VIP.split(':')[0]}
    port: 80
    quarantine: { base: 2s }`;
  const shortWeights = () => { try { return ipvsWeights(SHORT_VIP.split(':')[0], 80); } catch { return {} as Record<string, number>; } };

  function actuatorConfig(extra: { base?: string; exportPort?: number; services?: string; actuator?: string } = {}): string {
    return `
services:
  - name: web
    address: ${topo.vip.host}
    port: ${topo.vip.port}
${extra.services ?? ''}
receiver:
  export: ${extra.exportPort ? `{ endpoint: 127.0.0.1:${extra.exportPort}, metricInterval: 500ms, spanDelay: 50ms }` : '{ enabled: false }'}
  prometheus: { enabled: false }
actuator:
  listen: 127.0.0.1:0
  otlpListen: 127.0.0.1:0
  stateFile: $DIR/state.json
  reconcileInterval: 500ms
  quarantine:
    base: ${extra.base ?? '30s'}
    max: 5m
    probeTimeout: 300ms
${extra.actuator ?? ''}`;
  }

  /** An Alertmanager v2 alert naming one destination of a service: how "someone" (with the token) asks for a quarantine. */
  async function alert(v: VipguardProcess, backend: string, service = 'web'): Promise<number> {
    const r = await fetch(`http://127.0.0.1:${v.httpPort}/api/v2/alerts`, {
      method: 'POST', headers: { 'content-type': 'application/json', ...authHeader(v.dir) },
      body: JSON.stringify([{ labels: { alertname: 'BackendDown', vipguard_service: service, vipguard_backend: backend } }]),
      signal: AbortSignal.timeout(5000),
    });
    return r.status;
  }

  test('kill -9 of the receiver under steady load: no connect fails, tracing resumes, no BPF object left behind', async () => {
    const c = await collector();
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'vg-rx-'));
    const configPath = path.join(dir, 'vipguard.yaml');
    fs.writeFileSync(configPath, `
services:
  - name: web
    address: ${topo.vip.host}
    port: ${topo.vip.port}
receiver:
  prometheus: { enabled: false }
  export: { endpoint: 127.0.0.1:${c.port}, spanDelay: 50ms, metricInterval: 1s }
actuator:
  enabled: false
`);
    const load = new Load(topo.vip.host, topo.vip.port, 20, 3000);
    try {
      const baseline = await settledBpfObjects();
      rx = await startReceiverProcess(configPath, 90_000);
      const running = bpfObjects();
      load.start();
      await waitFor(() => c.spans.some((s) => s.name === 'vipguard.connect' && s.attributes['network.peer.address'] !== undefined), 15_000, 'spans with their backend');
      await sleep(1000);
      const killAt = load.now();
      rx.proc.kill('SIGKILL');
      await rx.exited;
      const t0 = Date.now();
      await waitFor(() => { const o = bpfObjects(); return o.progs === baseline.progs && o.maps === baseline.maps && o.links === baseline.links; }, 15_000,
        `the kernel to drop the dead receiver's BPF objects (baseline ${brief(baseline)}, now ${brief(bpfObjects())})`);
      const releasedMs = Date.now() - t0;
      const afterKill = bpfObjects();
      await sleep(1500); // connects while nothing traces
      const restartAt = load.now();
      const spawned = Date.now();
      rx = await startReceiverProcess(configPath, 90_000);
      const readyAt = load.now();
      const restartMs = Date.now() - spawned;
      const again = bpfObjects();
      const since = Date.now();
      await waitFor(() => c.spans.some((s) => s.at > since && s.name === 'vipguard.connect' && s.attributes['network.peer.address'] !== undefined), 20_000, 'spans after the restart');
      await sleep(1500);
      const results = await load.stop();
      await stopChild(rx);
      const stopped = bpfObjects();
      const failed = results.filter((r) => r.outcome !== 'ok');
      const whileDead = results.filter((r) => r.at >= killAt && r.at < readyAt);
      const tracedAfter = new Set(c.spans.filter((s) => s.name === 'vipguard.connect' && s.at > since).map((s) => s.attributes['network.local.port']));
      const after = results.filter((r) => r.at > readyAt + 500 && r.outcome === 'ok');
      const tracedShare = after.filter((r) => tracedAfter.has(r.localPort!)).length / Math.max(1, after.length);
      log(`receiver kill -9: ${results.length} connects at 20/s, ${failed.length} failed (${whileDead.length} while no receiver ran); BPF objects ` +
        `baseline ${brief(baseline)}, running ${brief(running)}, after kill -9 ${brief(afterKill)} (released ${releasedMs} ms after exit), ` +
        `restarted ${brief(again)}, after stop ${brief(stopped)}; restart took ${restartMs} ms (killed at ${(killAt / 1000).toFixed(1)} s, ` +
        `respawned at ${(restartAt / 1000).toFixed(1)} s); ${(100 * tracedShare).toFixed(0)}% of the ${after.length} connects after the restart traced`);
      assert.equal(failed.length, 0, `connects failed: ${JSON.stringify(failed.slice(0, 3))}`);
      assert.ok(whileDead.length > 10, 'connects ran while the receiver was dead');
      assert.ok(running.progs > baseline.progs && running.maps > baseline.maps, 'the receiver had loaded its BPF objects');
      assert.deepEqual(afterKill, baseline, 'kill -9 leaves exactly the BPF objects there were before');
      assert.deepEqual({ ...again, pinned: [] }, { ...running, pinned: [] }, 'a restart loads the same set again, nothing accumulates');
      assert.deepEqual(stopped, baseline, 'a graceful stop too');
      assert.deepEqual(baseline.pinned, [], 'nothing pinned under /sys/fs/bpf');
      assert.ok(tracedShare > 0.9, `tracing resumed: ${(100 * tracedShare).toFixed(0)}% of connects after the restart traced`);
    } finally {
      await load.stop();
      await c.server.stop();
    }
  });

  test('kill -9 of the actuator: the cap holds after a restart, a quarantine that ended meanwhile is given back, sock_ops goes with it', async () => {
    // web: b3 quarantined, b2 failing too and refused by the cap (1 of 3); short: b1 quarantined for 2 s. Killed;
    // restarted with b2 still failing, after short's quarantine has ended.
    makeShortService();
    const cfg = actuatorConfig({ base: '60s', services: SHORT_SERVICE, actuator: '  synTimeout: { enabled: true }' });
    const baseline = await settledBpfObjects();
    vg = await startVipguard(cfg);
    const withSockOps = bpfObjects();
    const synActive = !!(await vgStatus(vg)).synTimeout?.active;
    await topo.set('b3', 'refuse');
    for (let i = 0; i < 9 && weights()[key('b3')] !== 0; i++) await connectOnce(topo.vip.host, topo.vip.port, 2000);
    await waitFor(() => weights()[key('b3')] === 0, 3000, 'b3 quarantined');
    await topo.set('b2', 'refuse');
    for (let i = 0; i < 9 && !vg.lines.some((l) => /panic: 1 of 3/.test(l)); i++) await connectOnce(topo.vip.host, topo.vip.port, 2000);
    await waitFor(() => vg!.lines.some((l) => /panic: 1 of 3/.test(l)), 3000, 'b2 refused by the cap');
    assert.equal(await alert(vg, key('b1'), 'short'), 200);
    await waitFor(() => shortWeights()[key('b1')] === 0, 3000, 'b1 quarantined in short');
    const st0 = await vgStatus(vg);
    const until = Date.parse(st0.services[1].destinations.find((d: { destination: string }) => d.destination === key('b1')).until);
    const dir = vg.dir;
    await stopVipguard(vg, 'SIGKILL');
    await waitFor(() => { const o = bpfObjects(); return o.progs === baseline.progs && o.links === baseline.links; }, 15_000, 'the sock_ops program and its link gone');
    const afterKill = bpfObjects();
    await sleep(Math.max(0, until - Date.now()) + 200);
    assert.equal(shortWeights()[key('b1')], 0, 'nobody restores it while vipguard is dead');
    const t0 = Date.now();
    vg = await startVipguard(cfg, { dir });
    const readyAt = Date.now();
    const restartMs = readyAt - t0;
    const zerosAtReady = Object.values(weights()).filter((w) => w === 0).length;
    await waitFor(() => shortWeights()[key('b1')] === 1, 5000, 'short\'s b1 given back after the restart');
    const restoredMs = Date.now() - readyAt;
    let maxZeros = zerosAtReady;
    for (let i = 0; i < 12; i++) {
      await connectOnce(topo.vip.host, topo.vip.port, 2000);
      maxZeros = Math.max(maxZeros, Object.values(weights()).filter((w) => w === 0).length);
    }
    await waitFor(() => vg!.lines.some((l) => /panic: 1 of 3/.test(l)), 5000, 'b2 refused by the cap after the restart');
    const st = await vgStatus(vg);
    log(`actuator kill -9: restart ${restartMs} ms; at ready ${zerosAtReady} of 3 of web at weight 0 (b3 ${weights()[key('b3')]}); 12 connects with b2 still ` +
      `refusing: at most ${maxZeros} at weight 0, status panic=${st.services[0].panic} quarantined=${st.services[0].quarantined}; short's b1, whose ` +
      `quarantine ended ${((t0 - until) / 1000).toFixed(1)} s before the respawn, back at weight 1 ${restoredMs} ms after ready; BPF baseline ${brief(baseline)}, ` +
      `with synTimeout ${synActive ? 'active' : 'INACTIVE'} ${brief(withSockOps)}, after kill -9 ${brief(afterKill)}`);
    assert.equal(zerosAtReady, 1, 'the resumed quarantine is in place at ready');
    assert.equal(weights()[key('b3')], 0, 'and it is b3\'s');
    assert.equal(maxZeros, 1, 'the cap (1 of 3) holds after the restart');
    assert.equal(st.services[0].panic, true, 'panic reported again');
    assert.ok(restoredMs < 2000, `a quarantine that ended while vipguard was dead is given back at once (${restoredMs} ms after ready)`);
    assert.deepEqual(afterKill, baseline, 'kill -9 left no BPF program, map or link behind (sock_ops detached with its link)');
    if (synActive) assert.ok(withSockOps.progs > baseline.progs, 'the sock_ops program had been loaded');
  });

  test('IPVS edited by someone else while quarantined: no crash, convergence, ownership respected', async () => {
    const managed = `  - name: mgd
    address: 10.99.0.60
    port: 80
    destinations:
      - { address: ${topo.backend('b1').ip}, port: ${topo.backend('b1').port} }
      - { address: ${topo.backend('b2').ip}, port: ${topo.backend('b2').port} }`;
    makeShortService();
    vg = await startVipguard(actuatorConfig({ services: `${managed}\n${SHORT_SERVICE}` }));
    const v = vg;
    const vip = `${topo.vip.host}:${topo.vip.port}`;
    const ipvsadm = (...args: string[]) => execFileSync('ipvsadm', args, { encoding: 'utf8' });
    const reconcileErrors = () => v.lines.filter((l) => /reconcile: /.test(l)).length;
    const converge = async (cond: () => boolean, what: string) => { const t0 = Date.now(); await waitFor(cond, 5000, what); return Date.now() - t0; };
    const figures: string[] = [];
    const mgdWeights = () => { try { return ipvsWeights('10.99.0.60', 80); } catch { return {} as Record<string, number>; } };

    assert.equal(await alert(v, key('b3')), 200);
    await waitFor(() => weights()[key('b3')] === 0, 3000, 'b3 quarantined');

    // A quarantined destination's weight edited back up: set to 0 again at the next reconcile.
    ipvsadm('-e', '-t', vip, '-r', key('b3'), '-m', '-w', '5');
    figures.push(`weight of quarantined b3 set to 5 -> 0 again in ${await converge(() => weights()[key('b3')] === 0, 'b3 back to 0')} ms`);
    // A healthy destination of a watched service re-weighted: not vipguard's to touch.
    ipvsadm('-e', '-t', vip, '-r', key('b1'), '-m', '-w', '3');
    await sleep(1500);
    assert.equal(weights()[key('b1')], 3, 'a watched service\'s healthy destination keeps the weight its owner gave it');

    // The quarantined destination deleted: a watched service's destinations are not vipguard's to add.
    ipvsadm('-d', '-t', vip, '-r', key('b3'));
    await sleep(1500);
    assert.equal(weights()[key('b3')], undefined, 'not re-added');
    let st = await vgStatus(v);
    assert.equal(st.services[0].present, true);
    assert.equal(st.services[0].destinations.some((d: { destination: string }) => d.destination === key('b3')), false, 'status lists what the kernel has');
    // Re-added while the quarantine is still on: it is applied again.
    ipvsadm('-a', '-t', vip, '-r', key('b3'), '-m', '-w', '1');
    figures.push(`b3 deleted (not re-added), re-added at weight 1 -> quarantine re-applied in ${await converge(() => weights()[key('b3')] === 0, 'b3 at 0 again')} ms`);

    // A reload with an invalid file meanwhile: refused, and the running configuration keeps guarding.
    const good = fs.readFileSync(v.configPath, 'utf8');
    fs.writeFileSync(v.configPath, good.replace('reconcileInterval: 500ms', 'reconcileInterval: [500ms'));
    const mark = v.lines.length;
    v.proc.kill('SIGHUP');
    await waitFor(() => v.lines.slice(mark).some((l) => /reload refused/.test(l)), 5000, 'the reload refused');
    const refusal = v.lines.slice(mark).find((l) => /vipguard\.yaml:\d+:\d+:/.test(l)) ?? '';
    ipvsadm('-e', '-t', vip, '-r', key('b3'), '-m', '-w', '4');
    figures.push(`invalid reload refused (${refusal.trim().replace(/^.*vipguard\.yaml/, 'vipguard.yaml')}); still guarding: b3 edited to 4 -> 0 in ` +
      `${await converge(() => weights()[key('b3')] === 0, 'b3 at 0 under the old configuration')} ms`);
    // The file watcher sees the invalid file too (refused again), then the good one back (reloaded).
    const mark2 = v.lines.length;
    fs.writeFileSync(v.configPath, good);
    await waitFor(() => v.lines.slice(mark2).some((l) => /reloaded /.test(l)), 6000, 'the good file reloaded by the watcher');

    // The whole service deleted: reported absent, no errors, no spam; recreated: converges.
    const errorsBefore = reconcileErrors();
    const linesBefore = v.lines.length;
    ipvsadm('-D', '-t', vip);
    await sleep(2500);
    st = await vgStatus(v);
    const spam = v.lines.length - linesBefore;
    assert.equal(st.services[0].present, false, 'status says the service is not in the kernel');
    assert.equal(reconcileErrors(), errorsBefore, `no reconcile errors for a watched service that is gone: ${v.lines.filter((l) => /reconcile: /.test(l)).join(' | ')}`);
    assert.ok(spam <= 2, `a quiet log while it is gone (${spam} lines in 2.5 s: ${v.lines.slice(linesBefore).join(' | ')})`);
    ipvsadm('-A', '-t', vip, '-s', 'rr');
    for (const b of topo.backends) ipvsadm('-a', '-t', vip, '-r', key(b.name), '-m', '-w', '1');
    figures.push(`service deleted: present=false, ${spam} log lines in 2.5 s; recreated -> b3 quarantined again in ` +
      `${await converge(() => weights()[key('b3')] === 0, 'the recreated service converged')} ms`);
    assert.equal(weights()[key('b1')], 1);
    assert.equal(weights()[key('b2')], 1);

    // A managed service is vipguard's whole: its destinations and weights come back, and so does the service.
    ipvsadm('-d', '-t', MANAGED_VIP, '-r', key('b2'));
    figures.push(`managed: destination deleted -> re-added in ${await converge(() => mgdWeights()[key('b2')] === 1, 'b2 back in mgd')} ms`);
    ipvsadm('-e', '-t', MANAGED_VIP, '-r', key('b1'), '-m', '-w', '7');
    figures.push(`weight edited 1 -> 7 -> reset in ${await converge(() => mgdWeights()[key('b1')] === 1, 'mgd b1 at 1')} ms`);
    ipvsadm('-D', '-t', MANAGED_VIP);
    figures.push(`service deleted -> recreated in ${await converge(() => mgdWeights()[key('b1')] === 1 && mgdWeights()[key('b2')] === 1, 'mgd recreated')} ms`);
    assert.equal(v.proc.exitCode, null, 'vipguard still running');
    assert.equal(reconcileErrors(), errorsBefore, `and no reconcile ever failed: ${v.lines.filter((l) => /reconcile: /.test(l)).join(' | ')}`);
    assert.deepEqual(shortWeights(), { [key('b1')]: 1, [key('b2')]: 1, [key('b3')]: 1 }, 'the other watched service untouched throughout');
    log(`IPVS edited under vipguard: ${figures.join('; ')}`);

    // A quarantine that ends while its destination is deleted: whoever re-adds it chooses its weight.
    assert.equal(await alert(v, key('b2'), 'short'), 200);
    await waitFor(() => shortWeights()[key('b2')] === 0, 3000, 'b2 quarantined in short');
    ipvsadm('-d', '-t', SHORT_VIP, '-r', key('b2'));
    await sleep(3500); // the quarantine (2 s) ends, its probe answers: a restore is due, of a destination that is gone
    ipvsadm('-a', '-t', SHORT_VIP, '-r', key('b2'), '-m', '-w', '5');
    await sleep(1500);
    log(`IPVS edited under vipguard: b2 deleted while quarantined, re-added at weight 5 after its quarantine ended -> weight ${shortWeights()[key('b2')]}`);
    assert.equal(shortWeights()[key('b2')], 5, 'a destination re-added by its owner after the quarantine keeps the owner\'s weight');
  });

  test('every backend failing at once (the client\'s egress cut): the cap holds, vipguard says panic in status, log and metric', async () => {
    const c = await collector();
    try {
      vg = await startVipguard(actuatorConfig({ base: '20s', exportPort: c.port }));
      const v = vg;
      const load = new Load(topo.vip.host, topo.vip.port, 10, 3000);
      load.start();
      await sleep(1500);
      // Everything this host sends towards the backends is lost past IPVS: SYNs go out to every backend, none answers.
      execFileSync('tc', ['qdisc', 'add', 'dev', 'vg-cli', 'root', 'netem', 'loss', '100%']);
      const cutAt = Date.now();
      const cutLoadAt = load.now();
      let maxZeros = 0;
      let panicAt = 0;
      while (Date.now() - cutAt < 8000) {
        maxZeros = Math.max(maxZeros, Object.values(weights()).filter((w) => w === 0).length);
        if (!panicAt && v.lines.some((l) => /panic: /.test(l))) panicAt = Date.now();
        await sleep(100);
      }
      const st = await vgStatus(v);
      const panicLine = v.lines.find((l) => /panic: /.test(l)) ?? '';
      await waitFor(() => c.points.some((p) => p.metric === 'vipguard.actuator.panic' && p.attributes['vipguard.service'] === 'web' && p.value === 1), 5000,
        'vipguard.actuator.panic{web} = 1 exported');
      const healLoadAt = load.now();
      execFileSync('tc', ['qdisc', 'del', 'dev', 'vg-cli', 'root']);
      const results = await load.stop();
      // Connects begun within their 3 s patience of the heal may still complete: count the ones that could not.
      const during = results.filter((r) => r.at >= cutLoadAt && r.at < healLoadAt - 3000);
      const quarantinedMetric = Math.max(...c.points.filter((p) => p.metric === 'vipguard.actuator.quarantined' && p.attributes['vipguard.service'] === 'web').map((p) => p.value));
      log(`all backends failing: ${during.length} connects during the cut, ${during.filter((r) => r.outcome !== 'ok').length} failed; at most ${maxZeros} of 3 ` +
        `at weight 0; panic logged ${panicAt ? `${panicAt - cutAt} ms after the cut` : 'never'} ("${panicLine.replace(/^.*vipguard: /, '')}"); ` +
        `status panic=${st.services[0].panic} quarantined=${st.services[0].quarantined}; metrics vipguard.actuator.panic=1, vipguard.actuator.quarantined max ${quarantinedMetric}`);
      assert.equal(maxZeros, 1, 'the cap (50% of 3: 1) held throughout');
      assert.ok(panicAt > 0, 'panic logged');
      assert.equal(st.services[0].panic, true, 'status says panic');
      assert.equal(st.services[0].quarantined, 1);
      assert.equal(quarantinedMetric, 1);
    } finally {
      await c.server.stop();
    }
  });
});
