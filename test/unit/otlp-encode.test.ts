// The receiver's own OTLP span encoding (src/telemetry/otlp-encode.ts), read back by protobufjs with the official
// OTLP schema (the actuator's decoder): seeded random spans, attributes with every value type and nasty strings,
// and messages across the varint length boundaries. Also the sampler's threshold arithmetic.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { resourceFromAttributes } from '@opentelemetry/resources';
import { decode, TRACE_REQUEST } from '../../src/otlp/proto';
import { flattenSpans } from '../../src/otlp/model';
import { AttributeCache, AttrValue, encodeKeyValue, ProtoWriter, SpanEncoder, SpanRecord, TraceRequestHeader } from '../../src/telemetry/otlp-encode';
import { SpanSampler, thresholdHex } from '../../src/telemetry/sampling';
import { caseRng, FUZZ_SEED, nastyText, Rng } from '../fuzz';

const resource = resourceFromAttributes({ 'service.name': 'vipguard-receiver', 'process.pid': 4242, 'x.ok': true, 'x.ratio': 0.5 });
const scope = { name: 'vipguard.receiver', version: '9.9.9', schemaUrl: 'https://opentelemetry.io/schemas/1.26.0' };
const hex = (b: Buffer) => b.toString('hex');

function randomValue(r: Rng): AttrValue {
  switch (r.int(6)) {
    case 0: return nastyText(r, 40);
    case 1: return r.chance(0.5);
    case 2: return r.range(0, 70000);
    case 3: return -r.range(1, 2 ** 31);
    case 4: return r.pick([Number.MAX_SAFE_INTEGER, -Number.MAX_SAFE_INTEGER, 0, 2 ** 32, 2 ** 40 + 7]);
    default: return r.next() * 1e6 - 5e5 + 0.25;
  }
}

/** What protobufjs gives back for a value: strings as UTF-8 round-trips them (lone surrogates become U+FFFD). */
const expected = (v: AttrValue) => (typeof v === 'string' ? Buffer.from(v, 'utf8').toString('utf8') : v);

