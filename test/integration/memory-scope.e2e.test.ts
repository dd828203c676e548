// Nothing is silent: the conversation header on a path without memory says so
// (x-contextd-memory: unsupported, and a metric); the header never goes
// upstream; the conversation API says what its store no longer holds.
import { afterAll, beforeAll, beforeEach, describe, expect, test } from 'vitest';
import { expectStoredOnce } from '../support/compat-checks.js';
import { ensureBuilt, startContextd, stopAll, type ContextdProcess } from '../support/contextd-process.js';
import { startFakeUpstream, type FakeUpstream } from '../support/fake-upstream.js';
import { waitFor } from '../support/wait-for.js';
import { API_KEY, clientFor, contextdConfig, storedMessages } from './harness.js';

let upstream: FakeUpstream;
let contextd: ContextdProcess;
let conversationNo = 0;
const newConversation = (): string => `scope-${process.pid}-${++conversationNo}`;

beforeAll(async () => {
  await ensureBuilt();
  upstream = await startFakeUpstream();
  contextd = await startContextd({
    config: contextdConfig(upstream, {
      storage: { memory: { max_messages_per_conversation: 6 } },
      defaults: { summary: { enabled: false } },
    }),
  });
});
beforeEach(() => upstream.reset());
afterAll(async () => {
  await stopAll();
  await upstream.close();
});

async function metric(name: string, labels: string): Promise<number> {
  const text = await (await fetch(`${contextd.url}/metrics`)).text();
  const line = text.split('\n').find((l) => l.startsWith(`${name}{${labels}}`));
  return line === undefined ? 0 : Number(line.split(' ').at(-1));
}

test.each([
  { name: 'embeddings', method: 'POST', path: '/v1/embeddings', body: { model: 'text-embedding-3-small', input: 'hi' } },
  { name: "retrieving a stored response (the Responses API's other paths)", method: 'GET', path: '/v1/responses/resp_123', body: undefined },
  { name: 'listing models', method: 'GET', path: '/v1/models', body: undefined },
  { name: 'listing stored chat completions', method: 'GET', path: '/v1/chat/completions?limit=2', body: undefined },
])('the conversation header on $name: passed through, flagged unsupported, counted; the header stays here', async ({ method, path, body }) => {
  const before = await metric('contextd_memory_skipped_total', 'reason="unsupported_path"');
  const res = await fetch(`${contextd.url}${path}`, {
    method,
    headers: { authorization: `Bearer ${API_KEY}`, 'content-type': 'application/json', 'x-conversation-id': newConversation() },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  expect(res.status).toBe(200);
  expect(res.headers.get('x-contextd-memory')).toBe('unsupported');
  await upstream.waitForRequests(1);
  const received = upstream.requests[0]!;
  expect(received.url).toBe(path);
  expect(received.headers['x-conversation-id']).toBeUndefined();
  expect(received.headers.authorization).toBe(`Bearer ${API_KEY}`);
  // Metrics are written when the request has ended, which the client may see first.
  await waitFor(async () => (await metric('contextd_memory_skipped_total', 'reason="unsupported_path"')) > before, { message: 'the skip counted' });
  expect(await metric('contextd_memory_skipped_total', 'reason="unsupported_path"')).toBe(before + 1);
});

test('without the header nothing is flagged', async () => {
  const res = await fetch(`${contextd.url}/v1/models`, { headers: { authorization: `Bearer ${API_KEY}` } });
  expect(res.status).toBe(200);
  expect(res.headers.get('x-contextd-memory')).toBeNull();
});

test('the conversation header never reaches the upstream on the memory path either', async () => {
  await clientFor(contextd, newConversation()).chat.completions.create({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'hi' }] });
  expect(upstream.chatRequests()[0]!.headers['x-conversation-id']).toBeUndefined();
});

test.each([
  { name: 'a tool result after a user message', messages: [{ role: 'user', content: 'hi' }, { role: 'tool', tool_call_id: 'call_nowhere', content: 'an answer to no call' }] },
  { name: 'a result for a call the store never held', messages: [{ role: 'tool', tool_call_id: 'call_unknown', content: 'an answer to no stored call' }] },
])("a request whose own tool messages break the rules ($name) goes as it came: the upstream's 400 is the answer, nothing is stored", async ({ messages }) => {
  const conversation = newConversation();
  const before = await metric('contextd_memory_skipped_total', 'reason="invalid_tool_sequence"');
  const res = await fetch(`${contextd.baseURL}/chat/completions`, {
    method: 'POST',
    headers: { authorization: `Bearer ${API_KEY}`, 'content-type': 'application/json', 'x-conversation-id': conversation },
    body: JSON.stringify({ model: 'gpt-4o-mini', messages }),
  });
  expect(res.status).toBe(400);
  expect(res.headers.get('x-contextd-memory')).toBe('bypassed');
  expect(((await res.json()) as { error: { param: string } }).error.param).toBe('messages');
  expect((upstream.chatRequests()[0]!.json as { messages: unknown[] }).messages).toEqual(messages);
  const log = await contextd.waitForLog((line) => line.msg === 'request' && line.conversation === conversation);
  expect(log).toMatchObject({ stored: 'not_stored', memory: 'bypassed' });
  expect(await metric('contextd_memory_skipped_total', 'reason="invalid_tool_sequence"')).toBe(before + 1);
  const listing = await fetch(`${contextd.url}/contextd/v1/conversations/${conversation}/messages`, { headers: { authorization: `Bearer ${API_KEY}` } });
  expect(listing.status).toBe(404);
});

