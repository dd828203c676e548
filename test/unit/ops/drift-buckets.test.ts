// The drift histogram's buckets reach −0.5 and +1, so a count half or twice the model's does not sit in the
// ±0.2 buckets with every smaller error beyond 20%; a ratio above the top bound is counted in +Inf only.
import { expect, test } from 'vitest';
import { Metrics } from '../../../src/ops/metrics.js';

/** A bucket's upper bound: prom-client puts `le` beside the metric's own labels, which its types do not declare. */
const le = (bucket: { labels: object }): string => String((bucket.labels as { le?: unknown }).le);

test.each([
  { ratio: -0.9, le: '-0.5' },
  { ratio: -0.4, le: '-0.2' },
  { ratio: 0, le: '0' },
  { ratio: 0.3, le: '0.5' },
  { ratio: 0.8, le: '1' },
  { ratio: 1.5, le: '+Inf' },
])('a drift of $ratio is first counted in the le="$le" bucket', async ({ ratio, le: bound }) => {
  const metrics = new Metrics();
  metrics.observeTokenDrift('r', 'm', ratio);
  const buckets = (await metrics.tokenCountDrift.get()).values.filter((v) => v.metricName === 'contextd_token_count_drift_ratio_bucket');
  expect(buckets.map(le)).toEqual(['-0.5', '-0.2', '-0.1', '-0.05', '-0.02', '-0.01', '-0.005', '0', '0.005', '0.01', '0.02', '0.05', '0.1', '0.2', '0.5', '1', '+Inf']);
  // Cumulative: 0 below the bucket that takes it, 1 from there on.
  const first = buckets.findIndex((v) => v.value === 1);
  expect(le(buckets[first]!)).toBe(bound);
  expect(buckets.map((v) => v.value)).toEqual(buckets.map((_, i) => (i < first ? 0 : 1)));
});
