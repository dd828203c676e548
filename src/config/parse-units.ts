// Durations and sizes as people write them in YAML (`250ms`, `24h`, `10mb`), or
// as plain numbers (milliseconds, bytes). Both return undefined for anything
// else so that the schema can say what it expected.

const MS_PER_UNIT: Readonly<Record<string, number>> = {
  ms: 1,
  s: 1_000,
  m: 60_000,
  h: 3_600_000,
  d: 86_400_000,
};

// 1024-based, as the brief and most proxies (nginx, express body-parser) read `10mb`.
const BYTES_PER_UNIT: Readonly<Record<string, number>> = {
  b: 1,
  kb: 1024,
  kib: 1024,
  mb: 1024 ** 2,
  mib: 1024 ** 2,
  gb: 1024 ** 3,
  gib: 1024 ** 3,
};

// Units stay lowercase for durations: `M` could mean months to some readers.
const DURATION_PATTERN = /^(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)$/;
const SIZE_PATTERN = /^(\d+(?:\.\d+)?)\s*(b|kb|kib|mb|mib|gb|gib)$/i;
const DIGITS_PATTERN = /^\d+$/;

export const DURATION_EXAMPLES = '250ms, 10s, 5m, 24h, 7d or a number of milliseconds';
export const SIZE_EXAMPLES = '512kb, 10mb, 1gb or a number of bytes';

/** Milliseconds, or undefined when `value` is not a duration. */
export function parseDurationMs(value: unknown): number | undefined {
  return parseQuantity(value, DURATION_PATTERN, MS_PER_UNIT);
}

/** Bytes, or undefined when `value` is not a size. */
export function parseSizeBytes(value: unknown): number | undefined {
  return parseQuantity(value, SIZE_PATTERN, BYTES_PER_UNIT);
}

function parseQuantity(value: unknown, pattern: RegExp, perUnit: Readonly<Record<string, number>>): number | undefined {
  if (typeof value === 'number') return Number.isSafeInteger(value) && value >= 0 ? value : undefined;
  if (typeof value !== 'string') return undefined;
  const text = value.trim();
  // A bare number arrives as a string when it came from `${VAR}` interpolation.
  if (DIGITS_PATTERN.test(text)) return parseQuantity(Number(text), pattern, perUnit);
  const match = pattern.exec(text);
  if (match === null) return undefined;
  const [, amount = '', unit = ''] = match;
  const result = Math.round(Number(amount) * (perUnit[unit.toLowerCase()] ?? Number.NaN));
  return Number.isSafeInteger(result) ? result : undefined;
}
