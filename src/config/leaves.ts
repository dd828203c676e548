// The config file's leaves: every value is parsed by hand so that each
// problem reads "expected <what>", and a number or boolean may arrive as a
// string from `${VAR}` interpolation. Each leaf also gives its JSON Schema.

import { z } from 'zod';
import { DURATION_EXAMPLES, SIZE_EXAMPLES, parseDurationMs, parseSizeBytes } from './parse-units.js';
import type { TenantMode } from '../domain.js';


type JsonSchema = Record<string, unknown>;

// The raw YAML still holds `${VAR}` when an editor checks it, so every typed value may be one.
const INTERPOLATION_JSON: JsonSchema = { type: 'string', pattern: '\\$\\{' };

function leaf<T>(expected: string, json: JsonSchema, parse: (value: unknown) => T | undefined) {
  const alternatives = Array.isArray(json.anyOf) ? (json.anyOf as JsonSchema[]) : [json];
  const acceptsInterpolation = alternatives.some((schema) => schema.type === 'string' && schema.pattern === undefined);
  return z
    .unknown()
    .transform((value, ctx): T => {
      const parsed = parse(value);
      if (parsed !== undefined) return parsed;
      ctx.issues.push({ code: 'custom', message: `expected ${expected}`, input: value });
      return z.NEVER;
    })
    .meta(acceptsInterpolation ? json : { anyOf: [...alternatives, INTERPOLATION_JSON] });
}

const DIGITS = /^\d+$/;

function parseInteger(value: unknown): number | undefined {
  const number = typeof value === 'string' && DIGITS.test(value.trim()) ? Number(value) : value;
  return typeof number === 'number' && Number.isSafeInteger(number) ? number : undefined;
}

const integerLeaf = (expected: string, min: number, max: number) =>
  leaf(
    expected,
    max < Number.MAX_SAFE_INTEGER ? { type: 'integer', minimum: min, maximum: max } : { type: 'integer', minimum: min },
    (value) => {
      const number = parseInteger(value);
      return number !== undefined && number >= min && number <= max ? number : undefined;
    },
  );

export const positiveInteger = integerLeaf('a positive integer', 1, Number.MAX_SAFE_INTEGER);
export const nonNegativeInteger = integerLeaf('a non-negative integer', 0, Number.MAX_SAFE_INTEGER);
export const port = integerLeaf('a port number from 0 to 65535', 0, 65_535);

// Node's timers fire at once above 2^31-1 ms, so a longer timeout would mean no wait at all.
export const MAX_TIMER_MS = 2 ** 31 - 1;
const DURATION_JSON = { anyOf: [{ type: 'integer', minimum: 0 }, { type: 'string', pattern: '^\\s*\\d+(\\.\\d+)?\\s*(ms|s|m|h|d)\\s*$' }] };

export const durationLeaf = ({ allowZero, maxMs }: { allowZero: boolean; maxMs: number }) =>
  leaf(
    `${allowZero ? 'a duration' : 'a positive duration'} up to ${describeMs(maxMs)} (${DURATION_EXAMPLES})`,
    DURATION_JSON,
    (value) => {
      const ms = parseDurationMs(value);
      return ms !== undefined && (allowZero || ms > 0) && ms <= maxMs ? ms : undefined;
    },
  );

export const timeout = durationLeaf({ allowZero: false, maxMs: MAX_TIMER_MS });
export const ttl = durationLeaf({ allowZero: false, maxMs: 365 * 86_400_000 });

export const size = leaf(
  `a positive size (${SIZE_EXAMPLES})`,
  { anyOf: [{ type: 'integer', minimum: 1 }, { type: 'string', pattern: '^\\s*\\d+(\\.\\d+)?\\s*([kKmMgG][iI]?)?[bB]\\s*$' }] },
  (value) => {
    const bytes = parseSizeBytes(value);
    return bytes !== undefined && bytes > 0 ? bytes : undefined;
  },
);

const PERCENT = /^\s*(\d+(?:\.\d+)?)\s*%\s*$/;

/** `2%` as 0.02; undefined unless it is a percentage below 100. */
function parseShare(value: unknown): number | undefined {
  const match = typeof value === 'string' ? PERCENT.exec(value) : null;
  const share = match === null ? undefined : Number(match[1]) / 100;
  return share !== undefined && share < 1 ? share : undefined;
}

/** A share of something: `2%`, `0.5%`; the value is the fraction (0.02). */
export const percent = leaf('a percentage such as 2% or 0.5%', { type: 'string', pattern: PERCENT.source }, parseShare);

/** A fraction strictly between 0 and 1 (0.6). */
export const fraction = leaf('a number between 0 and 1, such as 0.6', { type: 'number', exclusiveMinimum: 0, exclusiveMaximum: 1 }, (value) => {
  const number = typeof value === 'string' && value.trim() !== '' ? Number(value) : value;
  return typeof number === 'number' && number > 0 && number < 1 ? number : undefined;
});

