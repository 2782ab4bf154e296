// The UDP flow model (src/receiver/udp-flows.ts): kernel counters and events in, exchanges out. Pure: the counters
// here are what bpf/receiver.bpf.c would have written at each moment.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { Endpoint, KernelEvent, UdpCounters } from '../../src/receiver/events';
import { Exchange, UdpFlows } from '../../src/receiver/udp-flows';

const MS = 1_000_000n;
const SK = 0xffff8880deadbeefn;
const VIP: Endpoint = { addr: '10.99.0.1', port: 53 };
const B1: Endpoint = { addr: '10.200.0.2', port: 53 };
const B2: Endpoint = { addr: '10.200.0.3', port: 53 };
const DEADLINE_MS = 200n;

function counters(o: Partial<UdpCounters> = {}): UdpCounters {
  return { startNs: 1000n * MS, lastSendNs: 0n, oldestNs: 0n, replyNsSum: 0n, replyNsMax: 0n, sent: 0, replies: 0, waits: 0, errors: 0, service: 0, ...o };
}

function event(kind: KernelEvent['kind'], tsNs: bigint, udp: UdpCounters, o: Partial<KernelEvent> = {}): KernelEvent {
  return {
    kind, tsNs, sk: SK, startNs: udp.startNs, pid: 42, family: 4, src: { addr: '10.200.0.1', port: 40000 }, dst: VIP,
    oldState: 0, newState: 0, synRetransmits: 0, skErr: 0, service: true, rescheduled: false, noSocket: false, udp, ...o,
  };
}

function model(services: Record<number, string> = { 0: 'dns' }) {
  const out: Exchange[] = [];
  const ended: string[] = [];
  const deadlines: (string | undefined)[] = [];
  const m = new UdpFlows({ exchange: (e) => out.push(e), flowEnded: (f) => ended.push(f.service) }, {
    service: (id) => (services[id] ? { name: services[id], address: VIP.addr, port: VIP.port, family: 4 } : undefined),
    deadlineNs: (_s, b) => { deadlines.push(b?.addr); return DEADLINE_MS * MS; },
  });
  return { m, out, ended, deadlines };
}

/** A flow scheduled to B1 at t=1000 ms with its first datagram outstanding. */
function scheduled() {
  const x = model();
  const c = counters({ sent: 1, lastSendNs: 1000n * MS, oldestNs: 1000n * MS });
  x.m.handle(event('udp_flow', 1000n * MS, c, { backend: B1 }));
  return { ...x, c };
}

/** A served flow: one answered exchange (10 ms) so the service is known to answer. */
function answered() {
  const x = scheduled();
  const c = counters({ sent: 1, replies: 1, waits: 1, replyNsSum: 10n * MS, replyNsMax: 10n * MS, lastSendNs: 1000n * MS });
  x.m.poll(1100n * MS, new Map([[SK, c]]));
  return { ...x, c };
}

test('replies become an answered exchange with the mean reply time, on the backend IPVS chose', () => {
  const { out } = answered();
  assert.equal(out.length, 1);
  const e = out[0];
  assert.equal(e.outcome, 'answered');
  assert.equal(e.count, 1);
  assert.equal(e.waits, 1);
  assert.equal(e.replyMs, 10);
  assert.deepEqual(e.backend, B1);
  assert.equal(e.flow.service, 'dns');
  assert.deepEqual(e.flow.dst, VIP);
  assert.equal(e.flow.src.port, 40000);
  assert.equal(e.late, undefined);
});

test('counters already reported are not reported again; several replies in one poll are one exchange with their mean', () => {
  const { m, out } = answered();
  m.poll(1200n * MS, new Map([[SK, counters({ sent: 1, replies: 1, waits: 1, replyNsSum: 10n * MS })]]));
  assert.equal(out.length, 1, 'nothing new');
  m.poll(1300n * MS, new Map([[SK, counters({ sent: 4, replies: 4, waits: 4, replyNsSum: 70n * MS, lastSendNs: 1290n * MS })]]));
  assert.equal(out.length, 2);
  assert.equal(out[1].count, 3);
  assert.equal(out[1].replyMs, 20);
});

