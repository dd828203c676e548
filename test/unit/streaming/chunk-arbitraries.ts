// Random chat-completion streams for the differential tests: the events an
// upstream sends (content chunks in the shapes and JSON spellings seen in the
// wild, and everything else a stream may hold), and random SSE framing for them.
import fc from 'fast-check';
import type { StreamEvent } from './reference-reply.js';

type Json = Record<string, unknown>;

/** Text pieces that are hard on a JSON reader: quotes, backslashes, escapes, control and non-BMP characters, JSON-looking text. */
const CONTENT_PIECES = [
  'a', ' fox', '"', '\\', '/', '\n', '\r\n', '\t', '\u0000', '\u001f', '\u007f', 'é', '日本', '🌍', '\ud83c', '\udf0d', '\u2028',
  '\\u00e9', '\\"', '}]}', '","', '{"content":"x"}', '"usage"', '"error":1', 'data: ', '[DONE]',
];
export const arbContent = fc.array(fc.constantFrom(...CONTENT_PIECES), { maxLength: 5 }).map((pieces) => pieces.join(''));

const head = { id: 'chatcmpl-AbC', object: 'chat.completion.chunk', created: 1741569952, model: 'gpt-4o-2024-08-06' };

export function chunkOf(choice: Json, extra: Json = {}): Json {
  return { ...head, system_fingerprint: 'fp_f9f4fb6dbf', choices: [choice], ...extra };
}
export const choiceOf = (delta: Json, finishReason: string | null = null, index: number | null = 0): Json => ({
  index,
  delta,
  logprobs: null,
  finish_reason: finishReason,
});

const arbContentShape = fc.record({
  role: fc.boolean(),
  refusalNull: fc.boolean(),
  contentFirst: fc.boolean(),
  usageNull: fc.boolean(),
  fingerprint: fc.constantFrom<string | null>('fp_x', null),
  indexNull: fc.boolean(),
});

function contentChunkOf(shape: typeof arbContentShape extends fc.Arbitrary<infer S> ? S : never, content: string, obfuscation?: string): Json {
  const delta: Json = shape.contentFirst ? { content } : {};
  if (shape.role) delta.role = 'assistant';
  if (shape.refusalNull) delta.refusal = null;
  if (!shape.contentFirst) delta.content = content;
  return {
    ...head,
    system_fingerprint: shape.fingerprint,
    choices: [choiceOf(delta, null, shape.indexNull ? null : 0)],
    ...(shape.usageNull ? { usage: null } : {}),
    ...(obfuscation === undefined ? {} : { obfuscation }),
  };
}

/** A content chunk the way some server would write it: key orders and optional members vary. */
export const arbContentChunk: fc.Arbitrary<Json> = fc
  .tuple(arbContentShape, arbContent, fc.option(fc.string({ maxLength: 6 }), { nil: undefined }))
  .map(([shape, content, obfuscation]) => contentChunkOf(shape, content, obfuscation));

/** Content chunks of one shape and spelling, as a server sends them one after another; with OpenAI's `obfuscation` or not. */
const arbContentRun: fc.Arbitrary<StreamEvent[]> = fc
  .tuple(arbContentShape, arbSpelling(), fc.array(arbContent, { minLength: 2, maxLength: 6 }), fc.boolean())
  .map(([shape, spelling, contents, obfuscated]) =>
    contents.map((content, i) => ({ data: spell(contentChunkOf(shape, content, obfuscated ? 'x'.repeat(i % 3) : undefined), spelling) })),
  );

