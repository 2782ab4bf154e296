// The receiver's own metric series (src/telemetry/series.ts) as the SDK's readers collect them: cumulative sums,
// explicit-bucket histograms with the SDK's bucket rule, a bound on series, and no empty instrument.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { resourceFromAttributes } from '@opentelemetry/resources';
import { DataPointType } from '@opentelemetry/sdk-metrics';
import { SeriesProducer } from '../../src/telemetry/series';

const scope = { name: 'vipguard.receiver', version: '0', schemaUrl: '' };

test('sums and histograms accumulate per key; an instrument without a series is left out of a collection', async () => {
  const p = new SeriesProducer(resourceFromAttributes({}), scope);
  const sum = p.sum({ name: 'a', description: '', unit: '1' }, true, 2);
  const h = p.histogram({ name: 'h', description: '', unit: 's' }, [0.1, 1], 10);
  p.sum({ name: 'never', description: '', unit: '1' }, true, 2);
  let built = 0;
  const attrs = (x: string) => () => { built++; return { k: x }; };
  sum.add('x', attrs('x'), 1);
  sum.add('x', attrs('x'), 2);
  sum.add('y', attrs('y'), 0);
  assert.equal(sum.add('z', attrs('z'), 5), false, 'past maxSeries a new series is refused');
  assert.equal(built, 2, 'attributes are built once per series');
  for (const v of [0.05, 0.1, 0.5, 1, 7]) h.record('x', attrs('x'), v);
  const { resourceMetrics } = await p.collect();
  const metrics = resourceMetrics.scopeMetrics[0].metrics;
  assert.deepEqual(metrics.map((m) => m.descriptor.name), ['a', 'h'], 'the instrument nothing was recorded on is not collected');
  const a = metrics[0];
  assert.equal(a.dataPointType, DataPointType.SUM);
  assert.deepEqual(a.dataPoints.map((d) => [d.attributes.k, d.value]), [['x', 3], ['y', 0]]);
  const hp = metrics[1].dataPoints[0].value as { buckets: { counts: number[] }; count: number; sum: number; min: number; max: number };
  assert.deepEqual(hp.buckets.counts, [2, 2, 1], 'a value on a boundary counts in the bucket it closes');
  assert.deepEqual([hp.count, hp.sum, hp.min, hp.max], [5, 8.65, 0.05, 7]);
  sum.add('x', attrs('x'), 1);
  const again = (await p.collect()).resourceMetrics.scopeMetrics[0].metrics[0];
  assert.equal(again.dataPoints.find((d) => d.attributes.k === 'x')!.value, 4, 'cumulative across collections');
});
