// OTLP/gRPC export that never blocks event intake: spans wait in a bounded queue, go out in batches after a
// short delay (or at once when a span is urgent — a failed handshake the actuator must see), one export in
// flight at a time. A slow or absent collector costs queued spans, counted by reason; nothing waits on it.
// The gRPC channel reconnects by itself, so exports resume when the collector comes back.
import * as fs from 'node:fs';
import * as grpc from '@grpc/grpc-js';
import { ExportResult, ExportResultCode } from '@opentelemetry/core';
import type { Context } from '@opentelemetry/api';
import type { ReadableSpan, Span, SpanExporter, SpanProcessor } from '@opentelemetry/sdk-trace-base';
import { OTLPTraceExporter } from '@opentelemetry/exporter-trace-otlp-grpc';
import { OTLPMetricExporter } from '@opentelemetry/exporter-metrics-otlp-grpc';
import type { PushMetricExporter } from '@opentelemetry/sdk-metrics';
import { OTLPExporterBase } from '@opentelemetry/otlp-exporter-base';
import { convertLegacyOtlpGrpcOptions, createOtlpGrpcExportDelegate } from '@opentelemetry/otlp-grpc-exporter-base';
import { ProtobufTraceSerializer } from '@opentelemetry/otlp-transformer';
import { readTokenFile } from '../common/token-file';
import type { EncodedSpans } from './otlp-encode';

/** Where the receiver's encoded spans go: the collector (encodedTraceExporter) or the actuator in-process. */
export interface EncodedSpanExporter {
  export(batch: EncodedSpans, done: (r: ExportResult) => void): void;
  shutdown(): Promise<void>;
}

const ENCODED_SERIALIZER = {
  serializeRequest: (b: EncodedSpans) => b.header.request(b.spans),
  deserializeResponse: (r: Uint8Array) => ProtobufTraceSerializer.deserializeResponse(r),
};
const ENCODED_COUNT = { name: 'span' as const, countItems: (b: EncodedSpans) => b.spans.length };

export interface ExportConfig {
  /** host:port of the OTLP/gRPC endpoint (the collector sidecar, or the actuator directly) */
  endpoint: string;
  /** plaintext; only sensible on loopback */
  insecure: boolean;
  /** PEM files: the endpoint's CA; a client certificate and key for mutual TLS. Without them, TLS follows OTEL_EXPORTER_OTLP_* */
  tls?: { ca?: string; cert?: string; key?: string };
  headers?: Record<string, string>;
  /** a file holding a bearer token, sent as `authorization: Bearer <token>` (an actuator's OTLP endpoint wants one) */
  tokenFile?: string;
  timeoutMs: number;
  spanDelayMs: number;
  maxQueueSize: number;
  maxBatchSize: number;
  metricIntervalMs: number;
}

export const DEFAULT_EXPORT: ExportConfig = {
  endpoint: '127.0.0.1:4317',
  insecure: true,
  timeoutMs: 5000,
  // Short: the actuator reacts on these spans. Failures skip the delay altogether.
  spanDelayMs: 200,
  maxQueueSize: 20000,
  maxBatchSize: 1000,
  metricIntervalMs: 5000,
};

/**
 * The exporter's transport. TLS files in the configuration win; TLS without them (`insecure: false`, no `tls`) is
 * left to the exporter's own reading of the standard variables — OTEL_EXPORTER_OTLP_CERTIFICATE,
 * OTEL_EXPORTER_OTLP_CLIENT_CERTIFICATE, OTEL_EXPORTER_OTLP_CLIENT_KEY and their _TRACES_/_METRICS_ forms — which
 * @opentelemetry/otlp-grpc-exporter-base honours only when it is given an https:// URL and no credentials; without
 * them it trusts the system's CAs.
 */
