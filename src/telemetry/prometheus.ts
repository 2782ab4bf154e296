// One Prometheus name per metric, whichever way it travels. The collector's Prometheus exporters (remote write,
// scrape) name a metric by the OpenTelemetry-to-Prometheus compatibility rules: dots become underscores, the unit
// becomes a suffix (`s` → `_seconds`, `1` on a gauge → `_ratio`; `{…}` annotations add nothing), monotonic sums
// end in `_total`. OpenTelemetry JS's PrometheusExporter does the first and the last but not the unit, so
// vipguard's own endpoints (the receiver's scrape endpoint, the actuator's GET /metrics) serialize through here:
// each metric renamed by the same rules before the exporter's serializer writes it. The lab's metrics-chain test
// compares both ways by name (test/lab/chain.test.ts).
import type { IncomingMessage, ServerResponse } from 'node:http';
import { PrometheusExporter, PrometheusSerializer } from '@opentelemetry/exporter-prometheus';
import type { ResourceMetrics } from '@opentelemetry/sdk-metrics';
import { METRICS, type MetricName } from './metadata';

/** UCUM units the compatibility rules spell out (the ones vipguard could use). */
const UNIT_WORDS: Record<string, string> = {
  s: 'seconds', ms: 'milliseconds', us: 'microseconds', ns: 'nanoseconds', min: 'minutes', h: 'hours', d: 'days',
  By: 'bytes', KiBy: 'kibibytes', MiBy: 'mebibytes', '%': 'percent',
};

function unitSuffix(unit: string, instrument: string): string {
  const u = unit.replace(/\{[^}]*\}/g, '').trim();
  if (!u) return '';
  if (u === '1') return instrument === 'gauge' ? 'ratio' : '';
  return UNIT_WORDS[u] ?? u.replace(/[^A-Za-z0-9_]/g, '_');
}

/** The metric's Prometheus family name without `_total` (histograms add `_bucket`, `_sum`, `_count` to it). */
export function prometheusBaseName(name: MetricName): string {
  const spec = METRICS[name];
  const base = name.replace(/[^A-Za-z0-9_:]/g, '_');
  const suffix = unitSuffix(spec.unit, spec.instrument);
  return suffix && !base.endsWith(`_${suffix}`) ? `${base}_${suffix}` : base;
}

/** The name a query uses: counters end in `_total`. */
export function prometheusName(name: MetricName): string {
  return METRICS[name].instrument === 'counter' ? `${prometheusBaseName(name)}_total` : prometheusBaseName(name);
}

/** The collected metrics with vipguard's metrics renamed (their base name, dots and all: the serializer sanitizes). */
function renamed(rm: ResourceMetrics): ResourceMetrics {
  return {
    ...rm,
    scopeMetrics: rm.scopeMetrics.map((sm) => ({
      ...sm,
      metrics: sm.metrics.map((m) => (m.descriptor.name in METRICS
        ? { ...m, descriptor: { ...m.descriptor, name: prometheusBaseName(m.descriptor.name as MetricName) } }
        : m)),
    })),
  } as ResourceMetrics;
}

const serializer = new PrometheusSerializer('', false);

/** GET /metrics in the text format, from an exporter made with `preventServerStart`. */
export function serveMetrics(exporter: PrometheusExporter, _req: IncomingMessage, res: ServerResponse): void {
  exporter.collect().then(({ resourceMetrics }) => {
    res.writeHead(200, { 'content-type': 'text/plain; version=0.0.4; charset=utf-8' }).end(serializer.serialize(renamed(resourceMetrics)));
  }, (e: Error) => {
    res.writeHead(500, { 'content-type': 'text/plain; charset=utf-8' }).end(`# collecting metrics failed: ${e.message}\n`);
  });
}
