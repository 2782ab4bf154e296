// Classified attempts and connections -> OpenTelemetry spans and metrics, named as src/telemetry/metadata.ts
// declares. Kernel timestamps become wall-clock time through a measured monotonic->realtime offset.
import { Attributes, Counter, Histogram } from '@opentelemetry/api';
import { MeterProvider, MetricReader, PeriodicExportingMetricReader, PushMetricExporter } from '@opentelemetry/sdk-metrics';
import { PrometheusExporter } from '@opentelemetry/exporter-prometheus';
import { scopeOf, vipguardResource } from '../telemetry/resource';
import { KernelClock } from '../native/clock';
import { Attempt, Connection, LifecycleSink, SocketInfo } from './lifecycle';
import { Endpoint } from './events';
import { Exchange, ExchangeOutcome, UdpFlowInfo } from './udp-flows';
import { ATTEMPT_OUTCOME_VALUES, METRICS, MetricName, SpanName } from '../telemetry/metadata';
import { DropReason, EncodedSpanExporter, ExportQueue } from '../telemetry/export';
import { AttributeCache, ProtoWriter, encodeKeyValue, SpanEncoder, TraceRequestHeader } from '../telemetry/otlp-encode';
import { SpanSampler } from '../telemetry/sampling';
import { SeriesHistogram, SeriesProducer, SeriesSum } from '../telemetry/series';
import type { TlsMaterial } from '../common/tls';
import { ScrapeServer } from './scrape';

type Attrs = Record<string, string | number | boolean>;

export interface ReceiverTelemetryOptions {
  /** each exporter gets its own queue: a slow collector never delays the in-process actuator */
  spanExporters: EncodedSpanExporter[];
  /**
   * The share of connections whose successful handshake and normal close are exported as spans (0 < ratio ≤ 1).
   * Failed, late, rescued and reset attempts are always exported; metrics count everything. Default 1.
   */
  spanSampling?: number;
  metricExporter?: PushMetricExporter;
  /** serve /metrics for Prometheus on this host:port (port 0: a free one; see `listen()`), over TLS when given */
  prometheus?: { host: string; port: number; tls?: TlsMaterial; onRefused?: (peer: string, e: Error) => void };
  metricIntervalMs: number;
  spanDelayMs: number;
  maxQueueSize: number;
  maxBatchSize: number;
  /** losses the telemetry cannot see itself (BPF counters, lifecycle), read at each metric collection */
  externalLosses?: () => Partial<Record<string, number | bigint>>;
  clock?: { toEpochNs(ns: bigint): bigint };
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

/** A span's attributes, encoded only if it is exported: the cached ones, then its own written into the span. */
interface SpanAttributes {
  shared(): Buffer[];
  own(w: ProtoWriter): void;
}

/** The series key of an endpoint: what endpointAttrs() holds, joined. */
function endpointKey(s: SocketInfo | UdpFlowInfo, backend: Endpoint | undefined): string {
  return `${s.service ?? ''}|${s.dst.addr}|${s.dst.port}|${backend ? `${backend.addr}|${backend.port}` : ''}`;
}

/** A span's place in its socket's trace: the trace id, the last exported span (the next one's parent), the sampling. */
interface Chain {
  traceId: Buffer;
  parent?: Buffer;
  /** whether the ratio keeps this socket's successful spans */
  sampled: boolean;
  /** whether a span had to be exported (a failure…): the socket's later spans are then exported too */
  kept: boolean;
}

export class ReceiverTelemetry implements LifecycleSink {
  private readonly meterProvider: MeterProvider;
  private readonly queues: ExportQueue<Buffer>[];
  private readonly urgent = new WeakSet<Buffer>();
  private readonly encoder = new SpanEncoder();
  private readonly kv = new AttributeCache(9);
  private readonly groups = new Map<string, Buffer>();
  private readonly scratch = new ProtoWriter(256);
  private readonly sampler: SpanSampler;
  private readonly clock: { toEpochNs(ns: bigint): bigint };
  private readonly series: SeriesProducer;
  private readonly attempts: SeriesSum;
  private readonly duration: SeriesHistogram;
  private readonly synRetransmits: SeriesSum;
  private readonly active: SeriesSum;
  private readonly connectionDuration: SeriesHistogram;
  private readonly events: Counter;
  private readonly udpExchanges: Counter;
  private readonly udpReply: Histogram;
  /** per UDP flow: failed exchanges so far (the span's vipguard.attempt) */
  private readonly udpFailures = new Map<bigint, number>();
  /** per socket: its trace, and the span its next span hangs under (previous attempt, or the establishing one) */
  private readonly chain = new Map<bigint, Chain>();
  private readonly dropped: Record<DropReason, number> = { export_queue_full: 0, export_failed: 0 };
  private prometheus?: PrometheusExporter;
  /** endpoints whose attempt series were made to exist at 0 (seriesAtZero) */
  private readonly zeroed = new Set<string>();
  readonly scrape?: ScrapeServer;

