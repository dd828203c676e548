import { describe, expect, test } from 'vitest';
import { createContentDeltaReader } from '../../../src/streaming/content-delta.js';

const TOP = '"id":"chatcmpl-1","object":"chat.completion.chunk","created":1741569952,"model":"gpt-4o-mini","system_fingerprint":"fp_x"';
const TAIL = '"logprobs":null,"finish_reason":null';
/** An OpenAI content chunk, with `delta` and what follows `choices` as given. */
const chunk = (delta: string, after = '', choiceTail = TAIL): string => `{${TOP},"choices":[{"index":0,"delta":{${delta}},${choiceTail}}]${after}}`;

describe('createContentDeltaReader', () => {
  test.each([
    ['an OpenAI content chunk', chunk('"content":" fox"'), ' fox'],
    ['the first chunk: role, empty content, refusal null', chunk('"role":"assistant","content":"","refusal":null'), ''],
    ['content before role', chunk('"content":"a","role":"assistant"'), 'a'],
    ['usage null and obfuscation after the choices', chunk('"content":"a"', ',"usage":null,"obfuscation":"Xy12"'), 'a'],
    ['a scalar usage (only an object counts)', chunk('"content":"a"', ',"usage":7'), 'a'],
    ['index null (counts as 0)', chunk('"content":"a"').replace('"index":0', '"index":null'), 'a'],
    ['ignored scalars in the delta', chunk('"content":"a","tool_calls":null,"function_call":null,"audio":null,"reasoning_content":"hm"'), 'a'],
    ['escapes', chunk(String.raw`"content":"line\n\"q\" \\ \/ caf\u00e9 \ud83c\udf0d"`), 'line\n"q" \\ / café 🌍'],
    ['raw non-ASCII', chunk('"content":"日本 🌍"'), '日本 🌍'],
    ["Python's separators", '{"id": "c", "choices": [{"index": 0, "delta": {"content": "a"}, "finish_reason": null}]}', 'a'],
    ['pretty-printed (several data lines)', JSON.stringify({ id: 'c', choices: [{ index: 0, delta: { content: 'a' }, finish_reason: null }] }, null, 2), 'a'],
  ])('reads %s', (_name, data, content) => {
    expect(createContentDeltaReader()(data)).toBe(content);
    expect((JSON.parse(data) as { choices: { delta: { content: string } }[] }).choices[0]!.delta.content).toBe(content);
  });

  // Each of these does something besides appending content (or is not JSON): JSON.parse must see it.
  test.each([
    ['finish_reason set', chunk('"content":"a"', '', '"logprobs":null,"finish_reason":"stop"')],
    ['finish_reason empty', chunk('"content":"a"', '', '"logprobs":null,"finish_reason":""')],
    ['usage', chunk('"content":"a"', ',"usage":{"completion_tokens":3}')],
    ['error', chunk('"content":"a"', ',"error":{"message":"x"}')],
    ['a scalar error', chunk('"content":"a"', ',"error":"x"')],
    ['a second choice', chunk('"content":"a"').replace('}]}', '},{"index":1,"delta":{"content":"b"}}]}')],
    ['choice index 1', chunk('"content":"a"').replace('"index":0', '"index":1')],
    ['choice index "0"', chunk('"content":"a"').replace('"index":0', '"index":"0"')],
    ['a refusal', chunk('"content":"a","refusal":"no"')],
    ['tool calls', chunk('"content":"a","tool_calls":[{"index":0,"function":{"arguments":"{}"}}]')],
    ['a function call', chunk('"content":"a","function_call":{"name":"f"}')],
    ['audio', chunk('"content":"a","audio":{"id":"x"}')],
    ['content null', chunk('"content":null')],
    ['no content', chunk('"role":"assistant"')],
    ['Azure content filter results', chunk('"content":"a"', '', `${TAIL},"content_filter_results":{}`)],
    ['logprobs', chunk('"content":"a"', '', '"logprobs":{"content":[]},"finish_reason":null')],
    ['content twice (JSON.parse keeps the last)', chunk('"content":"a","content":"b"')],
    ['delta twice', chunk('"content":"a"', '', `${TAIL},"delta":{"content":"b"}`)],
    ['delta twice, the last null', chunk('"content":"a"', '', `${TAIL},"delta":null`)],
    ['choices twice', chunk('"content":"a"', ',"choices":[]')],
    ['choices twice, the last null', chunk('"content":"a"', ',"choices":null')],
    ['a key spelled with an escape', chunk(String.raw`"\u0063ontent":"a"`)],
    ['truncated', chunk('"content":"a"').slice(0, -1)],
    ['a trailing comma', chunk('"content":"a"').replace(']}', '],}')],
    ['a raw tab in the content', chunk('"content":"a\tb"')],
    ['a bad escape', chunk(String.raw`"content":"a\xb"`)],
    ['a stray quote', chunk('"content":"a"b"')],
    ['a missing brace', chunk('"content":"a"').slice(0, -2) + ']'],
    ['text after the object', `${chunk('"content":"a"')}x`],
    ['an array', `[${chunk('"content":"a"')}]`],
    ['[DONE]', '[DONE]'],
    ['empty', ''],
  ])('leaves %s to JSON.parse', (_name, data) => {
    expect(createContentDeltaReader()(data)).toBeUndefined();
  });

  describe('after a content chunk, with the same text before the content', () => {
    const first = chunk('"content":"a"');
    const reader = (): ((data: string) => string | undefined) => {
      const read = createContentDeltaReader();
      expect(read(first)).toBe('a');
      return read;
    };

    test('reads the next tokens, whatever follows the content', () => {
      const read = reader();
      expect(read(chunk('"content":" b"'))).toBe(' b');
      expect(read(chunk(String.raw`"content":"\"c\"\n"`))).toBe('"c"\n');
      expect(read(chunk('"content":"d"', ',"obfuscation":"Q1"'))).toBe('d');
      expect(read(chunk('"content":"e"', ',"obfuscation":"zzz9"'))).toBe('e');
      expect(read(chunk('"content":"f"'))).toBe('f');
    });

    test.each([
      ['content twice', chunk('"content":"","content":"b"')],
      ['a refusal after the content', chunk('"content":"b","refusal":"no"')],
      ['finish_reason set', chunk('"content":"b"', '', '"logprobs":null,"finish_reason":"stop"')],
      ['usage', chunk('"content":"b"', ',"usage":{"completion_tokens":3}')],
      ['error', chunk('"content":"b"', ',"error":1')],
      ['a second choice', chunk('"content":"b"').replace('}]}', '},{"index":1,"delta":{}}]}')],
      ['a raw control character', chunk('"content":"b\u0001"')],
      ['a bad escape', chunk(String.raw`"content":"\u12"`)],
      ['a number for content', chunk('"content":5')],
      ['truncated', chunk('"content":"b"').slice(0, -1)],
      ['text after the object', `${chunk('"content":"b"')} x`],
    ])('leaves %s to JSON.parse', (_name, data) => {
      expect(reader()(data)).toBeUndefined();
    });
  });
  test('a stream whose content chunks it keeps turning down (Azure) stops being tried after four', () => {
    const azure = chunk('"content":"a"', '', `${TAIL},"content_filter_results":{"hate":{"filtered":false,"severity":"safe"}}`);
    const read = createContentDeltaReader();
    for (let i = 0; i < 4; i++) expect(read(azure)).toBeUndefined();
    // Even a chunk it would read on a fresh stream is left to JSON.parse now.
    expect(createContentDeltaReader()(chunk('"content":"a"'))).toBe('a');
    expect(read(chunk('"content":"a"'))).toBeUndefined();
  });

  test('chunks without content (tool calls) do not count as turned down', () => {
    const read = createContentDeltaReader();
    const toolCall = `{${TOP},"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":"{}"}}]},${TAIL}}]}`;
    for (let i = 0; i < 10; i++) expect(read(toolCall)).toBeUndefined();
    expect(read(chunk('"content":"a"'))).toBe('a');
  });
});
