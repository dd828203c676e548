// The Responses API with memory, end to end: the official openai client
// (responses.create, responses.stream) through a real contextd process to the
// fake upstream, which records what it received. One conversation across
// both APIs.
import { afterAll, beforeAll, beforeEach, describe, expect, test } from 'vitest';
import { ensureBuilt, stopAll, type ContextdProcess } from '../support/contextd-process.js';
import { startFakeUpstream, type FakeUpstream } from '../support/fake-upstream.js';
import { waitFor } from '../support/wait-for.js';
import { API_KEY, clientFor, startInFrontOf, storedMessages } from './harness.js';

let upstream: FakeUpstream;
let contextd: ContextdProcess;
let conversationNo = 0;
const newConversation = (): string => `responses-${process.pid}-${++conversationNo}`;

beforeAll(async () => {
  await ensureBuilt();
  upstream = await startFakeUpstream();
  contextd = await startInFrontOf(upstream, { defaults: { summary: { enabled: false } } });
});
beforeEach(() => upstream.reset());
afterAll(async () => {
  await stopAll();
  await upstream.close();
});

type Item = Record<string, unknown>;
/** The `input` items the upstream received on its n-th Responses request. */
const receivedInput = (n: number): Item[] => (upstream.responsesRequests()[n]!.json as { input: Item[] }).input;
const roles = (items: readonly Item[]): string[] => items.map((item) => (item.type === 'message' || item.type === undefined ? String(item.role) : String(item.type)));

async function storedWhen(conversation: string, count: number) {
  let rows: Awaited<ReturnType<typeof storedMessages>> = [];
  await waitFor(async () => (rows = await storedMessages(contextd, conversation)).length === count, { message: `${count} stored messages` });
  return rows;
}

describe('memory on POST /v1/responses', () => {
  test('each turn sends only its new input; the history goes upstream as items; instructions are sent every turn and never stored', async () => {
    const conversation = newConversation();
    const client = clientFor(contextd, conversation);
    const first = await client.responses.create({ model: 'gpt-4.1-mini', instructions: 'Be brief.', input: 'My name is Ada.' });
    expect(first.output_text).toBe('echo: My name is Ada.');
    const { data: second, response } = await client.responses.create({ model: 'gpt-4.1-mini', instructions: 'Be brief.', input: 'What is my name?' }).withResponse();
    expect(second.output_text).toBe('echo: What is my name?');
    expect(response.headers.get('x-contextd-history-messages')).toBe('2');
    expect(Number(response.headers.get('x-contextd-context-tokens'))).toBeGreaterThan(0);
    expect(response.headers.get('x-contextd-cache')).not.toBeNull();

    const sent = upstream.responsesRequests()[1]!.json as { instructions: string; input: Item[] };
    expect(sent.instructions).toBe('Be brief.');
    expect(sent.input).toEqual([
      { type: 'message', role: 'user', content: 'My name is Ada.' },
      { type: 'message', role: 'assistant', content: [{ type: 'output_text', text: 'echo: My name is Ada.' }] },
      { role: 'user', content: 'What is my name?' },
    ]);
    const rows = await storedWhen(conversation, 4);
    expect(rows.map((row) => [row.message.role, row.message.content])).toEqual([
      ['user', 'My name is Ada.'],
      ['assistant', 'echo: My name is Ada.'],
      ['user', 'What is my name?'],
      ['assistant', 'echo: What is my name?'],
    ]);
  });

  test('streaming (responses.stream): relayed as it came, the reply rebuilt from the events and stored', async () => {
    const conversation = newConversation();
    const client = clientFor(contextd, conversation);
    upstream.enqueue({ kind: 'text', content: 'streamed answer', chunkCount: 4 });
    const stream = client.responses.stream({ model: 'gpt-4.1-mini', input: 'stream please' });
    const deltas: string[] = [];
    stream.on('response.output_text.delta', (event) => deltas.push(event.delta));
    const final = await stream.finalResponse();
    expect(final.output_text).toBe('streamed answer');
    expect(deltas.join('')).toBe('streamed answer');
    const rows = await storedWhen(conversation, 2);
    expect(rows[1]!.message).toMatchObject({ role: 'assistant', content: 'streamed answer' });
    await client.responses.create({ model: 'gpt-4.1-mini', input: 'next' });
    expect(roles(receivedInput(1))).toEqual(['user', 'assistant', 'user']);
  });

  test('a tool loop re-sending its own items (as the Agents SDK does): call and output stay paired, every item is stored once', async () => {
    const conversation = newConversation();
    const client = clientFor(contextd, conversation);
    const tools = [{ type: 'function' as const, name: 'weather', description: 'the weather', parameters: { type: 'object', properties: { city: { type: 'string' } } }, strict: false }];
    upstream.enqueue({ kind: 'tool_calls', toolCalls: [{ id: 'call_w1', name: 'weather', arguments: { city: 'Oslo' } }] }, { kind: 'text', content: 'It rains in Oslo.' });
    const input: Item[] = [{ role: 'user', content: 'Weather in Oslo?' }];
    const first = await client.responses.create({ model: 'gpt-4.1-mini', input: input as never, tools });
    const call = first.output.find((item) => item.type === 'function_call')!;
    expect(call).toMatchObject({ type: 'function_call', call_id: 'call_w1', name: 'weather' });
    // The run's items so far, then the tool's output: the SDK sends them all again.
    input.push(...(first.output as unknown as Item[]), { type: 'function_call_output', call_id: 'call_w1', output: 'rain' });
    const second = await client.responses.create({ model: 'gpt-4.1-mini', input: input as never, tools });
    expect(second.output_text).toBe('It rains in Oslo.');
    // The upstream saw the call and its output once each, in order.
    expect(roles(receivedInput(1))).toEqual(['user', 'function_call', 'function_call_output']);
    expect(upstream.toolRuleViolations).toEqual([]);

    const rows = await storedWhen(conversation, 4);
    expect(rows.map((row) => row.message.role)).toEqual(['user', 'assistant', 'tool', 'assistant']);
    expect(rows[1]!.message).toMatchObject({ tool_calls: [{ id: 'call_w1', type: 'function', function: { name: 'weather', arguments: '{"city":"Oslo"}' } }] });
    expect(rows[2]!.message).toMatchObject({ role: 'tool', tool_call_id: 'call_w1', content: 'rain' });
  });

  test('another API key with the same conversation id sees nothing of the first one, on either API', async () => {
    const conversation = newConversation();
    await clientFor(contextd, conversation).responses.create({ model: 'gpt-4.1-mini', input: 'secret: 4711' });
    await storedWhen(conversation, 2);
    const other = clientFor(contextd, conversation, 'sk-other-tenant-0123456789abcdefghij');
    await other.responses.create({ model: 'gpt-4.1-mini', input: 'what was the secret?' });
    expect(receivedInput(1)).toEqual([{ role: 'user', content: 'what was the secret?' }]);
    await other.chat.completions.create({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'and now?' }] });
    const messages = (upstream.chatRequests().at(-1)!.json as { messages: { content: unknown }[] }).messages;
    expect(JSON.stringify(messages)).not.toContain('4711');
    expect(await storedMessages(contextd, conversation)).toHaveLength(2);
  });

  test("previous_response_id with the conversation header is a 400 naming it, and nothing goes upstream", async () => {
    const client = clientFor(contextd, newConversation());
    const error = await client.responses.create({ model: 'gpt-4.1-mini', input: 'hi', previous_response_id: 'resp_abc' }).catch((e: unknown) => e);
    expect(error).toMatchObject({ status: 400, code: 'conversation_state_conflict', param: 'previous_response_id' });
    expect(upstream.responsesRequests()).toEqual([]);
  });

  test('a malformed item is a 400 naming it, in OpenAI shape', async () => {
    const response = await fetch(`${contextd.baseURL}/responses`, {
      method: 'POST',
      headers: { authorization: `Bearer ${API_KEY}`, 'content-type': 'application/json', 'x-conversation-id': newConversation() },
      body: JSON.stringify({ model: 'gpt-4.1-mini', input: [{ role: 'user', content: 'hi' }, { type: 'function_call_output', output: 'x' }] }),
    });
    expect(response.status).toBe(400);
    expect(await response.json()).toMatchObject({ error: { type: 'invalid_request_error', code: 'missing_required_parameter', param: 'input[1].call_id' } });
  });

  test('a failed response (response.failed) is relayed and nothing is stored', async () => {
    const conversation = newConversation();
    upstream.enqueue({ kind: 'response_failed', partialContent: 'half' });
    const final = await clientFor(contextd, conversation).responses.stream({ model: 'gpt-4.1-mini', input: 'fail please' }).finalResponse();
    expect(final.status).toBe('failed');
    await contextd.waitForLog((line) => line.msg === 'request' && line.conversation === conversation && line.stored === 'not_stored');
    expect(await storedMessages(contextd, conversation)).toEqual([]);
  });
});

