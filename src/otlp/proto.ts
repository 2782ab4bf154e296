// OTLP protobuf, decoded with the official opentelemetry-proto definitions (shipped as .proto files by
// @opentelemetry/otlp-grpc-exporter-base 0.38, installed as the `otlp-protos` alias). Every OTLP request
// vipguard consumes — over gRPC or handed over in-process — is decoded here and only here.
import * as path from 'node:path';
import * as protobuf from 'protobufjs';

const PROTO_ROOT = path.join(path.dirname(require.resolve('otlp-protos/package.json')), 'build', 'protos');
const FILES = [
  'opentelemetry/proto/collector/trace/v1/trace_service.proto',
  'opentelemetry/proto/collector/metrics/v1/metrics_service.proto',
];

let root: protobuf.Root | undefined;

function load(): protobuf.Root {
  if (!root) {
    const r = new protobuf.Root();
    r.resolvePath = (_origin, target) => path.join(PROTO_ROOT, target);
    r.loadSync(FILES, { keepCase: false });
    r.resolveAll();
    root = r;
  }
  return root;
}

export const TRACE_REQUEST = 'opentelemetry.proto.collector.trace.v1.ExportTraceServiceRequest';
export const TRACE_RESPONSE = 'opentelemetry.proto.collector.trace.v1.ExportTraceServiceResponse';
export const METRICS_REQUEST = 'opentelemetry.proto.collector.metrics.v1.ExportMetricsServiceRequest';
export const METRICS_RESPONSE = 'opentelemetry.proto.collector.metrics.v1.ExportMetricsServiceResponse';

export function messageType(name: string): protobuf.Type {
  return load().lookupType(name);
}

// Plain objects: 64-bit integers as decimal strings (timestamps exceed 2^53), bytes as Buffers.
const TO_OBJECT: protobuf.IConversionOptions = { longs: String, bytes: Buffer, defaults: false, arrays: true, enums: Number };

export function decode<T>(typeName: string, bytes: Uint8Array): T {
  const t = messageType(typeName);
  return t.toObject(t.decode(bytes), TO_OBJECT) as T;
}

export function encode(typeName: string, value: object): Buffer {
  const t = messageType(typeName);
  return Buffer.from(t.encode(t.fromObject(value)).finish());
}
