import { describe, expect, test } from 'vitest';
import {
  createSseReplyAccumulator,
  rebuildReplyFromJson,
  type RebuiltReply,
} from '../../../src/streaming/accumulate-reply.js';
import { chunk, recordedTextContent, recordedTextStream, sse, usageChunk } from './recorded-streams.js';

const utf8 = new TextEncoder();

function accumulate(...chunks: readonly (string | Uint8Array)[]): RebuiltReply {
  const accumulator = createSseReplyAccumulator();
  for (const c of chunks) accumulator.push(typeof c === 'string' ? utf8.encode(c) : c);
  return accumulator.finish();
}

function pick(reply: RebuiltReply, keys: readonly (keyof RebuiltReply)[]): Partial<RebuiltReply> {
  return Object.fromEntries(keys.map((key) => [key, reply[key]]));
}

const toolCall = (index: number, fields: Record<string, unknown>) => chunk({ tool_calls: [{ index, ...fields }] });

describe('createSseReplyAccumulator', () => {
  test('rebuilds the recorded text reply split at every byte boundary', () => {
    const bytes = utf8.encode(recordedTextStream);
    const expected: RebuiltReply = {
      message: { role: 'assistant', content: recordedTextContent },
      completionTokens: 9,
      finishReason: 'stop',
      incompleteReason: undefined,
      promptTokens: 12,
    };
    expect(accumulate(bytes)).toEqual(expected);
    for (let cut = 0; cut <= bytes.length; cut++) {
      expect(accumulate(bytes.subarray(0, cut), bytes.subarray(cut)), `split at byte ${cut}`).toEqual(expected);
    }
  });

  test('rebuilds the recorded reply sent with CRLF line ends and keep-alive comments', () => {
    const stream = `: keep-alive\r\n\r\n${recordedTextStream.replaceAll('\n\n', '\r\n\r\n: keep-alive\r\n\r\n')}`;
    expect(accumulate(stream)).toMatchObject({ message: { content: recordedTextContent }, incompleteReason: undefined });
  });

  test.each<{ name: string; stream: string; reply: Partial<RebuiltReply> }>([
    {
      name: 'parallel tool calls, arguments split over many chunks and interleaved by index',
      stream: sse(
        chunk({ role: 'assistant', content: null }),
        toolCall(0, { id: 'call_a', type: 'function', function: { name: 'get_weather', arguments: '' } }),
        toolCall(1, { id: 'call_b', type: 'function', function: { name: 'get_time', arguments: '' } }),
        toolCall(0, { function: { arguments: '{"ci' } }),
        toolCall(1, { function: { arguments: '{"tz":' } }),
        toolCall(0, { function: { arguments: 'ty":"Pa' } }),
        chunk({ tool_calls: [{ index: 1, function: { arguments: '"CET"}' } }, { index: 0, function: { arguments: 'ris"}' } }] }),
        chunk({}, 'tool_calls'),
        usageChunk(31),
        '[DONE]',
      ),
      reply: {
        message: {
          role: 'assistant',
          content: null,
          tool_calls: [
            { id: 'call_a', type: 'function', function: { name: 'get_weather', arguments: '{"city":"Paris"}' } },
            { id: 'call_b', type: 'function', function: { name: 'get_time', arguments: '{"tz":"CET"}' } },
          ],
        },
        completionTokens: 31,
        finishReason: 'tool_calls',
        incompleteReason: undefined,
      },
    },
    {
      name: 'tool calls arriving out of index order are stored by index',
      stream: sse(
        toolCall(1, { id: 'call_b', type: 'function', function: { name: 'b', arguments: '{}' } }),
        toolCall(0, { id: 'call_a', type: 'function', function: { name: 'a', arguments: '{}' } }),
        chunk({}, 'tool_calls'),
        '[DONE]',
      ),
      reply: {
        message: {
          role: 'assistant',
          content: null,
          tool_calls: [
            { id: 'call_a', type: 'function', function: { name: 'a', arguments: '{}' } },
            { id: 'call_b', type: 'function', function: { name: 'b', arguments: '{}' } },
          ],
        },
      },
    },
    {
      name: 'id, type and name come from the first delta that had them',
      stream: sse(
        toolCall(0, { id: 'call_1', type: 'function', function: { name: 'first', arguments: '{' } }),
        toolCall(0, { id: 'call_2', type: 'other', function: { name: 'second', arguments: '}' } }),
        '[DONE]',
      ),
      reply: {
        message: {
          role: 'assistant',
          content: null,
          tool_calls: [{ id: 'call_1', type: 'function', function: { name: 'first', arguments: '{}' } }],
        },
      },
    },
    {
      name: 'tool calls without index (some OpenAI-compatible servers): a new id starts a new call',
      stream: sse(
        chunk({ tool_calls: [{ id: 'call_a', type: 'function', function: { name: 'a', arguments: '{"x"' } }] }),
        chunk({ tool_calls: [{ function: { arguments: ':1}' } }] }),
        chunk({ tool_calls: [{ id: 'call_b', type: 'function', function: { name: 'b', arguments: '{}' } }] }),
        '[DONE]',
      ),
      reply: {
        message: {
          role: 'assistant',
          content: null,
          tool_calls: [
            { id: 'call_a', type: 'function', function: { name: 'a', arguments: '{"x":1}' } },
            { id: 'call_b', type: 'function', function: { name: 'b', arguments: '{}' } },
          ],
        },
        incompleteReason: undefined,
      },
    },
    {
      name: 'content alongside tool calls is kept',
      stream: sse(
        chunk({ role: 'assistant', content: 'Let me check.' }),
        toolCall(0, { id: 'call_a', type: 'function', function: { name: 'a', arguments: '{}' } }),
        chunk({}, 'tool_calls'),
        '[DONE]',
      ),
      reply: {
        message: {
          role: 'assistant',
          content: 'Let me check.',
          tool_calls: [{ id: 'call_a', type: 'function', function: { name: 'a', arguments: '{}' } }],
        },
      },
    },
    {
      name: 'refusal',
      stream: sse(
        chunk({ role: 'assistant', content: null, refusal: '' }),
        chunk({ refusal: "I'm sorry, " }),
        chunk({ refusal: "I can't help with that." }),
        chunk({}, 'stop'),
        '[DONE]',
      ),
      reply: {
        message: { role: 'assistant', content: null, refusal: "I'm sorry, I can't help with that." },
        finishReason: 'stop',
        incompleteReason: undefined,
      },
    },
    {
      name: 'legacy function_call',
      stream: sse(
        chunk({ role: 'assistant', content: null, function_call: { name: 'f', arguments: '' } }),
        chunk({ function_call: { arguments: '{"a":' } }),
        chunk({ function_call: { arguments: '1}' } }),
        chunk({}, 'function_call'),
        '[DONE]',
      ),
      reply: {
        message: { role: 'assistant', content: null, function_call: { name: 'f', arguments: '{"a":1}' } },
        finishReason: 'function_call',
      },
    },
    {
      name: 'vLLM-style empty and null content deltas, usage on every chunk (the last one wins)',
      stream: sse(
        { ...chunk({ role: 'assistant', content: '' }), usage: { completion_tokens: 0 } },
        { ...chunk({ content: null }), usage: { completion_tokens: 0 } },
        { ...chunk({ content: 'Hi' }), usage: { completion_tokens: 1 } },
        { ...chunk({ content: '' }, 'stop'), usage: { completion_tokens: 2 } },
        '[DONE]',
      ),
      reply: { message: { role: 'assistant', content: 'Hi' }, completionTokens: 2, finishReason: 'stop', incompleteReason: undefined },
    },
    {
      name: 'Azure prompt-filter chunk with empty choices, content-filter results, no usage',
      stream: sse(
        { id: '', object: '', created: 0, model: '', choices: [], prompt_filter_results: [{ prompt_index: 0 }] },
        { ...chunk({ role: 'assistant', content: 'ok' }), content_filter_results: {} },
        chunk({}, 'stop'),
        '[DONE]',
      ),
      reply: { message: { role: 'assistant', content: 'ok' }, completionTokens: undefined, finishReason: 'stop', incompleteReason: undefined },
    },
    {
      name: 'n>1: only choice index 0 is kept',
      stream: sse(
        chunk({ role: 'assistant', content: 'zero' }),
        chunk({ role: 'assistant', content: 'one' }, null, 1),
        chunk({}, 'length', 1),
        chunk({}, 'stop'),
        '[DONE]',
      ),
      reply: { message: { role: 'assistant', content: 'zero' }, finishReason: 'stop' },
    },
    {
      name: 'finish_reason on the last content chunk',
      stream: sse(chunk({ role: 'assistant', content: 'a' }), chunk({ content: 'b' }, 'length'), '[DONE]'),
      reply: { message: { role: 'assistant', content: 'ab' }, finishReason: 'length', incompleteReason: undefined },
    },
    {
      name: 'fields other than content, refusal, tool calls, function_call and audio are not kept',
      stream: sse(chunk({ role: 'assistant', reasoning_content: 'think', content: 'a' }), chunk({}, 'stop'), '[DONE]'),
      reply: { message: { role: 'assistant', content: 'a' } },
    },
    {
      name: 'audio: id and expiry set, data and transcript concatenated',
      stream: sse(
        chunk({ role: 'assistant', content: null, audio: { id: 'audio_1', transcript: 'Hel', data: 'AAA' } }),
        chunk({ audio: { transcript: 'lo', data: 'BBB' } }),
        chunk({ audio: { expires_at: 1741573552 } }, 'stop'),
        '[DONE]',
      ),
      reply: {
        message: { role: 'assistant', content: null, audio: { id: 'audio_1', data: 'AAABBB', transcript: 'Hello', expires_at: 1741573552 } },
      },
    },
    {
      name: 'events after [DONE] are ignored',
      stream: sse(chunk({ content: 'a' }), '[DONE]', chunk({ content: 'b' }), 'not json'),
      reply: { message: { role: 'assistant', content: 'a' }, incompleteReason: undefined },
    },
    {
      name: '[DONE] without the final blank line',
      stream: `${sse(chunk({ content: 'a' }, 'stop'))}data: [DONE]\n`,
      reply: { message: { role: 'assistant', content: 'a' }, incompleteReason: undefined },
    },
    {
      name: '[DONE] without any line end',
      stream: `${sse(chunk({ content: 'a' }, 'stop'))}data: [DONE]`,
      reply: { message: { role: 'assistant', content: 'a' }, incompleteReason: undefined },
    },
    {
      name: 'empty data events are skipped',
      stream: `data:\n\n${sse(chunk({ content: 'a' }), '[DONE]')}`,
      reply: { message: { role: 'assistant', content: 'a' }, incompleteReason: undefined },
    },
    {
      name: 'cut off: no [DONE]',
      stream: sse(chunk({ role: 'assistant', content: 'partial' })),
      reply: { message: { role: 'assistant', content: 'partial' }, incompleteReason: 'stream ended before its final event' },
    },
    {
      name: 'cut off in the middle of an event',
      stream: `${sse(chunk({ content: 'partial' }))}data: {"choices":[{"index":0,"delta":{"content":"mo`,
      reply: { message: { role: 'assistant', content: 'partial' }, incompleteReason: 'stream ended before its final event' },
    },
    {
      name: 'cut off inside "[DONE]", after the finish_reason chunk: the reply is whole',
      stream: `${sse(chunk({ content: 'a' }, 'stop'))}data: [DO`,
      reply: { message: { role: 'assistant', content: 'a' }, incompleteReason: undefined },
    },
    {
      name: 'nothing at all',
      stream: '',
      reply: { message: undefined, completionTokens: undefined, finishReason: undefined, incompleteReason: 'stream ended before its final event' },
    },
    {
      name: 'error object mid-stream',
      stream: sse(
        chunk({ content: 'par' }),
        { error: { message: 'The server had an error', type: 'server_error', param: null, code: null } },
        '[DONE]',
      ),
      reply: { incompleteReason: 'upstream sent an error event' },
    },
    {
      name: 'event: error',
      stream: `${sse(chunk({ content: 'par' }))}event: error\ndata: {"message":"overloaded"}\n\n${sse('[DONE]')}`,
      reply: { incompleteReason: 'upstream sent an error event' },
    },
    {
      name: 'malformed JSON in a data line',
      stream: sse(chunk({ content: 'a' }), '{"choices":[', chunk({ content: 'b' }), '[DONE]'),
      reply: { message: { role: 'assistant', content: 'a' }, incompleteReason: 'invalid JSON' },
    },
    {
      name: 'JSON that is not an object',
      stream: sse(chunk({ content: 'a' }), '42', '[DONE]'),
      reply: { incompleteReason: 'malformed chunk' },
    },
    {
      name: 'a reply with nothing usable',
      stream: sse(chunk({ role: 'assistant', content: '' }), chunk({}, 'stop'), usageChunk(0), '[DONE]'),
      reply: { message: undefined, completionTokens: 0, finishReason: 'stop', incompleteReason: 'empty reply' },
    },
  ])('$name', ({ stream, reply }) => {
    // Each listed field compared whole (toMatchObject would let extra message fields through).
    const rebuilt = accumulate(stream);
    expect(pick(rebuilt, Object.keys(reply) as (keyof RebuiltReply)[])).toEqual(reply);
    // Delivery in single bytes must not change anything.
    const bytes = utf8.encode(stream);
    expect(accumulate(...Array.from({ length: bytes.length }, (_, i) => bytes.subarray(i, i + 1)))).toEqual(accumulate(stream));
  });

  test('message carries exactly the fields listed, nothing undefined', () => {
    const { message } = accumulate(sse(chunk({ role: 'assistant', content: 'a' }), chunk({}, 'stop'), '[DONE]'));
    expect(Object.keys(message ?? {})).toEqual(['role', 'content']);
  });

  describe('isComplete: the terminal event, after which the reply is whole whatever the stream does', () => {
    const feed = (options: { usageRequested?: boolean }, ...events: (Record<string, unknown> | string)[]) => {
      const accumulator = createSseReplyAccumulator(options);
      const seen: boolean[] = [];
      for (const event of events) {
        accumulator.push(utf8.encode(sse(event)));
        seen.push(accumulator.isComplete());
      }
      return { seen, reply: accumulator.finish() };
    };

    test('[DONE] completes a stream', () => {
      expect(feed({}, chunk({ content: 'a' }), '[DONE]').seen).toEqual([false, true]);
    });

    test('the finish_reason chunk completes a stream whose client asked for no usage', () => {
      const { seen, reply } = feed({}, chunk({ content: 'a' }), chunk({}, 'stop'));
      expect(seen).toEqual([false, true]);
      expect(reply.incompleteReason).toBeUndefined();
    });

    test('with usage asked for, the usage chunk after finish_reason completes it', () => {
      const { seen, reply } = feed({ usageRequested: true }, chunk({ content: 'a' }), chunk({}, 'stop'), usageChunk(3));
      expect(seen).toEqual([false, false, true]);
      expect(reply.incompleteReason).toBeUndefined();
      expect(feed({ usageRequested: true }, chunk({ content: 'a' }), chunk({}, 'stop')).reply.incompleteReason).toBe('stream ended before its final event');
    });

    test('with several choices only [DONE] completes it', () => {
      const other = { choices: [{ index: 1, delta: { content: 'b' }, finish_reason: null }] };
      expect(feed({}, other, chunk({ content: 'a' }, 'stop'), '[DONE]').seen).toEqual([false, false, true]);
    });

    test('an error event is never complete', () => {
      expect(feed({}, chunk({ content: 'a' }, 'stop'), { error: { message: 'x' } }).seen).toEqual([true, false]);
    });
  });

  test('finish() is idempotent and bytes pushed after it are ignored', () => {
    const accumulator = createSseReplyAccumulator();
    accumulator.push(utf8.encode(sse(chunk({ content: 'a' }), '[DONE]')));
    const first = accumulator.finish();
    accumulator.push(utf8.encode(sse(chunk({ content: 'b' }))));
    expect(accumulator.finish()).toEqual(first);
    expect(first.message?.content).toBe('a');
  });
});

