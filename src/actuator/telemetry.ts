// The actuator's own telemetry: every kernel change as a span, and metrics for quarantines, panic, signals,
// reaction time and reconcile time (declared in src/telemetry/metadata.ts).
import { Attributes, Counter, Histogram, SpanKind, SpanStatusCode, Tracer } from '@opentelemetry/api';
import { BasicTracerProvider, SpanExporter } from '@opentelemetry/sdk-trace-base';
import { MeterProvider, MetricReader, PeriodicExportingMetricReader, PushMetricExporter } from '@opentelemetry/sdk-metrics';
import { PrometheusExporter } from '@opentelemetry/exporter-prometheus';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { scopeOf, vipguardResource } from '../telemetry/resource';
import { serveMetrics } from '../telemetry/prometheus';
import { METRICS, MetricName } from '../telemetry/metadata';
import { QueueSpanProcessor } from '../telemetry/export';
import type { ActuatorEvents } from './actuator';
import type { AlertSignal, SignalVerdict } from './alerts';
import { Change, changeAttributes } from './reconcile';
import type { ChangeInfo } from './actuator';
import type { HoldCounter } from './rsthold';

export interface ActuatorTelemetryOptions {
  spanExporter?: SpanExporter;
  metricExporter?: PushMetricExporter;
  metricIntervalMs: number;
  spanDelayMs: number;
  /** per service: [quarantined now, in panic] */
  snapshot: () => { service: string; quarantined: number; panic: boolean }[];
  /** also keep the metrics for scrapes (serveMetrics: GET /metrics on the actuator's HTTP API) */
  prometheus?: boolean;
  /** the RST hold-back's counters (bpf/rsthold.bpf.c), undefined while it is off or inactive */
  refusals?: () => Record<HoldCounter, number> | undefined;
}

/** vipguard.hold's value for each hold-back counter; `refusals` is their sum, so it is not exported itself. */
const HOLD_VALUES: Record<Exclude<HoldCounter, 'refusals'>, string> = {
  held: 'held', passedAgain: 'passed_again', passedFewInService: 'passed_few_in_service',
  passedRescueFailed: 'passed_rescue_failed', passedNoMemory: 'passed_no_memory',
};

const SCOPE = scopeOf('actuator');

export class ActuatorTelemetry implements ActuatorEvents {
  private readonly tracerProvider: BasicTracerProvider;
  private readonly meterProvider: MeterProvider;
  private readonly tracer: Tracer;
  private readonly changes: Counter;
  private readonly signals: Counter;
  private readonly reaction: Histogram;
  private readonly reconcileTime: Histogram;
  private readonly prometheus?: PrometheusExporter;
  /** reaction times seen, for `vipguard status` and the benchmark (bounded) */
  readonly reactionsMs: number[] = [];

