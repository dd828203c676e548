import { describe, expect, test } from 'vitest';
import { InvalidRequestError } from '../../../src/errors.js';
import { parseResponsesRequest } from '../../../src/http/parse-responses-request.js';
import { deepFreeze } from '../../../src/freeze.js';
import { messagesToItems } from '../../../src/context/response-items.js';
import type { ChatMessage } from '../../../src/domain.js';
import { responsesUpstreamBody } from '../../../src/upstream/responses-body.js';

const parse = (body: unknown) => parseResponsesRequest(Buffer.from(JSON.stringify(body)));

function refusal(body: unknown): { param: string | null; code: string } {
  try {
    parse(body);
  } catch (error) {
    if (error instanceof InvalidRequestError) return { param: error.param, code: error.code };
    throw error;
  }
  throw new Error('expected a 400');
}

describe('parseResponsesRequest', () => {
  test('instructions first, then the input as chat messages; a string input is one user message', () => {
    const request = parse({ model: 'gpt-4.1', instructions: 'be brief', input: 'hi', stream: true, tools: [{ type: 'function', name: 'f', parameters: {} }, { type: 'web_search' }] });
    expect(request).toMatchObject({
      model: 'gpt-4.1',
      messages: [
        { role: 'system', content: 'be brief' },
        { role: 'user', content: 'hi' },
      ],
      hasInstructionsField: true,
      items: [{ role: 'user', content: 'hi' }],
      sources: [{ start: 0, end: 1 }],
      tools: [{ type: 'function', function: { name: 'f', parameters: {} } }],
      previousResponseId: undefined,
      serverState: undefined,
    });
  });

  test("OpenAI's own state named in the request is reported", () => {
    expect(parse({ input: 'hi', previous_response_id: 'resp_1' })).toMatchObject({ previousResponseId: 'resp_1', serverState: undefined });
    expect(parse({ input: 'hi', previous_response_id: '' }).previousResponseId).toBeUndefined();
    expect(parse({ input: 'hi', previous_response_id: 'resp_1', conversation: 'conv_1' })).toMatchObject({ previousResponseId: 'resp_1', serverState: 'conversation' });
    expect(parse({ input: 'hi', conversation: 'conv_1' }).serverState).toBe('conversation');
    expect(parse({ input: [{ role: 'user', content: 'a' }, { type: 'item_reference', id: 'msg_1' }] })).toMatchObject({ serverState: undefined, itemReference: 'input[1]' });
  });

  test('an item_reference stands in an assistant message marked as holding one, which the split takes as re-sent history', () => {
    const parsed = parse({
      instructions: 'be brief',
      input: [
        { role: 'user', content: 'a' },
        { type: 'item_reference', id: 'msg_1' },
        { role: 'user', content: 'b' },
        { type: 'item_reference', id: 'rs_2' },
        { type: 'function_call', call_id: 'c', name: 'f', arguments: '{}' },
        { type: 'function_call_output', call_id: 'c', output: 'r' },
      ],
    });
    expect(parsed.messages.map((m) => m.role)).toEqual(['system', 'user', 'assistant', 'user', 'assistant', 'tool']);
    expect(parsed.messages[2]).toEqual({ role: 'assistant', content: null });
    expect(parsed.messages[4]).toMatchObject({ role: 'assistant', tool_calls: [{ id: 'c' }] });
    expect(parsed.referenceMessages).toEqual([2, 4]);
    expect(parsed.itemReference).toBe('input[1]');
    expect(parse({ input: 'hi' })).toMatchObject({ itemReference: undefined, referenceMessages: [] });
  });

  test.each([
    [{}, 'input', 'missing_required_parameter'],
    [{ input: 3 }, 'input', 'invalid_type'],
    [{ input: [null] }, 'input[0]', 'invalid_type'],
    [{ input: [{ role: 'tool', content: 'x' }] }, 'input[0].role', 'invalid_value'],
    [{ input: [{ role: 'user', content: 5 }] }, 'input[0].content', 'invalid_type'],
    [{ input: ['x', { type: 'function_call', name: 'f', arguments: '{}' }].slice(1) }, 'input[0].call_id', 'missing_required_parameter'],
    [{ input: [{ role: 'user', content: 'a' }, { type: 'function_call_output', call_id: 'c', output: 3 }] }, 'input[1].output', 'invalid_type'],
    [{ input: [{ role: 'user', content: 'a' }, { role: 'user', content: [null] }] }, 'input[1].content[0]', 'invalid_type'],
    [{ input: 'hi', instructions: 7 }, 'instructions', 'invalid_type'],
  ])('%j is a 400 naming %s', (body, param, code) => {
    expect(refusal(body)).toEqual({ param, code });
  });
});

