// Classified attempts and connections -> OpenTelemetry spans and metrics, named as src/telemetry/metadata.ts
// declares. Kernel timestamps become wall-clock time through a measured monotonic->realtime offset.
import { Attributes, Counter, Histogram, ROOT_CONTEXT, SpanContext, SpanKind, SpanStatusCode, trace, Tracer, UpDownCounter } from '@opentelemetry/api';
import { BasicTracerProvider, SpanExporter } from '@opentelemetry/sdk-trace-base';
import { MeterProvider, MetricReader, PeriodicExportingMetricReader, PushMetricExporter } from '@opentelemetry/sdk-metrics';
import { PrometheusExporter } from '@opentelemetry/exporter-prometheus';
import { scopeOf, vipguardResource } from '../telemetry/resource';
import { KernelClock } from '../native/clock';
import { Attempt, Connection, LifecycleSink, SocketInfo } from './lifecycle';
import { Endpoint } from './events';
import { Exchange, ExchangeOutcome, UdpFlowInfo } from './udp-flows';
import { ATTEMPT_OUTCOME_VALUES, AttributeName, METRICS, MetricName, SpanName } from '../telemetry/metadata';
import { DropReason, QueueSpanProcessor } from '../telemetry/export';
import type { TlsMaterial } from '../common/tls';
import { ScrapeServer } from './scrape';

type Attrs = Partial<Record<AttributeName, string | number | boolean>>;

export interface ReceiverTelemetryOptions {
  /** each exporter gets its own queue: a slow collector never delays the in-process actuator */
  spanExporters: SpanExporter[];
  metricExporter?: PushMetricExporter;
  /** serve /metrics for Prometheus on this host:port (port 0: a free one; see `listen()`), over TLS when given */
  prometheus?: { host: string; port: number; tls?: TlsMaterial; onRefused?: (peer: string, e: Error) => void };
  metricIntervalMs: number;
  spanDelayMs: number;
  maxQueueSize: number;
  maxBatchSize: number;
  /** losses the telemetry cannot see itself (BPF counters, lifecycle), read at each metric collection */
  externalLosses?: () => Partial<Record<string, number | bigint>>;
  clock?: { toHrTime(ns: bigint): [number, number] };
}

const SCOPE = scopeOf('receiver');
const MAX_ZEROED = 10_000;

/** A UDP exchange's outcome in the attempt outcomes the rules read (connect-span.ts): answered is `established`. */
const UDP_OUTCOME: Record<ExchangeOutcome, string> = { answered: 'established', unanswered: 'unanswered', refused: 'refused', unreachable: 'unreachable' };

function endpointAttrs(s: SocketInfo | UdpFlowInfo, backend: Endpoint | undefined): Attrs {
  const a: Attrs = {
    'vipguard.service': s.service ?? 'unconfigured',
    'server.address': s.dst.addr,
    'server.port': s.dst.port,
  };
  if (backend) {
    a['network.peer.address'] = backend.addr;
    a['network.peer.port'] = backend.port;
  }
  return a;
}

function spanAttrs(s: SocketInfo | UdpFlowInfo, backend: Endpoint | undefined, outcome: string, transport: 'tcp' | 'udp' = 'tcp'): Attrs {
  const a: Attrs = {
    ...endpointAttrs(s, backend),
    'network.transport': transport,
    'network.type': s.family === 4 ? 'ipv4' : 'ipv6',
    'network.local.address': s.src.addr,
    'vipguard.outcome': outcome,
  };
  if (s.src.port) a['network.local.port'] = s.src.port;
  if (s.pid) a['process.pid'] = s.pid;
  return a;
}

export class ReceiverTelemetry implements LifecycleSink {
  private readonly tracerProvider: BasicTracerProvider;
  private readonly meterProvider: MeterProvider;
  private readonly tracer: Tracer;
  private readonly processors: QueueSpanProcessor[];
  private readonly clock: { toHrTime(ns: bigint): [number, number] };
  private readonly attempts: Counter;
  private readonly duration: Histogram;
  private readonly synRetransmits: Counter;
  private readonly active: UpDownCounter;
  private readonly connectionDuration: Histogram;
  private readonly events: Counter;
  private readonly udpExchanges: Counter;
  private readonly udpReply: Histogram;
  /** per UDP flow: failed exchanges so far (the span's vipguard.attempt) */
  private readonly udpFailures = new Map<bigint, number>();
  /** per socket: the span context its next span hangs under (previous attempt, or the establishing one) */
  private readonly chain = new Map<bigint, SpanContext>();
  private readonly dropped: Record<DropReason, number> = { export_queue_full: 0, export_failed: 0 };
  private prometheus?: PrometheusExporter;
  /** endpoints whose attempt series were made to exist at 0 (seriesAtZero) */
  private readonly zeroed = new Set<string>();
  readonly scrape?: ScrapeServer;

