// The receiver senses UDP over IPv6 (issue 13: "IPv4 and IPv6"), and the actuator quarantines and restores IPv6 UDP
// destinations: `vipguard run` watching the UDP service [fd00:99::1]:53 (the lab topology's IPv6 side, three Debian
// dnsmasq backends listening on their IPv6 addresses too), steady DNS flows on connected udp6 sockets and dig over
// IPv6. No alert is sent: the receiver's own exchanges make the embedded rule act.
//   (1) every backend's IPv6 flow is traced with its backend (vipguard.udp.exchanges by network.peer.address); a
//       black-holed backend is removed for its unanswered exchanges, its flow moves, and once it answers the DNS
//       restore probe (over IPv6) it is added back exactly as its owner made it (weight, thresholds, forwarding)
//   (2) a backend whose dnsmasq is killed: each kernel's own truth. Its ICMPv6 port unreachable reaches the client
//       socket through IPVS only where IPVS does not drop it (ICMPV6_REFUSAL_SEEN, docs/udp.md): there the exchange
//       is refused; elsewhere the flow just goes unanswered — and the backend is removed all the same.
// Each dnsmasq answers the A record with its backend's IPv4 address whichever family the query came over, so an
// answer names the backend that answered (UdpLab.ip); destinations and quarantines name its IPv6 address (addr).
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import * as fs from 'node:fs';
import { describe, test } from 'node:test';
import type { Destination } from '../../src/actuator/ipvs/types';
import { startVipguard, VipguardProcess } from './harness';
import { labConfig } from '../../src/lab/vipguard-process';
import { formatEndpoint } from '../../src/common/addr';
import { waitForAsync } from '../helpers';
import { DnsFlow, NAME, dig } from './dns-client';
import { udpLab } from './udp-fixture';

const KERNEL = process.env.VIPGUARD_LAB_KERNEL;
const SKIP = KERNEL && KERNEL !== 'host' ? false : 'needs IPVS: runs inside the lab VM';
/** removal must follow the failure within this: deadline (≤ 700 ms ceiling) + poll (100 ms) + act, with TCG slack */
const REMOVAL_BOUND_MS = 5000;
/** the quarantine's hold (base = max): the restore probe starts after it */
const HOLD_MS = 3000;
/** added back within this of answering again: the rest of the hold + probe interval + probe + reconcile, with slack */
const RESTORE_BOUND_MS = HOLD_MS + 10_000;

/**
 * Does the ICMPv6 port unreachable of a killed IPv6 backend reach the client's connected socket through IPVS (NAT)?
 * Not on Debian 5.10 and 6.1 (docs/udp.md, test/lab/udp-hooks.test.ts): IPVS's handle_response_icmp() drops it.
 * Debian's 6.12 delivers it. Asserted both ways here, so a kernel that changes fails this test.
 */
const ICMPV6_REFUSAL_SEEN: Record<string, boolean> = { '5.10': false, '6.1': false, '6.12': true };

const readOr = (file: string): string => { try { return fs.readFileSync(file, 'utf8').trim(); } catch { return 'n/a'; } };

/** `vipguard_udp_exchanges_total` samples of a scrape, by backend address and outcome. */
function exchanges(text: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const line of text.split('\n')) {
    if (!line.startsWith('vipguard_udp_exchanges')) continue;
    const peer = /network_peer_address="([^"]+)"/.exec(line)?.[1];
    const outcome = /vipguard_outcome="([^"]+)"/.exec(line)?.[1];
    const value = Number(line.trim().split(/\s+/).at(-1));
    if (peer && outcome && Number.isFinite(value)) out.set(`${peer} ${outcome}`, (out.get(`${peer} ${outcome}`) ?? 0) + value);
  }
  return out;
}