  constructor(opts: ActuatorTelemetryOptions) {
    const resource = vipguardResource('actuator');
    const processors = opts.spanExporter
      ? [new QueueSpanProcessor(opts.spanExporter, { maxQueueSize: 2000, maxBatchSize: 200, delayMs: opts.spanDelayMs })]
      : [];
    this.tracerProvider = new BasicTracerProvider({ resource, spanProcessors: processors });
    this.tracer = this.tracerProvider.getTracer(SCOPE.name, SCOPE.version, { schemaUrl: SCOPE.schemaUrl });
    const readers: MetricReader[] = opts.metricExporter ? [new PeriodicExportingMetricReader({
      exporter: opts.metricExporter, exportIntervalMillis: opts.metricIntervalMs,
      exportTimeoutMillis: Math.min(opts.metricIntervalMs, 10_000),
    })] : [];
    if (opts.prometheus) {
      this.prometheus = new PrometheusExporter({ preventServerStart: true });
      readers.push(this.prometheus);
    }
    this.meterProvider = new MeterProvider({ resource, readers });
    const meter = this.meterProvider.getMeter(SCOPE.name, SCOPE.version, { schemaUrl: SCOPE.schemaUrl });
    const m = (name: MetricName) => ({ description: METRICS[name].description, unit: METRICS[name].unit });
    const buckets = (name: 'vipguard.actuator.reaction.duration' | 'vipguard.actuator.reconcile.duration') =>
      ({ ...m(name), advice: { explicitBucketBoundaries: [...METRICS[name].buckets] } });
    this.changes = meter.createCounter('vipguard.actuator.changes', m('vipguard.actuator.changes'));
    this.signals = meter.createCounter('vipguard.actuator.signals', m('vipguard.actuator.signals'));
    this.reaction = meter.createHistogram('vipguard.actuator.reaction.duration', buckets('vipguard.actuator.reaction.duration'));
    this.reconcileTime = meter.createHistogram('vipguard.actuator.reconcile.duration', buckets('vipguard.actuator.reconcile.duration'));
    const quarantined = meter.createObservableUpDownCounter('vipguard.actuator.quarantined', m('vipguard.actuator.quarantined'));
    const panic = meter.createObservableGauge('vipguard.actuator.panic', m('vipguard.actuator.panic'));
    meter.addBatchObservableCallback((obs) => {
      for (const s of opts.snapshot()) {
        obs.observe(quarantined, s.quarantined, { 'vipguard.service': s.service });
        obs.observe(panic, s.panic ? 1 : 0, { 'vipguard.service': s.service });
      }
    }, [quarantined, panic]);
    const refusals = meter.createObservableCounter('vipguard.actuator.refusals', m('vipguard.actuator.refusals'));
    refusals.addCallback((obs) => {
      const c = opts.refusals?.();
      if (!c) return;
      for (const [k, v] of Object.entries(HOLD_VALUES)) obs.observe(c[k as keyof typeof HOLD_VALUES], { 'vipguard.hold': v });
    });
  }

  change(c: Change, error: Error | undefined, info: ChangeInfo): void {
    const { 'vipguard.destination': destination, ...rest } = changeAttributes(c);
    const action = rest['vipguard.action'];
    const attrs: Attributes = { ...rest, 'vipguard.result': error ? 'error' : 'ok' };
    this.changes.add(1, attrs);
    const span = this.tracer.startSpan('vipguard.actuator.change', { kind: SpanKind.INTERNAL, attributes: attrs });
    if (destination) span.setAttribute('vipguard.destination', destination);
    if (info.level !== undefined && info.holdUntil && action === 'quarantine') {
      span.setAttribute('vipguard.quarantine.level', info.level);
      span.setAttribute('vipguard.quarantine.until', info.holdUntil.toISOString());
    }
    if (error) {
      span.setAttribute('error.type', (error as NodeJS.ErrnoException).code ?? 'error');
      span.setStatus({ code: SpanStatusCode.ERROR, message: error.message });
    }
    span.end();
    if (!error && info.signalAt !== undefined) {
      const ms = Math.max(0, Date.now() - info.signalAt);
      this.reaction.record(ms / 1000, { 'vipguard.service': c.name });
      this.reactionsMs.push(ms);
      if (this.reactionsMs.length > 10_000) this.reactionsMs.splice(0, 5_000);
    }
  }

  signal(_s: AlertSignal, v: SignalVerdict): void {
    const verdict = v.accepted ? v.action : v.refusal === 'cap' ? 'refused_cap' : v.refusal === 'rate-limited' ? 'refused_rate' : 'refused_unknown';
    this.signals.add(1, { 'vipguard.source': _s.source, 'vipguard.verdict': verdict });
  }

  reconciled(ms: number): void {
    this.reconcileTime.record(ms / 1000);
  }

  /** Answers a scrape (GET /metrics) in Prometheus' text format; 404 when built without `prometheus`. */
  serveMetrics(req: IncomingMessage, res: ServerResponse): void {
    if (this.prometheus) serveMetrics(this.prometheus, req, res);
    else res.writeHead(404).end();
  }

  /** Collects and exports the metrics now (tests; the periodic reader does it on its own). */
  async flushMetrics(): Promise<void> {
    await this.meterProvider.forceFlush();
  }

  async shutdown(): Promise<void> {
    await Promise.allSettled([this.tracerProvider.shutdown(), this.meterProvider.shutdown()]);
  }
}
