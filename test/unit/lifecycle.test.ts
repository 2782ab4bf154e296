// The lifecycle classifier on hand-built event sequences: the orders the kernel produces, and lost events.
import { test } from 'node:test';
import * as assert from 'node:assert/strict';
import { Attempt, Connection, Lifecycle, LifecycleSink } from '../../src/receiver/lifecycle';
import { Endpoint, KernelEvent, TcpState } from '../../src/receiver/events';

const VIP: Endpoint = { addr: '10.99.0.1', port: 80 };
const B1: Endpoint = { addr: '10.200.0.2', port: 80 };
const B2: Endpoint = { addr: '10.200.0.4', port: 80 };
const ms = (n: number) => BigInt(n) * 1_000_000n;

function ev(kind: KernelEvent['kind'], t: number, o: Partial<KernelEvent> = {}): KernelEvent {
  return {
    kind, tsNs: ms(t), sk: 0xabcn, startNs: 0n, pid: 42, family: 4, src: { addr: '10.200.0.1', port: 40000 },
    dst: VIP, oldState: 0, newState: 0, synRetransmits: 0, skErr: 0, service: true, rescheduled: false,
    noSocket: false, ...o,
  };
}
const st = (t: number, from: number, to: number, o: Partial<KernelEvent> = {}) => ev('state', t, { oldState: from, newState: to, ...o });
const synSent = (t: number, o: Partial<KernelEvent> = {}) =>
  st(t, TcpState.CLOSE, TcpState.SYN_SENT, { src: { addr: '10.200.0.1', port: 0 }, startNs: ms(t), ...o });
const ipvs = (t: number, backend: Endpoint, o: Partial<KernelEvent> = {}) =>
  ev('ipvs_conn', t, { backend, oldState: TcpState.SYN_SENT, newState: TcpState.SYN_SENT, ...o });
const retx = (t: number, n: number) => ev('retransmit', t, { oldState: TcpState.SYN_SENT, newState: TcpState.SYN_SENT, synRetransmits: n });

function run(events: KernelEvent[]) {
  const attempts: Attempt[] = [];
  const started: unknown[] = [];
  const ended: Connection[] = [];
  const sink: LifecycleSink = {
    attemptEnded: (a) => attempts.push(a),
    connectionStarted: (c) => started.push(c),
    connectionEnded: (c) => ended.push(c),
  };
  const lc = new Lifecycle(sink, { serviceOf: (d) => (d.addr === VIP.addr && d.port === VIP.port ? 'web' : undefined) });
  for (const e of events) lc.handle(e);
  const brief = attempts.map((a) => `${a.index}:${a.backend?.addr ?? '?'}:${a.outcome}${a.final ? '' : '+'}`);
  return { attempts, started, ended, brief, lc };
}

test('established then closed: one attempt, one connection, timings and service', () => {
  const r = run([
    synSent(0), ipvs(0, B1), st(2, TcpState.SYN_SENT, TcpState.ESTABLISHED),
    st(50, TcpState.ESTABLISHED, TcpState.FIN_WAIT1), st(51, TcpState.FIN_WAIT1, TcpState.FIN_WAIT2),
    st(52, TcpState.FIN_WAIT2, TcpState.CLOSE),
  ]);
  assert.deepEqual(r.brief, ['0:10.200.0.2:established']);
  assert.equal(r.attempts[0].endNs - r.attempts[0].startNs, ms(2));
  assert.equal(r.attempts[0].socket.service, 'web');
  assert.equal(r.attempts[0].socket.src.port, 40000, 'source port learnt after SynSent');
  assert.equal(r.started.length, 1);
  assert.equal(r.ended.length, 1);
  assert.equal(r.ended[0].outcome, 'closed');
  assert.equal(r.ended[0].backend?.addr, B1.addr);
  assert.equal(r.ended[0].endNs - r.ended[0].startNs, ms(50));
});