describe('receiver and quarantine for UDP over IPv6 (dnsmasq backends)', { skip: SKIP }, () => {
  const lab = udpLab({ family: 6 });
  const { port, ip, addr, dest, flowOn } = lab;
  let scrapePort = 0;

  async function start(): Promise<VipguardProcess> {
    const v = await startVipguard(labConfig({ address: lab.vip(), port: port(), name: 'dns' }, {
      services: [{ name: 'dns', address: lab.vip(), port: port(), protocol: 'udp', manage: false, probe: { dns: NAME } }],
      receiver: { deadline: { floor: '200ms', ceiling: '700ms' }, prometheus: { enabled: true, listen: '127.0.0.1:0' } },
      actuator: { reconcileInterval: '500ms', quarantine: { base: `${HOLD_MS}ms`, max: `${HOLD_MS}ms`, probeInterval: '300ms', probeTimeout: '500ms' } },
    }));
    const tracing = v.lines.find((l) => /receiver: tracing/.test(l)) ?? '';
    assert.ok(tracing.includes(`dns=udp/${lab.vip()}:${port()}`), `the receiver traces the IPv6 UDP service:\n${v.lines.join('\n')}`);
    scrapePort = Number(/metrics \(port (\d+)\)/.exec(tracing)?.[1]);
    assert.ok(scrapePort > 0, `the receiver's scrape port in: ${tracing}`);
    return v;
  }

  async function scrape(): Promise<Map<string, number>> {
    const r = await fetch(`http://127.0.0.1:${scrapePort}/metrics`, { signal: AbortSignal.timeout(10_000) });
    assert.equal(r.status, 200);
    return exchanges(await r.text());
  }

  /**
   * A steady IPv6 flow on each backend, answered long enough for the receiver to learn their reply times; then the
   * receiver must have counted answered exchanges for each backend by its IPv6 address — the backend it learnt from
   * ip_vs_conn_new for a udpv6_sendmsg flow.
   */
  async function steadyFlows(): Promise<{ flows: Record<string, DnsFlow>; answered: Record<string, number> }> {
    const flows: Record<string, DnsFlow> = {};
    for (const b of ['b1', 'b2', 'b3']) flows[b] = await flowOn(b);
    for (const f of Object.values(flows)) await f.next(20);
    assert.ok(Object.values(flows).every((f) => f.sock.address().family === 'IPv6'), 'the flows are udp6 sockets');
    const answered: Record<string, number> = {};
    await waitForAsync(async () => {
      const m = await scrape();
      for (const b of ['b1', 'b2', 'b3']) answered[b] = m.get(`${addr(b)} established`) ?? 0;
      return Object.values(answered).every((n) => n >= 10);
    }, 5000, 'the receiver counted answered IPv6 exchanges for every backend, by its IPv6 address');
    return { flows, answered };
  }

  const quarantineLines = (since: number) => lab.vg!.lines.slice(since).filter((l) => /quarantine /.test(l));
  const settings = (d: Destination | undefined) => d && { weight: d.weight, forward: d.forward, upperThreshold: d.upperThreshold, lowerThreshold: d.lowerThreshold };

  /** Fails `name` and waits for the embedded rule to remove it; its flow moves, digs over IPv6 never reach it. */
  async function removedAfterFailure(name: string, state: 'blackhole' | 'refuse', onFlow: DnsFlow): Promise<{ ms: number; sinceLastAnswerMs: number; line: string }> {
    const mark = lab.vg!.lines.length;
    const t0 = Date.now();
    await lab.topo.set(name, state);
    await waitForAsync(async () => (await dest(name)) === undefined, REMOVAL_BOUND_MS, `${name} removed by the embedded rule after ${state}`);
    const removedAt = Date.now();
    const sinceLastAnswerMs = removedAt - (onFlow.answers.filter((a) => a.from === ip(name)).at(-1)?.at ?? t0);
    const key = formatEndpoint(addr(name), port());
    const lines = quarantineLines(mark);
    const line = lines.find((l) => l.includes(key)) ?? '';
    assert.match(line, /rule handshake-failures/, `the quarantine of ${key} came from the embedded rule:\n${lab.vg!.lines.slice(mark).join('\n')}`);
    assert.ok(lines.every((l) => l.includes(key)), `only ${name} quarantined:\n${lines.join('\n')}`);
    const moved = await onFlow.next(5);
    assert.ok(!moved.includes(ip(name)), `the flow on ${name} moved (${moved})`);
    const looked = Array.from({ length: 6 }, () => dig(lab.vip(), port(), 1).answer);
    assert.ok(looked.every((x) => x !== undefined && x !== ip(name)), `every dig over IPv6 answered, none by ${name}: ${looked}`);
    return { ms: removedAt - t0, sinceLastAnswerMs, line };
  }

  /** `name` answers again: added back by the restore probe (a DNS query over IPv6), exactly as it was. */
  async function restored(name: string, owner: Destination | undefined): Promise<number> {
    const mark = lab.vg!.lines.length;
    // From the start of the change: under TCG topology.sh takes seconds, and the probe may answer before it returns.
    const t0 = Date.now();
    await lab.topo.set(name, 'healthy');
    await waitForAsync(async () => (await dest(name)) !== undefined, RESTORE_BOUND_MS, `${name} added back once its IPv6 DNS probe answers`);
    const ms = Date.now() - t0;
    assert.deepEqual(settings(await dest(name)), settings(owner), `${name} added back with its owner's weight, thresholds and forwarding method`);
    const key = formatEndpoint(addr(name), port());
    const released = lab.vg!.lines.slice(mark).find((l) => l.includes(`release ${key}`)) ?? '';
    assert.match(released, /probe answered/, `released by the restore probe:\n${lab.vg!.lines.slice(mark).join('\n')}`);
    return ms;
  }

  test('(1) IPv6 flows are traced with their backend; a black-holed backend is removed from unanswered exchanges, its flow moves, and it comes back exactly as it was', async () => {
    // The owner's settings that must survive the removal: weight 3, thresholds, masquerading.
    const vip = formatEndpoint(lab.vip(), port());
    execFileSync('ipvsadm', ['-e', '-u', vip, '-r', formatEndpoint(addr('b2'), port()), '-m', '-w', '3', '-x', '100', '-y', '10']);
    const owner = await dest('b2');
    assert.ok(owner && owner.weight === 3 && owner.upperThreshold === 100 && owner.lowerThreshold === 10, `b2 as its owner set it: ${JSON.stringify(owner)}`);
    lab.vg = await start();
    const { flows, answered } = await steadyFlows();
    const { ms, sinceLastAnswerMs, line } = await removedAfterFailure('b2', 'blackhole', flows.b2);
    assert.match(line, /unanswered/, 'for unanswered exchanges');
    const unanswered = (await scrape()).get(`${addr('b2')} unanswered`) ?? 0;
    assert.ok(unanswered >= 1, 'the receiver counted b2\'s unanswered exchanges by its IPv6 address');
    const backMs = await restored('b2', owner);
    console.log(`# kernel ${KERNEL}: (1) IPv6 answered exchanges counted per backend ${JSON.stringify(answered)}; black hole -> b2 ` +
      `removed ${sinceLastAnswerMs} ms after its last answer (${ms} ms after the black hole began to be set up; ${unanswered} unanswered ` +
      `exchanges counted); its flow moved; 6 digs over IPv6 answered elsewhere; healthy again -> added back as it was ${backMs} ms after its recovery began to be set up ` +
      `(hold ${HOLD_MS} ms)\n#   ${line}`);
  });

  test('(2) a backend whose dnsmasq is killed is removed: refused where the ICMPv6 error reaches the client, unanswered where IPVS drops it', async () => {
    assert.ok(KERNEL! in ICMPV6_REFUSAL_SEEN, `a known kernel (${Object.keys(ICMPV6_REFUSAL_SEEN)}), got ${KERNEL}`);
    const seen = ICMPV6_REFUSAL_SEEN[KERNEL!];
    const owner = await dest('b3');
    lab.vg = await start();
    const { flows } = await steadyFlows();
    const { ms, sinceLastAnswerMs, line } = await removedAfterFailure('b3', 'refuse', flows.b3);
    const m = await scrape();
    const refused = m.get(`${addr('b3')} refused`) ?? 0;
    const unanswered = m.get(`${addr('b3')} unanswered`) ?? 0;
    if (seen) {
      assert.match(line, /refused/, `on ${KERNEL} the ICMPv6 port unreachable reaches the flow: refused`);
      assert.ok(flows.b3.errors.length >= 1, 'the client on b3 saw ECONNREFUSED');
      assert.ok(refused >= 1, 'the receiver counted the refusal by b3\'s IPv6 address');
    } else {
      assert.match(line, /unanswered/, `on ${KERNEL} IPVS drops the ICMPv6 error: the killed backend's flow goes unanswered`);
      assert.equal(flows.b3.errors.length, 0, 'the client on b3 heard no ICMP error');
      assert.equal(refused, 0, 'no refusal counted');
      assert.ok(unanswered >= 1, 'unanswered exchanges counted by b3\'s IPv6 address');
    }
    // Not asserted, one candidate reason ruled in or out per kernel: conntrack, where it is hooked in the client's
    // namespace, validates an ICMPv6 error's checksum with the pseudo-header at PRE_ROUTING and marks it valid, so
    // IPVS's own (broken) check would pass it. Its entry count says whether it is hooked here.
    const conntrack = readOr('/proc/sys/net/netfilter/nf_conntrack_count');
    const backMs = await restored('b3', owner);
    console.log(`# kernel ${KERNEL}: (2) dnsmasq killed -> b3 removed as ${seen ? 'refused' : 'unanswered'} ${sinceLastAnswerMs} ms after its last answer ` +
      `(${ms} ms after the kill began; ECONNREFUSED seen by the client: ${flows.b3.errors.length}; counted refused ${refused}, unanswered ${unanswered}; ` +
      `conntrack entries in the client namespace: ${conntrack}); answering again -> added back as it was ${backMs} ms after its restart began\n#   ${line}`);
  });
});
