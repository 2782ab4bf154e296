// Refused connects rescued on real IPVS (inside the lab VM, Debian 5.10, 6.1, 6.12).
//
// The proof first (bpf/rsthold.bpf.c alone, no actuator): a cgroup_skb ingress program sees the RST that refuses a
// SYN sent to the VIP already translated back to the VIP; dropping it leaves the socket in SYN-SENT with IPVS's
// connection entry in CLOSE, and the SYN retransmit 1 s later is scheduled afresh onto the healthy destination — with
// expire_nodest_conn 0 or 1, because conn_reuse_mode (default 1) reschedules a new SYN on a CLOSE entry. With
// conn_reuse_mode=0 the retransmit goes to the refusing destination again and the one hold costs one RTO.
// Then the whole: `vipguard run` with the embedded rules and a restarting backend among three.
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import { execFileSync } from 'node:child_process';
import { after, afterEach, before, describe, test } from 'node:test';
import { Topology } from '../../src/lab/topology';
import { ConnectResult, Load, connectOnce, ipvsWeights, percentile, sleep, startVipguard, stopVipguard, vgStatus, VipguardProcess } from './harness';
import { waitFor } from '../helpers';
import { labConfig } from '../../src/lab/vipguard-process';
import { RefusalHold } from '../../src/actuator/rsthold';
import { SynTimeoutController } from '../../src/actuator/synrto';
import { DEFAULT_DEADLINE } from '../../src/common/rtt';
import { parseService } from '../../src/actuator/ipvs/identity';
import { Receiver } from '../../src/receiver/receiver';
import { Attempt } from '../../src/receiver/lifecycle';
import { monotonicNow } from '../../src/native/clock';
import { lineLogger } from '../../src/common/log';

const KERNEL = process.env.VIPGUARD_LAB_KERNEL;
const SKIP = KERNEL && KERNEL !== 'host' ? false : 'needs IPVS: runs inside the lab VM';

const SYSCTL = '/proc/sys/net/ipv4/vs';
const sysctl = (name: string, value?: string): string => {
  if (value !== undefined) fs.writeFileSync(`${SYSCTL}/${name}`, value);
  return fs.readFileSync(`${SYSCTL}/${name}`, 'utf8').trim();
};

interface IpvsConn { state: string; client: string; destination: string }
/** `ipvsadm -Lnc`: the kernel's IPVS connection entries (an independent reader). */
function ipvsConns(): IpvsConn[] {
  const out = execFileSync('ipvsadm', ['-Lnc'], { encoding: 'utf8' });
  return out.split('\n').map((l) => l.trim().split(/\s+/)).filter((f) => f[0] === 'TCP')
    .map((f) => ({ state: f[2], client: f[3], destination: f[5] }));
}

function watcher(vip: { host: string; port: number }, attempts: Attempt[]): Receiver {
  return new Receiver({
    services: [{ name: 'web', address: vip.host, port: vip.port }], deadline: false,
    sinks: [{ attemptEnded: (a) => attempts.push(a), connectionStarted: () => {}, connectionEnded: () => {} }],
  });
}

