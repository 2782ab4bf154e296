// The receiver: kernel probe -> lifecycle model -> telemetry (and any local listeners, e.g. `vipguard trace`).
import { Endpoint, KernelEvent } from './events';
import { Attempt, Connection, Lifecycle, LifecycleSink } from './lifecycle';
import { HookStatus, ReceiverProbe, ServiceKey } from './probe';
import { monotonicNow } from '../native/clock';
import { formatAddr, formatEndpoint, parseAddr } from '../common/addr';
import { DeadlinePolicy, RttTracker } from '../common/rtt';

export interface ReceiverService {
  name: string;
  address: string;
  port: number;
}

export interface ReceiverOptions {
  services: ReceiverService[];
  traceAll?: boolean;
  ringBufferBytes?: number;
  /** where classified attempts and connections go (telemetry, trace printer, tests) */
  sinks: LifecycleSink[];
  /** raw decoded events, before the lifecycle classifies them */
  onEvent?: (ev: KernelEvent, lifecycle: Lifecycle) => void;
  onBatch?: (n: number) => void;
  /** declare a SYN unanswered once it waited this long (learned per backend); false: only at the kernel's retransmit */
  deadline?: DeadlinePolicy | false;
}

/** Slack added to a deadline timer, so it fires just after the deadline rather than just before. */
const DEADLINE_SLACK_MS = 2;

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

  constructor(private readonly opts: ReceiverOptions) {
    const rtt = opts.deadline ? new RttTracker(opts.deadline) : undefined;
    this.rtt = rtt;
    const learn: LifecycleSink = {
      // Answered handshakes teach the deadline; a late answer is the slow backend's real RTT.
      attemptEnded: (a) => {
        if (rtt && a.outcome === 'established' && a.backend) {
          rtt.observe(serviceKeyOf(a.socket), formatEndpoint(a.backend.addr, a.backend.port), Number(a.endNs - a.startNs) / 1e6);
        }
      },
      connectionStarted: () => {},
      connectionEnded: () => {},
    };
    const sinks = [learn, ...opts.sinks];
    const fanout: LifecycleSink = {
      attemptEnded: (a: Attempt) => sinks.forEach((s) => s.attemptEnded(a)),
      connectionStarted: (c) => sinks.forEach((s) => s.connectionStarted(c)),
      connectionEnded: (c: Connection) => sinks.forEach((s) => s.connectionEnded(c)),
      socketGone: (sk: bigint, tracked: boolean) => sinks.forEach((s) => s.socketGone?.(sk, tracked)),
    };
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

  get hooks(): HookStatus[] {
    return this.probe.hooks;
  }

  /** One line per hook: what is traced and what is not, and why. */
  describeHooks(): { active: boolean; line: string }[] {
    return this.probe.hooks.map((h) => ({ active: h.active, line: `${h.active ? 'active  ' : 'INACTIVE'} ${h.hook}${h.reason ? ` — ${h.reason}` : ''}` }));
  }

  counters() {
    return { ...this.probe.counters(), untracked: BigInt(this.lifecycle.stats().untracked) };
  }

  /** Swaps the traced services without a gap (kernel filter diffed in place). */
  setServices(services: ReceiverService[]): void {
    this.indexServices(services);
    this.probe.setServices(this.serviceKeys(services));
  }

  drain(): number {
    return this.probe.drain();
  }

  close(): void {
    clearInterval(this.expiry);
    clearTimeout(this.scan);
    this.probe.close();
  }

  private serviceOf(dst: Endpoint): string | undefined {
    return this.byEndpoint.get(formatEndpoint(dst.addr, dst.port));
  }

  private indexServices(services: ReceiverService[]): void {
    // Keys in the canonical text form events use (e.g. fd00::1, not fd00:0::0001).
    const canon = (a: string) => { const p = parseAddr(a); return formatAddr(p.family, p.bytes); };
    this.byEndpoint = new Map(services.map((s) => [formatEndpoint(canon(s.address), s.port), s.name]));
  }

  private serviceKeys(services: ReceiverService[]): ServiceKey[] {
    return services.map((s, id) => ({ address: s.address, port: s.port, id }));
  }

  private onEvents(events: KernelEvent[]): void {
    this.opts.onBatch?.(events.length);
    for (const ev of events) {
      this.opts.onEvent?.(ev, this.lifecycle);
      this.lifecycle.handle(ev);
    }
    this.armDeadline();
  }
}
