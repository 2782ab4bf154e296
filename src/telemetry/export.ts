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

export interface ExportConfig {
  /** host:port of the OTLP/gRPC endpoint (the collector sidecar, or the actuator directly) */
  endpoint: string;
  /** plaintext; only sensible on loopback */
  insecure: boolean;
  tls?: { ca?: string; cert?: string; key?: string };
  headers?: Record<string, string>;
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

function grpcOptions(cfg: ExportConfig) {
  const url = `${cfg.insecure ? 'http' : 'https'}://${cfg.endpoint}`;
  const credentials = cfg.insecure
    ? grpc.credentials.createInsecure()
    : grpc.credentials.createSsl(
        cfg.tls?.ca ? fs.readFileSync(cfg.tls.ca) : null,
        cfg.tls?.key ? fs.readFileSync(cfg.tls.key) : null,
        cfg.tls?.cert ? fs.readFileSync(cfg.tls.cert) : null,
      );
  const metadata = new grpc.Metadata();
  for (const [k, v] of Object.entries(cfg.headers ?? {})) metadata.set(k, v);
  return { url, credentials, metadata, timeoutMillis: cfg.timeoutMs };
}

export function traceExporter(cfg: ExportConfig): SpanExporter {
  return new OTLPTraceExporter(grpcOptions(cfg));
}

export function metricExporter(cfg: ExportConfig): OTLPMetricExporter {
  return new OTLPMetricExporter(grpcOptions(cfg));
}

export type DropReason = 'export_queue_full' | 'export_failed';

export interface QueueOptions {
  maxQueueSize: number;
  maxBatchSize: number;
  delayMs: number;
  urgent?: (span: ReadableSpan) => boolean;
  onDrop?: (count: number, reason: DropReason) => void;
}

export class QueueSpanProcessor implements SpanProcessor {
  private queue: ReadableSpan[] = [];
  private timer?: NodeJS.Timeout;
  private timerDue = Infinity;
  private inFlight?: Promise<void>;
  private stopped = false;
  exported = 0;
  dropped = 0;

  constructor(private readonly exporter: SpanExporter, private readonly opts: QueueOptions) {}

  onStart(_span: Span, _ctx: Context): void {}

  onEnd(span: ReadableSpan): void {
    if (this.stopped) return;
    if (this.queue.length >= this.opts.maxQueueSize) {
      this.drop(1, 'export_queue_full');
      return;
    }
    this.queue.push(span);
    this.schedule(this.opts.urgent?.(span) ? 0 : this.opts.delayMs);
  }

  private drop(n: number, reason: DropReason): void {
    this.dropped += n;
    this.opts.onDrop?.(n, reason);
  }

  private schedule(delayMs: number): void {
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
