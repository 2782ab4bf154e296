// Flat views of decoded OTLP requests: what rules, tests and status pages read. Unknown or malformed parts are
// skipped, never guessed.
export type AttrValue = string | number | boolean;

export interface OtlpKeyValue {
  key?: string;
  value?: { stringValue?: string; intValue?: string | number; doubleValue?: number; boolValue?: boolean };
}

export interface FlatSpan {
  name: string;
  traceId: string;
  spanId: string;
  parentSpanId: string;
  kind: number;
  startNs: bigint;
  endNs: bigint;
  attributes: Record<string, AttrValue>;
  resource: Record<string, AttrValue>;
  /** the instrumentation scope that made it (empty strings where the sender gave none) */
  scope?: { name: string; version: string; schemaUrl: string };
  statusCode: number;
  links: { traceId: string; spanId: string }[];
}

export interface FlatPoint {
  metric: string;
  unit: string;
  type: 'sum' | 'gauge' | 'histogram' | 'other';
  monotonic: boolean;
  timeNs: bigint;
  value: number;
  /** histograms: count, sum and bucket bounds/counts */
  count?: number;
  sum?: number;
  bounds?: number[];
  buckets?: number[];
  attributes: Record<string, AttrValue>;
  resource: Record<string, AttrValue>;
}

export function attrs(kvs: OtlpKeyValue[] | undefined): Record<string, AttrValue> {
  const out: Record<string, AttrValue> = {};
  for (const kv of kvs ?? []) {
    if (!kv?.key || !kv.value) continue;
    const v = kv.value;
    if (v.stringValue !== undefined) out[kv.key] = v.stringValue;
    else if (v.intValue !== undefined) out[kv.key] = Number(v.intValue);
    else if (v.doubleValue !== undefined) out[kv.key] = v.doubleValue;
    else if (v.boolValue !== undefined) out[kv.key] = v.boolValue;
  }
  return out;
}

const hex = (b: unknown) => (Buffer.isBuffer(b) ? b.toString('hex') : '');
const ns = (v: unknown) => { try { return BigInt((v as string | number | undefined) ?? 0); } catch { return 0n; } };

interface TraceRequest {
  resourceSpans?: { resource?: { attributes?: OtlpKeyValue[] }; scopeSpans?: { scope?: { name?: unknown; version?: unknown }; schemaUrl?: unknown; spans?: Record<string, unknown>[] }[] }[];
}

export function flattenSpans(req: TraceRequest): FlatSpan[] {
  const out: FlatSpan[] = [];
  for (const rs of req.resourceSpans ?? []) {
    const resource = attrs(rs.resource?.attributes);
    for (const ss of rs.scopeSpans ?? []) {
      const scope = { name: String(ss.scope?.name ?? ''), version: String(ss.scope?.version ?? ''), schemaUrl: String(ss.schemaUrl ?? '') };
      for (const s of ss.spans ?? []) {
        out.push({
          name: String(s.name ?? ''),
          traceId: hex(s.traceId), spanId: hex(s.spanId), parentSpanId: hex(s.parentSpanId),
          kind: Number(s.kind ?? 0),
          startNs: ns(s.startTimeUnixNano), endNs: ns(s.endTimeUnixNano),
          attributes: attrs(s.attributes as OtlpKeyValue[]),
          resource,
          scope,
          statusCode: Number((s.status as { code?: number } | undefined)?.code ?? 0),
          links: ((s.links as { traceId?: unknown; spanId?: unknown }[] | undefined) ?? []).map((l) => ({ traceId: hex(l.traceId), spanId: hex(l.spanId) })),
        });
      }
    }
  }
  return out;
}

interface MetricsRequest {
  resourceMetrics?: { resource?: { attributes?: OtlpKeyValue[] }; scopeMetrics?: { metrics?: Record<string, unknown>[] }[] }[];
}

interface NumberPoint { attributes?: OtlpKeyValue[]; timeUnixNano?: string; asDouble?: number; asInt?: string | number }
interface HistPoint { attributes?: OtlpKeyValue[]; timeUnixNano?: string; count?: string | number; sum?: number; explicitBounds?: number[]; bucketCounts?: (string | number)[] }

export function flattenMetrics(req: MetricsRequest): FlatPoint[] {
  const out: FlatPoint[] = [];
  for (const rm of req.resourceMetrics ?? []) {
    const resource = attrs(rm.resource?.attributes);
    for (const sm of rm.scopeMetrics ?? []) {
      for (const m of sm.metrics ?? []) {
        const base = { metric: String(m.name ?? ''), unit: String(m.unit ?? ''), resource };
        const sum = m.sum as { dataPoints?: NumberPoint[]; isMonotonic?: boolean } | undefined;
        const gauge = m.gauge as { dataPoints?: NumberPoint[] } | undefined;
        const hist = m.histogram as { dataPoints?: HistPoint[] } | undefined;
        for (const p of sum?.dataPoints ?? []) {
          out.push({ ...base, type: 'sum', monotonic: !!sum?.isMonotonic, timeNs: ns(p.timeUnixNano), value: Number(p.asDouble ?? p.asInt ?? 0), attributes: attrs(p.attributes) });
        }
        for (const p of gauge?.dataPoints ?? []) {
          out.push({ ...base, type: 'gauge', monotonic: false, timeNs: ns(p.timeUnixNano), value: Number(p.asDouble ?? p.asInt ?? 0), attributes: attrs(p.attributes) });
        }
        for (const p of hist?.dataPoints ?? []) {
          out.push({
            ...base, type: 'histogram', monotonic: true, timeNs: ns(p.timeUnixNano), value: Number(p.count ?? 0),
            count: Number(p.count ?? 0), sum: p.sum, bounds: p.explicitBounds ?? [], buckets: (p.bucketCounts ?? []).map(Number),
            attributes: attrs(p.attributes),
          });
        }
      }
    }
  }
  return out;
}
