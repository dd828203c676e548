import { describe, expect, test } from 'vitest';
import { createSseResponseAccumulator, rebuildResponseFromJson } from '../../../src/streaming/accumulate-response.js';

const encode = (text: string): Uint8Array => new TextEncoder().encode(text);
const sse = (type: string, data: Record<string, unknown>): string => `event: ${type}\ndata: ${JSON.stringify({ type, ...data })}\n\n`;

const message = { type: 'message', id: 'msg_1', status: 'completed', role: 'assistant', content: [{ type: 'output_text', text: 'Hello there', annotations: [] }] };
const call = { type: 'function_call', id: 'fc_1', call_id: 'call_1', name: 'lookup', arguments: '{"q":1}', status: 'completed' };
const usage = { input_tokens: 20, output_tokens: 12, output_tokens_details: { reasoning_tokens: 4 }, total_tokens: 32 };
const response = (status: string, output: unknown[]) => ({ id: 'resp_1', object: 'response', status, output, usage });

/** A stream as OpenAI sends it: created, the items with their deltas, the terminal event. */
function stream(output: unknown[], terminal = 'response.completed', status = 'completed'): string[] {
  const events = [sse('response.created', { response: { ...response('in_progress', []), usage: null } })];
  output.forEach((item, index) => {
    events.push(sse('response.output_item.added', { output_index: index, item: { ...(item as object), status: 'in_progress' } }));
    events.push(sse('response.output_text.delta', { output_index: index, delta: 'Hel' }));
    events.push(sse('response.output_item.done', { output_index: index, item }));
  });
  events.push(sse(terminal, { response: response(status, output) }));
  return events;
}

describe('rebuildResponseFromJson', () => {
  test('a completed response: its text and calls as one assistant message, output tokens less reasoning', () => {
    expect(rebuildResponseFromJson(encode(JSON.stringify(response('completed', [{ type: 'reasoning', id: 'rs' }, message, call]))))).toEqual({
      message: { role: 'assistant', content: 'Hello there', tool_calls: [{ id: 'call_1', type: 'function', function: { name: 'lookup', arguments: '{"q":1}' } }] },
      completionTokens: 8,
      finishReason: 'stop',
      incompleteReason: undefined,
      responseId: 'resp_1',
      promptTokens: 20,
    });
  });

  test('incomplete is stored (the client has a whole reply); failed and errors are not', () => {
    expect(rebuildResponseFromJson(encode(JSON.stringify(response('incomplete', [message])))).incompleteReason).toBeUndefined();
    expect(rebuildResponseFromJson(encode(JSON.stringify(response('failed', [])))).incompleteReason).toBe('response failed');
    expect(rebuildResponseFromJson(encode(JSON.stringify({ ...response('completed', [message]), error: { message: 'x' } }))).incompleteReason).toBe('upstream sent an error');
    expect(rebuildResponseFromJson(encode('{not json')).incompleteReason).toBe('invalid JSON');
  });
});

describe('output with no chat form, or several messages', () => {
  test.each([
    ['a hosted tool call alone', [{ type: 'computer_call', id: 'cu_1', call_id: 'call_cu', action: { type: 'screenshot' }, status: 'completed' }]],
    ['a custom tool call alone', [{ type: 'custom_tool_call', id: 'ct_1', call_id: 'call_ct', name: 'grammar', input: 'x' }]],
    ['reasoning alone', [{ type: 'reasoning', id: 'rs_1', summary: [] }]],
  ])('%s is a whole reply with no message (the turn is stored without one)', (_name, output) => {
    expect(rebuildResponseFromJson(encode(JSON.stringify(response('completed', output))))).toMatchObject({
      message: undefined,
      incompleteReason: undefined,
      hasNoChatForm: true,
      responseId: 'resp_1',
    });
  });

  test('text, a call, more text: one assistant message, the texts before the call', () => {
    const after = { ...message, id: 'msg_2', content: [{ type: 'output_text', text: 'Back soon.', annotations: [] }] };
    expect(rebuildResponseFromJson(encode(JSON.stringify(response('completed', [message, call, after])))).message).toEqual({
      role: 'assistant',
      content: [
        { type: 'text', text: 'Hello there' },
        { type: 'text', text: 'Back soon.' },
      ],
      tool_calls: [{ id: 'call_1', type: 'function', function: { name: 'lookup', arguments: '{"q":1}' } }],
    });
  });
});

describe('createSseResponseAccumulator', () => {
  test('the terminal event completes the reply, whatever follows; split anywhere it reads the same', () => {
    const text = stream([message, call]).join('');
    for (const cut of [1, 17, 100, text.length - 3]) {
      const accumulator = createSseResponseAccumulator();
      accumulator.push(encode(text.slice(0, cut)));
      expect(accumulator.isComplete()).toBe(false);
      accumulator.push(encode(text.slice(cut)));
      expect(accumulator.isComplete()).toBe(true);
      expect(accumulator.finish()).toMatchObject({ message: { role: 'assistant', content: 'Hello there', tool_calls: [{ id: 'call_1' }] }, completionTokens: 8, incompleteReason: undefined, responseId: 'resp_1', promptTokens: 20 });
    }
  });

  test('the items seen finishing stand in when the terminal event carries no output', () => {
    const events = stream([message]);
    events[events.length - 1] = sse('response.completed', { response: { ...response('completed', []), output: [] } });
    const accumulator = createSseResponseAccumulator();
    accumulator.push(encode(events.join('')));
    expect(accumulator.finish().message).toEqual({ role: 'assistant', content: 'Hello there' });
  });

  test('nothing is stored on response.failed, an error event or a stream cut before its terminal event', () => {
    const failed = createSseResponseAccumulator();
    failed.push(encode(stream([message], 'response.failed', 'failed').join('')));
    expect(failed.isComplete()).toBe(true);
    expect(failed.finish()).toMatchObject({ message: undefined, incompleteReason: 'response failed' });

    const errored = createSseResponseAccumulator();
    errored.push(encode(stream([]).slice(0, 1).join('') + sse('error', { code: 'server_error', message: 'boom' })));
    expect(errored.finish()).toMatchObject({ message: undefined, incompleteReason: 'upstream sent an error event' });

    const cut = createSseResponseAccumulator();
    cut.push(encode(stream([message]).slice(0, -1).join('')));
    expect(cut.isComplete()).toBe(false);
    expect(cut.finish()).toMatchObject({ message: undefined, incompleteReason: 'stream ended before its final event' });
  });

  test('delta events are not parsed: a malformed one does not spoil the reply', () => {
    const events = stream([message]);
    events.splice(2, 0, 'event: response.output_text.delta\ndata: {not json\n\n');
    const accumulator = createSseResponseAccumulator();
    accumulator.push(encode(events.join('')));
    expect(accumulator.finish().incompleteReason).toBeUndefined();
  });
});