function grpcOptions(cfg: ExportConfig) {
  const url = `${cfg.insecure ? 'http' : 'https'}://${cfg.endpoint}`;
  const files = cfg.tls && (cfg.tls.ca || cfg.tls.cert || cfg.tls.key);
  const credentials = cfg.insecure
    ? grpc.credentials.createInsecure()
    : files
      ? grpc.credentials.createSsl(
        cfg.tls?.ca ? fs.readFileSync(cfg.tls.ca) : null,
        cfg.tls?.key ? fs.readFileSync(cfg.tls.key) : null,
        cfg.tls?.cert ? fs.readFileSync(cfg.tls.cert) : null,
      )
      : undefined;
  const metadata = new grpc.Metadata();
  for (const [k, v] of Object.entries(cfg.headers ?? {})) metadata.set(k, v);
  if (cfg.tokenFile) metadata.set('authorization', `Bearer ${readTokenFile(cfg.tokenFile)}`);
  return { url, ...(credentials ? { credentials } : {}), metadata, timeoutMillis: cfg.timeoutMs };
}

export function traceExporter(cfg: ExportConfig): SpanExporter {
  return new ReconnectingExporter((n) => new OTLPTraceExporter({ ...grpcOptions(cfg), userAgent: `vipguard-traces/${n}` }));
}

/** The receiver's exporter: spans it encoded itself (otlp-encode.ts), over the same gRPC transport as traceExporter. */
export function encodedTraceExporter(cfg: ExportConfig): EncodedSpanExporter {
  return new ReconnectingExporter((n) => new OTLPExporterBase(createOtlpGrpcExportDelegate(
    convertLegacyOtlpGrpcOptions({ ...grpcOptions(cfg), userAgent: `vipguard-traces/${n}` }, 'TRACES'),
    ENCODED_SERIALIZER, 'otlp_grpc_span_exporter', ENCODED_COUNT, undefined,
    'TraceExportService', '/opentelemetry.proto.collector.trace.v1.TraceService/Export')));
}

export function metricExporter(cfg: ExportConfig): PushMetricExporter {
  return new ReconnectingExporter((n) => new OTLPMetricExporter({ ...grpcOptions(cfg), userAgent: `vipguard-metrics/${n}` }));
}

/** How long exports may fail before the exporter (its gRPC channel) is replaced by a fresh one. */
export const RECONNECT_AFTER_MS = 1000;

type Exporter<T> = {
  export(items: T, done: (r: ExportResult) => void): void;
  shutdown(): Promise<void>;
  forceFlush?(): Promise<void>;
  selectAggregationTemporality?: PushMetricExporter['selectAggregationTemporality'];
  selectAggregation?: PushMetricExporter['selectAggregation'];
};

/**
 * grpc-js backs off reconnecting a failed channel (1 s, ×1.6 each time, up to 120 s) and the OTel exporters offer
 * no way to tune it: after a 60 s collector outage, exports resumed only 39 s after the collector was back, every
 * span meanwhile lost (test/host/faults.test.ts). A fresh exporter is a fresh channel, which connects at once:
 * once exports have failed for RECONNECT_AFTER_MS, the next export goes through a new one. The cost while the
 * collector stays down is one refused TCP connect per RECONNECT_AFTER_MS. Each one gets its own user agent:
 * grpc-js shares connections (and their backoff) between channels with identical options, and the trace and
 * metric exporters of one endpoint would otherwise keep each other's backed-off connection alive.
 */
class ReconnectingExporter<T> implements Exporter<T> {
  private current: Exporter<T>;
  private createdAt = Date.now();
  private failingSince?: number;
  readonly selectAggregationTemporality?: Exporter<T>['selectAggregationTemporality'];
  readonly selectAggregation?: Exporter<T>['selectAggregation'];

  private generation = 0;

  constructor(private readonly make: (generation: number) => Exporter<T>) {
    this.current = make(this.generation);
    // The metric reader asks these once; every replacement has the same configuration.
    this.selectAggregationTemporality = this.current.selectAggregationTemporality?.bind(this.current);
    this.selectAggregation = this.current.selectAggregation?.bind(this.current);
  }

