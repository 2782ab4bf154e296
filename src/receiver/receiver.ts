// The receiver: kernel probe -> lifecycle model (TCP) and flow model (UDP) -> telemetry (and any local listeners,
// e.g. `vipguard trace`).
import { Endpoint, KernelEvent } from './events';
import { Exchange, UdpFlowInfo, UdpFlows, UdpFlowSink } from './udp-flows';
import { Attempt, Connection, Lifecycle, LifecycleSink } from './lifecycle';
import { formatHook, hookOk, HookStatus, ReceiverProbe, ServiceKey } from './probe';
import { monotonicNow } from '../native/clock';
import { formatAddr, formatEndpoint, parseAddr } from '../common/addr';
import { DEFAULT_DEADLINE, DeadlinePolicy, RttTracker } from '../common/rtt';

export interface ReceiverService {
  name: string;
  address: string;
  port: number;
  /** default tcp */
  protocol?: 'tcp' | 'udp';
}

/** Where classified TCP attempts and connections go, and UDP exchanges for those that take them. */
export type ReceiverSink = LifecycleSink & Partial<UdpFlowSink>;

export interface ReceiverOptions {
  services: ReceiverService[];
  traceAll?: boolean;
  ringBufferBytes?: number;
  /** where classified attempts, connections and UDP exchanges go (telemetry, trace printer, tests) */
  sinks: ReceiverSink[];
  /** raw decoded events, before the lifecycle classifies them */
  onEvent?: (ev: KernelEvent, lifecycle: Lifecycle) => void;
  onBatch?: (n: number) => void;
  /** declare a SYN unanswered once it waited this long (learned per backend); false: only at the kernel's retransmit */
  deadline?: DeadlinePolicy | false;
}

/** Slack added to a deadline timer, so it fires just after the deadline rather than just before. */
const DEADLINE_SLACK_MS = 2;
/**
 * How often the UDP flow counters are read. Bounds how late an unanswered wait is declared (deadline + this) and
 * costs one map walk per poll; datagrams themselves never wake userspace.
 */
export const UDP_POLL_MS = 100;

function serviceKeyOf(s: { service?: string; dst: Endpoint }): string {
  return s.service ?? formatEndpoint(s.dst.addr, s.dst.port);
}

export class Receiver {
  readonly lifecycle: Lifecycle;
  private readonly probe: ReceiverProbe;
  private byEndpoint = new Map<string, string>();
  private readonly expiry: NodeJS.Timeout;
  private scan?: NodeJS.Timeout;
  private scanAt?: bigint;
  readonly rtt?: RttTracker;
  readonly udp: UdpFlows;
  private udpPoll?: NodeJS.Timeout;
  private services: ReceiverService[] = [];

  constructor(private readonly opts: ReceiverOptions) {
    const rtt = opts.deadline ? new RttTracker(opts.deadline) : undefined;
    this.rtt = rtt;
    const learn: ReceiverSink = {
      // Answered handshakes teach the deadline; a late answer is the slow backend's real RTT.
      attemptEnded: (a) => {
        if (rtt && a.outcome === 'established' && a.backend) {
          rtt.observe(serviceKeyOf(a.socket), formatEndpoint(a.backend.addr, a.backend.port), Number(a.endNs - a.startNs) / 1e6);
        }
      },
      connectionStarted: () => {},
      connectionEnded: () => {},
      // Answered UDP waits teach the UDP deadline the same way (per service and backend; services are by name).
      exchange: (e) => {
        if (rtt && e.outcome === 'answered' && e.replyMs !== undefined && e.backend) {
          rtt.observe(e.flow.service, formatEndpoint(e.backend.addr, e.backend.port), e.replyMs);
        }
      },
    };
    const sinks: ReceiverSink[] = [learn, ...opts.sinks];
    const fanout: LifecycleSink = {
      attemptEnded: (a: Attempt) => sinks.forEach((s) => s.attemptEnded(a)),
      connectionStarted: (c) => sinks.forEach((s) => s.connectionStarted(c)),
      connectionEnded: (c: Connection) => sinks.forEach((s) => s.connectionEnded(c)),
      socketGone: (sk: bigint, tracked: boolean) => sinks.forEach((s) => s.socketGone?.(sk, tracked)),
    };
    const udpFanout: UdpFlowSink = {
      exchange: (e: Exchange) => sinks.forEach((s) => s.exchange?.(e)),
      flowEnded: (f: UdpFlowInfo, b, c) => sinks.forEach((s) => s.flowEnded?.(f, b, c)),
    };
    // Without a learned deadline (receiver.deadline off) UDP has no kernel timeout to fall back on: the ceiling.
    const udpDeadlineMs = (service: string, backend?: Endpoint) =>
      rtt ? rtt.deadlineMs(service, backend && formatEndpoint(backend.addr, backend.port)) : (opts.deadline || DEFAULT_DEADLINE).ceilingMs;
    this.udp = new UdpFlows(udpFanout, {
      service: (id) => {
        const s = this.services[id];
        if (!s || s.protocol !== 'udp') return undefined;
        const p = parseAddr(s.address);
        return { name: s.name, address: formatAddr(p.family, p.bytes), port: s.port, family: p.family };
      },
      deadlineNs: (service, backend) => BigInt(Math.round(1e6 * udpDeadlineMs(service, backend))),
    });
    this.lifecycle = new Lifecycle(fanout, {
      serviceOf: (dst) => this.serviceOf(dst),
      deadlineNs: rtt
        ? (socket, backend) => BigInt(Math.round(1e6 * rtt.deadlineMs(serviceKeyOf(socket), backend && formatEndpoint(backend.addr, backend.port))))
        : undefined,
    });
    this.indexServices(opts.services);
    this.probe = new ReceiverProbe((events) => this.onEvents(events), {
      traceAll: opts.traceAll,
      ringBufferBytes: opts.ringBufferBytes,
      services: this.serviceKeys(opts.services),
    });
    this.expiry = setInterval(() => this.lifecycle.expire(monotonicNow()), 10_000);
    this.expiry.unref();
    this.armUdpPoll();
  }