  constructor(opts: ReceiverTelemetryOptions) {
    this.clock = opts.clock ?? new KernelClock();
    const resource = vipguardResource('receiver');
    this.sampler = new SpanSampler(opts.spanSampling ?? 1);
    const header = new TraceRequestHeader(resource, SCOPE);
    this.queues = opts.spanExporters.map((exporter) => new ExportQueue<Buffer>({
      export: (spans, done) => exporter.export({ header, spans }, done),
      shutdown: () => exporter.shutdown(),
    }, {
      maxQueueSize: opts.maxQueueSize,
      maxBatchSize: opts.maxBatchSize,
      delayMs: opts.spanDelayMs,
      // The actuator acts on failed handshakes: do not let them sit in a batch.
      urgent: (s) => this.urgent.has(s),
      onDrop: (n, reason) => (this.dropped[reason] += n),
    }));
    // The per-connection metrics: series.ts (exact, without the SDK's per-call attribute hashing).
    this.series = new SeriesProducer(resource, SCOPE);
    const metricProducers = [this.series];
    const readers: MetricReader[] = [];
    if (opts.metricExporter) {
      readers.push(new PeriodicExportingMetricReader({
        exporter: opts.metricExporter, metricProducers,
        exportIntervalMillis: opts.metricIntervalMs,
        exportTimeoutMillis: Math.min(opts.metricIntervalMs, 10_000),
      }));
    }
    if (opts.prometheus) {
      this.prometheus = new PrometheusExporter({ preventServerStart: true, metricProducers });
      this.scrape = new ScrapeServer(this.prometheus, opts.prometheus);
      readers.push(this.prometheus);
    }
    this.meterProvider = new MeterProvider({ resource, readers });
    const meter = this.meterProvider.getMeter(SCOPE.name, SCOPE.version, { schemaUrl: SCOPE.schemaUrl });
    const m = (name: MetricName) => ({ description: METRICS[name].description, unit: METRICS[name].unit });
    const d = (name: MetricName) => ({ name, ...m(name) });
    const perOutcome = MAX_ZEROED * ATTEMPT_OUTCOME_VALUES.length;
    this.attempts = this.series.sum(d('vipguard.connect.attempts'), true, perOutcome);
    this.duration = this.series.histogram(d('vipguard.connect.duration'), METRICS['vipguard.connect.duration'].buckets!, perOutcome);
    this.synRetransmits = this.series.sum(d('vipguard.connect.syn_retransmits'), true, MAX_ZEROED);
    this.active = this.series.sum(d('vipguard.connection.active'), false, MAX_ZEROED);
    this.connectionDuration = this.series.histogram(d('vipguard.connection.duration'), METRICS['vipguard.connection.duration'].buckets!, perOutcome);
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
    return this.queues.reduce((n, p) => n + p.exported, 0);
  }

  /** Successful spans the sampler left out (handshakes and normal closes beyond the ratio). */
  get spansSampledOut(): number {
    return this.sampler.left;
  }

  /**
   * Ends one span of socket `sk`: exported when `always` (a failure, a late or rescued answer, a reset) or when the
   * ratio samples the socket's trace; parented on, and linked to, the socket's last exported span.
   */
  private span(name: SpanName, sk: bigint, startNs: bigint, endNs: bigint, attributes: SpanAttributes, failed: string | undefined, always: boolean): void {
    let c = this.chain.get(sk);
    if (!c) {
      const traceId = this.encoder.randomId(16);
      c = { traceId, sampled: this.sampler.sampled(traceId), kept: false };
      this.chain.set(sk, c);
    }
    if (always) c.kept = true;
    if (!c.kept && !c.sampled) {
      this.sampler.left++;
      return;
    }
    const spanId = this.encoder.randomId(8);
    const bytes = this.encoder.encode({
      traceId: c.traceId, spanId, parentSpanId: c.parent, traceState: this.sampler.traceState(!c.kept), name,
      startNs: this.clock.toEpochNs(startNs), endNs: this.clock.toEpochNs(endNs), attributes: attributes.shared(), ownAttributes: attributes.own,
      error: failed,
    });
    if (failed !== undefined && name === 'vipguard.connect') this.urgent.add(bytes);
    c.parent = spanId;
    for (const q of this.queues) q.push(bytes);
  }

  /**
   * The encoded attributes of a span of `s`: the endpoint group (encoded once per service, VIP, backend and
   * transport), the outcome and the client address (cached), then what is the span's own.
   */
  private spanAttrs(s: SocketInfo | UdpFlowInfo, backend: Endpoint | undefined, outcome: string, transport: 'tcp' | 'udp', own: Attrs): SpanAttributes {
    return {
      shared: () => {
        const key = `${endpointKey(s, backend)}|${transport}|${s.family}`;
        let group = this.groups.get(key);
        if (!group) {
          if (this.groups.size >= MAX_ZEROED) this.groups.clear();
          const w = this.scratch;
          const a: Attrs = { ...endpointAttrs(s, backend), 'network.transport': transport, 'network.type': s.family === 4 ? 'ipv4' : 'ipv6' };
          for (const k in a) encodeKeyValue(w, 9, k, a[k]);
          group = w.take();
          this.groups.set(key, group);
        }
        return [group, this.kv.get('vipguard.outcome', outcome), this.kv.get('network.local.address', s.src.addr)];
      },
      own: (w) => {
        if (s.src.port) encodeKeyValue(w, 9, 'network.local.port', s.src.port);
        if (s.pid) encodeKeyValue(w, 9, 'process.pid', s.pid);
        for (const k in own) encodeKeyValue(w, 9, k, own[k]);
      },
    };
  }