test('a wait past the deadline is declared unanswered once, then datagrams sent after it make the next wait', () => {
  const { m, out } = answered();
  const wait = (now: bigint, sent: number, last: bigint) =>
    m.poll(now * MS, new Map([[SK, counters({ sent, replies: 1, waits: 1, replyNsSum: 10n * MS, oldestNs: 2000n * MS, lastSendNs: last * MS })]]));
  wait(2150n, 2, 2000n);
  assert.equal(out.length, 1, 'not yet: 150 ms < 200 ms');
  wait(2250n, 3, 2200n);
  assert.equal(out.length, 2);
  const u = out[1];
  assert.equal(u.outcome, 'unanswered');
  assert.equal(u.startNs, 2000n * MS);
  assert.equal(u.endNs, 2250n * MS);
  assert.equal(u.datagrams, 2, 'the datagrams sent since the last answer');
  assert.deepEqual(u.backend, B1);
  wait(2350n, 3, 2200n);
  assert.equal(out.length, 2, 'declared once: no new datagram since');
  wait(2450n, 4, 2420n);
  assert.equal(out.length, 2, 'a new datagram starts the next wait, at the latest send seen (2420 ms)');
  wait(2600n, 5, 2580n);
  assert.equal(out.length, 2, '180 ms after 2420');
  wait(2650n, 5, 2580n);
  assert.equal(out.length, 3);
  assert.equal(out[2].outcome, 'unanswered');
  assert.equal(out[2].startNs, 2420n * MS);
  assert.equal(out[2].datagrams, 2);
});

test('a reply after a declared wait is a late answer (slow, not dead)', () => {
  const { m, out } = answered();
  m.poll(2300n * MS, new Map([[SK, counters({ sent: 2, replies: 1, waits: 1, replyNsSum: 10n * MS, oldestNs: 2000n * MS, lastSendNs: 2000n * MS })]]));
  assert.equal(out.at(-1)!.outcome, 'unanswered');
  m.poll(2400n * MS, new Map([[SK, counters({ sent: 2, replies: 2, waits: 2, replyNsSum: 360n * MS, lastSendNs: 2000n * MS })]]));
  const late = out.at(-1)!;
  assert.equal(late.outcome, 'answered');
  assert.equal(late.late, true);
  assert.equal(late.replyMs, 350);
  m.poll(2500n * MS, new Map([[SK, counters({ sent: 3, replies: 3, waits: 3, replyNsSum: 361n * MS, lastSendNs: 2450n * MS })]]));
  assert.equal(out.at(-1)!.late, undefined, 'the next answer is an ordinary one');
});

test('silence is never declared for a service whose flows were never answered (not request/reply)', () => {
  const { m, out } = scheduled();
  m.poll(5000n * MS, new Map([[SK, counters({ sent: 50, oldestNs: 1000n * MS, lastSendNs: 4990n * MS })]]));
  assert.deepEqual(out, []);
});

test('an ICMP error is one refused (ECONNREFUSED) or unreachable exchange at once, and ends the wait', () => {
  const { m, out } = answered();
  const c = counters({ sent: 2, replies: 1, waits: 1, replyNsSum: 10n * MS, errors: 1, lastSendNs: 2000n * MS });
  m.handle(event('udp_error', 2008n * MS, c, { skErr: 111 }));
  const r = out.at(-1)!;
  assert.equal(r.outcome, 'refused');
  assert.equal(r.errno, 111);
  assert.equal(r.startNs, 2000n * MS);
  assert.equal(r.endNs, 2008n * MS);
  assert.deepEqual(r.backend, B1);
  m.handle(event('udp_error', 2108n * MS, { ...c, sent: 3, errors: 2, lastSendNs: 2100n * MS }, { skErr: 113 }));
  assert.equal(out.at(-1)!.outcome, 'unreachable');
  // The kernel zeroed the wait with the error: nothing unanswered follows.
  m.poll(2500n * MS, new Map([[SK, { ...c, sent: 3, errors: 2, lastSendNs: 2100n * MS }]]));
  assert.deepEqual(out.map((e) => e.outcome), ['answered', 'refused', 'unreachable']);
});

