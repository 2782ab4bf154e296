// The receiver's spans, encoded straight to OTLP protobuf (opentelemetry/proto/trace/v1/trace.proto) from what the
// lifecycle knows — no SDK span objects, no attribute maps: profiled at 12k connections/s, building SDK spans and
// serialising them again cost more CPU than everything else the receiver does per event.
//
// A span is encoded once, when it ends, into its own bytes; a batch is those bytes behind the resource and scope,
// which are encoded once per process. Every exporter (the collector over gRPC, the actuator in-process) sends the
// same bytes. Attributes that repeat across spans (service, backend, outcome, addresses) are encoded once and
// reused: a key-value is a few bytes of protobuf whatever span carries it.
import * as crypto from 'node:crypto';
import type { Resource } from '@opentelemetry/resources';

/** A growable protobuf writer: varints, fixed64, length-delimited fields, nothing else. */
export class ProtoWriter {
  buf: Buffer;
  pos = 0;

  constructor(size = 1024) {
    this.buf = Buffer.allocUnsafe(size);
  }

  private room(n: number): this {
    if (this.pos + n <= this.buf.length) return this;
    const next = Buffer.allocUnsafe(Math.max(this.buf.length * 2, this.pos + n));
    this.buf.copy(next, 0, 0, this.pos);
    this.buf = next;
    return this;
  }

  varint(v: number): this {
    this.room(10);
    if (v < 0) {
      // int64 two's complement: ten bytes
      let big = BigInt.asUintN(64, BigInt(v));
      while (big > 0x7fn) {
        this.buf[this.pos++] = Number(big & 0x7fn) | 0x80;
        big >>= 7n;
      }
      this.buf[this.pos++] = Number(big);
      return this;
    }
    while (v > 0x7f) {
      this.buf[this.pos++] = (v % 0x80) | 0x80;
      v = Math.floor(v / 0x80);
    }
    this.buf[this.pos++] = v;
    return this;
  }

  tag(field: number, wire: 0 | 1 | 2 | 5): this {
    return this.varint((field << 3) | wire);
  }

  bytes(field: number, b: Uint8Array): this {
    this.tag(field, 2).varint(b.length);
    this.room(b.length);
    this.buf.set(b, this.pos);
    this.pos += b.length;
    return this;
  }

  string(field: number, s: string): this {
    const n = Buffer.byteLength(s);
    this.tag(field, 2).varint(n);
    this.room(n);
    this.pos += this.buf.write(s, this.pos);
    return this;
  }

  /** Raw bytes already encoded as fields. */
  raw(b: Uint8Array): this {
    this.room(b.length);
    this.buf.set(b, this.pos);
    this.pos += b.length;
    return this;
  }

  fixed64(field: number, v: bigint): this {
    this.tag(field, 1).room(8);
    this.pos = this.buf.writeBigUInt64LE(v, this.pos);
    return this;
  }

  double(field: number, v: number): this {
    this.tag(field, 1).room(8);
    this.pos = this.buf.writeDoubleLE(v, this.pos);
    return this;
  }

  fixed32(field: number, v: number): this {
    this.tag(field, 5).room(4);
    this.pos = this.buf.writeUInt32LE(v, this.pos);
    return this;
  }

  /** A length-delimited field whose body `body` writes: the body goes after a 3-byte gap, then moves up to its length. */
  message(field: number, body: (w: this) => void): this {
    this.tag(field, 2);
    this.room(3);
    const start = this.pos + 3;
    this.pos = start;
    body(this);
    const len = this.pos - start;
    const lenBytes = len < 0x80 ? 1 : len < 0x4000 ? 2 : len < 0x200000 ? 3 : 0;
    if (!lenBytes) throw new RangeError(`a ${len}-byte protobuf message is larger than this writer nests`);
    const at = start - 3;
    if (lenBytes < 3) this.buf.copyWithin(at + lenBytes, start, this.pos);
    this.pos = at;
    this.varint(len);
    this.pos += len;
    return this;
  }

  take(): Buffer {
    const out = Buffer.from(this.buf.subarray(0, this.pos));
    this.pos = 0;
    return out;
  }
}

export type AttrValue = string | number | boolean;

/** One KeyValue (common/v1) as its field bytes under `field`; integers as int_value, other numbers as double_value. */
export function encodeKeyValue(w: ProtoWriter, field: number, key: string, v: AttrValue): void {
  w.message(field, (m) => {
    m.string(1, key);
    m.message(2, (a) => {
      if (typeof v === 'string') a.string(1, v);
      else if (typeof v === 'boolean') a.tag(2, 0).varint(v ? 1 : 0);
      else if (Number.isInteger(v)) a.tag(3, 0).varint(v);
      else a.double(4, v);
    });
  });
}

/**
 * Key-values that repeat (a service's name, a backend's address, an outcome) encoded once. Bounded: the
 * receiver's label sets are bounded by its services and their backends; a client address per source IP.
 */
export class AttributeCache {
  private readonly w = new ProtoWriter(256);
  /** key -> value -> encoded field */
  private readonly cache = new Map<string, Map<AttrValue, Buffer>>();
  private size = 0;

  constructor(private readonly field: number, private readonly max = 10_000) {}

