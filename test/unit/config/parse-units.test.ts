import { describe, expect, test } from 'vitest';
import { parseDurationMs, parseSizeBytes } from '../../../src/config/parse-units.js';

describe('parseDurationMs', () => {
  test.each([
    ['250ms', 250],
    ['10s', 10_000],
    ['5m', 300_000],
    ['24h', 86_400_000],
    ['7d', 604_800_000],
    ['1.5s', 1500],
    [' 2 s ', 2000],
    ['0s', 0],
    [1234, 1234],
    ['1234', 1234],
    [0, 0],
  ])('%j is %d ms', (input, ms) => {
    expect(parseDurationMs(input)).toBe(ms);
  });

  test.each([['ten seconds'], ['10S'], ['10M'], ['-5s'], ['5w'], ['s'], [''], [-1], [1.5], [Number.NaN], [true], [null], [undefined], ['1e400s']])(
    '%j is not a duration',
    (input) => {
      expect(parseDurationMs(input)).toBeUndefined();
    },
  );
});

describe('parseSizeBytes', () => {
  test.each([
    ['512kb', 512 * 1024],
    ['10mb', 10 * 1024 ** 2],
    ['10MB', 10 * 1024 ** 2],
    ['1gb', 1024 ** 3],
    ['2MiB', 2 * 1024 ** 2],
    ['1.5kb', 1536],
    ['100b', 100],
    [4096, 4096],
    ['4096', 4096],
  ])('%j is %d bytes', (input, bytes) => {
    expect(parseSizeBytes(input)).toBe(bytes);
  });

  test.each([['10 megs'], ['10m'], ['mb'], ['-1kb'], [-1], [0.5], [{}], [undefined]])('%j is not a size', (input) => {
    expect(parseSizeBytes(input)).toBeUndefined();
  });
});
