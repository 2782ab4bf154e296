// The connection lifecycle model: kernel events in, classified handshake attempts and connections out.
//
// A socket is known from Close->SynSent on (by its kernel address). Each SYN it sends is one *attempt*:
// attempt n is the n-th retransmit's SYN (0 = the original). An attempt ends as soon as its outcome is known:
//   established  SynSent -> Established
//   refused      RST received in SynSent: seen arriving (rst_in, a cgroup_skb ingress observer — it may be held
//                back by the actuator so that IPVS reschedules the SYN, and then the socket stays in SynSent and
//                tcp_receive_reset never fires), or tcp_receive_reset, or Close with ECONNREFUSED
//   unanswered   no SYN-ACK within the handshake deadline (learned from the backend's RTTs, well under the
//                kernel's 1 s initial RTO), or the next SYN went out, or the kernel gave up (ETIMEDOUT)
//   unreachable  Close with an ICMP error (EHOSTUNREACH, ENETUNREACH, EHOSTDOWN)
//   abandoned    the application closed the socket in SynSent (Close with no error)
//
// Why a deadline: a failure known only at the first retransmit is known too late to save that retransmit —
// it has already gone to the dead backend. Declared at the deadline, the quarantine is in place before the
// kernel retransmits, and IPVS sends that very retransmit to a healthy backend. If the answer comes after all
// (a slow backend, not a dead one), the attempt is reported a second time with its real outcome and `late`.
//
// A deadline passing proves nothing by itself when this host is what stalled: if the kernel processes no answer
// at all for a while (softirqs starved, a vCPU descheduled — measured in the lab as healthy backends declared
// unanswered at 200 ms right after a failover's burst of work), every backend looks dead at once. So an attempt
// past its deadline is declared unanswered only once an answer (SYN-ACK or RST) to a SYN sent *after* its own has
// been processed: the path works, this backend is silent. Until then it waits — for that corroboration, its own
// answer, or the kernel's retransmit (then `unanswered` as without a deadline).
//
// When a destination is quarantined (weight 0, expire_nodest_conn=1), IPVS reschedules the next SYN
// retransmit to another backend and ip_vs_conn_new fires again: that SYN is a new attempt on the new backend
// and the old one ended unanswered — never a success of the dead backend. The kernel reports the reschedule
// (kprobe, while the SYN is transmitted) *before* the retransmit tracepoint (which fires once it was sent) — on
// 5.10, 6.1 and 6.12, asserted by test/lab/receiver.test.ts. So a retransmit that opens an attempt has had its
// scheduling reported already: no ip_vs_conn_new arrived, IPVS kept the entry, and the attempt is on the previous
// attempt's backend, confirmed. Only the first SYN's attempt waits for its ip_vs_conn_new (SynSent comes before
// the transmit); any other ip_vs_conn_new supersedes the open attempt. (Taking it as the open attempt's backend
// blamed a healthy backend for the dead one's silence: SYN #1 went to the dead backend again, SYN #2 was
// rescheduled to a healthy one, and SYN #1 was reported unanswered on the healthy one — seen in the fleet benchmark.)
import { Endpoint, KernelEvent, TcpState } from './events';

export type AttemptOutcome = 'established' | 'refused' | 'unanswered' | 'unreachable' | 'abandoned';
export type ConnectionOutcome = 'closed' | 'reset';
export const ATTEMPT_OUTCOMES: readonly AttemptOutcome[] = ['established', 'refused', 'unanswered', 'unreachable', 'abandoned'];
export const CONNECTION_OUTCOMES: readonly ConnectionOutcome[] = ['closed', 'reset'];

export interface SocketInfo {
  sk: bigint;
  family: 4 | 6;
  pid: number;
  src: Endpoint;
  /** the virtual service the socket connected to */
  dst: Endpoint;
  /** configured service name, if dst is one */
  service?: string;
  /** CLOCK_MONOTONIC ns of Close->SynSent */
  startNs: bigint;
}

export interface Attempt {
  socket: SocketInfo;
  /** 0 for the original SYN, n for the n-th retransmit */
  index: number;
  startNs: bigint;
  endNs: bigint;
  backend?: Endpoint;
  outcome: AttemptOutcome;
  /** SYN retransmits of the socket when this attempt ended */
  synRetransmits: number;
  /** errno when the socket left SYN_SENT because of this attempt, else 0 */
  skErr: number;
  /** the socket's last attempt: it left SYN_SENT (established or closed) with this one */
  final: boolean;
  /** declared unanswered at the handshake deadline, before the kernel retransmitted */
  early: boolean;
  /** the real answer to an attempt already reported unanswered (at its deadline, or retransmitted to the same backend) */
  late: boolean;
}