test('refused: RST in SynSent ends the attempt at the reset, with the backend', () => {
  const r = run([synSent(0), ipvs(0, B1), ev('reset', 1, { newState: TcpState.SYN_SENT, oldState: TcpState.SYN_SENT }),
    st(1, TcpState.SYN_SENT, TcpState.CLOSE, { skErr: 111 })]);
  assert.deepEqual(r.brief, ['0:10.200.0.2:refused']);
  assert.equal(r.attempts[0].endNs, ms(1));
  assert.equal(r.ended.length, 0);
});

const rstIn = (t: number, o: Partial<KernelEvent> = {}) => ev('rst_in', t, { oldState: TcpState.SYN_SENT, newState: TcpState.SYN_SENT, ...o });
const reset = (t: number) => ev('reset', t, { oldState: TcpState.SYN_SENT, newState: TcpState.SYN_SENT });

test('refused, RST seen arriving and then taken by the socket: one refused attempt, not two', () => {
  const r = run([synSent(0), ipvs(0, B1), rstIn(1), reset(1), st(1, TcpState.SYN_SENT, TcpState.CLOSE, { skErr: 111 })]);
  assert.deepEqual(r.brief, ['0:10.200.0.2:refused+']);
  assert.equal(r.attempts[0].endNs, ms(1));
  assert.equal(r.attempts[0].skErr, 111);
});

test('refused and held back: refused on B1, then the rescheduled retransmit established on B2', () => {
  const r = run([synSent(0), ipvs(0, B1), rstIn(1), ipvs(1000, B2, { rescheduled: true }), retx(1000, 1),
    st(1002, TcpState.SYN_SENT, TcpState.ESTABLISHED, { synRetransmits: 1 })]);
  assert.deepEqual(r.brief, ['0:10.200.0.2:refused+', '1:10.200.0.4:established']);
  assert.equal(r.attempts[1].late, false, 'a rescue is not a late answer');
  assert.equal(r.ended.length, 0);
  assert.equal(r.started.length, 1);
});

test('held once, refused again by the next backend: the second RST is one refusal, reported once', () => {
  const r = run([synSent(0), ipvs(0, B1), rstIn(1), ipvs(1000, B2, { rescheduled: true, synRetransmits: 1 }), retx(1000, 1),
    rstIn(1001, { synRetransmits: 1 }), reset(1001), st(1001, TcpState.SYN_SENT, TcpState.CLOSE, { skErr: 111, synRetransmits: 1 })]);
  assert.deepEqual(r.brief, ['0:10.200.0.2:refused+', '1:10.200.0.4:refused+']);
});

test('a reset with no RST seen arriving (observer not attached) is still a refusal', () => {
  const r = run([synSent(0), ipvs(0, B1), rstIn(1), reset(1), st(2, TcpState.SYN_SENT, TcpState.CLOSE, { skErr: 111 }),
    synSent(10, { sk: 0xdefn }), ipvs(10, B2, { sk: 0xdefn }), ev('reset', 11, { sk: 0xdefn, oldState: TcpState.SYN_SENT, newState: TcpState.SYN_SENT })]);
  assert.deepEqual(r.brief, ['0:10.200.0.2:refused+', '0:10.200.0.4:refused']);
});

test('rescheduled by IPVS, kprobe before the retransmit tracepoint: unanswered on B1, established on B2', () => {
  const r = run([synSent(0), ipvs(0, B1), ipvs(1000, B2, { rescheduled: true }), retx(1000, 1),
    st(1001, TcpState.SYN_SENT, TcpState.ESTABLISHED, { synRetransmits: 1 }), st(2000, TcpState.ESTABLISHED, TcpState.CLOSE)]);
  assert.deepEqual(r.brief, ['0:10.200.0.2:unanswered+', '1:10.200.0.4:established']);
  assert.equal(r.ended[0].backend?.addr, B2.addr, 'the connection belongs to the backend that answered');
});