describe('one conversation, either API', () => {
  test('begun on chat completions with a tool call, continued on the Responses API, and back', async () => {
    const conversation = newConversation();
    const client = clientFor(contextd, conversation);
    upstream.enqueue({ kind: 'tool_calls', toolCalls: [{ id: 'call_c1', name: 'lookup', arguments: { q: 'x' } }] });
    const chat = await client.chat.completions.create({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'look x up' }] });
    await client.chat.completions.create({
      model: 'gpt-4o-mini',
      messages: [chat.choices[0]!.message, { role: 'tool', tool_call_id: 'call_c1', content: 'x is 42' }],
    });
    await storedWhen(conversation, 4);

    // The Responses API sees that history as items: the call and its output paired.
    await client.responses.create({ model: 'gpt-4.1-mini', input: 'and y?' });
    expect(receivedInput(0)).toEqual([
      { type: 'message', role: 'user', content: 'look x up' },
      { type: 'function_call', call_id: 'call_c1', name: 'lookup', arguments: '{"q":"x"}' },
      { type: 'function_call_output', call_id: 'call_c1', output: 'x is 42' },
      { type: 'message', role: 'assistant', content: [{ type: 'output_text', text: 'echo: look x up' }] },
      { role: 'user', content: 'and y?' },
    ]);
    await storedWhen(conversation, 6);

    // And chat completions sees the Responses turn as messages.
    await client.chat.completions.create({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'thanks' }] });
    const messages = (upstream.chatRequests().at(-1)!.json as { messages: { role: string; content: unknown }[] }).messages;
    expect(messages.map((m) => m.role)).toEqual(['user', 'assistant', 'tool', 'assistant', 'user', 'assistant', 'user']);
    expect(messages[5]).toMatchObject({ role: 'assistant', content: 'echo: and y?' });
    await storedWhen(conversation, 8);
  });
});