export interface Connection {
  socket: SocketInfo;
  /** the attempt that established it */
  attempt: Attempt;
  backend?: Endpoint;
  startNs: bigint;
  endNs: bigint;
  outcome: ConnectionOutcome;
}

export interface LifecycleSink {
  attemptEnded(a: Attempt): void;
  connectionStarted(c: Omit<Connection, 'endNs' | 'outcome'>): void;
  connectionEnded(c: Connection): void;
  /** the socket is gone; `tracked` is false when it was forgotten without an outcome (lost events, full table) */
  socketGone?(sk: bigint, tracked: boolean): void;
}

export interface LifecycleStats {
  tracked: number;
  /** sockets dropped without an outcome: their events were lost, or the table was full */
  untracked: number;
}

interface OpenAttempt {
  index: number;
  startNs: bigint;
  backend?: Endpoint;
  /** IPVS reported this attempt's backend itself (not inherited from the previous SYN) */
  confirmed: boolean;
}

interface SocketRecord {
  info: SocketInfo;
  synSent: boolean;
  attempt?: OpenAttempt;
  /** the last attempt that ended while the socket stayed in SYN_SENT */
  last?: Attempt;
  connection?: { attempt: Attempt; startNs: bigint; reset: boolean };
  lastNs: bigint;
  /** rst_in ended the last attempt: the tcp_receive_reset of the same RST, if it comes, is already reported */
  rstSeen?: boolean;
}

const ECONNREFUSED = 111;
const ETIMEDOUT = 110;
const UNREACHABLE = new Set([101 /* ENETUNREACH */, 112 /* EHOSTDOWN */, 113 /* EHOSTUNREACH */]);

export interface LifecycleOptions {
  /** names the configured service for a destination, if any */
  serviceOf?: (dst: Endpoint) => string | undefined;
  /** bound on sockets tracked at once; the oldest is dropped (and counted) beyond it */
  maxSockets?: number;
  /** a socket still in SYN_SENT after this long lost its events: drop it without an outcome */
  handshakeTtlNs?: bigint;
  /** how long an attempt may wait for its SYN-ACK before it counts as unanswered; undefined: no deadline */
  deadlineNs?: (socket: SocketInfo, backend: Endpoint | undefined) => bigint | undefined;
}

export class Lifecycle {
  private readonly sockets = new Map<bigint, SocketRecord>();
  /** sockets with an open attempt, for the deadline scan */
  private readonly pending = new Set<bigint>();
  /** of those, attempts past their deadline waiting for an answer to a later SYN to corroborate the silence */
  private readonly waiting = new Set<bigint>();
  /** the latest SYN start (CLOCK_MONOTONIC ns) whose answer, SYN-ACK or RST, was processed */
  private answeredSynNs = -1n;
  private readonly serviceOf: (dst: Endpoint) => string | undefined;
  private readonly maxSockets: number;
  private readonly handshakeTtlNs: bigint;
  private readonly deadlineNs?: LifecycleOptions['deadlineNs'];
  private untracked = 0;

  constructor(private readonly sink: LifecycleSink, opts: LifecycleOptions = {}) {
    this.serviceOf = opts.serviceOf ?? (() => undefined);
    this.maxSockets = opts.maxSockets ?? 1_000_000;
    // Linux gives up on a SYN after ~127 s (5.10/6.1) or ~131 s (6.5+) with default tcp_syn_retries.
    this.handshakeTtlNs = opts.handshakeTtlNs ?? 300_000_000_000n;
    this.deadlineNs = opts.deadlineNs;
  }

  stats(): LifecycleStats {
    return { tracked: this.sockets.size, untracked: this.untracked };
  }

  /** The backend a socket's current attempt or connection uses, for enriching raw events. */
  backendOf(sk: bigint): Endpoint | undefined {
    const r = this.sockets.get(sk);
    return r?.attempt?.backend ?? r?.last?.backend ?? r?.connection?.attempt.backend;
  }