  attemptEnded(a: Attempt): void {
    const s = a.socket;
    const seconds = Number(a.endNs - a.startNs) / 1e9;
    const ok = a.outcome === 'established';
    const own: Attrs = { 'vipguard.attempt': a.index, 'vipguard.syn_retransmits': a.synRetransmits, 'vipguard.handshake.duration': seconds };
    if (a.early) own['vipguard.handshake.early'] = true;
    if (a.late) own['vipguard.handshake.late'] = true;
    if (!ok) own['error.type'] = a.outcome;
    // Always exported: a failure, a late answer, and an answer that rescued the socket after a failed attempt.
    this.span('vipguard.connect', s.sk, a.startNs, a.endNs, this.spanAttrs(s, a.backend, a.outcome, 'tcp', own),
      ok ? undefined : a.outcome, !ok || !!a.late || a.index > 0);

    const key = endpointKey(s, a.backend);
    const endpoint = () => endpointAttrs(s, a.backend) as Attributes;
    const withOutcome = () => ({ ...endpoint(), 'vipguard.outcome': a.outcome });
    this.seriesAtZero(key, endpoint);
    this.attempts.add(`${key}|${a.outcome}`, withOutcome, 1);
    this.duration.record(`${key}|${a.outcome}`, withOutcome, seconds);
    if (a.outcome === 'unanswered' && !a.final && !a.early) this.synRetransmits.add(key, endpoint, 1);
  }

  /**
   * The first attempt seen to a backend makes every outcome's attempt series exist, at 0: a rule over
   * `increase(vipguard_connect_attempts_total{vipguard_outcome="unanswered"}[…])` then counts the backend's first
   * failures too (a series that appears at 1 has no earlier sample to increase from). Bounded: the series
   * themselves are bounded by the backends there are.
   */
  private seriesAtZero(key: string, endpoint: () => Attributes): void {
    if (this.zeroed.has(key) || this.zeroed.size >= MAX_ZEROED) return;
    this.zeroed.add(key);
    for (const outcome of ATTEMPT_OUTCOME_VALUES) this.attempts.add(`${key}|${outcome}`, () => ({ ...endpoint(), 'vipguard.outcome': outcome }), 0);
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
    const own: Attrs = {
      'vipguard.attempt': index,
      'vipguard.handshake.duration': Number(e.endNs - e.startNs) / 1e9,
      'vipguard.udp.datagrams': e.datagrams,
    };
    if (e.outcome === 'unanswered') own['vipguard.handshake.early'] = true;
    if (e.late) own['vipguard.handshake.late'] = true;
    const failed = e.outcome === 'answered' ? undefined : outcome;
    if (failed) own['error.type'] = failed;
    this.span('vipguard.connect', e.flow.sk, e.startNs, e.endNs, this.spanAttrs(e.flow, e.backend, outcome, 'udp', own), failed, true);
  }

  flowEnded(f: UdpFlowInfo): void {
    this.chain.delete(f.sk);
    this.udpFailures.delete(f.sk);
  }

  connectionStarted(c: Omit<Connection, 'endNs' | 'outcome'>): void {
    this.active.add(endpointKey(c.socket, c.backend), () => endpointAttrs(c.socket, c.backend) as Attributes, 1);
  }

  connectionEnded(c: Connection): void {
    const s = c.socket;
    const key = endpointKey(s, c.backend);
    const endpoint = () => endpointAttrs(s, c.backend) as Attributes;
    this.active.add(key, endpoint, -1);
    this.connectionDuration.record(`${key}|${c.outcome}`, () => ({ ...endpoint(), 'vipguard.outcome': c.outcome }), Number(c.endNs - c.startNs) / 1e9);
    const reset = c.outcome === 'reset';
    this.span('vipguard.connection', s.sk, c.startNs, c.endNs, this.spanAttrs(s, c.backend, c.outcome, 'tcp', reset ? { 'error.type': 'reset' } : {}),
      reset ? 'reset' : undefined, reset);
    this.chain.delete(s.sk);
  }

  socketGone(sk: bigint): void {
    this.chain.delete(sk);
  }

  /** Exports queued spans and a final metric collection. */
  async flush(): Promise<void> {
    await Promise.allSettled([...this.queues.map((p) => p.forceFlush()), this.meterProvider.forceFlush()]);
  }

  async shutdown(): Promise<void> {
    await Promise.allSettled([...this.queues.map((q) => q.shutdown()), this.meterProvider.shutdown(), this.scrape?.stop()]);
  }
}