describe('proof: an RST held back at cgroup_skb ingress lets IPVS reschedule the SYN', { skip: SKIP }, () => {
  let topo: Topology;
  let hold: RefusalHold;
  let recv: Receiver;
  const attempts: Attempt[] = [];
  const saved: Record<string, string> = {};

  before(async () => {
    for (const k of ['expire_nodest_conn', 'conn_reuse_mode']) saved[k] = sysctl(k);
    topo = await Topology.up({ backends: ['healthy', 'refuse'], ipv6: false });
    recv = watcher(topo.vip, attempts);
    hold = new RefusalHold({}, lineLogger(() => {}));
    const st = hold.start([parseService(`tcp/${topo.vip.host}:${topo.vip.port}`)]);
    assert.equal(st.active, true, st.reason);
    assert.equal(recv.hooks.find((h) => h.program === 'vg_rst_in')?.active, true, 'receiver RST observer attached');
  });
  after(async () => {
    hold?.close();
    recv?.close();
    for (const [k, v] of Object.entries(saved)) sysctl(k, v);
    await topo?.down();
  });

  const b = (name: string) => `${topo.backend(name).ip}:${topo.backend(name).port}`;
  const service = () => parseService(`tcp/${topo.vip.host}:${topo.vip.port}`);

  /**
   * Connects until one was scheduled onto b2 (rr alternates; at most 3 tries), snapshotting IPVS's entries 400 ms
   * into each connect, while a held one waits for its retransmit.
   */
  async function throughRefuser(): Promise<{ r: Omit<ConnectResult, 'at'>; during: IpvsConn[]; socketAttempts: Attempt[] }> {
    for (let i = 0; i < 3; i++) {
      const before = attempts.length;
      const p = connectOnce(topo.vip.host, topo.vip.port, 5000);
      await sleep(400);
      const during = ipvsConns();
      const r = await p;
      recv.drain();
      await sleep(50);
      recv.drain();
      const mine = attempts.slice(before);
      if (mine.some((a) => a.backend && `${a.backend.addr}:${a.backend.port}` === b('b2'))) return { r, during, socketAttempts: mine };
    }
    throw new Error('no connect was scheduled onto b2 in 3 tries');
  }

  for (const expire of ['0', '1']) {
    test(`expire_nodest_conn=${expire}, conn_reuse_mode=1: the connect completes on b1 at the retransmit`, async () => {
      sysctl('expire_nodest_conn', expire);
      sysctl('conn_reuse_mode', '1');
      hold.setInService([{ service: service(), inService: 2 }]);
      const before = hold.counters()!;
      const { r, during, socketAttempts } = await throughRefuser();
      const after = hold.counters()!;
      const port = r.localPort;
      const entries = port ? ipvsConns().filter((c) => c.client === `10.200.0.1:${port}`) : [];
      console.log(`[${KERNEL}] expire_nodest_conn=${expire}: held connect ${r.outcome} after ${r.ms.toFixed(0)} ms; ` +
        `IPVS entry while held: ${JSON.stringify(during.filter((c) => c.client === `10.200.0.1:${port}`))}; after: ${JSON.stringify(entries)}; ` +
        `attempts ${socketAttempts.map((a) => `${a.index}:${a.outcome}@${a.backend?.addr}`).join(' ')}`);
      assert.equal(r.outcome, 'ok', `the held connect completed, got ${r.outcome}`);
      assert.ok(r.ms > 800 && r.ms < 2500, `at the first SYN retransmit (~1 s), took ${r.ms.toFixed(0)} ms`);
      assert.equal(after.held - before.held, 1);
      assert.equal(after.passedAgain - before.passedAgain, 0);
      // While held: the socket's IPVS entry to b2 is in CLOSE (the RST went through IPVS before we dropped it).
      assert.deepEqual(during.filter((c) => c.client === `10.200.0.1:${port}`), [{ state: 'CLOSE', client: `10.200.0.1:${port}`, destination: b('b2') }]);
      // After: that entry was expired at the reschedule, and the connection runs on b1.
      assert.deepEqual(entries.map((e) => e.destination), [b('b1')]);
      // The receiver reported the held refusal against b2, and the rescue against b1.
      assert.deepEqual(socketAttempts.map((a) => [a.index, a.outcome, a.backend && `${a.backend.addr}:${a.backend.port}`]),
        [[0, 'refused', b('b2')], [1, 'established', b('b1')]]);
    });
  }

  test('with a lowered initial SYN RTO (synTimeout, 300 ms) the held connect completes at that retransmit', async () => {
    sysctl('expire_nodest_conn', '1');
    sysctl('conn_reuse_mode', '1');
    hold.setInService([{ service: service(), inService: 2 }]);
    const rto = new SynTimeoutController({ marginMs: 100, floorMs: 300, ceilingMs: 300 }, DEFAULT_DEADLINE, lineLogger(() => {}));
    try {
      assert.equal(rto.start([{ name: 'web', address: topo.vip.host, port: topo.vip.port }]).active, true);
      await waitFor(() => rto.status.hz !== undefined && rto.status.services.length === 1, 15_000, 'HZ measured and the timeout written');
      const { r, socketAttempts } = await throughRefuser();
      console.log(`[${KERNEL}] synTimeout 300 ms: held connect ${r.outcome} after ${r.ms.toFixed(0)} ms (client side); kernel ` +
        `${(Number(socketAttempts[socketAttempts.length - 1].endNs - socketAttempts[0].socket.startNs) / 1e6).toFixed(0)} ms`);
      assert.equal(r.outcome, 'ok');
      assert.deepEqual(socketAttempts.map((a) => [a.index, a.outcome]), [[0, 'refused'], [1, 'established']]);
      const kernelMs = Number(socketAttempts[1].endNs - socketAttempts[0].socket.startNs) / 1e6;
      assert.ok(kernelMs > 250 && kernelMs < 700, `at the lowered retransmit (~300 ms), kernel time ${kernelMs.toFixed(0)} ms`);
    } finally {
      rto.close();
    }
  });

  test('conn_reuse_mode=0: the retransmit goes to b2 again; the second RST reaches the application', async () => {
    sysctl('expire_nodest_conn', '1');
    sysctl('conn_reuse_mode', '0');
    hold.setInService([{ service: service(), inService: 2 }]);
    const before = hold.counters()!;
    // rr: the first connect to b2 is held; its retransmit keeps the CLOSE entry's destination.
    let r: Omit<ConnectResult, 'at'> | undefined;
    for (let i = 0; i < 3 && r?.outcome !== 'refused'; i++) r = await connectOnce(topo.vip.host, topo.vip.port, 5000);
    const after = hold.counters()!;
    console.log(`[${KERNEL}] conn_reuse_mode=0: ${r!.outcome} after ${r!.ms.toFixed(0)} ms`);
    assert.equal(r!.outcome, 'refused');
    assert.ok(r!.ms > 800 && r!.ms < 2500, `refused after one RTO, took ${r!.ms.toFixed(0)} ms`);
    assert.equal(after.held - before.held, 1);
    assert.equal(after.passedAgain - before.passedAgain, 1);
    sysctl('conn_reuse_mode', '1');
    await sleep(2100); // the fail-open window that refusal opened
  });

  test('with fewer than 2 destinations in service the refusal passes at once', async () => {
    hold.setInService([{ service: service(), inService: 1 }]);
    const before = hold.counters()!;
    let r: Omit<ConnectResult, 'at'> | undefined;
    for (let i = 0; i < 3 && r?.outcome !== 'refused'; i++) r = await connectOnce(topo.vip.host, topo.vip.port, 5000);
    const after = hold.counters()!;
    assert.equal(r!.outcome, 'refused');
    assert.ok(r!.ms < 150, `refused at once, took ${r!.ms.toFixed(0)} ms`);
    assert.equal(after.passedFewInService - before.passedFewInService, 1);
    assert.equal(after.held, before.held);
  });
});

