// UDP flows -> exchanges. The kernel counts every datagram of a flow (a client socket sending to a configured UDP
// service) in the `udp_flows` map and sends an event only when IPVS schedules the flow, when an ICMP error reaches
// it and when it ends (bpf/receiver.bpf.c). This model is fed those events and, every poll, the map's counters, and
// turns them into exchanges, the UDP counterpart of a TCP handshake attempt:
//
//   answered     replies came back (with the time from the oldest unanswered datagram to the reply)
//   unanswered   the oldest outstanding datagram waited longer than the backend's deadline (learned from its reply
//                times, as TCP's handshake deadline). Declared once for the datagrams outstanding then; datagrams sent
//                after that start a new wait, declared again if it also passes the deadline
//   refused      an ICMP port unreachable (ECONNREFUSED): the backend's server is gone
//   unreachable  another ICMP error (host or network unreachable)
//
// A reply after a declared wait is a late answer: the backend is slow, not dead (the actuator lifts the quarantine).
// A service none of whose flows has ever been answered is not request/reply (syslog, statsd): silence is normal
// there and never declared. Pure: no kernel, no clock — the receiver passes both in.
import { Endpoint, KernelEvent, UdpCounters } from './events';
import { Family } from '../common/addr';

export type ExchangeOutcome = 'answered' | 'unanswered' | 'refused' | 'unreachable';

export interface UdpFlowInfo {
  /** kernel socket address: the flow's identity */
  sk: bigint;
  service: string;
  family: Family;
  /** the client socket; port 0 / unspecified address when the flow was adopted from the map without an event */
  src: Endpoint;
  /** the virtual service */
  dst: Endpoint;
  pid: number;
  startNs: bigint;
}

export interface Exchange {
  flow: UdpFlowInfo;
  /** the backend IPVS sent the flow to; undefined when unknown (no kprobes, flow older than the receiver) */
  backend?: Endpoint;
  outcome: ExchangeOutcome;
  /** how many: replies (answered), 1 wait (unanswered), 1 ICMP error (refused, unreachable) */
  count: number;
  /** datagrams the exchange covers (unanswered: outstanding when declared) */
  datagrams: number;
  /** CLOCK_MONOTONIC ns: when the wait began, and when its outcome was known */
  startNs: bigint;
  endNs: bigint;
  /** answered: replies that ended a wait, and their mean reply time in ms */
  waits?: number;
  replyMs?: number;
  /** answered after this flow's wait was declared unanswered, on the same backend */
  late?: boolean;
  /** refused / unreachable: the errno the ICMP error means */
  errno?: number;
}

export interface UdpFlowSink {
  exchange(e: Exchange): void;
  flowEnded?(flow: UdpFlowInfo, backend: Endpoint | undefined, counters: UdpCounters): void;
}

export interface UdpServiceRef {
  name: string;
  address: string;
  port: number;
  family: Family;
}

export interface UdpFlowOptions {
  /** the service list the probe was given, by index (the flow's `service` counter) */
  service(id: number): UdpServiceRef | undefined;
  /** how long a datagram of `service` to `backend` may go unanswered, in ns */
  deadlineNs(service: string, backend: Endpoint | undefined): bigint;
}

const ECONNREFUSED = 111;

interface Flow {
  info: UdpFlowInfo;
  backend?: Endpoint;
  /** counters already turned into exchanges */
  seen: UdpCounters;
  /** `sent` when the current wait began counting (after an answer, an error, a declaration or a move) */
  sentMark: number;
  /** the current wait was declared unanswered (a reply now is late) */
  declared: boolean;
  /** after a declaration: when the first datagram sent since was seen (the next wait's start), if any */
  nextSince?: bigint;
}

export class UdpFlows {
  private readonly flows = new Map<bigint, Flow>();
  /** services whose flows have been answered at least once: request/reply services */
  private readonly answering = new Set<string>();

  constructor(private readonly sink: UdpFlowSink, private readonly opts: UdpFlowOptions) {}

  get size(): number {
    return this.flows.size;
  }

  /** Flows as the model has them, for `vipguard trace` and tests. */
  list(): { info: UdpFlowInfo; backend?: Endpoint; counters: UdpCounters }[] {
    return [...this.flows.values()].map((f) => ({ info: f.info, backend: f.backend, counters: f.seen }));
  }

  /** A UDP event from the ring buffer. */
  handle(ev: KernelEvent): void {
    if (!ev.udp) return;
    switch (ev.kind) {
      case 'udp_flow': return this.onScheduled(ev, ev.udp);
      case 'udp_error': return this.onError(ev, ev.udp);
      case 'udp_end': return this.onEnd(ev, ev.udp);
    }
  }

  /**
   * The map's counters at `nowNs`, every flow in it: answers and unanswered waits. Flows the map no longer has
   * (evicted, or their end event is still on its way or was lost) end here.
   */
  poll(nowNs: bigint, counters: Map<bigint, UdpCounters>): void {
    for (const [sk, c] of counters) {
      const f = this.flows.get(sk) ?? this.adopt(sk, c);
      if (f) this.account(f, c, nowNs);
    }
    for (const [sk, f] of this.flows) {
      if (counters.has(sk)) continue;
      this.flows.delete(sk);
      this.sink.flowEnded?.(f.info, f.backend, f.seen);
    }
  }