  handle(ev: KernelEvent): void {
    switch (ev.kind) {
      case 'state':
        return this.onState(ev);
      case 'retransmit':
        return this.onRetransmit(ev);
      case 'reset':
        return this.onReset(ev);
      case 'ipvs_conn':
        return this.onIpvsConn(ev);
      case 'rst_in':
        return this.onRstIn(ev);
    }
  }

  /**
   * Ends attempts whose SYN-ACK is overdue at `nowNs` (CLOCK_MONOTONIC) and whose silence an answer to a later SYN
   * corroborates; the others wait for one (see the header). Returns how many ended.
   */
  overdue(nowNs: bigint): number {
    if (!this.deadlineNs) return 0;
    let n = 0;
    for (const sk of this.pending) {
      if (this.waiting.has(sk)) continue;
      const r = this.sockets.get(sk);
      const a = r?.attempt;
      if (!r || !a) continue;
      const d = this.deadlineNs(r.info, a.backend);
      if (d === undefined || nowNs - a.startNs < d) continue;
      if (this.answeredSynNs > a.startNs) {
        this.endAttempt(r, a.startNs + d, 'unanswered', 0, 0, false, { early: true });
        n++;
      } else {
        this.waiting.add(sk);
      }
    }
    return n;
  }

  /** Attempts past their deadline, waiting for an answer to a later SYN (status, tests). */
  get waitingForCorroboration(): number {
    return this.waiting.size;
  }

  /** An answer to the SYN sent at `synNs` was processed: declare the waiting attempts that SYN came after. */
  private answered(synNs: bigint): void {
    if (synNs > this.answeredSynNs) this.answeredSynNs = synNs;
    if (!this.waiting.size || !this.deadlineNs) return;
    for (const sk of this.waiting) {
      const r = this.sockets.get(sk);
      const a = r?.attempt;
      if (!r || !a) {
        this.waiting.delete(sk);
        continue;
      }
      if (a.startNs >= synNs) continue;
      const d = this.deadlineNs(r.info, a.backend) ?? 0n;
      this.endAttempt(r, a.startNs + d, 'unanswered', 0, 0, false, { early: true });
    }
  }

  /** When the earliest open attempt's deadline falls (CLOCK_MONOTONIC ns), or undefined when none is pending. */
  nextDeadline(): bigint | undefined {
    if (!this.deadlineNs) return undefined;
    let next: bigint | undefined;
    for (const sk of this.pending) {
      if (this.waiting.has(sk)) continue;
      const r = this.sockets.get(sk);
      const a = r?.attempt;
      if (!r || !a) continue;
      const d = this.deadlineNs(r.info, a.backend);
      if (d !== undefined && (next === undefined || a.startNs + d < next)) next = a.startNs + d;
    }
    return next;
  }

  /** Drops sockets stuck in SYN_SENT past the TTL (their Close was lost). Call now and then. */
  expire(nowNs: bigint): number {
    let n = 0;
    for (const [sk, r] of this.sockets) {
      if (r.synSent && nowNs - r.lastNs > this.handshakeTtlNs) {
        this.forget(sk);
        n++;
      }
    }
    return n;
  }

  private open(r: SocketRecord, a: OpenAttempt): void {
    r.attempt = a;
    r.rstSeen = false;
    this.pending.add(r.info.sk);
    this.waiting.delete(r.info.sk);
  }