  /** Polls the UDP flow counters while a UDP service is configured and its hooks are active. */
  private armUdpPoll(): void {
    const want = this.services.some((s) => s.protocol === 'udp') && this.probe.tracesUdp;
    if (want && !this.udpPoll) {
      this.udpPoll = setInterval(() => this.pollUdp(), UDP_POLL_MS);
      this.udpPoll.unref();
    } else if (!want && this.udpPoll) {
      clearInterval(this.udpPoll);
      this.udpPoll = undefined;
    }
  }

  /** Events first (a flow's move to another backend precedes the answers it brings), then the counters. */
  pollUdp(): void {
    this.probe.drain();
    this.udp.poll(monotonicNow(), this.probe.udpFlows());
  }

  /**
   * One timer, armed for the earliest pending deadline (no polling: an idle receiver never wakes up). When it
   * fires, the ring buffer is drained first: an answer the kernel already saw but the event loop has not read
   * yet must not be mistaken for silence (a busy or starved process would otherwise call slow backends dead).
   */
  private armDeadline(): void {
    if (!this.rtt) return;
    const next = this.lifecycle.nextDeadline();
    if (next === undefined || (this.scanAt !== undefined && this.scanAt <= next)) return;
    clearTimeout(this.scan);
    this.scanAt = next;
    const ms = Math.max(0, Number(next - monotonicNow()) / 1e6) + DEADLINE_SLACK_MS;
    this.scan = setTimeout(() => {
      this.scan = undefined;
      this.scanAt = undefined;
      const now = monotonicNow();
      this.probe.drain();
      this.lifecycle.overdue(now);
      this.armDeadline();
    }, ms);
    this.scan.unref();
  }

  /** Whether UDP services are traced (their flow hooks are active). */
  get tracesUdp(): boolean {
    return this.probe.tracesUdp;
  }

  get hooks(): HookStatus[] {
    return this.probe.hooks;
  }

  /** One line per hook: what is traced and what is not, and why. */
  describeHooks(): { ok: boolean; line: string }[] {
    return this.probe.hooks.map((h) => ({ ok: hookOk(h), line: formatHook(h) }));
  }

  counters() {
    return { ...this.probe.counters(), untracked: BigInt(this.lifecycle.stats().untracked) };
  }

  /** Swaps the traced services without a gap (kernel filter diffed in place). */
  setServices(services: ReceiverService[]): void {
    this.indexServices(services);
    this.probe.setServices(this.serviceKeys(services));
    this.armUdpPoll();
  }

  drain(): number {
    return this.probe.drain();
  }

  close(): void {
    clearInterval(this.expiry);
    clearInterval(this.udpPoll);
    clearTimeout(this.scan);
    this.probe.close();
  }

  private serviceOf(dst: Endpoint): string | undefined {
    return this.byEndpoint.get(formatEndpoint(dst.addr, dst.port));
  }

  private indexServices(services: ReceiverService[]): void {
    // Keys in the canonical text form events use (e.g. fd00::1, not fd00:0::0001). TCP only: a UDP flow names its
    // service by index (the kernel copied the services map value into it).
    const canon = (a: string) => { const p = parseAddr(a); return formatAddr(p.family, p.bytes); };
    this.services = services.map((s) => ({ ...s, protocol: s.protocol ?? 'tcp' }));
    this.byEndpoint = new Map(this.services.filter((s) => s.protocol === 'tcp').map((s) => [formatEndpoint(canon(s.address), s.port), s.name]));
  }

  private serviceKeys(services: ReceiverService[]): ServiceKey[] {
    return services.map((s, id) => ({ address: s.address, port: s.port, protocol: s.protocol ?? 'tcp', id }));
  }

  private onEvents(events: KernelEvent[]): void {
    this.opts.onBatch?.(events.length);
    for (const ev of events) {
      this.opts.onEvent?.(ev, this.lifecycle);
      if (ev.udp) this.udp.handle(ev);
      else this.lifecycle.handle(ev);
    }
    this.armDeadline();
  }
}
