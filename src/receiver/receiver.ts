// The receiver: kernel probe -> lifecycle model -> telemetry (and any local listeners, e.g. `vipguard trace`).
import { Endpoint, KernelEvent } from './events';
import { Attempt, Connection, Lifecycle, LifecycleSink } from './lifecycle';
import { HookStatus, ReceiverProbe, ServiceKey } from './probe';
import { monotonicNow } from '../native/clock';
import { formatAddr, formatEndpoint, parseAddr } from '../common/addr';

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
}

export class Receiver {
  readonly lifecycle: Lifecycle;
  private readonly probe: ReceiverProbe;
  private byEndpoint = new Map<string, string>();
  private readonly expiry: NodeJS.Timeout;

  constructor(private readonly opts: ReceiverOptions) {
    const sinks = opts.sinks;
    const fanout: LifecycleSink = {
      attemptEnded: (a: Attempt) => sinks.forEach((s) => s.attemptEnded(a)),
      connectionStarted: (c) => sinks.forEach((s) => s.connectionStarted(c)),
      connectionEnded: (c: Connection) => sinks.forEach((s) => s.connectionEnded(c)),
      socketDropped: (sk: bigint) => sinks.forEach((s) => s.socketDropped?.(sk)),
    };
    this.lifecycle = new Lifecycle(fanout, { serviceOf: (dst) => this.serviceOf(dst) });
    this.indexServices(opts.services);
    this.probe = new ReceiverProbe((events) => this.onEvents(events), {
      traceAll: opts.traceAll,
      ringBufferBytes: opts.ringBufferBytes,
      services: this.serviceKeys(opts.services),
    });
    this.expiry = setInterval(() => this.lifecycle.expire(monotonicNow()), 10_000);
    this.expiry.unref();
  }

  get hooks(): HookStatus[] {
    return this.probe.hooks;
  }

  /** One line per hook: what is traced and what is not, and why. */
  describeHooks(): string[] {
    return this.probe.hooks.map((h) => `${h.active ? 'active  ' : 'INACTIVE'} ${h.hook}${h.reason ? ` — ${h.reason}` : ''}`);
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
  }
}
