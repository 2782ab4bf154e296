// Spans handed to the actuator in the same process, still as OTLP: serialized to the protobuf request a
// collector would forward and decoded by the actuator's own OTLP decoder — so sensing and control meet through
// the OpenTelemetry pipeline even without a network hop, and both paths run the same code.
import { ExportResult, ExportResultCode } from '@opentelemetry/core';
import type { ReadableSpan, SpanExporter } from '@opentelemetry/sdk-trace-base';
import { ProtobufTraceSerializer } from '@opentelemetry/otlp-transformer';

export class InProcessTraceExporter implements SpanExporter {
  constructor(private readonly ingest: (otlpRequest: Uint8Array) => void) {}

  export(spans: ReadableSpan[], done: (r: ExportResult) => void): void {
    try {
      const bytes = ProtobufTraceSerializer.serializeRequest(spans as never);
      if (bytes) this.ingest(bytes);
      done({ code: ExportResultCode.SUCCESS });
    } catch (e) {
      done({ code: ExportResultCode.FAILED, error: e as Error });
    }
  }

  async shutdown(): Promise<void> {}
}