/** Tokens (`200`) or a share of the budget (`5%`). */
export const tokensOrPercent = leaf(
  'a number of tokens (200) or a percentage of the budget (5%)',
  { anyOf: [{ type: 'integer', minimum: 0 }, { type: 'string', pattern: PERCENT.source }] },
  (value): { tokens: number } | { share: number } | undefined => {
    const tokens = parseInteger(value);
    if (tokens !== undefined && tokens >= 0) return { tokens };
    const share = parseShare(value);
    return share === undefined ? undefined : { share };
  },
);

export const anyString = leaf('a string', { type: 'string' }, (value) => (typeof value === 'string' ? value : undefined));
export const text = leaf('a non-empty string', { type: 'string', minLength: 1 }, (value) =>
  typeof value === 'string' && value.trim() !== '' ? value : undefined,
);

export const boolean = leaf('true or false', { type: 'boolean' }, (value) => {
  if (typeof value === 'boolean') return value;
  if (value === 'true') return true;
  if (value === 'false') return false;
  return undefined;
});

export function oneOf<const T extends readonly string[]>(values: T) {
  return leaf<T[number]>(`one of ${values.map((value) => JSON.stringify(value)).join(', ')}`, { enum: values }, (value) =>
    values.find((candidate) => candidate === value),
  );
}

// RFC 9110 token: what Node accepts as a header name.
export const HEADER_NAME = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;
const HEADER_NAME_JSON = { type: 'string', pattern: HEADER_NAME.source };

export const headerName = leaf('a header name (letters, digits and !#$%&\'*+.^_`|~-)', HEADER_NAME_JSON, (value) =>
  typeof value === 'string' && HEADER_NAME.test(value) ? value.toLowerCase() : undefined,
);

export const tenant = leaf(
  'authorization, none or header:<name> (e.g. header:x-tenant-id)',
  { anyOf: [{ enum: ['authorization', 'none'] }, { type: 'string', pattern: `^header:${HEADER_NAME.source.slice(1)}` }] },
  (value): TenantMode | undefined => {
    if (value === 'authorization' || value === 'none') return { kind: value };
    if (typeof value !== 'string' || !value.startsWith('header:')) return undefined;
    const header = value.slice('header:'.length);
    return HEADER_NAME.test(header) ? { kind: 'header', header: header.toLowerCase() } : undefined;
  },
);

export const httpUrl = leaf(
  'an http:// or https:// URL without query or fragment',
  { type: 'string', pattern: '^https?://' },
  (value) => {
    if (typeof value !== 'string' || !URL.canParse(value)) return undefined;
    const url = new URL(value);
    if ((url.protocol !== 'http:' && url.protocol !== 'https:') || url.search !== '' || url.hash !== '') return undefined;
    // `<base_url>/<rest>` is built by joining, so a trailing slash would double up.
    return url.href.replace(/\/+$/, '');
  },
);

function urlWithScheme(schemes: readonly string[]) {
  const pattern = new RegExp(`^(${schemes.map((scheme) => scheme.replace(/[+]/g, '\\+')).join('|')})://\\S+$`);
  return leaf(
    `"" or a ${schemes.map((scheme) => `${scheme}://`).join(' or ')} URL`,
    { type: 'string', pattern: `^$|${pattern.source}` },
    (value) => (typeof value === 'string' && (value === '' || pattern.test(value)) ? value : undefined),
  );
}

export const redisUrl = urlWithScheme(['redis', 'rediss', 'redis+cluster', 'rediss+cluster']);
export const storeTimeout = durationLeaf({ allowZero: false, maxMs: 600_000 });
export const flushDelay = durationLeaf({ allowZero: true, maxMs: 60_000 });
export const mongodbUrl = urlWithScheme(['mongodb', 'mongodb+srv']);

// MongoDB's own rules for database names.
const DATABASE_NAME = /^[^/\\. "$*<>:|?]{1,63}$/;
export const databaseName = leaf(
  'a MongoDB database name (1-63 characters, none of /\\. "$*<>:|?)',
  { type: 'string', pattern: DATABASE_NAME.source },
  (value) => (typeof value === 'string' && DATABASE_NAME.test(value) ? value : undefined),
);

const ROUTE_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;
export const routeName = leaf('a route name (1-64 letters, digits, ".", "_" or "-")', { type: 'string', pattern: ROUTE_NAME.source }, (value) =>
  typeof value === 'string' && ROUTE_NAME.test(value) ? value : undefined,
);

export const glob = leaf('a non-empty pattern (* matches any run of characters, ? one character)', { type: 'string', minLength: 1 }, (value) =>
  typeof value === 'string' && value !== '' ? value : undefined,
);

function describeMs(ms: number): string {
  const days = ms / 86_400_000;
  return days >= 1 ? `${Math.floor(days)}d` : `${ms}ms`;
}
