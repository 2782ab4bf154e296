// Spans handed to the actuator in the same process, still as OTLP: the protobuf request a collector would forward,
// decoded by the actuator's own OTLP decoder — so sensing and control meet through the OpenTelemetry pipeline even
// without a network hop, and both paths run the same code.
import { ExportResult, ExportResultCode } from '@opentelemetry/core';
import type { EncodedSpanExporter } from './export';
import type { EncodedSpans } from './otlp-encode';

export class InProcessTraceExporter implements EncodedSpanExporter {
  constructor(private readonly ingest: (otlpRequest: Uint8Array) => void) {}

  export(batch: EncodedSpans, done: (r: ExportResult) => void): void {
    try {
      this.ingest(batch.header.request(batch.spans));
      done({ code: ExportResultCode.SUCCESS });
    } catch (e) {
      done({ code: ExportResultCode.FAILED, error: e as Error });
    }
  }

  async shutdown(): Promise<void> {}
}
