import { expect, test } from 'vitest';
import { readmeTable, type StoreVerdict } from '../../../bench/readme-table.js';
import type { TargetVerdict } from '../../../bench/report.js';

function judged(store: string, name: string, value: number | undefined, limit: number, kind: TargetVerdict['kind'] = 'at most'): StoreVerdict {
  const passes = value !== undefined && (kind === 'at most' ? value <= limit : value >= limit);
  return { store, verdict: { name, value, limit, kind, verdict: value === undefined ? 'n/a' : passes ? 'PASS' : 'FAIL' } };
}

const verdicts: StoreVerdict[] = [
  judged('embedded', 'short added / floor added, concurrency 1', 2.189, 1.5),
  judged('embedded', 'short added / floor added, concurrency 8', 4.745, 1.5),
  judged('embedded', 'short req/s / floor req/s, concurrency 8', 0.465, 0.6, 'at least'),
  judged('embedded', 'stream: CPU per request, short / floor, concurrency 1', 1.561, 2),
  judged('embedded', 'stream: CPU per request, short / floor, concurrency 8', 1.455, 2),
  judged('embedded', 'long p50 / short p50, concurrency 1', 1.03, 1.05),
  // A row of another API and another figure at the same concurrency: never mistaken for the chat rows.
  judged('embedded', 'Responses: short added / floor added, p50, concurrency 1', 9.9, 1.5),
  judged('Redis + MongoDB', 'short added / floor added, concurrency 1', 2.722, 1.5),
  judged('Redis + MongoDB', 'short added / floor added, concurrency 8', 6.312, 1.5),
  judged('Redis + MongoDB', 'stream: CPU per request, short / floor, concurrency 1', 1.859, 2),
  judged('Redis + MongoDB', 'stream: CPU per request, short / floor, concurrency 8', 2.057, 2),
];

test("the README's table: one column per store, c=1 · the high concurrency, passes bold, targets from the verdicts", () => {
  const table = readmeTable(verdicts, [{ store: 'embedded' }, { store: 'Redis + MongoDB', label: 'FerretDB 1.24.2 on PostgreSQL 15.18' }], 8, 'Measured today.');
  const lines = table.split('\n');
  expect(lines[0]).toBe('Measured today.');
  expect(lines[2]).toBe('| chat completions, ratio to the floor | embedded, c=1 · c=8 | Redis + MongoDB (FerretDB 1.24.2 on PostgreSQL 15.18), c=1 · c=8 | target |');
  expect(lines[3]).toBe('| --- | ---: | ---: | ---: |');
  expect(lines).toContain('| added latency p50 | 2.19 · 4.75 | 2.72 · 6.31 | ≤ 1.5 |');
  // Measured on one store only: the other's cell says so.
  expect(lines).toContain('| req/s (c=8, flushing included) | 0.47 | – | ≥ 0.6 |');
  expect(lines).toContain('| streamed CPU per request | **1.56** · **1.46** | **1.86** · 2.06 | ≤ 2 |');
  expect(lines).toContain('| long (500 turns) ÷ short p50 (c=1) | **1.03** | – | ≤ 1.05 |');
  // Not measured anywhere: no figure and no target made up.
  expect(lines).toContain('| CPU per request | – · – | – · – | – |');
  expect(lines).toHaveLength(4 + 6);
});

test('a run of one store has one column, and the high concurrency is the run’s', () => {
  const table = readmeTable(verdicts.filter((v) => v.store === 'embedded').map((v) => ({ ...v, verdict: { ...v.verdict, name: v.verdict.name.replace('concurrency 8', 'concurrency 4') } })), [{ store: 'embedded' }], 4, 'x');
  expect(table).toContain('| chat completions, ratio to the floor | embedded, c=1 · c=4 | target |');
  expect(table).toContain('| added latency p50 | 2.19 · 4.75 | ≤ 1.5 |');
  expect(table).toContain('| req/s (c=4, flushing included) | 0.47 | ≥ 0.6 |');
});