describe('in front of a lenient upstream that accepts prompts OpenAI refuses', () => {
  let lenient: FakeUpstream;
  let proxy: ContextdProcess;
  beforeAll(async () => {
    lenient = await startFakeUpstream({ enforceToolRules: false });
    proxy = await startContextd({ config: contextdConfig(lenient, { defaults: { summary: { enabled: false } } }) });
  });
  afterAll(async () => {
    await proxy.stop();
    await lenient.close();
  });

  test('a request that breaks the rules still goes as it came, and its turn is stored only where the stored state stays valid', async () => {
    const conversation = newConversation();
    const client = clientFor(proxy, conversation);
    lenient.enqueue({ kind: 'tool_calls', toolCalls: [{ id: 'call_dropped', name: 'lookup', arguments: '{}' }] });
    const first = await client.chat.completions.create({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'look it up' }] });
    // The app keeps its whole history, with the call it never answered, and goes on: OpenAI would refuse this.
    const own = [{ role: 'user' as const, content: 'look it up' }, first.choices[0]!.message, { role: 'user' as const, content: 'forget it; hello' }];
    const { response } = await client.chat.completions.create({ model: 'gpt-4o-mini', messages: own }).withResponse();
    expect(response.headers.get('x-contextd-memory')).toBe('bypassed');
    expect((lenient.chatRequests()[1]!.json as { messages: { role: string }[] }).messages.map((m) => m.role)).toEqual(['user', 'assistant', 'user']);
    // Stored as a state OpenAI accepts: the abandoned call answered as such, the turn once.
    let rows: Awaited<ReturnType<typeof storedMessages>> = [];
    await waitFor(async () => (rows = await storedMessages(proxy, conversation)).length === 5, { message: 'the second turn stored' });
    expectStoredOnce(rows);
    expect(rows.map((row) => row.message.role)).toEqual(['user', 'assistant', 'tool', 'user', 'assistant']);

    // A result for a call nobody made: forwarded, answered by the lenient upstream, never stored.
    const orphan = await fetch(`${proxy.baseURL}/chat/completions`, {
      method: 'POST',
      headers: { authorization: `Bearer ${API_KEY}`, 'content-type': 'application/json', 'x-conversation-id': conversation },
      body: JSON.stringify({ model: 'gpt-4o-mini', messages: [{ role: 'tool', tool_call_id: 'call_never_made', content: 'r' }] }),
    });
    expect(orphan.status).toBe(200);
    const log = await proxy.waitForLog((line) => line.msg === 'request' && line.conversation === conversation && line.memory === 'bypassed' && line.stored === 'not_stored');
    expect(String(log.notStoredReason)).toMatch(/tool messages/);
    expect(await storedMessages(proxy, conversation)).toHaveLength(5);
  });

  test('a reply whose shape a request may not carry is relayed as it came and not stored', async () => {
    const conversation = newConversation();
    // Content parts with a null among them: OpenAI's request schema refuses that in history.
    const reply = {
      id: 'chatcmpl-odd',
      object: 'chat.completion',
      created: 1,
      model: 'gpt-4o-mini',
      choices: [{ index: 0, finish_reason: 'stop', message: { role: 'assistant', content: [{ type: 'text', text: 'odd' }, null] } }],
    };
    lenient.enqueue({ kind: 'raw', headers: { 'content-type': 'application/json' }, chunks: [JSON.stringify(reply)] });
    const response = await fetch(`${proxy.baseURL}/chat/completions`, {
      method: 'POST',
      headers: { authorization: `Bearer ${API_KEY}`, 'content-type': 'application/json', 'x-conversation-id': conversation },
      body: JSON.stringify({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'say something odd' }] }),
    });
    expect(response.status).toBe(200);
    expect(await response.json()).toEqual(reply);
    const log = await proxy.waitForLog((line) => line.msg === 'request' && line.conversation === conversation);
    expect(log).toMatchObject({ stored: 'not_stored' });
    expect(String(log.notStoredReason)).toMatch(/^reply: .*'reply\.content\[1\]'.*null/);
    // The next turn goes on without it, and is stored.
    const next = await clientFor(proxy, conversation).chat.completions.create({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'and now?' }] });
    expect(next.choices[0]!.message.content).toBeTypeOf('string');
    await waitFor(async () => (await storedMessages(proxy, conversation)).length === 2, { message: 'the next turn stored' });
  });
});

test('the listing says which earlier messages the store no longer holds', async () => {
  const conversation = newConversation();
  const client = clientFor(contextd, conversation);
  for (let turn = 1; turn <= 5; turn++) await client.chat.completions.create({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: `turn ${turn}` }] });
  type Listing = { data: { seq: number }[]; first_retained_seq: number; last_seq: number; earlier_not_retained: boolean; summary: unknown };
  const list = async (query = ''): Promise<Listing> =>
    (await (await fetch(`${contextd.url}/contextd/v1/conversations/${conversation}/messages${query}`, { headers: { authorization: `Bearer ${API_KEY}` } })).json()) as Listing;
  // The embedded store keeps the newest 6 of 10 messages (max_messages_per_conversation).
  let listing: Listing | undefined;
  await waitFor(async () => (listing = await list()).last_seq === 10, { message: 'all five turns stored' });
  expect(listing!.data.map((row) => row.seq)).toEqual([5, 6, 7, 8, 9, 10]);
  expect(listing).toMatchObject({ first_retained_seq: 5, last_seq: 10, earlier_not_retained: true, summary: null });
  // A later page says the same.
  expect(await list('?after=7')).toMatchObject({ first_retained_seq: 5, earlier_not_retained: true });
});
