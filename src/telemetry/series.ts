// Per-connection metrics without the SDK's per-call cost. The receiver records several measurements per connection;
// through SDK instruments each call hashes its attribute set (sorts the keys, serialises them) to find its series —
// profiled at 12k connections/s, that hashing alone was a fifth of the receiver's CPU. Here a series is found by a
// key the caller already has (service, VIP, backend, outcome joined once per event), its attributes are built once
// when the series first appears, and the values are plain numbers. The SDK's readers (OTLP export, the Prometheus
// endpoint) collect them through a MetricProducer, as cumulative sums and explicit-bucket histograms: exactly what
// the SDK instruments would have produced for these metrics.
import { Attributes, HrTime, ValueType } from '@opentelemetry/api';
import type { Resource } from '@opentelemetry/resources';
import {
  AggregationTemporality, CollectionResult, DataPoint, DataPointType, MetricData, MetricProducer,
} from '@opentelemetry/sdk-metrics';

interface Descriptor {
  name: string;
  description: string;
  unit: string;
}

const hrNow = (): HrTime => {
  const ms = Date.now();
  return [Math.floor(ms / 1000), (ms % 1000) * 1e6];
};

/** Series by key, each made once with its attributes and start time; at most maxSeries of them. */
abstract class Series<P> {
  protected readonly series = new Map<string, P & { attributes: Attributes; start: HrTime }>();

  constructor(readonly descriptor: Descriptor, private readonly maxSeries: number) {}

  get size(): number {
    return this.series.size;
  }

  /** The series `key`, made with `attributes()` and `init()` the first time; undefined past maxSeries (refused). */
  protected point(key: string, attributes: () => Attributes, init: () => P): (P & { attributes: Attributes; start: HrTime }) | undefined {
    let s = this.series.get(key);
    if (!s) {
      if (this.series.size >= this.maxSeries) return undefined;
      s = { ...init(), attributes: attributes(), start: hrNow() };
      this.series.set(key, s);
    }
    return s;
  }
}

/** A cumulative sum per series: monotonic (a counter) or not (an up-down counter). */
export class SeriesSum extends Series<{ value: number }> {
  constructor(descriptor: Descriptor, readonly monotonic: boolean, maxSeries: number) {
    super(descriptor, maxSeries);
  }

  /** Adds `n` to the series `key`; false when the series is refused (past maxSeries). */
  add(key: string, attributes: () => Attributes, n: number): boolean {
    const s = this.point(key, attributes, () => ({ value: 0 }));
    if (s) s.value += n;
    return !!s;
  }

  collect(end: HrTime): MetricData {
    const dataPoints: DataPoint<number>[] = [];
    for (const s of this.series.values()) dataPoints.push({ attributes: s.attributes, startTime: s.start, endTime: end, value: s.value });
    return {
      descriptor: { ...this.descriptor, valueType: ValueType.DOUBLE }, aggregationTemporality: AggregationTemporality.CUMULATIVE,
      dataPointType: DataPointType.SUM, isMonotonic: this.monotonic, dataPoints,
    };
  }
}

/** A cumulative explicit-bucket histogram per series (bucket i counts values in (b[i−1], b[i]], the last (b[n−1], ∞)). */
export class SeriesHistogram extends Series<{ counts: number[]; sum: number; count: number; min: number; max: number }> {
  constructor(descriptor: Descriptor, private readonly boundaries: readonly number[], maxSeries: number) {
    super(descriptor, maxSeries);
  }

  /** Records `v` in the series `key`; false when the series is refused (past maxSeries). */
  record(key: string, attributes: () => Attributes, v: number): boolean {
    const s = this.point(key, attributes, () => ({ counts: new Array<number>(this.boundaries.length + 1).fill(0), sum: 0, count: 0, min: Infinity, max: -Infinity }));
    if (!s) return false;
    const b = this.boundaries;
    let i = 0;
    while (i < b.length && v > b[i]) i++;
    s.counts[i]++;
    s.sum += v;
    s.count++;
    if (v < s.min) s.min = v;
    if (v > s.max) s.max = v;
    return true;
  }

  collect(end: HrTime): MetricData {
    return {
      descriptor: { ...this.descriptor, valueType: ValueType.DOUBLE }, aggregationTemporality: AggregationTemporality.CUMULATIVE,
      dataPointType: DataPointType.HISTOGRAM,
      dataPoints: [...this.series.values()].map((s) => ({
        attributes: s.attributes, startTime: s.start, endTime: end,
        value: { buckets: { boundaries: [...this.boundaries], counts: [...s.counts] }, sum: s.sum, count: s.count, min: s.min, max: s.max },
      })),
    };
  }
}

/** The instruments above as one MetricProducer for the SDK's readers. */
export class SeriesProducer implements MetricProducer {
  private readonly instruments: (SeriesSum | SeriesHistogram)[] = [];

  constructor(private readonly resource: Resource, private readonly scope: { name: string; version: string; schemaUrl: string }) {}

  sum(d: Descriptor, monotonic: boolean, maxSeries: number): SeriesSum {
    const i = new SeriesSum(d, monotonic, maxSeries);
    this.instruments.push(i);
    return i;
  }

  histogram(d: Descriptor, boundaries: readonly number[], maxSeries: number): SeriesHistogram {
    const i = new SeriesHistogram(d, boundaries, maxSeries);
    this.instruments.push(i);
    return i;
  }

  /** Instruments without a series yet are left out, as the SDK leaves out an instrument nothing was recorded on. */
  async collect(): Promise<CollectionResult> {
    const end = hrNow();
    const metrics = this.instruments.filter((i) => i.size > 0).map((i) => i.collect(end));
    return { resourceMetrics: { resource: this.resource, scopeMetrics: [{ scope: this.scope, metrics }] }, errors: [] };
  }
}
