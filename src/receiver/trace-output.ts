// `vipguard trace` output: one record per kernel event, plus one per classified attempt and connection.
// JSON fields (one object per line with --json):
//   time        ISO-8601 wall-clock time of the kernel timestamp (microsecond precision)
//   event       state | retransmit | reset | ipvs_conn | rst_in | attempt | connection (TCP);
//               udp_flow | udp_error | udp_end (kernel events of a UDP flow) | exchange (UDP)
//   old_state, new_state   TCP states (state events; for retransmit/reset: the socket's state)
//   src         client address:port (port 0 while unbound)
//   dst         the virtual service address:port the socket connected to
//   backend     the real destination IPVS chose, or null when unknown
//   retransmits SYN retransmits of the socket so far
//   outcome     attempt/connection outcome (attempt and connection records), the exchange's outcome
//               (answered, unanswered, refused, unreachable; `late` for an answer after an unanswered), else null
//   datagrams   UDP records: datagrams sent on the flow so far (events), or covered by the exchange
//   service     configured service name, or null
//   sk          kernel socket address (hex): identity of the connection
//   pid         connecting process (0 when the kernel ran outside it)
import { Endpoint, KernelEvent, stateName } from './events';
import { Attempt, Connection, Lifecycle, LifecycleSink } from './lifecycle';
import { Exchange, UdpFlowSink } from './udp-flows';
import { formatEndpoint } from '../common/addr';

export interface TraceRecord {
  time: string;
  event: string;
  old_state: string | null;
  new_state: string | null;
  src: string;
  dst: string;
  backend: string | null;
  retransmits: number;
  outcome: string | null;
  service: string | null;
  sk: string;
  pid: number;
  duration_ms?: number;
  attempt?: number;
  datagrams?: number;
}

const ep = (e: Endpoint | undefined) => (e ? formatEndpoint(e.addr, e.port) : null);

export class TracePrinter implements LifecycleSink, UdpFlowSink {
  constructor(
    private readonly write: (line: string) => void,
    private readonly json: boolean,
    private readonly toEpochNs: (mono: bigint) => bigint,
  ) {}

  private iso(mono: bigint): string {
    const ns = this.toEpochNs(mono);
    const ms = Number(ns / 1_000_000n);
    const us = Number((ns / 1000n) % 1000n);
    return new Date(ms).toISOString().replace('Z', `${String(us).padStart(3, '0')}Z`);
  }

  private emit(r: TraceRecord): void {
    if (this.json) {
      this.write(JSON.stringify(r));
      return;
    }
    const states = r.old_state ? `${r.old_state}->${r.new_state}` : '';
    const parts = [
      r.time.slice(11, 26), r.event.padEnd(10), states.padEnd(24), `${r.src} -> ${r.dst}`,
      r.backend ? `via ${r.backend}` : 'via ?', r.retransmits ? `retx=${r.retransmits}` : '',
      r.datagrams !== undefined ? `datagrams=${r.datagrams}` : '',
      r.outcome ? `[${r.outcome}${r.duration_ms !== undefined ? ` ${r.duration_ms.toFixed(1)}ms` : ''}]` : '',
      r.service ? `(${r.service})` : '',
    ];
    this.write(parts.filter(Boolean).join(' '));
  }

  event(ev: KernelEvent, lifecycle: Lifecycle): void {
    const backend = ev.backend ?? lifecycle.backendOf(ev.sk);
    const states = ev.kind !== 'ipvs_conn' && !ev.udp;
    this.emit({
      time: this.iso(ev.tsNs), event: ev.kind,
      old_state: states ? stateName(ev.oldState) : null,
      new_state: states ? stateName(ev.newState) : null,
      src: ep(ev.src)!, dst: ep(ev.dst)!, backend: ep(backend), retransmits: ev.synRetransmits,
      outcome: ev.kind === 'udp_error' ? `errno ${ev.skErr}` : null, service: null, sk: ev.sk.toString(16), pid: ev.pid,
      ...(ev.udp ? { datagrams: ev.udp.sent } : {}),
    });
  }

  exchange(e: Exchange): void {
    this.emit({
      time: this.iso(e.endNs), event: 'exchange', old_state: null, new_state: null,
      src: ep(e.flow.src)!, dst: ep(e.flow.dst)!, backend: ep(e.backend), retransmits: 0,
      outcome: e.late ? 'late' : e.outcome, service: e.flow.service, sk: e.flow.sk.toString(16), pid: e.flow.pid,
      duration_ms: e.replyMs ?? Number(e.endNs - e.startNs) / 1e6, datagrams: e.datagrams,
    });
  }

  attemptEnded(a: Attempt): void {
    this.emit({
      time: this.iso(a.endNs), event: 'attempt', old_state: null, new_state: null,
      src: ep(a.socket.src)!, dst: ep(a.socket.dst)!, backend: ep(a.backend), retransmits: a.synRetransmits,
      outcome: a.outcome, service: a.socket.service ?? null, sk: a.socket.sk.toString(16), pid: a.socket.pid,
      duration_ms: Number(a.endNs - a.startNs) / 1e6, attempt: a.index,
    });
  }

  connectionStarted(): void {}

  connectionEnded(c: Connection): void {
    this.emit({
      time: this.iso(c.endNs), event: 'connection', old_state: null, new_state: null,
      src: ep(c.socket.src)!, dst: ep(c.socket.dst)!, backend: ep(c.backend), retransmits: c.attempt.synRetransmits,
      outcome: c.outcome, service: c.socket.service ?? null, sk: c.socket.sk.toString(16), pid: c.socket.pid,
      duration_ms: Number(c.endNs - c.startNs) / 1e6,
    });
  }
}