  get(key: string, v: AttrValue): Buffer {
    let byValue = this.cache.get(key);
    if (!byValue) this.cache.set(key, (byValue = new Map()));
    let b = byValue.get(v);
    if (!b) {
      if (this.size >= this.max) {
        for (const m of this.cache.values()) m.clear();
        this.size = 0;
      }
      encodeKeyValue(this.w, this.field, key, v);
      b = this.w.take();
      byValue.set(v, b);
      this.size++;
    }
    return b;
  }
}

/** Span.SpanKind: the receiver's spans are the client side of a connection. */
export const SPAN_KIND_CLIENT = 3;
const STATUS_ERROR = 2;
/** Span flags (trace.proto SpanFlags): W3C sampled, and whether the parent is remote is known (it is not). */
const FLAGS_SAMPLED_LOCAL_PARENT = 0x01 | 0x100;

export interface SpanRecord {
  traceId: Buffer;
  spanId: Buffer;
  /** the previous span of the same connection (its parent, and linked) */
  parentSpanId?: Buffer;
  /** W3C tracestate, e.g. the sampling threshold `ot=th:…` */
  traceState?: string;
  name: string;
  startNs: bigint;
  endNs: bigint;
  /** encoded KeyValue fields (field 9 of Span), e.g. from an AttributeCache(9) */
  attributes: Buffer[];
  /** writes the span's own KeyValue fields (field 9) after those */
  ownAttributes?: (w: ProtoWriter) => void;
  /** error status with this message, else unset */
  error?: string;
}

export class SpanEncoder {
  private readonly w = new ProtoWriter(2048);
  /** trace_id and span_id come from one pool of random bytes, refilled in 4 KiB reads */
  private pool = Buffer.allocUnsafe(0);
  private poolPos = 0;

  /** A random id: a view into the pool, which is replaced, never overwritten, so the view stays valid. */
  randomId(bytes: 8 | 16): Buffer {
    if (this.poolPos + bytes > this.pool.length) {
      this.pool = crypto.randomFillSync(Buffer.allocUnsafe(4096));
      this.poolPos = 0;
    }
    const id = this.pool.subarray(this.poolPos, this.poolPos + bytes);
    this.poolPos += bytes;
    return id;
  }

  /** One Span message's body (as it appears under ScopeSpans.spans, without its own tag and length). */
  encode(s: SpanRecord): Buffer {
    const w = this.w;
    w.bytes(1, s.traceId).bytes(2, s.spanId);
    if (s.traceState) w.string(3, s.traceState);
    if (s.parentSpanId) w.bytes(4, s.parentSpanId);
    w.string(5, s.name).tag(6, 0).varint(SPAN_KIND_CLIENT).fixed64(7, s.startNs).fixed64(8, s.endNs);
    for (const a of s.attributes) w.raw(a);
    s.ownAttributes?.(w);
    if (s.parentSpanId) {
      w.message(13, (l) => {
        l.bytes(1, s.traceId).bytes(2, s.parentSpanId!);
        if (s.traceState) l.string(3, s.traceState);
        l.fixed32(6, FLAGS_SAMPLED_LOCAL_PARENT);
      });
    }
    w.message(15, (st) => {
      if (s.error !== undefined) st.string(2, s.error).tag(3, 0).varint(STATUS_ERROR);
    });
    w.fixed32(16, FLAGS_SAMPLED_LOCAL_PARENT);
    return w.take();
  }
}

/**
 * What every request of one process starts with: ResourceSpans.resource (field 1) and ScopeSpans.scope (field 1)
 * and ScopeSpans.schema_url, encoded once.
 */
export class TraceRequestHeader {
  readonly resource: Buffer;
  readonly scope: Buffer;

  constructor(resource: Resource, scope: { name: string; version: string; schemaUrl: string }) {
    const w = new ProtoWriter(1024);
    w.message(1, (r) => {
      for (const [k, v] of Object.entries(resource.attributes)) {
        if (typeof v === 'string' || typeof v === 'number' || typeof v === 'boolean') encodeKeyValue(r, 1, k, v);
      }
    });
    this.resource = w.take();
    w.message(1, (s) => s.string(1, scope.name).string(2, scope.version));
    w.string(3, scope.schemaUrl);
    this.scope = w.take();
  }

  /** ExportTraceServiceRequest { resource_spans: [{ resource, scope_spans: [{ scope, spans, schema_url }] }] } */
  request(spans: readonly Uint8Array[]): Uint8Array {
    // Lengths computed up front: a batch may be larger than ProtoWriter.message() nests.
    let scopeSpans = this.scope.length;
    for (const s of spans) scopeSpans += 1 + varintLength(s.length) + s.length;
    const resourceSpans = this.resource.length + 1 + varintLength(scopeSpans) + scopeSpans;
    const w = new ProtoWriter(1 + varintLength(resourceSpans) + resourceSpans);
    w.tag(1, 2).varint(resourceSpans).raw(this.resource);
    w.tag(2, 2).varint(scopeSpans).raw(this.scope);
    for (const s of spans) w.bytes(2, s);
    return w.buf.subarray(0, w.pos);
  }
}

function varintLength(n: number): number {
  let len = 1;
  while (n >= 0x80) {
    n = Math.floor(n / 0x80);
    len++;
  }
  return len;
}

/** A batch of encoded spans on its way to an exporter: the request is built by whoever sends it. */
export interface EncodedSpans {
  header: TraceRequestHeader;
  spans: Uint8Array[];
}