/** Every other kind of chunk: what must keep taking the JSON.parse path, and near misses of a content chunk. */
export const arbOtherChunk: fc.Arbitrary<Json> = fc.oneof(
  fc.constantFrom('stop', 'length', 'tool_calls', '').map((reason) => chunkOf(choiceOf({}, reason))),
  arbContent.map((content) => chunkOf(choiceOf({ content }, 'stop'))),
  fc.record({ prompt: fc.nat(99), completion: fc.nat(99), reasoning: fc.nat(9) }).map((u) => ({
    ...head,
    choices: [],
    usage: { prompt_tokens: u.prompt, completion_tokens: u.completion, total_tokens: u.prompt + u.completion, completion_tokens_details: { reasoning_tokens: u.reasoning } },
  })),
  fc.tuple(arbContent, fc.nat(9)).map(([content, tokens]) => chunkOf(choiceOf({ content }), { usage: { completion_tokens: tokens } })),
  fc.record({ index: fc.nat(2), id: fc.option(fc.constantFrom('call_a', 'call_b'), { nil: undefined }), args: arbContent }).map((t) =>
    chunkOf(choiceOf({ tool_calls: [{ index: t.index, ...(t.id === undefined ? {} : { id: t.id, type: 'function' }), function: { name: t.id ?? '', arguments: t.args } }] })),
  ),
  arbContent.map((content) => chunkOf(choiceOf({ content }, null, 1))), // n > 1
  arbContent.map((content) => chunkOf(choiceOf({ refusal: content }))),
  arbContent.map((content) => chunkOf(choiceOf({ content: null, function_call: { name: 'f', arguments: content } }))),
  arbContent.map((content) => chunkOf(choiceOf({ audio: { id: 'audio_1', transcript: content } }))),
  arbContent.map((content) => chunkOf({ ...choiceOf({ content }), content_filter_results: { hate: { filtered: false } } })), // Azure
  arbContent.map((content) => chunkOf({ ...choiceOf({ content }), logprobs: { content: [{ token: content, logprob: -1 }] } })),
  arbContent.map((content) => ({ ...head, choices: [choiceOf({ content }), choiceOf({ content }, null, 1)] })),
  arbContent.map((content) => chunkOf(choiceOf({ content }), { error: { message: content } })),
  arbContent.map((content) => chunkOf(choiceOf({ content }), { error: null })),
  fc.tuple(arbContent, fc.constantFrom<unknown>('boom', 1, true, [], false)).map(([content, error]) => chunkOf(choiceOf({ content }), { error })),
  fc.tuple(arbContent, fc.constantFrom<unknown>(null, 1, 'x', [])).map(([content, usage]) => chunkOf(choiceOf({ content }), { usage })),
  arbContent.map((content) => chunkOf(choiceOf({ content, refusal: 'no' }))),
  arbContent.map((content) => chunkOf(choiceOf({ content, tool_calls: [{ index: 0, id: 'call_a', function: { name: 'f', arguments: '{}' } }] }))),
  arbContent.map((content) => chunkOf(choiceOf({ content, tool_calls: null, function_call: null, audio: null }))),
  fc.constantFrom<Json>(chunkOf(choiceOf({ content: 5 })), chunkOf(choiceOf({ content: null })), chunkOf(choiceOf({ role: 'assistant' })), chunkOf(choiceOf({})), { ...head, choices: [] }),
);

/**
 * Chunks JSON.stringify cannot write: a key twice (JSON.parse keeps the last), a key
 * spelled with escapes, members on either side of the content.
 */
export const arbRawChunk: fc.Arbitrary<string> = fc.tuple(arbContent, arbContent, fc.nat()).map(([a, b, pick]) => {
  const [x, y] = [JSON.stringify(a), JSON.stringify(b)];
  const top = '"id":"c","object":"chat.completion.chunk","created":1,"model":"m"';
  const choice = (delta: string, rest = '"logprobs":null,"finish_reason":null'): string => `{"index":0,"delta":{${delta}},${rest}}`;
  const raws = [
    `{${top},"choices":[${choice(`"content":${x}`)}],"choices":[${choice(`"content":${y}`)}]}`,
    `{${top},"choices":[${choice(`"content":${x}`)}],"choices":[]}`,
    `{${top},"choices":[],"choices":[${choice(`"content":${x}`)}]}`,
    `{${top},"choices":[${choice(`"content":${x},"content":${y}`)}]}`,
    `{${top},"choices":[${choice(`"content":${x}`)}],"choices":null}`,
    `{${top},"choices":[{"index":0,"delta":{"content":${x}},"delta":{"content":${y}},"finish_reason":null}]}`,
    `{${top},"choices":[{"index":0,"delta":{"content":${x}},"delta":null}]}`,
    `{${top},"choices":[{"index":0,"index":1,"delta":{"content":${x}}}]}`,
    `{${top},"choices":[{"index":1,"index":0,"delta":{"content":${x}}}]}`,
    `{${top},"choices":[{"index":0,"finish_reason":null,"finish_reason":"stop","delta":{"content":${x}}}]}`,
    `{${top},"choices":[${choice(`"\u0063ontent":${x}`)}]}`,
    `{${top},"choices":[${choice(`"content":${x},"r\u0065fusal":${y}`)}]}`,
    `{${top},"\u0065rror":1,"choices":[${choice(`"content":${x}`)}]}`,
    `{${top},"choices":[${choice(`"content":${x}`)}],"usage":{"completion_tokens":3}}`,
    `{${top},"choices":[${choice(`"content":${x}`)}],"usage":null,"usage":{"completion_tokens":3}}`,
    `{${top},"choices":[${choice(`"content":${x}`)}]}  `,
    `{${top},"choices":[${choice(`"content":${x}`)}]},`,
    `{${top},"choices":[${choice(`"content":${x}`)}]}{}`,
    ` \t{${top},"choices":[${choice(`"content":${x}`, '"finish_reason":null')}]}`,
  ];
  return raws[pick % raws.length]!;
});