  constructor(opts: ReceiverTelemetryOptions) {
    this.clock = opts.clock ?? new KernelClock();
    const resource = vipguardResource('receiver');
    this.processors = opts.spanExporters.map((exporter) => new QueueSpanProcessor(exporter, {
      maxQueueSize: opts.maxQueueSize,
      maxBatchSize: opts.maxBatchSize,
      delayMs: opts.spanDelayMs,
      // The actuator acts on failed handshakes: do not let them sit in a batch.
      urgent: (s) => s.status.code === SpanStatusCode.ERROR && s.name === 'vipguard.connect',
      onDrop: (n, reason) => (this.dropped[reason] += n),
    }));
    this.tracerProvider = new BasicTracerProvider({ resource, spanProcessors: this.processors });
    this.tracer = this.tracerProvider.getTracer(SCOPE.name, SCOPE.version, { schemaUrl: SCOPE.schemaUrl });
    const readers: MetricReader[] = [];
    if (opts.metricExporter) {
      readers.push(new PeriodicExportingMetricReader({
        exporter: opts.metricExporter,
        exportIntervalMillis: opts.metricIntervalMs,
        exportTimeoutMillis: Math.min(opts.metricIntervalMs, 10_000),
      }));
    }
    if (opts.prometheus) {
      this.prometheus = new PrometheusExporter({ preventServerStart: true });
      this.scrape = new ScrapeServer(this.prometheus, opts.prometheus);
      readers.push(this.prometheus);
    }
    this.meterProvider = new MeterProvider({ resource, readers });
    const meter = this.meterProvider.getMeter(SCOPE.name, SCOPE.version, { schemaUrl: SCOPE.schemaUrl });
    const m = (name: MetricName) => ({ description: METRICS[name].description, unit: METRICS[name].unit });
    this.attempts = meter.createCounter('vipguard.connect.attempts', m('vipguard.connect.attempts'));
    this.duration = meter.createHistogram('vipguard.connect.duration', {
      ...m('vipguard.connect.duration'),
      advice: { explicitBucketBoundaries: [...METRICS['vipguard.connect.duration'].buckets] },
    });
    this.synRetransmits = meter.createCounter('vipguard.connect.syn_retransmits', m('vipguard.connect.syn_retransmits'));
    this.active = meter.createUpDownCounter('vipguard.connection.active', m('vipguard.connection.active'));
    this.connectionDuration = meter.createHistogram('vipguard.connection.duration',
      { ...m('vipguard.connection.duration'), advice: { explicitBucketBoundaries: [...METRICS['vipguard.connection.duration'].buckets] } });
    this.events = meter.createCounter('vipguard.receiver.events', m('vipguard.receiver.events'));
    this.udpExchanges = meter.createCounter('vipguard.udp.exchanges', m('vipguard.udp.exchanges'));
    this.udpReply = meter.createHistogram('vipguard.udp.reply.duration', {
      ...m('vipguard.udp.reply.duration'),
      advice: { explicitBucketBoundaries: [...METRICS['vipguard.udp.reply.duration'].buckets] },
    });
    const lost = meter.createObservableCounter('vipguard.receiver.events.lost', m('vipguard.receiver.events.lost'));
    lost.addCallback((obs) => {
      const all: Record<string, number | bigint> = { ...this.dropped, ...(opts.externalLosses?.() ?? {}) };
      for (const [reason, n] of Object.entries(all)) obs.observe(Number(n), { 'vipguard.reason': reason });
    });
  }

  /** Starts the Prometheus endpoint, if any; resolves to its port. */
  async listen(): Promise<number | undefined> {
    return this.scrape?.start();
  }

  countEvents(n: number): void {
    this.events.add(n);
  }

  get spansExported(): number {
    return this.processors.reduce((n, p) => n + p.exported, 0);
  }

  private span(name: SpanName, s: SocketInfo | UdpFlowInfo, startNs: bigint, endNs: bigint, attrs: Attrs, failed: string | undefined,
    parent: SpanContext | undefined): SpanContext {
    const ctx = parent ? trace.setSpanContext(ROOT_CONTEXT, parent) : ROOT_CONTEXT;
    const span = this.tracer.startSpan(name, {
      kind: SpanKind.CLIENT,
      startTime: this.clock.toHrTime(startNs),
      attributes: attrs as Attributes,
      links: parent ? [{ context: parent }] : [],
    }, ctx);
    if (failed) {
      span.setAttribute('error.type', failed);
      span.setStatus({ code: SpanStatusCode.ERROR, message: failed });
    }
    span.end(this.clock.toHrTime(endNs));
    return span.spanContext();
  }

