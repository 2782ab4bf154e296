// The connection lifecycle model: kernel events in, classified handshake attempts and connections out.
//
// A socket is known from Close->SynSent on (by its kernel address). Each SYN it sends is one *attempt*:
// attempt n is the n-th retransmit's SYN (0 = the original). An attempt ends as soon as its outcome is known:
//   established  SynSent -> Established
//   refused      RST received in SynSent (tcp_receive_reset), or Close with ECONNREFUSED
//   unanswered   the next SYN went out (retransmit), or the kernel gave up (Close with ETIMEDOUT)
//   unreachable  Close with an ICMP error (EHOSTUNREACH, ENETUNREACH, EHOSTDOWN)
//   abandoned    the application closed the socket in SynSent (Close with no error)
// When a destination is quarantined (weight 0, expire_nodest_conn=1), IPVS reschedules the next SYN
// retransmit to another backend and ip_vs_conn_new fires again: that SYN is a new attempt on the new backend
// and the old one ended unanswered — never a success of the dead backend.
//
// The kernel may report the reschedule (kprobe, during transmission) before or after the retransmit
// tracepoint; both orders give the same attempts: an attempt whose backend IPVS confirmed and that sees
// another ip_vs_conn_new has been superseded; a retransmit whose SYN number an attempt already covers is that
// attempt.
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
  /** a socket forgotten without an outcome (its events were lost, or the table was full) */
  socketDropped?(sk: bigint): void;
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
  attempt?: OpenAttempt;
  connection?: { attempt: Attempt; startNs: bigint; reset: boolean };
  lastNs: bigint;
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
}

export class Lifecycle {
  private readonly sockets = new Map<bigint, SocketRecord>();
  private readonly serviceOf: (dst: Endpoint) => string | undefined;
  private readonly maxSockets: number;
  private readonly handshakeTtlNs: bigint;
  private untracked = 0;

  constructor(private readonly sink: LifecycleSink, opts: LifecycleOptions = {}) {
    this.serviceOf = opts.serviceOf ?? (() => undefined);
    this.maxSockets = opts.maxSockets ?? 1_000_000;
    // Linux gives up on a SYN after ~127 s (5.10/6.1) or ~131 s (6.5+) with default tcp_syn_retries.
    this.handshakeTtlNs = opts.handshakeTtlNs ?? 300_000_000_000n;
  }

  stats(): LifecycleStats {
    return { tracked: this.sockets.size, untracked: this.untracked };
  }