const completion = (message: Record<string, unknown>, extra: Record<string, unknown> = {}) =>
  JSON.stringify({
    id: 'chatcmpl-test',
    object: 'chat.completion',
    created: 1741569952,
    model: 'gpt-4o-2024-08-06',
    choices: [{ index: 0, message, logprobs: null, finish_reason: 'stop' }],
    usage: { prompt_tokens: 19, completion_tokens: 10, total_tokens: 29 },
    service_tier: 'default',
    system_fingerprint: 'fp_f9f4fb6dbf',
    ...extra,
  });

describe('rebuildReplyFromJson', () => {
  test('reasoning tokens are not counted as tokens of the stored reply', () => {
    const body = completion(
      { role: 'assistant', content: 'short answer' },
      { usage: { prompt_tokens: 19, completion_tokens: 900, total_tokens: 919, completion_tokens_details: { reasoning_tokens: 896 } } },
    );
    expect(rebuildReplyFromJson(new TextEncoder().encode(body)).completionTokens).toBe(4);
  });

  test("the upstream's prompt count is read from usage.prompt_tokens, when there is one", () => {
    const withUsage = completion({ role: 'assistant', content: 'hi' });
    expect(rebuildReplyFromJson(new TextEncoder().encode(withUsage)).promptTokens).toBe(19);
    const without = completion({ role: 'assistant', content: 'hi' }, { usage: undefined });
    expect(rebuildReplyFromJson(new TextEncoder().encode(without)).promptTokens).toBeUndefined();
    const streamed = createSseReplyAccumulator({ usageRequested: true });
    streamed.push(new TextEncoder().encode(sse(chunk({ role: 'assistant', content: 'hi' }), chunk({}, 'stop'), usageChunk(1), '[DONE]')));
    expect(streamed.finish().promptTokens).toBe(20);
  });

  test.each<{ name: string; body: string; reply: RebuiltReply }>([
    {
      name: 'text reply; null refusal and empty annotations dropped',
      body: completion({ role: 'assistant', content: 'héllo 🌍', refusal: null, annotations: [] }),
      reply: { message: { role: 'assistant', content: 'héllo 🌍' }, completionTokens: 10, finishReason: 'stop', incompleteReason: undefined },
    },
    {
      name: 'tool calls with null content',
      body: completion({
        role: 'assistant',
        content: null,
        tool_calls: [
          { id: 'call_a', type: 'function', function: { name: 'get_weather', arguments: '{"city":"Paris"}' } },
          { id: 'call_b', type: 'function', function: { name: 'get_time', arguments: '{}' } },
        ],
        refusal: null,
      }),
      reply: {
        message: {
          role: 'assistant',
          content: null,
          tool_calls: [
            { id: 'call_a', type: 'function', function: { name: 'get_weather', arguments: '{"city":"Paris"}' } },
            { id: 'call_b', type: 'function', function: { name: 'get_time', arguments: '{}' } },
          ],
        },
        completionTokens: 10,
        finishReason: 'stop',
        incompleteReason: undefined,
      },
    },
    {
      name: 'refusal',
      body: completion({ role: 'assistant', content: null, refusal: 'No.' }),
      reply: { message: { role: 'assistant', content: null, refusal: 'No.' }, completionTokens: 10, finishReason: 'stop', incompleteReason: undefined },
    },
    {
      name: 'non-empty annotations, audio and unknown fields are kept',
      body: completion({
        role: 'assistant',
        content: 'See [1].',
        annotations: [{ type: 'url_citation', url_citation: { url: 'https://example.com', start_index: 4, end_index: 7 } }],
        audio: { id: 'audio_1', data: 'AAA', transcript: 'hi', expires_at: 1 },
        reasoning_content: 'because',
      }),
      reply: {
        message: {
          role: 'assistant',
          content: 'See [1].',
          annotations: [{ type: 'url_citation', url_citation: { url: 'https://example.com', start_index: 4, end_index: 7 } }],
          audio: { id: 'audio_1', data: 'AAA', transcript: 'hi', expires_at: 1 },
          reasoning_content: 'because',
        },
        completionTokens: 10,
        finishReason: 'stop',
        incompleteReason: undefined,
      },
    },
    {
      name: 'n>1: choice index 0 wherever it is in the array',
      body: JSON.stringify({
        choices: [
          { index: 1, message: { role: 'assistant', content: 'one' }, finish_reason: 'length' },
          { index: 0, message: { role: 'assistant', content: 'zero' }, finish_reason: 'stop' },
        ],
      }),
      reply: { message: { role: 'assistant', content: 'zero' }, completionTokens: undefined, finishReason: 'stop', incompleteReason: undefined },
    },
    {
      name: 'empty content and nothing else',
      body: completion({ role: 'assistant', content: '', tool_calls: [] }),
      reply: { message: undefined, completionTokens: 10, finishReason: 'stop', incompleteReason: 'empty reply' },
    },
    {
      name: 'no choices',
      body: completion({}, { choices: [] }),
      reply: { message: undefined, completionTokens: 10, finishReason: undefined, incompleteReason: 'empty reply' },
    },
    {
      name: 'tool_calls that are not tool calls',
      body: completion({ role: 'assistant', content: null, tool_calls: [{ function: {} }] }),
      reply: { message: undefined, completionTokens: 10, finishReason: 'stop', incompleteReason: 'malformed tool_calls' },
    },
    {
      name: 'error body',
      body: JSON.stringify({ error: { message: 'bad', type: 'invalid_request_error', param: null, code: null } }),
      reply: { message: undefined, completionTokens: undefined, finishReason: undefined, incompleteReason: 'upstream sent an error' },
    },
    {
      name: 'invalid JSON',
      body: '{"choices": [',
      reply: { message: undefined, completionTokens: undefined, finishReason: undefined, incompleteReason: 'invalid JSON' },
    },
    {
      name: 'JSON that is not an object',
      body: '[]',
      reply: { message: undefined, completionTokens: undefined, finishReason: undefined, incompleteReason: 'malformed reply' },
    },
  ])('$name', ({ body, reply }) => {
    // The upstream's prompt count has a test of its own.
    const { promptTokens: _promptTokens, ...rebuilt } = rebuildReplyFromJson(utf8.encode(body));
    expect(rebuilt).toEqual(reply);
  });
});
