import { describe, expect, test } from 'vitest';
import { itemsWithoutChatFormTokens } from '../../../src/context/resent-run.js';
import type { ChatMessage } from '../../../src/domain.js';
import { parseResponsesRequest } from '../../../src/http/parse-responses-request.js';
import { responsesUpstreamBody } from '../../../src/upstream/responses-body.js';

type Item = Record<string, unknown>;

const user: Item = { role: 'user', content: 'weather in Oslo?' };
const reasoning: Item = { type: 'reasoning', id: 'rs_1', summary: [], encrypted_content: 'gAAAAB'.repeat(40) };
const call: Item = { type: 'function_call', id: 'fc_1', call_id: 'call_a', name: 'weather', arguments: '{"city":"Oslo"}', status: 'completed' };
const output: Item = { type: 'function_call_output', call_id: 'call_a', output: 'rain' };
const storedUser: ChatMessage = { role: 'user', content: 'weather in Oslo?' };
const storedCall: ChatMessage = { role: 'assistant', content: null, tool_calls: [{ id: 'call_a', type: 'function', function: { name: 'weather', arguments: '{"city":"Oslo"}' } }] };

/** The upstream input for a request whose first `resent` messages are the stored `history` re-sent. */
function upstreamInput(input: Item[], history: ChatMessage[], resent: number): Item[] {
  const request = parseResponsesRequest(Buffer.from(JSON.stringify({ model: 'gpt-4.1', input })));
  const turn = request.messages.slice(resent);
  const body = responsesUpstreamBody(request, {
    messages: [...history, ...turn],
    instructionCount: 0,
    summaryUsed: false,
    historyMessages: history.length,
    turnMessages: turn.length,
    turnStart: resent,
  });
  return (JSON.parse(body) as { input: Item[] }).input;
}

describe('responsesUpstreamBody: what has no stored form', () => {
  test('a tool loop re-sent with its reasoning items: the run since the last user message goes as the client sent it', () => {
    expect(upstreamInput([user, reasoning, call, output], [storedUser, storedCall], 2)).toEqual([user, reasoning, call, output]);
  });

  test('the same loop without reasoning: the stored form stands for what was re-sent', () => {
    expect(upstreamInput([user, call, output], [storedUser, storedCall], 2)).toEqual([
      { type: 'message', role: 'user', content: 'weather in Oslo?' },
      { type: 'function_call', call_id: 'call_a', name: 'weather', arguments: '{"city":"Oslo"}' },
      output,
    ]);
  });

  test('a window that does not end with the re-sent run (cut, or other messages) keeps its stored form', () => {
    const other: ChatMessage = { ...storedCall, tool_calls: [{ id: 'call_z', type: 'function', function: { name: 'weather', arguments: '{}' } }] };
    const input = upstreamInput([user, reasoning, call, output], [storedUser, other], 2);
    expect(input.map((item) => item.type ?? item.role)).toEqual(['message', 'function_call', 'function_call_output']);
    expect(input[1]).toMatchObject({ call_id: 'call_z' });
  });

  test("a hosted tool's output whose call is not in the input is left out; with its call it goes", () => {
    const computerCall: Item = { type: 'computer_call', id: 'cu_1', call_id: 'call_cu', action: { type: 'screenshot' }, status: 'completed', pending_safety_checks: [] };
    const computerOutput: Item = { type: 'computer_call_output', call_id: 'call_cu', output: { type: 'computer_screenshot', image_url: 'data:image/png;base64,AA' } };
    const next: Item = { role: 'user', content: 'and now?' };
    expect(upstreamInput([computerOutput, next], [storedUser], 0)).toEqual([{ type: 'message', role: 'user', content: 'weather in Oslo?' }, next]);
    expect(upstreamInput([computerCall, computerOutput, next], [storedUser], 0)).toEqual([
      { type: 'message', role: 'user', content: 'weather in Oslo?' },
      computerCall,
      computerOutput,
      next,
    ]);
  });
});

describe('itemsWithoutChatFormTokens', () => {
  const count = (input: Item[], turnStart: number): number =>
    itemsWithoutChatFormTokens(parseResponsesRequest(Buffer.from(JSON.stringify({ model: 'gpt-4.1', input }))), 0, turnStart);

  test('the items that go upstream with no chat form, by JSON length ÷ 4; none when there are none', () => {
    const roughly = Math.ceil(JSON.stringify(reasoning).length / 4);
    expect(count([user, reasoning, call, output], 2)).toBe(roughly);
    expect(count([user, call, output], 2)).toBe(0);
    // Re-sent with no user message before the turn: the stored form goes, and the reasoning is dropped with it.
    expect(count([reasoning, call, output], 1)).toBe(0);
    // In the new turn itself.
    expect(count([user, reasoning, call], 0)).toBe(roughly);
  });
});