  /** The backend a socket's current attempt or connection uses, for enriching raw events. */
  backendOf(sk: bigint): Endpoint | undefined {
    const r = this.sockets.get(sk);
    return r?.attempt?.backend ?? r?.connection?.attempt.backend;
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
    }
  }

  /** Drops sockets stuck in SYN_SENT past the TTL (their Close was lost). Call now and then. */
  expire(nowNs: bigint): number {
    let n = 0;
    for (const [sk, r] of this.sockets) {
      if (r.attempt && nowNs - r.lastNs > this.handshakeTtlNs) {
        this.forget(sk);
        n++;
      }
    }
    return n;
  }

  private onState(ev: KernelEvent): void {
    const { oldState, newState } = ev;
    if (oldState === TcpState.CLOSE && newState === TcpState.SYN_SENT) {
      // The same kernel address is a new socket: we missed the old one's Close. Say nothing about it.
      if (this.sockets.has(ev.sk)) this.forget(ev.sk);
      if (this.sockets.size >= this.maxSockets) this.dropOldest();
      const startNs = ev.startNs || ev.tsNs;
      this.sockets.set(ev.sk, {
        info: {
          sk: ev.sk, family: ev.family, pid: ev.pid, src: { ...ev.src }, dst: { ...ev.dst },
          service: this.serviceOf(ev.dst), startNs,
        },
        attempt: { index: 0, startNs, confirmed: false },
        lastNs: ev.tsNs,
      });
      return;
    }
    const r = this.sockets.get(ev.sk);
    if (!r) return; // a socket we did not see start: no outcome can be trusted
    r.lastNs = ev.tsNs;
    if (ev.src.port) r.info.src = { ...ev.src };

    if (oldState === TcpState.SYN_SENT && r.attempt) {
      if (newState === TcpState.ESTABLISHED) {
        const a = this.endAttempt(r, ev.tsNs, 'established', ev.synRetransmits, 0, true);
        r.connection = { attempt: a, startNs: ev.tsNs, reset: false };
        this.sink.connectionStarted({ socket: r.info, attempt: a, backend: a.backend, startNs: ev.tsNs });
        return;
      }
      if (newState === TcpState.CLOSE) {
        this.endAttempt(r, ev.tsNs, closeOutcome(ev.skErr), ev.synRetransmits, ev.skErr, true);
        this.sockets.delete(ev.sk);
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
      this.sockets.delete(ev.sk);
    }
  }

  private onRetransmit(ev: KernelEvent): void {
    const r = this.sockets.get(ev.sk);
    if (!r || !r.attempt || ev.newState !== TcpState.SYN_SENT) return;
    r.lastNs = ev.tsNs;
    if (ev.src.port) r.info.src = { ...ev.src };
    const n = ev.synRetransmits;
    if (n <= r.attempt.index) return; // this SYN's attempt was already opened by IPVS rescheduling it
    const prev = this.endAttempt(r, ev.tsNs, 'unanswered', n, 0, false);
    r.attempt = { index: n, startNs: ev.tsNs, backend: prev.backend, confirmed: false };
  }

  private onReset(ev: KernelEvent): void {
    const r = this.sockets.get(ev.sk);
    if (!r) return;
    r.lastNs = ev.tsNs;
    if (ev.src.port) r.info.src = { ...ev.src };
    if (r.attempt && ev.newState === TcpState.SYN_SENT) {
      this.endAttempt(r, ev.tsNs, 'refused', ev.synRetransmits, ECONNREFUSED, true);
    } else if (r.connection) {
      r.connection.reset = true;
    }
  }

  private onIpvsConn(ev: KernelEvent): void {
    if (!ev.backend || ev.noSocket) return;
    const r = this.sockets.get(ev.sk);
    if (!r || !r.attempt) return;
    r.lastNs = ev.tsNs;
    if (ev.src.port) r.info.src = { ...ev.src };
    const cur = r.attempt;
    if (!cur.confirmed) {
      cur.backend = { ...ev.backend };
      cur.confirmed = true;
      return;
    }
    // A confirmed attempt meeting a second scheduling decision: its SYN went unanswered and IPVS sent the
    // retransmit elsewhere.
    const prev = this.endAttempt(r, ev.tsNs, 'unanswered', ev.synRetransmits, 0, false);
    r.attempt = { index: prev.index + 1, startNs: ev.tsNs, backend: { ...ev.backend }, confirmed: true };
  }

  private endAttempt(
    r: SocketRecord, endNs: bigint, outcome: AttemptOutcome, synRetransmits: number, skErr: number, final: boolean,
  ): Attempt {
    const open = r.attempt!;
    r.attempt = undefined;
    const a: Attempt = {
      socket: r.info, index: open.index, startNs: open.startNs, endNs, backend: open.backend, outcome,
      synRetransmits, skErr, final,
    };
    this.sink.attemptEnded(a);
    return a;
  }

  private dropOldest(): void {
    const first = this.sockets.keys().next();
    if (!first.done) this.forget(first.value);
  }

  private forget(sk: bigint): void {
    this.sockets.delete(sk);
    this.untracked++;
    this.sink.socketDropped?.(sk);
  }
}

function closeOutcome(skErr: number): AttemptOutcome {
  if (skErr === ETIMEDOUT) return 'unanswered';
  if (skErr === ECONNREFUSED) return 'refused';
  if (UNREACHABLE.has(skErr)) return 'unreachable';
  return 'abandoned';
}