  export(items: T, done: (r: ExportResult) => void): void {
    const now = Date.now();
    if (this.failingSince !== undefined && now - this.failingSince >= RECONNECT_AFTER_MS && now - this.createdAt >= RECONNECT_AFTER_MS) {
      void this.current.shutdown().catch(() => {});
      this.current = this.make(++this.generation);
      this.createdAt = now;
    }
    this.current.export(items, (r) => {
      if (r.code === ExportResultCode.SUCCESS) this.failingSince = undefined;
      else this.failingSince ??= Date.now();
      done(r);
    });
  }

  async forceFlush(): Promise<void> {
    await this.current.forceFlush?.();
  }

  shutdown(): Promise<void> {
    return this.current.shutdown();
  }
}

export type DropReason = 'export_queue_full' | 'export_failed';

export interface QueueOptions<T> {
  maxQueueSize: number;
  maxBatchSize: number;
  delayMs: number;
  urgent?: (item: T) => boolean;
  onDrop?: (count: number, reason: DropReason) => void;
}

/** A batch exporter of T: spans, or spans already encoded. */
export interface BatchExporter<T> {
  export(items: T[], done: (r: ExportResult) => void): void;
  shutdown(): Promise<void>;
}

/** The bounded queue in front of one exporter (see the head of this file). */
export class ExportQueue<T> {
  private queue: T[] = [];
  private timer?: NodeJS.Timeout;
  private timerDue = Infinity;
  private inFlight?: Promise<void>;
  private stopped = false;
  exported = 0;
  dropped = 0;

  constructor(private readonly exporter: BatchExporter<T>, private readonly opts: QueueOptions<T>) {}

  push(item: T): void {
    if (this.stopped) return;
    if (this.queue.length >= this.opts.maxQueueSize) {
      this.drop(1, 'export_queue_full');
      return;
    }
    this.queue.push(item);
    this.schedule(this.opts.urgent?.(item) ? 0 : this.opts.delayMs);
  }

  private drop(n: number, reason: DropReason): void {
    this.dropped += n;
    this.opts.onDrop?.(n, reason);
  }

  private schedule(delayMs: number): void {
    // An armed timer is never later than a new full delay would be: the common push costs no clock read.
    if (this.timer && delayMs >= this.opts.delayMs) return;
    const due = Date.now() + delayMs;
    if (this.timer && due >= this.timerDue) return;
    clearTimeout(this.timer);
    this.timerDue = due;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.timerDue = Infinity;
      void this.exportBatch();
    }, delayMs);
    this.timer.unref();
  }

  private exportBatch(): Promise<void> {
    if (this.inFlight || this.queue.length === 0) return this.inFlight ?? Promise.resolve();
    const batch = this.queue.splice(0, this.opts.maxBatchSize);
    this.inFlight = new Promise<void>((resolve) => {
      this.exporter.export(batch, (result: ExportResult) => {
        if (result.code === ExportResultCode.SUCCESS) this.exported += batch.length;
        else this.drop(batch.length, 'export_failed');
        resolve();
      });
    }).then(() => {
      this.inFlight = undefined;
      if (this.queue.length) this.schedule(0);
    });
    return this.inFlight;
  }

  /** Exports everything queued (bounded by `timeoutMs`). */
  async forceFlush(timeoutMs = 5000): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    while ((this.queue.length || this.inFlight) && Date.now() < deadline) {
      let timer: NodeJS.Timeout | undefined;
      const late = new Promise<void>((r) => (timer = setTimeout(r, deadline - Date.now())));
      await Promise.race([this.inFlight ?? this.exportBatch(), late]);
      clearTimeout(timer);
    }
  }

  async shutdown(): Promise<void> {
    await this.forceFlush();
    this.stopped = true;
    clearTimeout(this.timer);
    await this.exporter.shutdown();
  }
}

/** The queue as an SDK span processor (the actuator's own spans). */
export class QueueSpanProcessor extends ExportQueue<ReadableSpan> implements SpanProcessor {
  constructor(exporter: SpanExporter, opts: QueueOptions<ReadableSpan>) {
    super(exporter, opts);
  }

  onStart(_span: Span, _ctx: Context): void {}

  onEnd(span: ReadableSpan): void {
    this.push(span);
  }
}
