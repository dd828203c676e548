// Issue 12: bad input gets a clear 400 in OpenAI's shape naming the parameter,
// never a 500 and never a hang; nothing of it reaches the upstream or the
// store, and the process goes on serving. Each bad body is sent on a sentinel
// conversation, whose stored history must come through unchanged.
import { afterAll, beforeAll, beforeEach, expect, test } from 'vitest';
import { ensureBuilt, startContextd, stopAll, type ContextdProcess } from '../support/contextd-process.js';
import { startFakeUpstream, type FakeUpstream } from '../support/fake-upstream.js';
import { waitFor } from '../support/wait-for.js';
import { API_KEY, contextdConfig, storedMessages } from './harness.js';

let upstream: FakeUpstream;
let contextd: ContextdProcess;
const SENTINEL = `hostile-sentinel-${process.pid}`;
let sentinelRows: string;
let conversationNo = 0;
const newConversation = (): string => `hostile-${process.pid}-${++conversationNo}`;

/** JSON text nested `levels` deep: `{"a":{"a":…1…}}`. */
const deepObject = (levels: number): string => `${'{"a":'.repeat(levels)}1${'}'.repeat(levels)}`;
/** JSON text nested `levels` deep: `[[…]]`. */
const deepArray = (levels: number): string => `${'['.repeat(levels)}${']'.repeat(levels)}`;

async function chat(body: string | Record<string, unknown>, conversation = SENTINEL): Promise<{ status: number; json: unknown; headers: Headers }> {
  const res = await fetch(`${contextd.baseURL}/chat/completions`, {
    method: 'POST',
    headers: { authorization: `Bearer ${API_KEY}`, 'content-type': 'application/json', 'x-conversation-id': conversation },
    body: typeof body === 'string' ? body : JSON.stringify(body),
    signal: AbortSignal.timeout(10_000), // never a hang
  });
  return { status: res.status, json: await res.json(), headers: res.headers };
}

beforeAll(async () => {
  await ensureBuilt();
  upstream = await startFakeUpstream();
  contextd = await startContextd({ config: contextdConfig(upstream, { defaults: { summary: { enabled: false } } }) });
  // The sentinel holds one stored turn, with a tool exchange, before any bad body is sent.
  upstream.enqueue({ kind: 'tool_calls', toolCalls: [{ id: 'call_sentinel', name: 'lookup', arguments: { q: 'sentinel' } }] });
  expect((await chat({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'look up the sentinel' }] })).status).toBe(200);
  await waitFor(async () => (await storedMessages(contextd, SENTINEL)).length === 2, { message: 'the sentinel turn stored' });
  sentinelRows = JSON.stringify(await storedMessages(contextd, SENTINEL));
});
beforeEach(() => upstream.reset());
afterAll(async () => {
  await stopAll();
  await upstream.close();
});

/** The process still answers, stores a good turn, and the sentinel's history is as it was. */
async function expectServingAndSentinelIntact(): Promise<void> {
  const conversation = newConversation();
  const ok = await chat({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'still there?' }] }, conversation);
  expect(ok.status).toBe(200);
  // Turns are stored in order, so once this one is, anything a bad request had queued would be too.
  await waitFor(async () => (await storedMessages(contextd, conversation)).length === 2, { message: 'the good turn stored' });
  expect(JSON.stringify(await storedMessages(contextd, SENTINEL))).toBe(sentinelRows);
}

const user = (content: unknown): Record<string, unknown> => ({ role: 'user', content });
const callMessage = (toolCalls: unknown): Record<string, unknown> => ({ role: 'assistant', content: null, tool_calls: toolCalls });

test.each([
  { name: 'content as an object', messages: [user({ text: 'hi' })], param: 'messages[0].content', code: 'invalid_type' },
  { name: 'content as a number', messages: [{ role: 'system', content: 'be brief' }, user('a'), user(42)], param: 'messages[2].content', code: 'invalid_type' },
  { name: 'content as a boolean', messages: [user(true)], param: 'messages[0].content', code: 'invalid_type' },
  { name: 'a null content part', messages: [user([{ type: 'text', text: 'hi' }, null])], param: 'messages[0].content[1]', code: 'invalid_type' },
  { name: 'a text part without text', messages: [user([{ type: 'text' }])], param: 'messages[0].content[0].text', code: 'missing_required_parameter' },
  { name: 'an image part whose url is a number', messages: [user([{ type: 'image_url', image_url: { url: 7 } }])], param: 'messages[0].content[0].image_url.url', code: 'invalid_type' },
  { name: 'tool_calls: [null]', messages: [user('q'), callMessage([null])], param: 'messages[1].tool_calls[0]', code: 'invalid_type' },
  { name: 'tool_calls as an object', messages: [user('q'), callMessage({ id: 'call_1' })], param: 'messages[1].tool_calls', code: 'invalid_type' },
  { name: 'a tool call without function', messages: [user('q'), callMessage([{ id: 'call_1', type: 'function' }])], param: 'messages[1].tool_calls[0].function', code: 'missing_required_parameter' },
  { name: 'a tool call with function: null', messages: [user('q'), callMessage([{ id: 'call_1', type: 'function', function: null }])], param: 'messages[1].tool_calls[0].function', code: 'invalid_type' },
  { name: 'arguments as an object', messages: [user('q'), callMessage([{ id: 'call_1', type: 'function', function: { name: 'f', arguments: { q: 1 } } }])], param: 'messages[1].tool_calls[0].function.arguments', code: 'invalid_type' },
  { name: 'a tool call without id', messages: [user('q'), callMessage([{ type: 'function', function: { name: 'f', arguments: '{}' } }])], param: 'messages[1].tool_calls[0].id', code: 'missing_required_parameter' },
  { name: 'a tool message without tool_call_id', messages: [{ role: 'tool', content: 'r' }], param: 'messages[0].tool_call_id', code: 'missing_required_parameter' },
  { name: 'name as a number', messages: [{ role: 'user', content: 'hi', name: 5 }], param: 'messages[0].name', code: 'invalid_type' },
  { name: 'function_call without arguments', messages: [user('q'), { role: 'assistant', content: null, function_call: { name: 'f' } }], param: 'messages[1].function_call.arguments', code: 'missing_required_parameter' },
  { name: 'a message without role', messages: [{ content: 'hi' }], param: 'messages[0].role', code: 'missing_required_parameter' },
])('$name → 400 naming $param; nothing goes upstream, nothing is stored', async ({ messages, param, code }) => {
  const res = await chat({ model: 'gpt-4o-mini', messages });
  expect(res.status).toBe(400);
  expect(res.json).toEqual({ error: { message: expect.any(String) as string, type: 'invalid_request_error', param, code } });
  expect(upstream.chatRequests()).toHaveLength(0);
  await expectServingAndSentinelIntact();
});