  private onState(ev: KernelEvent): void {
    const { oldState, newState } = ev;
    if (oldState === TcpState.CLOSE && newState === TcpState.SYN_SENT) {
      // The same kernel address is a new socket: we missed the old one's Close. Say nothing about it.
      if (this.sockets.has(ev.sk)) this.forget(ev.sk);
      if (this.sockets.size >= this.maxSockets) this.dropOldest();
      const startNs = ev.startNs || ev.tsNs;
      const r: SocketRecord = {
        info: {
          sk: ev.sk, family: ev.family, pid: ev.pid, src: { ...ev.src }, dst: { ...ev.dst },
          service: this.serviceOf(ev.dst), startNs,
        },
        synSent: true,
        lastNs: ev.tsNs,
      };
      this.sockets.set(ev.sk, r);
      this.open(r, { index: 0, startNs, confirmed: false });
      return;
    }
    const r = this.recordOf(ev);
    if (!r) return; // a socket we did not see start: no outcome can be trusted

    if (oldState === TcpState.SYN_SENT && r.synSent) {
      r.synSent = false;
      if (newState === TcpState.ESTABLISHED) {
        // An answer from the backend whose previous SYN we counted unanswered (it was retransmitted to the same
        // backend, not rescheduled) may well answer that first SYN: slow, not lost. Say so.
        const prev = r.last;
        const sameBackend = !!r.attempt && !!prev && prev.outcome === 'unanswered' && !!prev.backend && !!r.attempt.backend &&
          prev.backend.addr === r.attempt.backend.addr && prev.backend.port === r.attempt.backend.port;
        const a = r.attempt
          ? this.endAttempt(r, ev.tsNs, 'established', ev.synRetransmits, 0, true, { late: sameBackend })
          : this.lateAnswer(r, ev.tsNs, 'established', ev.synRetransmits, 0);
        if (a) {
          r.connection = { attempt: a, startNs: ev.tsNs, reset: false };
          this.sink.connectionStarted({ socket: r.info, attempt: a, backend: a.backend, startNs: ev.tsNs });
        }
        return;
      }
      if (newState === TcpState.CLOSE) {
        // Already reported unanswered at its deadline: the close adds nothing we can attribute.
        if (r.attempt) this.endAttempt(r, ev.tsNs, closeOutcome(ev.skErr), ev.synRetransmits, ev.skErr, true);
        this.remove(ev.sk);
        return;
      }
    }
    if (newState === TcpState.CLOSE) {
      if (r.connection) {
        const c = r.connection;
        this.sink.connectionEnded({
          socket: r.info, attempt: c.attempt, backend: c.attempt.backend, startNs: c.startNs, endNs: ev.tsNs,
          outcome: c.reset ? 'reset' : 'closed',
        });
      }
      this.remove(ev.sk);
    }
  }

  private onRetransmit(ev: KernelEvent): void {
    if (ev.newState !== TcpState.SYN_SENT) return;
    const r = this.recordOf(ev);
    if (!r || !r.synSent) return;
    const n = ev.synRetransmits;
    if (r.attempt) {
      if (n <= r.attempt.index) return; // this SYN's attempt was already opened by IPVS rescheduling it
      const prev = this.endAttempt(r, ev.tsNs, 'unanswered', n, 0, false);
      this.open(r, { index: n, startNs: ev.tsNs, backend: prev.backend, confirmed: true });
      return;
    }
    // The previous attempt was reported at its deadline; this is the retransmit it was waiting for.
    if (r.last && n <= r.last.index) return;
    this.open(r, { index: n, startNs: ev.tsNs, backend: r.last?.backend, confirmed: true });
  }

  /**
   * An RST refusing the connect arrived. Whether the socket takes it (tcp_receive_reset follows, then Close) or it
   * is held back (the socket stays in SynSent and retransmits) is not known yet, so the attempt ends refused but
   * not final; a rescheduled retransmit opens the next attempt as usual.
   */
  private onRstIn(ev: KernelEvent): void {
    const r = this.recordOf(ev);
    if (!r || !r.synSent) return;
    if (r.attempt) this.endAttempt(r, ev.tsNs, 'refused', ev.synRetransmits, ECONNREFUSED, false);
    else this.lateAnswer(r, ev.tsNs, 'refused', ev.synRetransmits, ECONNREFUSED);
    r.rstSeen = true;
  }

  private onReset(ev: KernelEvent): void {
    const r = this.recordOf(ev);
    if (!r) return;
    if (r.synSent && ev.newState === TcpState.SYN_SENT) {
      // The same RST, seen arriving a moment ago (same softirq, so in order in the ring buffer).
      if (r.rstSeen) {
        r.rstSeen = false;
        return;
      }
      if (r.attempt) this.endAttempt(r, ev.tsNs, 'refused', ev.synRetransmits, ECONNREFUSED, true);
      else this.lateAnswer(r, ev.tsNs, 'refused', ev.synRetransmits, ECONNREFUSED);
    } else if (r.connection) {
      r.connection.reset = true;
    }
  }

  private onIpvsConn(ev: KernelEvent): void {
    if (!ev.backend || ev.noSocket) return;
    const r = this.recordOf(ev);
    if (!r || !r.synSent) return;
    const cur = r.attempt;
    if (cur && !cur.confirmed) {
      cur.backend = { ...ev.backend };
      cur.confirmed = true;
      return;
    }
    // A second scheduling decision: the previous SYN went unanswered (superseded now, or already at its
    // deadline) and IPVS sent this one elsewhere.
    const prev = cur ? this.endAttempt(r, ev.tsNs, 'unanswered', ev.synRetransmits, 0, false) : r.last;
    this.open(r, { index: (prev?.index ?? -1) + 1, startNs: ev.tsNs, backend: { ...ev.backend }, confirmed: true });
  }