/** Per socket that entered SYN-SENT at or after `sinceNs`: its last attempt's outcome and the kernel's connect time. */
function sockets(attempts: Attempt[], sinceNs: bigint): { startNs: bigint; outcome: string; ms: number; backends: (string | undefined)[]; outcomes: string[] }[] {
  const by = new Map<string, Attempt[]>();
  for (const a of attempts) {
    if (a.socket.startNs < sinceNs) continue;
    const k = `${a.socket.sk}/${a.socket.startNs}`;
    by.set(k, [...(by.get(k) ?? []), a]);
  }
  return [...by.values()].map((as) => {
    const last = as.reduce((x, y) => (y.index >= x.index ? y : x));
    return { startNs: last.socket.startNs, outcome: last.outcome, ms: Number(last.endNs - last.socket.startNs) / 1e6, backends: as.map((a) => a.backend?.addr), outcomes: as.map((a) => a.outcome) };
  });
}

const fmt = (xs: number[]) => xs.length ? `p50 ${percentile(xs, 0.5).toFixed(0)} p99 ${percentile(xs, 0.99).toFixed(0)} max ${Math.max(...xs).toFixed(0)} ms` : 'none';

describe('vipguard run: a restarting backend among three', { skip: SKIP }, () => {
  let topo: Topology;
  let vg: VipguardProcess | undefined;
  let recv: Receiver | undefined;
  let attempts: Attempt[] = [];

  before(async () => {
    topo = await Topology.up({ backends: ['healthy', 'healthy', 'healthy'], ipv6: false });
  });
  afterEach(async () => {
    recv?.close();
    recv = undefined;
    await stopVipguard(vg);
    vg = undefined;
    for (const x of topo.backends) await topo.set(x.name, 'healthy');
    for (const x of topo.backends) await topo.weight(x.name, 1);
  });
  after(async () => {
    await topo?.down();
  });

  const key = (name: string) => `${topo.backend(name).ip}:${topo.backend(name).port}`;
  const ip = (name: string) => topo.backend(name).ip;
  const config = (hold: boolean) => labConfig({ address: topo.vip.host, port: topo.vip.port }, {
    actuator: { quarantine: { base: '30s' }, holdRefusals: { enabled: hold } },
  });

  /**
   * vipguard, and a receiver of our own (sensing only) timing every connect in the kernel — SynSent to its outcome —
   * rather than in a client event loop that emulation slows down.
   */
  async function start(hold: boolean): Promise<VipguardProcess> {
    attempts = [];
    recv = watcher(topo.vip, attempts);
    vg = await startVipguard(config(hold));
    return vg;
  }

  /** Load at 5/s; `during` runs after 1 s of it; returns the clients' results and the kernel's, from the switch on. */
  async function underLoad(during: () => Promise<void>) {
    const load = new Load(topo.vip.host, topo.vip.port, 5, 5000);
    load.start();
    await sleep(1000);
    const t = load.now();
    const sinceNs = monotonicNow();
    await during();
    const clients = (await load.stop()).filter((r) => r.at >= t);
    recv!.drain();
    await sleep(100);
    recv!.drain();
    return { clients, kernel: sockets(attempts, sinceNs) };
  }

  test('b3 restarts: pending and new connects complete on b1/b2, b3 is quarantined on its held refusals; then every backend refuses: refused fast', async () => {
    const vg = await start(true);
    assert.ok(vg.lines.some((l) => /holdRefusals: active on cgroup/.test(l)), `start-up says it is active:\n${vg.lines.join('\n')}`);
    let st = await vgStatus(vg);
    for (let i = 0; i < 50 && !st.holdRefusals?.services?.[0]?.holding; i++) { await sleep(100); st = await vgStatus(vg); }
    assert.deepEqual(st.holdRefusals.services, [{ service: `tcp/${topo.vip.host}:${topo.vip.port}`, inService: 3, holding: true }]);

    const restart = await underLoad(async () => {
      await topo.set('b3', 'refuse');
      await waitFor(() => ipvsWeights(topo.vip.host, topo.vip.port)[key('b3')] === 0, 10_000, 'b3 quarantined');
      await sleep(1500);
    });
    st = await vgStatus(vg);
    const rescued = restart.kernel.filter((s) => s.outcomes.includes('refused'));
    console.log(`[${KERNEL}] b3 restarting, hold on: ${restart.clients.length} connects, ${restart.clients.filter((r) => r.outcome !== 'ok').length} failed; ` +
      `kernel connect times: all ${fmt(restart.kernel.map((s) => s.ms))}; through b3 (held, rescued): ${rescued.length}, ${fmt(rescued.map((s) => s.ms))}; ` +
      `client-side ${fmt(restart.clients.map((r) => r.ms))}; hold counters ${JSON.stringify(st.holdRefusals.counters)}`);
    for (const r of restart.clients) assert.equal(r.outcome, 'ok', `every connect completes: one at +${r.at.toFixed(0)} ms was ${r.outcome} after ${r.ms.toFixed(0)} ms`);
    for (const s of restart.kernel) {
      assert.equal(s.outcome, 'established');
      assert.ok(s.ms < 1500, `within one SYN RTO and the rescue (kernel time), got ${s.ms.toFixed(0)} ms via ${s.backends.join(' -> ')}`);
    }
    assert.ok(rescued.length >= 1, 'b3 refused at least one connect');
    for (const s of rescued) {
      // Refused by b3 (reported, though held), then established elsewhere: never a success or a silence of b3.
      assert.equal(s.backends[0], ip('b3'));
      assert.deepEqual(s.outcomes, ['refused', 'established'], `one hold per connect: ${s.outcomes.join(' -> ')} via ${s.backends.join(' -> ')}`);
      assert.notEqual(s.backends[1], ip('b3'));
    }
    assert.equal(st.holdRefusals.counters.held, rescued.length, 'every connect refused by b3 was held');
    assert.equal(st.holdRefusals.counters.passedAgain, 0);
    assert.equal(st.holdRefusals.services[0].inService, 2, 'the quarantine reached the program: 2 in service');
    assert.ok(vg.lines.some((l) => /quarantine 10\.200\.0\.4:8080 in web .*: rule handshake-failures/.test(l)),
      `quarantined by the rule:\n${vg.lines.filter((l) => /quarantine/.test(l)).join('\n')}`);

    // b3 stays quarantined (30 s); now b1 and b2 refuse too. The cap (50 %) keeps them in service: panic.
    let switched = 0n;
    const all = await underLoad(async () => {
      await topo.set('b1', 'refuse');
      await topo.set('b2', 'refuse');
      switched = monotonicNow();
      await sleep(4000);
    });
    st = await vgStatus(vg);
    // Once both refuse (the fixture takes seconds under emulation) and the actuator has seen it (1 s).
    const settled = all.kernel.filter((s) => s.startNs > switched + 1_000_000_000n);
    console.log(`[${KERNEL}] then every backend refuses: ${all.clients.length} connects (${all.clients.filter((r) => r.outcome === 'refused').length} refused, ` +
      `${all.clients.filter((r) => r.outcome === 'ok').length} ok while the switch ran); kernel times: all ${fmt(all.kernel.map((s) => s.ms))}, ` +
      `from 1 s after the switch ${fmt(settled.map((s) => s.ms))}; hold counters ${JSON.stringify(st.holdRefusals.counters)}; panic ${st.services[0].panic}, inService ${st.holdRefusals.services[0].inService}`);
    // A connect established to b1 or b2 in the instant its listener goes away is reset by that backend (ECONNRESET,
    // seen once on 6.12): the fixture's restart, not a refusal anyone could hold. No connect may wait it out.
    for (const r of all.clients) {
      assert.ok(r.outcome === 'ok' || r.outcome === 'refused' || (r.outcome === 'error' && r.errno === 'ECONNRESET'),
        `no timeouts: ${r.outcome}${r.errno ? ` (${r.errno})` : ''} after ${r.ms.toFixed(0)} ms`);
    }
    for (const s of all.kernel) assert.ok(s.ms < 1500, `held at most once: ${s.outcome} after ${s.ms.toFixed(0)} ms`);
    assert.ok(settled.length >= 5);
    for (const s of settled) {
      assert.equal(s.outcome, 'refused');
      assert.ok(s.ms < 100, `refused fast once every backend refuses, got ${s.ms.toFixed(0)} ms`);
    }
    assert.equal(st.holdRefusals.services[0].inService, 0, 'a service in panic holds nothing');
  });

  // The feature-off behaviour is today's: checked on one kernel (lab time; peers.test runs with it off everywhere).
  test('holdRefusals off: a refusing backend refuses connects at once, as before', { skip: KERNEL !== '6.1' && 'checked on 6.1 only (lab time)' }, async () => {
    const vg = await start(false);
    const r = await underLoad(async () => {
      await topo.set('b3', 'refuse');
      await sleep(1500);
    });
    const st = await vgStatus(vg);
    const refused = r.kernel.filter((s) => s.outcome === 'refused');
    console.log(`[${KERNEL}] hold off: ${r.clients.length} connects, ${r.clients.filter((x) => x.outcome === 'refused').length} refused; kernel refusal times ${fmt(refused.map((s) => s.ms))}`);
    assert.equal(st.holdRefusals, undefined);
    assert.ok(!vg.lines.some((l) => /holdRefusals/.test(l)));
    assert.ok(refused.length >= 1, 'the first connects to b3 are refused');
    assert.equal(r.clients.filter((x) => x.outcome === 'refused').length, refused.length);
    for (const s of refused) assert.ok(s.ms < 100, `refused at once, got ${s.ms.toFixed(0)} ms`);
  });
});
