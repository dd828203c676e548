// Most events of a chat-completion stream are one token of content:
//   {"id":"chatcmpl-1",…,"choices":[{"index":0,"delta":{"content":" fox"},"logprobs":null,"finish_reason":null}]}
// For those, JSON.parse of the whole chunk (~750 ns on a 200-byte chunk, node 20)
// costs more than everything else the side branch does. This reads the content
// string without it, and answers undefined (parse it whole) for anything else.
//
// It must be exact: a chunk it reads has, through JSON.parse and accumulate-reply's
// delta logic, no effect but appending that string to choice 0's content, and it
// reads nothing JSON.parse would reject. So it accepts only chunks matching
// CONTENT_CHUNK below, a regular expression written from JSON's grammar in which
// every member other than the content is one whose value the accumulator ignores:
// a scalar (string, number, null, true, false) under a key other than `choices` and
// `error` at the top, other than `delta`, `index` (0 or null) and `finish_reason`
// (null) in the choice, other than `content` and `refusal` (null) in the delta.
// Keys are matched only when written without escapes, so a key's text is its name.
// Objects and arrays anywhere else (usage, tool_calls, logprobs, Azure's filter
// results, a second choice) make the chunk take the JSON.parse path.
//
// Running that expression costs ~250 ns, a third of JSON.parse, so a stream's chunks
// are first compared with the last one it accepted: the text before the content
// (`prefix`, the same for every content chunk of a stream) as a string, the content
// literal checked by json-string.ts, and the text after it either the last one's again
// or matched by AFTER_CONTENT alone (it differs per chunk where OpenAI adds
// `"obfuscation"`); ~100 ns in all. In any text that starts with a prefix CONTENT_CHUNK
// matched, the content value starts right after it, so this way accepts only chunks
// CONTENT_CHUNK accepts (and may leave it a few, e.g. one with more spaces before the value).
//
// Pure: no clock, no I/O.

import { decodeJsonString, jsonStringEnd } from './json-string.js';

// JSON's grammar (RFC 8259) as regular-expression source.
const WS = '[\\t\\n\\r ]*';
const STRING = String.raw`"[^"\\\x00-\x1f]*(?:\\(?:["\\/bfnrt]|u[0-9A-Fa-f]{4})[^"\\\x00-\x1f]*)*"`;
const NUMBER = String.raw`-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?(?:[eE][+-]?[0-9]+)?`;
const SCALAR = `(?:${STRING}|${NUMBER}|null|true|false)`;
const COMMA = `${WS},${WS}`;
const member = (key: string, value: string): string => `${key}${WS}:${WS}${value}`;
/** A key other than `names`, written without escapes. */
const keyOtherThan = (...names: string[]): string => String.raw`"(?!(?:${names.join('|')})")[^"\\\x00-\x1f]*"`;

// The members each object of a content chunk may have besides the one leading to the content.
const IGNORED_TOP = member(keyOtherThan('choices', 'error'), SCALAR); // a scalar `usage` is ignored too: only an object counts
const IGNORED_CHOICE = `(?:${member('"index"', '(?:0|null)')}|${member('"finish_reason"', 'null')}|${member(keyOtherThan('index', 'finish_reason', 'delta'), SCALAR)})`;
const IGNORED_DELTA = `(?:${member('"refusal"', 'null')}|${member(keyOtherThan('content', 'refusal'), SCALAR)})`;

const BEFORE_CONTENT =
  `^${WS}\\{${WS}(?:${IGNORED_TOP}${COMMA})*${member('"choices"', `\\[${WS}\\{${WS}`)}` +
  `(?:${IGNORED_CHOICE}${COMMA})*${member('"delta"', `\\{${WS}`)}` +
  `(?:${IGNORED_DELTA}${COMMA})*${member('"content"', '')}`;
const AFTER_CONTENT =
  `(?:${COMMA}${IGNORED_DELTA})*${WS}\\}(?:${COMMA}${IGNORED_CHOICE})*${WS}\\}${WS}\\]` +
  `(?:${COMMA}${IGNORED_TOP})*${WS}\\}${WS}$`;

/** Group 1: the text before the content literal; group 2: the literal. */
const CONTENT_CHUNK = new RegExp(`(${BEFORE_CONTENT})(${STRING})${AFTER_CONTENT}`);
/** Sticky: run from just after a content literal. */
const AFTER_CONTENT_STICKY = new RegExp(AFTER_CONTENT, 'y');

/** Content-bearing chunks CONTENT_CHUNK may turn down before a stream stops trying it (bench/stream-tee.ts). */
const MAX_MISSES = 4;

/** The content a chunk's data appends to choice 0 when that is all it does; undefined: parse the chunk whole. */
export type ContentDeltaReader = (data: string) => string | undefined;

/** One per stream: it remembers the stream's last content chunk. */
export function createContentDeltaReader(): ContentDeltaReader {
  let last: { prefix: string; suffix: string } | undefined;
  let misses = 0;

  return (data) => {
    if (last !== undefined && data.slice(0, last.prefix.length) === last.prefix) {
      // Its content value, if it is a content chunk at all, starts here (see above). Turning
      // it down below without trying CONTENT_CHUNK only ever costs a JSON.parse.
      const start = last.prefix.length;
      const end = jsonStringEnd(data, start);
      if (end === -1) return undefined;
      if (!(data.length - end === last.suffix.length && data.endsWith(last.suffix))) {
        if (!followsContent(data, end)) return undefined;
        last.suffix = data.slice(end);
      }
      return decodeJsonString(data, start, end);
    }
    // A chunk without the word fails CONTENT_CHUNK, but only after ~300-500 ns of backtracking
    // (tool-call, finish and usage chunks); this says so in ~60.
    if (!data.includes('content')) return undefined;
    // A stream whose chunks have another shape (Azure's content_filter_results in
    // every choice) would pay the failed match on every chunk: after a few, stop trying.
    if (misses >= MAX_MISSES) return undefined;
    const match = CONTENT_CHUNK.exec(data);
    if (match === null) {
      misses++;
      return undefined;
    }
    const prefix = match[1]!;
    const end = prefix.length + match[2]!.length;
    last = { prefix, suffix: data.slice(end) };
    return decodeJsonString(data, prefix.length, end);
  };
}

function followsContent(data: string, end: number): boolean {
  AFTER_CONTENT_STICKY.lastIndex = end;
  return AFTER_CONTENT_STICKY.test(data);
}