  attemptEnded(a: Attempt): void {
    const s = a.socket;
    const seconds = Number(a.endNs - a.startNs) / 1e9;
    const attrs: Attrs = {
      ...spanAttrs(s, a.backend, a.outcome),
      'vipguard.attempt': a.index,
      'vipguard.syn_retransmits': a.synRetransmits,
      'vipguard.handshake.duration': seconds,
    };
    const ok = a.outcome === 'established';
    if (a.early) attrs['vipguard.handshake.early'] = true;
    if (a.late) attrs['vipguard.handshake.late'] = true;
    const ctx = this.span('vipguard.connect', s, a.startNs, a.endNs, attrs, ok ? undefined : a.outcome, this.chain.get(s.sk));
    this.chain.set(s.sk, ctx);

    const endpoint = endpointAttrs(s, a.backend);
    this.seriesAtZero(endpoint);
    const metricAttrs = { ...endpoint, 'vipguard.outcome': a.outcome };
    this.attempts.add(1, metricAttrs as Attributes);
    this.duration.record(seconds, metricAttrs as Attributes);
    if (a.outcome === 'unanswered' && !a.final && !a.early) this.synRetransmits.add(1, endpointAttrs(s, a.backend) as Attributes);
  }

  /**
   * The first attempt seen to a backend makes every outcome's attempt series exist, at 0: a rule over
   * `increase(vipguard_connect_attempts_total{vipguard_outcome="unanswered"}[…])` then counts the backend's first
   * failures too (a series that appears at 1 has no earlier sample to increase from). Bounded: the series
   * themselves are bounded by the backends there are.
   */
  private seriesAtZero(endpoint: Attrs): void {
    const key = `${endpoint['vipguard.service']}|${endpoint['server.address']}|${endpoint['server.port']}|${endpoint['network.peer.address'] ?? ''}|${endpoint['network.peer.port'] ?? ''}`;
    if (this.zeroed.has(key) || this.zeroed.size >= MAX_ZEROED) return;
    this.zeroed.add(key);
    for (const outcome of ATTEMPT_OUTCOME_VALUES) this.attempts.add(0, { ...endpoint, 'vipguard.outcome': outcome } as Attributes);
  }

  /**
   * A UDP exchange: counted by outcome; answered waits feed the reply-time histogram; failures (and a late answer,
   * which tells the actuator the backend is slow, not dead) become `vipguard.connect` spans with
   * network.transport=udp, so the embedded rules and the collector's pipelines read them as they read handshakes.
   */
  exchange(e: Exchange): void {
    const endpoint = endpointAttrs(e.flow, e.backend);
    const outcome = UDP_OUTCOME[e.outcome];
    this.udpExchanges.add(e.count, { ...endpoint, 'vipguard.outcome': outcome } as Attributes);
    if (e.replyMs !== undefined && e.waits) {
      for (let i = 0; i < Math.min(e.waits, 1000); i++) this.udpReply.record(e.replyMs / 1000, endpoint as Attributes);
    }
    if (e.outcome === 'answered' && !e.late) return;
    const index = this.udpFailures.get(e.flow.sk) ?? 0;
    if (e.outcome !== 'answered') this.udpFailures.set(e.flow.sk, index + 1);
    const attrs: Attrs = {
      ...spanAttrs(e.flow, e.backend, outcome, 'udp'),
      'vipguard.attempt': index,
      'vipguard.handshake.duration': Number(e.endNs - e.startNs) / 1e9,
      'vipguard.udp.datagrams': e.datagrams,
    };
    if (e.outcome === 'unanswered') attrs['vipguard.handshake.early'] = true;
    if (e.late) attrs['vipguard.handshake.late'] = true;
    const failed = e.outcome === 'answered' ? undefined : outcome;
    this.chain.set(e.flow.sk, this.span('vipguard.connect', e.flow, e.startNs, e.endNs, attrs, failed, this.chain.get(e.flow.sk)));
  }

  flowEnded(f: UdpFlowInfo): void {
    this.chain.delete(f.sk);
    this.udpFailures.delete(f.sk);
  }

  connectionStarted(c: Omit<Connection, 'endNs' | 'outcome'>): void {
    this.active.add(1, endpointAttrs(c.socket, c.backend) as Attributes);
  }

  connectionEnded(c: Connection): void {
    const s = c.socket;
    const attrs = endpointAttrs(s, c.backend) as Attributes;
    this.active.add(-1, attrs);
    this.connectionDuration.record(Number(c.endNs - c.startNs) / 1e9, { ...attrs, 'vipguard.outcome': c.outcome });
    this.span('vipguard.connection', s, c.startNs, c.endNs, spanAttrs(s, c.backend, c.outcome),
      c.outcome === 'reset' ? 'reset' : undefined, this.chain.get(s.sk));
    this.chain.delete(s.sk);
  }

  socketGone(sk: bigint): void {
    this.chain.delete(sk);
  }

  /** Exports queued spans and a final metric collection. */
  async flush(): Promise<void> {
    await Promise.allSettled([...this.processors.map((p) => p.forceFlush()), this.meterProvider.forceFlush()]);
  }

  async shutdown(): Promise<void> {
    await Promise.allSettled([this.tracerProvider.shutdown(), this.meterProvider.shutdown(), this.scrape?.stop()]);
  }
}