describe('responsesUpstreamBody', () => {
  test('instruction items as sent, the summary as a developer message, history as items, then the new turn exactly as sent', () => {
    const request = parse({
      model: 'm',
      instructions: 'pinned',
      store: false,
      input: [
        { role: 'developer', content: 'also pinned' },
        { role: 'user', content: 'old question' },
        { type: 'reasoning', id: 'rs_9', encrypted_content: 'xyz' },
        { role: 'user', content: [{ type: 'input_text', text: 'new question' }] },
      ],
    });
    // The split found "old question" stored (re-sent history): the turn starts at message 3 (instructions field, developer, old, new).
    const body = JSON.parse(
      responsesUpstreamBody(request, {
        messages: [
          { role: 'system', content: 'pinned' },
          { role: 'developer', content: 'also pinned' },
          { role: 'system', content: 'Summary: earlier talk' },
          { role: 'user', content: 'old question' },
          { role: 'assistant', content: 'old answer' },
          { role: 'user', content: [{ type: 'text', text: 'new question' }] },
        ],
        instructionCount: 2,
        summaryUsed: true,
        historyMessages: 2,
        turnMessages: 1,
        turnStart: 3,
      }),
    ) as Record<string, unknown>;
    expect(body).toEqual({
      model: 'm',
      instructions: 'pinned',
      store: false,
      input: [
        { role: 'developer', content: 'also pinned' },
        { type: 'message', role: 'developer', content: 'Summary: earlier talk' },
        { type: 'message', role: 'user', content: 'old question' },
        { type: 'message', role: 'assistant', content: [{ type: 'output_text', text: 'old answer' }] },
        { type: 'reasoning', id: 'rs_9', encrypted_content: 'xyz' },
        { role: 'user', content: [{ type: 'input_text', text: 'new question' }] },
      ],
    });
  });

  test('results contextd added for calls the history left unanswered go before the turn', () => {
    const request = parse({ input: 'next' });
    const body = JSON.parse(
      responsesUpstreamBody(request, {
        messages: [
          { role: 'assistant', content: null, tool_calls: [{ id: 'c', type: 'function', function: { name: 'f', arguments: '{}' } }] },
          { role: 'tool', tool_call_id: 'c', content: 'no result' },
          { role: 'user', content: 'next' },
        ],
        instructionCount: 0,
        summaryUsed: false,
        historyMessages: 1,
        turnMessages: 2,
        turnStart: 0,
      }),
    ) as { input: unknown[] };
    expect(body.input).toEqual([
      { type: 'function_call', call_id: 'c', name: 'f', arguments: '{}' },
      { type: 'function_call_output', call_id: 'c', output: 'no result' },
      { role: 'user', content: 'next' },
    ]);
  });

  test('stored (deep-frozen) history serialised from its cache is the same body as serialised afresh', () => {
    const request = parse({ model: 'm', input: 'new', tools: [] });
    const history: ChatMessage[] = [
      { role: 'user', content: 'q' },
      { role: 'assistant', content: 'a', tool_calls: [{ id: 'c', type: 'function', function: { name: 'f', arguments: '{"x":1}' } }] },
      { role: 'tool', tool_call_id: 'c', content: 'r' },
      { role: 'assistant', content: null, refusal: 'no' },
    ];
    const layoutOf = (messages: ChatMessage[]) => ({ messages: [...messages, { role: 'user' as const, content: 'new' }], instructionCount: 0, summaryUsed: false, historyMessages: messages.length, turnMessages: 1, turnStart: 0 });
    const expected = JSON.stringify({ model: 'm', input: [...messagesToItems(history), { role: 'user', content: 'new' }], tools: [] });
    const frozen = history.map((message) => deepFreeze(structuredClone(message)));
    expect(responsesUpstreamBody(request, layoutOf(history))).toBe(expected);
    // Twice: the second time the frozen messages' items come from the cache.
    expect(responsesUpstreamBody(request, layoutOf(frozen))).toBe(expected);
    expect(responsesUpstreamBody(request, layoutOf(frozen))).toBe(expected);
  });
});
