import { InvalidRequestError } from '../errors.js';

// JSON.parse is iterative in V8 (a million levels parse), but JSON.stringify
// and every walk of the parsed value recurse once per level: on Node 20 a bare
// JSON.stringify overflows the stack at ~4,100 levels, the digest's canonical
// form at ~2,300, and less the deeper the caller's own stack already is. So a
// body nested deeper than MAX_JSON_DEPTH is refused before it is parsed,
// wherever the nesting is (messages, metadata, tools, an unknown field).
//
// OpenAI publishes no depth limit for request bodies; 128 is the default of
// serde_json (Rust's JSON parser, in front of some OpenAI-compatible servers).
// It leaves room for the deepest shape a real request has: a JSON Schema in
// `tools` or `response_format` costs two levels per nested object
// (`properties` → property), so even the 10 levels of nesting Structured
// Outputs allow stay under 30.
//
// Cost (bench/json-depth.ts, Node 20, best of 7 rounds on a shared 2-core
// machine): string contents are skipped with Buffer#indexOf, so the scan walks
// only the bytes between strings. A chat history of 100 KB takes ~25 µs, of
// 1 MB ~0.27 ms: 0.2-0.3x the JSON.parse that follows it (~90 µs, ~1.4 ms). A
// JSON-dense body (small objects and numbers, no long strings) is the worst
// case: ~0.2 ms per 100 KB, ~2.2 ms per MB, 0.35-0.4x its JSON.parse.

/** How deep objects and arrays may nest in a request body; the body itself is level 1. */
export const MAX_JSON_DEPTH = 128;

/** Levels the error's `param` names (`messages[2].content`, `metadata.a.a`): enough to find the place. */
const PARAM_LEVELS = 3;

const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const COMMA = 0x2c;
const COLON = 0x3a;
const OPEN_BRACE = 0x7b;
const CLOSE_BRACE = 0x7d;
const OPEN_BRACKET = 0x5b;
const CLOSE_BRACKET = 0x5d;

/** Bytes that neither open a string nor change depth or the param path: digits, letters, spaces. */
const IS_PLAIN = new Uint8Array(256).fill(1);
for (const byte of [QUOTE, COMMA, COLON, OPEN_BRACE, CLOSE_BRACE, OPEN_BRACKET, CLOSE_BRACKET]) IS_PLAIN[byte] = 0;

/**
 * Refuses a JSON body whose objects and arrays nest deeper than `maxDepth`,
 * without parsing it and without recursion. Malformed JSON is left to
 * JSON.parse, except that it too is refused here if its brackets nest too deep.
 */
export function checkJsonDepth(body: Buffer, maxDepth = MAX_JSON_DEPTH): void {
  // The path to the current point, kept for the first PARAM_LEVELS levels only:
  // per level, whether it is an array, its element index, its current key's bytes.
  const isArray: boolean[] = [];
  const index: number[] = [];
  const keyStart: number[] = [];
  const keyEnd: number[] = [];
  let stringStart = -1;
  let stringEnd = -1;
  let depth = 0;
  for (let i = 0; i < body.length; i++) {
    const byte = body[i]!;
    if (IS_PLAIN[byte] === 1) continue;
    if (byte === QUOTE) {
      stringStart = i;
      i = stringEnd = closingQuote(body, i + 1);
    } else if (byte === OPEN_BRACE || byte === OPEN_BRACKET) {
      if (++depth > maxDepth) {
        throw new InvalidRequestError(
          `The request body nests objects and arrays more than ${maxDepth} levels deep, the most contextd accepts.`,
          paramOf(body, Math.min(depth - 1, PARAM_LEVELS), isArray, index, keyStart, keyEnd),
          'nesting_above_max_depth',
        );
      }
      if (depth <= PARAM_LEVELS) {
        isArray[depth] = byte === OPEN_BRACKET;
        index[depth] = 0;
        keyStart[depth] = -1;
      }
    } else if (byte === CLOSE_BRACE || byte === CLOSE_BRACKET) {
      if (--depth < 0) return; // not JSON: JSON.parse says so
    } else if (depth <= PARAM_LEVELS) {
      if (byte === COMMA) index[depth]!++;
      else if (byte === COLON) {
        keyStart[depth] = stringStart;
        keyEnd[depth] = stringEnd;
      }
    }
  }
}

/** Strings up to this long (keys, enum values, ids) are scanned byte by byte; longer ones (texts) by Buffer#indexOf. */
const INLINE_STRING_BYTES = 32;

/** Index of the quote that closes a string whose contents start at `start` (body.length if none does). */
function closingQuote(body: Buffer, start: number): number {
  const inlineEnd = Math.min(body.length, start + INLINE_STRING_BYTES);
  let i = start;
  while (i < inlineEnd) {
    const byte = body[i];
    if (byte === QUOTE) return i;
    i += byte === BACKSLASH ? 2 : 1;
  }
  for (let at = body.indexOf(QUOTE, i); at >= 0; at = body.indexOf(QUOTE, at + 1)) {
    // Escaped when an odd number of backslashes precede it; each run is counted once.
    let backslashes = 0;
    while (at - 1 - backslashes >= start && body[at - 1 - backslashes] === BACKSLASH) backslashes++;
    if (backslashes % 2 === 0) return at;
  }
  return body.length;
}

function paramOf(body: Buffer, levels: number, isArray: boolean[], index: number[], keyStart: number[], keyEnd: number[]): string | null {
  let param = '';
  for (let level = 1; level <= levels; level++) {
    if (isArray[level] === true) param += `[${index[level]}]`;
    else if (keyStart[level]! >= 0) param += (param === '' ? '' : '.') + keyText(body, keyStart[level]!, keyEnd[level]!);
    else break;
  }
  return param === '' ? null : param;
}

/** A key as its client wrote it: the JSON string from its opening quote to its closing one. */
function keyText(body: Buffer, start: number, end: number): string {
  const json = body.toString('utf8', start, end + 1);
  try {
    return JSON.parse(json) as string;
  } catch {
    return json.slice(1, -1);
  }
}
