// OTLP protobuf, decoded with the official opentelemetry-proto definitions of one OTLP release (1.8.0), as the
// OpenTelemetry project publishes them (scripts/otlp-proto.sh puts them in build/otlp-proto/). Every OTLP request
// vipguard consumes — over gRPC or handed over in-process — is decoded here and only here.
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as protobuf from 'protobufjs';
import { REPO_ROOT } from '../common/paths';

const PROTO_ROOT = path.join(REPO_ROOT, 'build', 'otlp-proto');
const FILES = [
  'opentelemetry/proto/collector/trace/v1/trace_service.proto',
  'opentelemetry/proto/collector/metrics/v1/metrics_service.proto',
];

let root: protobuf.Root | undefined;

function load(): protobuf.Root {
  if (!root) {
    if (!fs.existsSync(path.join(PROTO_ROOT, FILES[0]))) {
      throw new Error(`OTLP definitions missing: no ${path.join(PROTO_ROOT, FILES[0])} — run scripts/otlp-proto.sh (scripts/provision.sh does)`);
    }
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

/**
 * What one request may unfold into. Decoding turns every submessage and every repeated element into a JS value:
 * a 4 MiB request of two-byte empty messages became 2 million objects — 5 s of blocked event loop and 0.5 GiB of
 * heap (found by test/unit/fuzz-otlp.test.ts) — on the loop that also drains the ring buffer and reconciles
 * IPVS. 2^18 elements is ~9000 spans of a dozen attributes: more than a collector batch (8192 spans). Nesting is
 * bounded by protobufjs itself (util.recursionLimit, 100 levels as protoc), pinned here so an upgrade cannot
 * quietly lift it.
 */
export const OTLP_LIMITS = { maxElements: 1 << 18, maxDepth: 100 } as const;
protobuf.util.recursionLimit = OTLP_LIMITS.maxDepth;
protobuf.Reader.recursionLimit = OTLP_LIMITS.maxDepth;

/** A request within the wire format but beyond OTLP_LIMITS: gRPC's RESOURCE_EXHAUSTED, not INVALID_ARGUMENT. */
export class OtlpLimitError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'OtlpLimitError';
  }
}

const FIXED = { fixed64: 8, sfixed64: 8, double: 8, fixed32: 4, sfixed32: 4, float: 4 } as Record<string, number>;
const WIRE_NAMES = ['varint', 'fixed64', 'length-delimited', 'start-group', 'end-group', 'fixed32', 'wire type 6', 'wire type 7'];

/** The wire type a field is written with (enums as varints); packable repeated scalars may also come packed (2). */
function wireTypeOf(field: protobuf.Field): number {
  if (field.map || field.resolvedType instanceof protobuf.Type) return 2;
  const basic = (protobuf.types.basic as Record<string, number | undefined>)[field.resolvedType instanceof protobuf.Enum ? 'int32' : field.type];
  return basic ?? 2;
}

/**
 * protobufjs's generated decoder switches on the field number alone and reads a known field as its declared type
 * whatever wire type the tag says: a message field tagged as a varint has that varint read as its length and the
 * bytes after it decoded as the message, where a wire-type-honest reader (this counter, protoc, Go) skips one
 * varint and reads those bytes as fields of the outer message. The two views then disagree on everything after —
 * a 512 KiB request counted as a few elements was decoded into 262,144 ScopeSpans. No conforming sender writes a
 * known field with another wire type (protobuf's encoding spec), so such a request is refused rather than guessed.
 */
function checkWireType(type: protobuf.Type, field: protobuf.Field, wireType: number): void {
  const expected = wireTypeOf(field);
  if (wireType === expected) return;
  const packable = field.repeated && (protobuf.types.packed as Record<string, number | undefined>)[field.resolvedType instanceof protobuf.Enum ? 'int32' : field.type] !== undefined;
  if (packable && wireType === 2) return;
  throw new Error(`field ${type.name}.${field.name} (number ${field.id}, ${field.repeated ? 'repeated ' : ''}${field.type}) has wire type `
    + `${wireType} (${WIRE_NAMES[wireType]}): expected ${expected} (${WIRE_NAMES[expected]})${packable ? ' or 2 (packed)' : ''}`);
}

/**
 * Counts the messages and repeated elements `bytes` would decode into, without decoding; throws past the limit,
 * and on a known field of the wrong wire type (see checkWireType), so the count is the decoder's.
 */
function countElements(type: protobuf.Type, r: protobuf.Reader, end: number, depth: number, budget: { left: number }): void {
  if (depth > OTLP_LIMITS.maxDepth) throw new OtlpLimitError(`nested more than ${OTLP_LIMITS.maxDepth} levels deep`);
  const spend = (n: number) => {
    budget.left -= n;
    if (budget.left < 0) throw new OtlpLimitError(`more than ${OTLP_LIMITS.maxElements} messages and repeated values in one request`);
  };
  while (r.pos < end) {
    const tag = r.uint32();
    const wireType = tag & 7;
    const field = type.fieldsById[tag >>> 3];
    if (field) checkWireType(type, field, wireType);
    if (wireType !== 2) {
      r.skipType(wireType, depth);
      if (field?.repeated) spend(1);
      continue;
    }
    const len = r.uint32();
    const stop = r.pos + len;
    if (stop > end) throw new Error(`length ${len} past the end of the message`);
    if (field?.resolvedType instanceof protobuf.Type) {
      spend(1);
      countElements(field.resolvedType, r, stop, depth + 1, budget);
    } else if (field?.repeated && !['string', 'bytes'].includes(field.type)) {
      // packed: one element per fixed-size value, or per varint (a byte without the continuation bit)
      let n = 0;
      if (FIXED[field.type]) n = Math.ceil(len / FIXED[field.type]);
      else for (let i = r.pos; i < stop; i++) if (r.buf[i] < 0x80) n++;
      spend(n);
    } else if (field?.repeated) spend(1);
    r.pos = stop;
  }
}

/** `limited`: refuse a request beyond OTLP_LIMITS before decoding it (anything from the network). */
export function decode<T>(typeName: string, bytes: Uint8Array, opts: { limited?: boolean } = {}): T {
  const t = messageType(typeName);
  if (opts.limited) countElements(t, protobuf.Reader.create(bytes), bytes.length, 0, { left: OTLP_LIMITS.maxElements });
  return t.toObject(t.decode(bytes), TO_OBJECT) as T;
}

export function encode(typeName: string, value: object): Buffer {
  const t = messageType(typeName);
  return Buffer.from(t.encode(t.fromObject(value)).finish());
}