  /**
   * The record of the socket an event belongs to — if it is the socket whose start we saw. When events are lost
   * (ring buffer full under a storm: test/host/faults.test.ts), a socket's Close can be lost and its kernel address
   * reused by a socket whose start was lost too; that one's answer or close must not become the old socket's
   * outcome. A socket's own events agree with its record: the same destination, the same source port once bound,
   * and during the handshake the same SynSent time (the kernel's handshake map).
   */
  private recordOf(ev: KernelEvent): SocketRecord | undefined {
    const r = this.sockets.get(ev.sk);
    if (!r) return undefined;
    const i = r.info;
    const another = (ev.startNs !== 0n && ev.startNs !== i.startNs) || (ev.src.port !== 0 && i.src.port !== 0 && ev.src.port !== i.src.port) ||
      (ev.dst.port !== 0 && (ev.dst.port !== i.dst.port || ev.dst.addr !== i.dst.addr));
    if (another) {
      this.forget(ev.sk);
      return undefined;
    }
    r.lastNs = ev.tsNs;
    // A new object, not an edit: attempts already reported keep the socket as it was when they ended.
    if (ev.src.port && (ev.src.port !== r.info.src.port || ev.src.addr !== r.info.src.addr)) r.info = { ...r.info, src: { ...ev.src } };
    return r;
  }

  /** The answer to an attempt already reported unanswered at its deadline. */
  private lateAnswer(r: SocketRecord, endNs: bigint, outcome: AttemptOutcome, synRetransmits: number, skErr: number): Attempt | undefined {
    const prev = r.last;
    if (!prev) return undefined;
    r.last = undefined;
    if (synRetransmits > prev.index) {
      // The kernel sent a SYN after prev's — a retransmit IPVS may have rescheduled to another backend — whose events
      // have not been seen: the answer may be to that SYN, from a backend we cannot name. Crediting prev's backend
      // would lift the quarantine of a dead one (seen in the lab: a black-holed backend "answered after 1023 ms",
      // the rescued retransmit's SYN-ACK). Reported as that later SYN's outcome, backend unknown, not late.
      const a: Attempt = { ...prev, index: synRetransmits, startNs: prev.endNs, endNs, backend: undefined, outcome, synRetransmits, skErr, final: true, early: false, late: false };
      this.sink.attemptEnded(a);
      this.answered(prev.startNs);
      return a;
    }
    const a: Attempt = { ...prev, endNs, outcome, synRetransmits, skErr, final: true, early: false, late: true };
    this.sink.attemptEnded(a);
    this.answered(prev.startNs);
    return a;
  }

  private endAttempt(
    r: SocketRecord, endNs: bigint, outcome: AttemptOutcome, synRetransmits: number, skErr: number, final: boolean,
    flags: { early?: boolean; late?: boolean } = {},
  ): Attempt {
    const open = r.attempt!;
    r.attempt = undefined;
    this.pending.delete(r.info.sk);
    this.waiting.delete(r.info.sk);
    const a: Attempt = {
      socket: r.info, index: open.index, startNs: open.startNs, endNs, backend: open.backend, outcome,
      synRetransmits, skErr, final, early: !!flags.early, late: !!flags.late,
    };
    r.last = final ? undefined : a;
    this.sink.attemptEnded(a);
    if (outcome === 'established' || outcome === 'refused') this.answered(open.startNs);
    return a;
  }

  private remove(sk: bigint): void {
    this.sockets.delete(sk);
    this.pending.delete(sk);
    this.waiting.delete(sk);
    this.sink.socketGone?.(sk, true);
  }

  private dropOldest(): void {
    const first = this.sockets.keys().next();
    if (!first.done) this.forget(first.value);
  }

  private forget(sk: bigint): void {
    this.sockets.delete(sk);
    this.pending.delete(sk);
    this.waiting.delete(sk);
    this.untracked++;
    this.sink.socketGone?.(sk, false);
  }
}

function closeOutcome(skErr: number): AttemptOutcome {
  if (skErr === ETIMEDOUT) return 'unanswered';
  if (skErr === ECONNREFUSED) return 'refused';
  if (UNREACHABLE.has(skErr)) return 'unreachable';
  return 'abandoned';
}