test('a retransmit to the same backend, then one rescheduled: both unanswered on the dead backend, never on the one that answered', () => {
  // SYN #1 went to B1 again (IPVS kept the entry: no ip_vs_conn_new), B1 was quarantined, SYN #2 was rescheduled to
  // B2. The kprobe reports SYN #2's scheduling before its retransmit tracepoint (the kernels' order): it ends SYN
  // #1's attempt on B1. Reading it as SYN #1's own backend blamed B2, healthy, for B1's silence (fleet benchmark).
  const r = run([synSent(0), ipvs(0, B1), retx(1000, 1), ipvs(3000, B2, { rescheduled: true, synRetransmits: 1 }), retx(3000, 2),
    st(3001, TcpState.SYN_SENT, TcpState.ESTABLISHED, { synRetransmits: 2 })]);
  assert.deepEqual(r.brief, ['0:10.200.0.2:unanswered+', '1:10.200.0.2:unanswered+', '2:10.200.0.4:established']);
  assert.equal(r.attempts[2].late, false, 'a rescue is not a late answer');
});

test('a retransmit to the same backend answered: late, since it may answer the first SYN', () => {
  assert.deepEqual(run([synSent(0), ipvs(0, B1), retx(1000, 1), st(1005, TcpState.SYN_SENT, TcpState.ESTABLISHED, { synRetransmits: 1 })]).brief,
    ['0:10.200.0.2:unanswered+', '1:10.200.0.2:established']);
  const r = run([synSent(0), ipvs(0, B1), retx(1000, 1), st(1005, TcpState.SYN_SENT, TcpState.ESTABLISHED, { synRetransmits: 1 })]);
  assert.equal(r.attempts[1].late, true);
});

test('never answered: each SYN an unanswered attempt, the last one final when the kernel gives up', () => {
  const r = run([synSent(0), ipvs(0, B1), retx(1000, 1), retx(3000, 2), st(7000, TcpState.SYN_SENT, TcpState.CLOSE, { skErr: 110, synRetransmits: 2 })]);
  assert.deepEqual(r.brief, ['0:10.200.0.2:unanswered+', '1:10.200.0.2:unanswered+', '2:10.200.0.2:unanswered']);
  assert.deepEqual(r.attempts.map((a) => Number(a.endNs - a.startNs) / 1e6), [1000, 2000, 4000]);
});

test('abandoned: the application closes in SynSent; unreachable: an ICMP error', () => {
  assert.deepEqual(run([synSent(0), ipvs(0, B1), retx(1000, 1), st(1500, TcpState.SYN_SENT, TcpState.CLOSE)]).brief,
    ['0:10.200.0.2:unanswered+', '1:10.200.0.2:abandoned']);
  assert.deepEqual(run([synSent(0), ipvs(0, B1), st(5, TcpState.SYN_SENT, TcpState.CLOSE, { skErr: 113 })]).brief,
    ['0:10.200.0.2:unreachable']);
});

test('reset after established', () => {
  const r = run([synSent(0), st(1, TcpState.SYN_SENT, TcpState.ESTABLISHED),
    ev('reset', 9, { oldState: TcpState.ESTABLISHED, newState: TcpState.ESTABLISHED }), st(9, TcpState.ESTABLISHED, TcpState.CLOSE)]);
  assert.equal(r.ended[0].outcome, 'reset');
  assert.equal(r.attempts[0].backend, undefined, 'no kprobe: backend unknown, not guessed');
});

test('lost events: no outcome is invented', () => {
  // A second SynSent on the same socket address means the first socket's end was lost.
  const r = run([synSent(0), ipvs(0, B1), synSent(10), st(11, TcpState.SYN_SENT, TcpState.ESTABLISHED)]);
  assert.equal(r.attempts.length, 1, 'only the socket we saw whole');
  assert.equal(r.attempts[0].startNs, ms(10));
  assert.equal(r.lc.stats().untracked, 1);
  // Events of sockets never seen starting are ignored.
  const r2 = run([st(5, TcpState.SYN_SENT, TcpState.ESTABLISHED), retx(6, 1), st(7, TcpState.ESTABLISHED, TcpState.CLOSE)]);
  assert.equal(r2.attempts.length + r2.ended.length, 0);
});