test.each([
  { name: 'in a message (content parts 10,000 deep)', body: `{"model":"gpt-4o-mini","messages":[{"role":"user","content":${deepArray(10_000)}}]}`, param: 'messages[0].content' },
  { name: 'in metadata (10,000 objects deep)', body: `{"model":"gpt-4o-mini","metadata":${deepObject(10_000)},"messages":[{"role":"user","content":"hi"}]}`, param: 'metadata.a.a' },
  {
    name: 'in tool-call arguments sent as an object (10,000 deep)',
    body: `{"model":"gpt-4o-mini","messages":[{"role":"user","content":"q"},{"role":"assistant","tool_calls":[{"id":"c","type":"function","function":{"name":"f","arguments":${deepObject(10_000)}}}]}]}`,
    param: 'messages[1].tool_calls',
  },
  { name: 'in an unknown field (10,000 deep)', body: `{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}],"x_vendor":${deepArray(10_000)}}`, param: 'x_vendor[0][0]' },
  { name: 'one level over the limit (129)', body: `{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}],"metadata":${deepObject(128)}}`, param: 'metadata.a.a' },
])('JSON nested too deep $name → 400 naming $param; the process keeps serving', async ({ body, param }) => {
  const res = await chat(body);
  expect(res.status).toBe(400);
  expect(res.json).toEqual({ error: { message: expect.stringContaining('128') as string, type: 'invalid_request_error', param, code: 'nesting_above_max_depth' } });
  expect(upstream.chatRequests()).toHaveLength(0);
  await expectServingAndSentinelIntact();
});

test('nesting up to the limit (128 levels) goes through', async () => {
  const body = `{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}],"metadata":${deepObject(127)}}`;
  const res = await chat(body, newConversation());
  expect(res.status).toBe(200);
  expect(upstream.chatRequests()[0]!.rawBody.toString()).toContain(deepObject(127));
});

test('tool-call arguments holding JSON 10,000 levels deep are a string like any other: forwarded, stored, and recognised when re-sent', async () => {
  const conversation = newConversation();
  const deepArguments = `{"q":${deepArray(10_000)}}`;
  // The model's reply carries them (no parse-time check sees a reply), then the client re-sends its whole history.
  upstream.enqueue({ kind: 'tool_calls', toolCalls: [{ id: 'call_deep', name: 'lookup', arguments: deepArguments }] });
  const first = await chat({ model: 'gpt-4o-mini', messages: [user('look it up')] }, conversation);
  expect(first.status).toBe(200);
  const reply = (first.json as { choices: { message: Record<string, unknown> }[] }).choices[0]!.message;
  await waitFor(async () => (await storedMessages(contextd, conversation)).length === 2, { message: 'the first turn stored' });

  const history = [user('look it up'), reply, { role: 'tool', tool_call_id: 'call_deep', content: 'found' }];
  const second = await chat({ model: 'gpt-4o-mini', messages: history }, conversation);
  expect(second.status).toBe(200);
  expect(second.headers.get('x-contextd-memory')).not.toBe('bypassed');
  // The budget may leave the first user message out; the call and its result go together.
  const sent = upstream.chatRequests()[1]!.json as { messages: { role: string; tool_calls?: { function: { arguments: string } }[] }[] };
  expect(sent.messages.slice(-2).map((m) => m.role)).toEqual(['assistant', 'tool']);
  expect(sent.messages.at(-2)!.tool_calls![0]!.function.arguments).toBe(deepArguments);
  // The re-sent assistant message is the stored one (same digest): stored once, then the tool result and the reply.
  await waitFor(async () => (await storedMessages(contextd, conversation)).length === 4, { message: 'the second turn stored' });
  const rows = await storedMessages(contextd, conversation);
  expect(rows.map((row) => row.message.role)).toEqual(['user', 'assistant', 'tool', 'assistant']);
  await expectServingAndSentinelIntact();
});
