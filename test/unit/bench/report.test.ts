import { describe, expect, test } from 'vitest';
import { ratioTable, targetVerdicts, verdict, type RatioLine } from '../../../bench/report.js';
import { TARGETS } from '../../../bench/side-by-side-figures.js';

const columns = ['concurrency 1', 'concurrency 8'];

describe('verdict', () => {
  test.each([
    [1.5, { limit: 1.5, kind: 'at most' }, 'PASS'],
    [1.51, { limit: 1.5, kind: 'at most' }, 'FAIL'],
    [0.6, { limit: 0.6, kind: 'at least' }, 'PASS'],
    [0.59, { limit: 0.6, kind: 'at least' }, 'FAIL'],
    [Number.NaN, { limit: 2, kind: 'at most' }, 'n/a'],
    [undefined, { limit: 2, kind: 'at most' }, 'n/a'],
  ] as const)('%s against %j: %s', (value, target, expected) => {
    expect(verdict(value, target)).toBe(expected);
  });
});

describe('a target judged at several columns', () => {
  const line: RatioLine = { name: '**short added / floor added**', values: [1.2, 1.7], format: 'ratio', target: TARGETS.addedOverFloor };

  test('gives a verdict per judged column, each naming its column', () => {
    expect(targetVerdicts(columns, [line])).toEqual([
      { name: 'short added / floor added, concurrency 1', value: 1.2, limit: 1.5, kind: 'at most', verdict: 'PASS' },
      { name: 'short added / floor added, concurrency 8', value: 1.7, limit: 1.5, kind: 'at most', verdict: 'FAIL' },
    ]);
  });

  test('prints a verdict in each judged column and names them in the target cell', () => {
    expect(ratioTable(columns, [line]).split('\n')[2]).toBe('| **short added / floor added** | 1.20 **PASS** | 1.70 **FAIL** | ≤ 1.5 (concurrency 1 and concurrency 8) |');
  });
});

describe('a target judged at one column', () => {
  const line: RatioLine = { name: '**short req/s / floor req/s**', values: [0.9, 0.55], format: 'ratio', target: TARGETS.throughputOverFloor };

  test('is judged there only', () => {
    expect(targetVerdicts(columns, [line])).toEqual([{ name: 'short req/s / floor req/s, concurrency 8', value: 0.55, limit: 0.6, kind: 'at least', verdict: 'FAIL' }]);
    expect(ratioTable(columns, [line]).split('\n')[2]).toBe('| **short req/s / floor req/s** | 0.90 | 0.55 **FAIL** | ≥ 0.6 (concurrency 8) |');
  });

  test('lines without a target give no verdict', () => {
    expect(targetVerdicts(columns, [{ name: 'floor added p50, ms', values: [0.3, 0.5], format: 'ms' }])).toEqual([]);
  });
});