/** How a server spells a JSON value: compact, pretty-printed (several data lines), with Python's separators, ASCII-only, or with escaped slashes. */
export function arbSpelling(): fc.Arbitrary<string> {
  return fc.constantFrom('compact', 'pretty', 'python', 'ascii', 'slashes');
}

export function spell(value: unknown, spelling: string): string {
  switch (spelling) {
    case 'pretty':
      return JSON.stringify(value, null, 2);
    case 'python':
      return pythonDumps(value);
    case 'ascii':
      return JSON.stringify(value).replace(/[\u0080-\uffff]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
    case 'slashes':
      return JSON.stringify(value).replaceAll('/', '\\/'); // '/' occurs in JSON text only inside strings
    default:
      return JSON.stringify(value);
  }
}

function pythonDumps(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(pythonDumps).join(', ')}]`;
  if (typeof value === 'object' && value !== null) {
    return `{${Object.entries(value).map(([k, v]) => `${JSON.stringify(k)}: ${pythonDumps(v)}`).join(', ')}}`;
  }
  return JSON.stringify(value);
}

export const arbEvent: fc.Arbitrary<StreamEvent> = fc.oneof(
  { weight: 6, arbitrary: fc.tuple(arbContentChunk, arbSpelling()).map(([chunk, spelling]) => ({ data: spell(chunk, spelling) })) },
  { weight: 3, arbitrary: fc.tuple(arbOtherChunk, arbSpelling()).map(([chunk, spelling]) => ({ data: spell(chunk, spelling) })) },
  { weight: 1, arbitrary: arbRawChunk.map((data) => ({ data })) },
  // Cut short: invalid JSON.
  { weight: 1, arbitrary: fc.tuple(arbContentChunk, fc.nat()).map(([chunk, at]) => ({ data: JSON.stringify(chunk).slice(0, at % 180) })) },
  {
    weight: 1,
    arbitrary: fc.constantFrom<StreamEvent>(
      { data: '[DONE]' },
      { data: '' },
      { data: ' ' },
      { data: '5' },
      { data: 'null' },
      { data: '"text"' },
      { data: '[1]' },
      { event: 'error', data: JSON.stringify({ error: { message: 'overloaded' } }) },
      { event: 'message', data: JSON.stringify(chunkOf(choiceOf({ content: 'm' }))) },
    ),
  },
);

/** A stream's events: single events, and runs of content chunks alike but for their content. */
export const arbEvents: fc.Arbitrary<StreamEvent[]> = fc
  .array(fc.oneof(arbEvent.map((e) => [e]), arbContentRun), { maxLength: 6 })
  .map((parts) => parts.flat());

/** How each event is framed: line ends, `data:` with or without its space, comments and ignored fields around it. */
export const arbFraming = fc.record({
  bom: fc.boolean(),
  lastUnterminated: fc.boolean(),
  lines: fc.array(
    fc.record({ eol: fc.constantFrom('\n', '\r\n', '\r'), space: fc.boolean(), comment: fc.boolean(), id: fc.boolean() }),
    { minLength: 1, maxLength: 8 },
  ),
});

export function frame(events: readonly StreamEvent[], framing: typeof arbFraming extends fc.Arbitrary<infer F> ? F : never): string {
  let out = framing.bom ? '\uFEFF' : '';
  events.forEach((e, i) => {
    const style = framing.lines[i % framing.lines.length]!;
    const eol = style.eol;
    if (style.comment) out += `: keep-alive${eol}`;
    if (style.id) out += `id: ${i}${eol}`;
    if (e.event !== undefined) out += `event: ${e.event}${eol}`;
    // Without its space, a data line that starts with one would lose it.
    for (const line of e.data.split('\n')) out += `data:${style.space || line.startsWith(' ') ? ' ' : ''}${line}${eol}`;
    if (!(framing.lastUnterminated && i === events.length - 1)) out += eol;
  });
  return out;
}

/** `bytes` cut at the given offsets (any order; an offset past the end wraps). */
export function cut(bytes: Uint8Array, offsets: readonly number[]): Uint8Array[] {
  const points = [0, ...offsets.map((o) => o % (bytes.length + 1)).sort((a, b) => a - b), bytes.length];
  return points.slice(1).map((end, i) => bytes.subarray(points[i], end));
}