test('expire drops handshakes whose end was lost, counted', () => {
  const r = run([synSent(0)]);
  assert.equal(r.lc.expire(ms(1000)), 0);
  assert.equal(r.lc.expire(ms(301_000)), 1);
  assert.equal(r.lc.stats().untracked, 1);
  assert.equal(r.attempts.length, 0);
});

function runWithDeadline(events: (KernelEvent | KernelEvent[] | { overdue: number })[], deadlineMs = 200) {
  const attempts: Attempt[] = [];
  const started: Omit<Connection, 'endNs' | 'outcome'>[] = [];
  const lc = new Lifecycle({
    attemptEnded: (a) => attempts.push(a), connectionStarted: (c) => started.push(c), connectionEnded: () => {},
  }, { deadlineNs: () => ms(deadlineMs) });
  for (const e of events.flat()) {
    if ('overdue' in e) lc.overdue(ms(e.overdue));
    else lc.handle(e);
  }
  // The main socket's attempts (sk 0xabc); `answeredBy` sockets only corroborate.
  const brief = attempts.filter((a) => a.socket.sk === 0xabcn)
    .map((a) => `${a.index}:${a.backend?.addr ?? '?'}:${a.outcome}${a.final ? '' : '+'}${a.early ? ' early' : ''}${a.late ? ' late' : ''}`);
  return { attempts: attempts.filter((a) => a.socket.sk === 0xabcn), started, brief, lc };
}

/** Another client socket whose SYN at `syn` ms (to B2) is answered at `answer` ms: the host's path works. */
let otherSk = 0x1000n;
function answeredBy(syn: number, answer: number): KernelEvent[] {
  const o = { sk: otherSk++, src: { addr: '10.200.0.1', port: 50000 + Number(otherSk % 1000n) } };
  return [synSent(syn, { sk: o.sk }), ipvs(syn, B2, o), st(answer, TcpState.SYN_SENT, TcpState.ESTABLISHED, o)];
}

test('deadline: a dead backend is declared unanswered before the kernel retransmits; the retransmit is the rescue', () => {
  const r = runWithDeadline([synSent(0), ipvs(0, B1), { overdue: 150 }, answeredBy(50, 52), { overdue: 260 },
    ipvs(1000, B2, { rescheduled: true }), retx(1000, 1), st(1002, TcpState.SYN_SENT, TcpState.ESTABLISHED, { synRetransmits: 1 })]);
  assert.deepEqual(r.brief, ['0:10.200.0.2:unanswered+ early', '1:10.200.0.4:established']);
  assert.equal(r.attempts[0].endNs, ms(200), 'ends at the deadline, not when the scan ran');
  assert.equal(r.started.find((c) => c.socket.sk === 0xabcn)?.backend?.addr, B2.addr);
});

test('deadline: a slow backend answers late — reported again as established, late', () => {
  const r = runWithDeadline([synSent(0), ipvs(0, B1), answeredBy(50, 52), { overdue: 250 }, st(300, TcpState.SYN_SENT, TcpState.ESTABLISHED)]);
  assert.deepEqual(r.brief, ['0:10.200.0.2:unanswered+ early', '0:10.200.0.2:established late']);
  assert.equal(r.attempts[1].endNs - r.attempts[1].startNs, ms(300), 'the real handshake time');
  assert.equal(r.started.filter((c) => c.socket.sk === 0xabcn).length, 1);
});