  private onScheduled(ev: KernelEvent, c: UdpCounters): void {
    const f = this.flows.get(ev.sk);
    if (!f) {
      const svc = this.opts.service(c.service);
      if (!svc) return;
      this.flows.set(ev.sk, {
        info: { sk: ev.sk, service: svc.name, family: ev.family, src: ev.src, dst: ev.dst, pid: ev.pid, startNs: c.startNs },
        backend: ev.backend, seen: { ...c, sent: 0, replies: 0, waits: 0, replyNsSum: 0n, oldestNs: 0n }, sentMark: 0, declared: false,
      });
      return;
    }
    if (!f.info.src.port) f.info = { ...f.info, src: ev.src, dst: ev.dst, pid: ev.pid }; // adopted by a poll just before
    if (ev.rescheduled) {
      // Moved (its destination was removed): what was outstanding went to the old backend, whose fate was judged
      // or is moot; the datagram being sent is the first to the new one, and the kernel restarted the wait with it.
      f.declared = false;
      f.nextSince = undefined;
      f.sentMark = c.sent - 1;
    }
    f.backend = ev.backend;
  }

  private onError(ev: KernelEvent, c: UdpCounters): void {
    const f = this.flows.get(ev.sk) ?? this.adopt(ev.sk, c);
    if (!f) return;
    this.account(f, { ...c, oldestNs: 0n }, ev.tsNs);
    const outcome = ev.skErr === ECONNREFUSED ? 'refused' : 'unreachable';
    const start = c.lastSendNs && c.lastSendNs <= ev.tsNs ? c.lastSendNs : ev.tsNs;
    this.sink.exchange({ flow: f.info, backend: f.backend, outcome, count: 1, datagrams: Math.max(1, c.sent - f.sentMark), startNs: start, endNs: ev.tsNs, errno: ev.skErr });
    f.declared = false;
    f.nextSince = undefined;
    f.sentMark = c.sent;
  }

  private onEnd(ev: KernelEvent, c: UdpCounters): void {
    const f = this.flows.get(ev.sk) ?? this.adopt(ev.sk, c);
    if (!f) return;
    this.account(f, c, ev.tsNs);
    this.flows.delete(ev.sk);
    this.sink.flowEnded?.(f.info, f.backend, c);
  }

  /** A flow the map has but no event introduced (it began before the receiver, or ip_vs_conn_new is not traced). */
  private adopt(sk: bigint, c: UdpCounters): Flow | undefined {
    const svc = this.opts.service(c.service);
    if (!svc) return undefined;
    const f: Flow = {
      info: {
        sk, service: svc.name, family: svc.family, src: { addr: svc.family === 4 ? '0.0.0.0' : '::', port: 0 },
        dst: { addr: svc.address, port: svc.port }, pid: 0, startNs: c.startNs,
      },
      // Replies before we knew the flow are not ours to report; its outstanding wait is.
      seen: { ...c, oldestNs: 0n }, sentMark: c.sent, declared: false,
    };
    this.flows.set(sk, f);
    return f;
  }

  private account(f: Flow, c: UdpCounters, nowNs: bigint): void {
    const seen = f.seen;
    const replies = c.replies - seen.replies;
    if (replies > 0) {
      const waits = c.waits - seen.waits;
      const sum = c.replyNsSum - seen.replyNsSum;
      const replyMs = waits > 0 ? Number(sum / BigInt(waits)) / 1e6 : undefined;
      const start = replyMs !== undefined ? nowNs - BigInt(Math.round(replyMs * 1e6)) : nowNs;
      this.answering.add(f.info.service);
      this.sink.exchange({
        flow: f.info, backend: f.backend, outcome: 'answered', count: replies, datagrams: Math.max(0, c.sent - f.sentMark),
        startNs: start, endNs: nowNs, waits, replyMs, late: f.declared || undefined,
      });
      f.declared = false;
      f.nextSince = undefined;
      f.sentMark = c.sent;
    }
    if (c.oldestNs && this.answering.has(f.info.service)) this.judgeWait(f, c, nowNs);
    f.seen = c;
  }

  private judgeWait(f: Flow, c: UdpCounters, nowNs: bigint): void {
    let since: bigint | undefined = c.oldestNs;
    if (f.declared) {
      // The declared wait's datagrams are judged; those sent since start the next wait, at the latest send seen
      // (the first of them went at or before it: never judged early).
      if (c.sent > f.sentMark) f.nextSince ??= c.lastSendNs;
      since = f.nextSince;
    }
    if (since === undefined || since > nowNs) return;
    const deadline = this.opts.deadlineNs(f.info.service, f.backend);
    if (nowNs - since <= deadline) return;
    this.sink.exchange({
      flow: f.info, backend: f.backend, outcome: 'unanswered', count: 1, datagrams: Math.max(1, c.sent - f.sentMark),
      startNs: since, endNs: nowNs,
    });
    f.declared = true;
    f.nextSince = undefined;
    f.sentMark = c.sent;
  }
}