test('a flow moved to another backend (its destination removed): answers go to the new one, and are not late for the old', () => {
  const { m, out } = answered();
  m.poll(2300n * MS, new Map([[SK, counters({ sent: 3, replies: 1, waits: 1, replyNsSum: 10n * MS, oldestNs: 2000n * MS, lastSendNs: 2100n * MS })]]));
  assert.equal(out.at(-1)!.outcome, 'unanswered');
  assert.deepEqual(out.at(-1)!.backend, B1);
  // Its next datagram (the 4th) was scheduled again, to B2; the kernel restarted the wait with it.
  m.handle(event('udp_flow', 2400n * MS, counters({ sent: 4, replies: 1, waits: 1, replyNsSum: 10n * MS, oldestNs: 2400n * MS, lastSendNs: 2400n * MS }), { backend: B2, rescheduled: true }));
  m.poll(2500n * MS, new Map([[SK, counters({ sent: 4, replies: 2, waits: 2, replyNsSum: 12n * MS, lastSendNs: 2400n * MS })]]));
  const a = out.at(-1)!;
  assert.equal(a.outcome, 'answered');
  assert.deepEqual(a.backend, B2);
  assert.equal(a.late, undefined, 'not a late answer from B1');
  assert.equal(a.datagrams, 1);
});

test('the deadline is asked for the flow\'s backend', () => {
  const { m, deadlines } = answered();
  m.poll(2100n * MS, new Map([[SK, counters({ sent: 2, replies: 1, waits: 1, replyNsSum: 10n * MS, oldestNs: 2000n * MS, lastSendNs: 2000n * MS })]]));
  assert.deepEqual(deadlines, [B1.addr]);
});

test('the end event accounts the last counters (a short flow, like dig\'s, lives between two polls) and forgets the flow', () => {
  const x = scheduled();
  x.m.handle(event('udp_end', 1003n * MS, counters({ sent: 1, replies: 1, waits: 1, replyNsSum: 2n * MS, lastSendNs: 1000n * MS })));
  assert.deepEqual(x.out.map((e) => [e.outcome, e.replyMs]), [['answered', 2]]);
  assert.deepEqual(x.ended, ['dns']);
  assert.equal(x.m.size, 0);
});

test('flows without an event are adopted from the map with their service (backend unknown); flows gone from the map are forgotten', () => {
  const x = model({ 0: 'dns', 1: 'ntp' });
  x.m.poll(1000n * MS, new Map([[SK, counters({ sent: 10, replies: 10, waits: 10, replyNsSum: 50n * MS, service: 1 })]]));
  assert.equal(x.m.size, 1);
  assert.equal(x.out.length, 0, 'what was counted before the receiver knew the flow is not reported');
  x.m.poll(1100n * MS, new Map([[SK, counters({ sent: 11, replies: 11, waits: 11, replyNsSum: 55n * MS, service: 1 })]]));
  assert.equal(x.out.length, 1);
  assert.equal(x.out[0].flow.service, 'ntp');
  assert.equal(x.out[0].backend, undefined);
  assert.deepEqual(x.out[0].flow.dst, VIP);
  x.m.poll(1200n * MS, new Map());
  assert.equal(x.m.size, 0);
  assert.deepEqual(x.ended, ['ntp'], 'a flow gone from the map ends (its telemetry state is dropped)');
});

test('a flow of an unknown service index (configuration changed) is ignored', () => {
  const x = model();
  x.m.poll(1000n * MS, new Map([[SK, counters({ sent: 1, service: 7 })]]));
  x.m.handle(event('udp_flow', 1000n * MS, counters({ sent: 1, service: 7 }), { backend: B1 }));
  assert.equal(x.m.size, 0);
  assert.deepEqual(x.out, []);
});

test('an event of an adopted flow fills in its client address and backend without reporting its counters twice', () => {
  const x = model();
  x.m.poll(1000n * MS, new Map([[SK, counters({ sent: 1, oldestNs: 1000n * MS })]]));
  x.m.handle(event('udp_flow', 1000n * MS, counters({ sent: 1, oldestNs: 1000n * MS }), { backend: B1 }));
  x.m.poll(1100n * MS, new Map([[SK, counters({ sent: 1, replies: 1, waits: 1, replyNsSum: 3n * MS })]]));
  assert.equal(x.out.length, 1);
  assert.equal(x.out[0].count, 1);
  assert.deepEqual(x.out[0].backend, B1);
  assert.equal(x.out[0].flow.src.port, 40000);
});