test('deadline: an answer after a retransmit whose events were not seen is not credited to the backend declared unanswered', () => {
  // The retransmit (which IPVS rescheduled onto a healthy backend) left no event before the answer: the socket's own
  // count of SYN retransmits says a later SYN went out, so the answer may be that SYN's, from an unknown backend.
  const r = runWithDeadline([synSent(0), ipvs(0, B1), answeredBy(50, 52), { overdue: 250 },
    st(1023, TcpState.SYN_SENT, TcpState.ESTABLISHED, { synRetransmits: 1 })]);
  assert.deepEqual(r.brief, ['0:10.200.0.2:unanswered+ early', '1:?:established']);
  assert.equal(r.attempts.some((a) => a.late), false, 'no late answer lifts the dead backend\'s quarantine');
  assert.equal(r.started.find((c) => c.socket.sk === 0xabcn)?.backend, undefined, 'the connection\'s backend is not guessed');
});

test('deadline: late refusal, and a retransmit without reschedule after an early verdict', () => {
  assert.deepEqual(runWithDeadline([synSent(0), ipvs(0, B1), answeredBy(50, 52), { overdue: 250 },
    ev('reset', 400, { oldState: TcpState.SYN_SENT, newState: TcpState.SYN_SENT }), st(400, TcpState.SYN_SENT, TcpState.CLOSE, { skErr: 111 })]).brief,
  ['0:10.200.0.2:unanswered+ early', '0:10.200.0.2:refused late']);
  assert.deepEqual(runWithDeadline([synSent(0), ipvs(0, B1), answeredBy(50, 52), { overdue: 250 }, retx(1000, 1), answeredBy(1050, 1052), { overdue: 1300 }, retx(3000, 2),
    st(3010, TcpState.SYN_SENT, TcpState.ESTABLISHED, { synRetransmits: 2 })]).brief,
  ['0:10.200.0.2:unanswered+ early', '1:10.200.0.2:unanswered+ early', '2:10.200.0.2:established late'],
  'answered by the backend that had been counted unanswered: slow, not dead');
});

test('deadline: silence is not declared while the host processes no answer to a later SYN (a stall, not a dead backend)', () => {
  // Nothing answered after our SYN: past the deadline the attempt waits; no timer is armed for it any more.
  const stalled = runWithDeadline([synSent(10), ipvs(10, B1), { overdue: 250 }]);
  assert.deepEqual(stalled.brief, []);
  assert.equal(stalled.lc.waitingForCorroboration, 1);
  assert.equal(stalled.lc.nextDeadline(), undefined, 'a waiting attempt arms no timer (it would fire at once, again and again)');
  // An answer to an *earlier* SYN, processed after the stall, corroborates nothing; then ours is answered: no verdict at all.
  assert.deepEqual(runWithDeadline([synSent(10), ipvs(10, B1), { overdue: 250 }, answeredBy(5, 300),
    st(301, TcpState.SYN_SENT, TcpState.ESTABLISHED)]).brief, ['0:10.200.0.2:established']);
  // The kernel retransmits first: unanswered, as without a deadline (not early).
  assert.deepEqual(runWithDeadline([synSent(10), ipvs(10, B1), { overdue: 250 }, retx(1010, 1)]).brief, ['0:10.200.0.2:unanswered+']);
});

test('deadline: a waiting attempt is declared the moment a later SYN is answered, as of its deadline', () => {
  const r = runWithDeadline([synSent(0), ipvs(0, B1), { overdue: 250 }, answeredBy(260, 262)]);
  assert.deepEqual(r.brief, ['0:10.200.0.2:unanswered+ early']);
  assert.equal(r.attempts[0].endNs, ms(200), 'ends at its deadline');
  assert.equal(r.lc.waitingForCorroboration, 0);
  // A refusal is an answer too (a held-back RST included).
  const refusal = [synSent(260, { sk: 0x77n }), ipvs(260, B2, { sk: 0x77n, src: { addr: '10.200.0.1', port: 41000 } }),
    ev('rst_in', 262, { sk: 0x77n, src: { addr: '10.200.0.1', port: 41000 }, oldState: TcpState.SYN_SENT, newState: TcpState.SYN_SENT })];
  assert.deepEqual(runWithDeadline([synSent(0), ipvs(0, B1), { overdue: 250 }, refusal]).brief, ['0:10.200.0.2:unanswered+ early']);
});