describe('OTLP span encoding', () => {
  it(`decodes, with the official schema, to exactly the spans encoded: 400 seeded batches (seed ${FUZZ_SEED})`, () => {
    const header = new TraceRequestHeader(resource, scope);
    const enc = new SpanEncoder();
    for (let c = 0; c < 400; c++) {
      const r = caseRng(c, 0x07e1);
      const cache = new AttributeCache(9, r.range(1, 20));
      const records: { rec: SpanRecord; attrs: Record<string, AttrValue> }[] = [];
      for (let n = r.range(1, 12); n > 0; n--) {
        const attrs: Record<string, AttrValue> = {};
        const encoded: Buffer[] = [];
        const w = new ProtoWriter(r.range(1, 64));
        for (let k = r.range(0, 14); k > 0; k--) {
          const key = `k${r.int(1000)}.${nastyText(r, 6)}`;
          if (key in attrs) continue;
          const v = randomValue(r);
          attrs[key] = v;
          if (r.chance(0.5)) encoded.push(cache.get(key, v));
          else encodeKeyValue(w, 9, key, v);
        }
        encoded.push(w.take());
        const start = BigInt(r.range(0, 2 ** 31)) * 1_000_000_000n + BigInt(r.int(1e9));
        const rec: SpanRecord = {
          traceId: Buffer.from(enc.randomId(16)), spanId: Buffer.from(enc.randomId(8)),
          parentSpanId: r.chance(0.5) ? Buffer.from(enc.randomId(8)) : undefined,
          traceState: r.chance(0.3) ? `ot=th:${r.int(16).toString(16)}` : undefined,
          name: r.pick(['vipguard.connect', 'vipguard.connection', nastyText(r, 30)]),
          startNs: start, endNs: start + BigInt(r.int(1e12)),
          attributes: encoded, error: r.chance(0.4) ? nastyText(r, 20) : undefined,
        };
        records.push({ rec, attrs });
      }
      const bytes = header.request(records.map((x) => enc.encode(x.rec)));
      const spans = flattenSpans(decode(TRACE_REQUEST, bytes));
      assert.equal(spans.length, records.length, `case ${c}`);
      spans.forEach((s, i) => {
        const { rec, attrs } = records[i];
        const where = `case ${c} span ${i}`;
        assert.equal(s.traceId, hex(rec.traceId), where);
        assert.equal(s.spanId, hex(rec.spanId), where);
        assert.equal(s.parentSpanId, rec.parentSpanId ? hex(rec.parentSpanId) : '', where);
        assert.deepEqual(s.links, rec.parentSpanId ? [{ traceId: hex(rec.traceId), spanId: hex(rec.parentSpanId) }] : [], where);
        assert.equal(s.name, expected(rec.name), where);
        assert.equal(s.kind, 3, `${where}: SPAN_KIND_CLIENT`);
        assert.equal(s.startNs, rec.startNs, where);
        assert.equal(s.endNs, rec.endNs, where);
        assert.equal(s.statusCode, rec.error !== undefined ? 2 : 0, where);
        assert.deepEqual(s.attributes, Object.fromEntries(Object.entries(attrs).map(([k, v]) => [expected(k as string), expected(v)])), where);
        assert.deepEqual(s.resource, { 'service.name': 'vipguard-receiver', 'process.pid': 4242, 'x.ok': true, 'x.ratio': 0.5 }, where);
        assert.deepEqual(s.scope, scope, where);
      });
    }
  });

  it('nests messages across the varint length boundaries (127/128, 16383/16384 bytes) and refuses what it cannot nest', () => {
    for (const len of [0, 1, 127, 128, 129, 16383, 16384, 16385, 100_000]) {
      const w = new ProtoWriter(8);
      const body = Buffer.alloc(len, 0x61);
      w.message(7, (m) => m.raw(body)).varint(300);
      const out = w.take();
      // tag 7/2, the length as a minimal varint, the body, then 300 as a varint (0xac 0x02)
      const lenBytes: number[] = [];
      for (let n = len; ; n = Math.floor(n / 128)) { if (n < 128) { lenBytes.push(n); break; } lenBytes.push((n % 128) | 0x80); }
      assert.deepEqual([...out.subarray(0, 1 + lenBytes.length)], [(7 << 3) | 2, ...lenBytes], `length ${len}`);
      assert.equal(out.length, 1 + lenBytes.length + len + 2, `length ${len}`);
      assert.deepEqual([...out.subarray(out.length - 2)], [0xac, 0x02]);
    }
    assert.throws(() => new ProtoWriter().message(1, (m) => m.raw(Buffer.alloc(0x200000))), /larger than this writer nests/);
  });

  it('builds one request of any size: 5000 spans of 1 KiB in one batch decode whole', () => {
    const header = new TraceRequestHeader(resource, scope);
    const enc = new SpanEncoder();
    const w = new ProtoWriter();
    encodeKeyValue(w, 9, 'pad', 'x'.repeat(1000));
    const pad = w.take();
    const spans = Array.from({ length: 5000 }, () => enc.encode({ traceId: enc.randomId(16), spanId: enc.randomId(8), name: 'n', startNs: 1n, endNs: 2n, attributes: [pad] }));
    const out = flattenSpans(decode(TRACE_REQUEST, header.request(spans)));
    assert.equal(out.length, 5000);
    assert.equal(out[4999].attributes.pad, 'x'.repeat(1000));
  });
});

describe('span sampling thresholds (OpenTelemetry ot=th)', () => {
  it('encodes the rejection threshold as the specification does', () => {
    assert.equal(new SpanSampler(1).traceState(true), undefined, 'every span exported: no trace state');
    assert.equal(new SpanSampler(0.5).traceState(true), 'ot=th:8');
    assert.equal(new SpanSampler(0.25).traceState(true), 'ot=th:c');
    assert.equal(new SpanSampler(0.75).traceState(true), 'ot=th:4');
    assert.equal(new SpanSampler(0.5).traceState(false), 'ot=th:0', 'exported regardless of the ratio');
    assert.equal(thresholdHex(1n), '00000000000001');
    for (const bad of [0, -0.1, 1.01, NaN]) assert.throws(() => new SpanSampler(bad), /expected a number > 0 and ≤ 1/);
  });

  it('keeps a trace exactly when its randomness (the trace id\'s low 56 bits) reaches the threshold', () => {
    const s = new SpanSampler(0.25);
    const id = (rv: bigint) => { const b = Buffer.alloc(16, 0xee); b.writeBigUInt64BE(rv, 8); return b; };
    assert.equal(s.sampled(id(0xc0000000000000n)), true, 'rv = T');
    assert.equal(s.sampled(id(0xbfffffffffffffn)), false, 'rv = T − 1');
    assert.equal(s.sampled(id(0xffffffffffffffn)), true);
    assert.equal(s.sampled(id(0n)), false);
    assert.equal(new SpanSampler(1).sampled(id(0n)), true);
    const r = caseRng(0, 0x5a);
    let kept = 0;
    for (let i = 0; i < 20000; i++) kept += s.sampled(Buffer.from(Array.from({ length: 16 }, () => r.int(256)))) ? 1 : 0;
    assert.ok(kept > 4600 && kept < 5400, `${kept} of 20000 kept at 0.25`);
  });
});
