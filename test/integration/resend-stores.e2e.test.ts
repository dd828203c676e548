// Re-sent history is stored once, every time, on every store: the embedded
// one, Redis, MongoDB and Redis + MongoDB. The client rebuilds its history
// from its own objects (arguments re-serialised, text as parts, null fields),
// re-sends more than the store still holds, or moves on from a tool call it
// never answered; every prompt stays one OpenAI accepts (the fake upstream
// refuses any other with a 400, as OpenAI does).
import type OpenAI from 'openai';
import { afterAll, beforeAll, beforeEach, describe, expect, test } from 'vitest';
import { UNANSWERED_CALL_RESULT } from '../../src/context/unanswered-calls.js';
import { expectStoredOnce, expectValidPrompt, promptOf } from '../support/compat-checks.js';
import { ensureBuilt, startContextd, stopAll, type ContextdProcess } from '../support/contextd-process.js';
import { startFakeUpstream, type FakeUpstream } from '../support/fake-upstream.js';
import { startMongo, type MongoServer } from '../support/mongo-server.js';
import { startRedis, type RedisServer } from '../support/redis-server.js';
import { serviceAvailability, servicesRequired } from '../support/services.js';
import { waitFor } from '../support/wait-for.js';
import { clientFor, contextdConfig, storedMessages, type StoredRow } from './harness.js';

type Message = OpenAI.ChatCompletionMessageParam;
const available = serviceAvailability();

let upstream: FakeUpstream;
let redisServer: RedisServer | undefined;
let mongoServer: MongoServer | undefined;
let conversationNo = 0;
const newConversation = (): string => `resend-${process.pid}-${++conversationNo}`;

beforeAll(async () => {
  await ensureBuilt();
  upstream = await startFakeUpstream();
  [redisServer, mongoServer] = await Promise.all([
    hasRedis ? startRedis() : undefined,
    hasMongo ? startMongo() : undefined,
  ]);
}, 120_000);
beforeEach(() => upstream.reset());
afterAll(async () => {
  await stopAll();
  await Promise.allSettled([upstream?.close(), redisServer?.stop(), mongoServer?.stop()]);
});

// Each store keeps only the newest 6 messages where it can trim (embedded, Redis), so re-sent history outgrows it.
// With CI set a missing server is a failure (the servers fail to start), never a skip.
const hasRedis = available.redis.isAvailable || servicesRequired;
const hasMongo = available.mongo.isAvailable || servicesRequired;
const stores: { name: string; isAvailable: boolean; storage: () => Record<string, unknown> }[] = [
  { name: 'the embedded store', isAvailable: true, storage: () => ({ memory: { max_messages_per_conversation: 6 } }) },
  { name: 'Redis', isAvailable: hasRedis, storage: () => ({ redis: { url: redisServer!.url, max_cached_messages: 6 } }) },
  { name: 'MongoDB', isAvailable: hasMongo, storage: () => ({ mongodb: { url: mongoServer!.url, database: `${mongoServer!.database}_m`, timeout: '5s' } }) },
  {
    name: 'Redis + MongoDB',
    isAvailable: hasRedis && hasMongo,
    storage: () => ({ redis: { url: redisServer!.url, max_cached_messages: 6 }, mongodb: { url: mongoServer!.url, database: `${mongoServer!.database}_rm`, timeout: '5s' } }),
  },
];

const lookup = { id: 'call_lookup_5', name: 'lookup', arguments: '{"q":"item 5","fields":["price","stock"]}' };

describe.each(stores)('on $name', ({ isAvailable, storage }) => {
  let contextd: ContextdProcess;
  beforeAll(async () => {
    if (!isAvailable) return;
    contextd = await startContextd({
      config: contextdConfig(upstream, { storage: storage(), defaults: { budget: { max_context_tokens: 2000 }, summary: { enabled: false } } }),
    });
  }, 60_000);

  /** The stored rows once the newest is `lastContent` (the last turn is in). */
  async function storedThrough(conversation: string, lastContent: string): Promise<StoredRow[]> {
    let rows: StoredRow[] = [];
    await waitFor(async () => (rows = await storedMessages(contextd, conversation)).at(-1)?.message.content === lastContent, {
      timeoutMs: 10_000,
      message: `stored through "${lastContent}"`,
    });
    return rows;
  }

  test.skipIf(!isAvailable)('a tool exchange re-sent as LangChain serialises it is stored once', async () => {
    const conversation = newConversation();
    const client = clientFor(contextd, conversation);
    const history: Message[] = [{ role: 'system', content: 'pinned' }, { role: 'user', content: 'Is item 5 in stock?' }];
    upstream.enqueue({ kind: 'tool_calls', toolCalls: [lookup] });
    const first = await client.chat.completions.create({ model: 'gpt-4o-mini', messages: history });
    const call = first.choices[0]!.message;
    // The app's own copy: arguments with other whitespace and key order, content '' for null.
    history.push({
      role: 'assistant',
      content: '',
      tool_calls: call.tool_calls!.map((c) => ({ id: c.id, type: 'function' as const, function: { name: lookup.name, arguments: '{"fields": ["price", "stock"], "q": "item 5"}' } })),
    });
    history.push({ role: 'tool', tool_call_id: lookup.id, content: [{ type: 'text', text: 'item 5: 3 in stock, 12 euros' }] });
    const second = await client.chat.completions.create({ model: 'gpt-4o-mini', messages: history });
    history.push({ role: 'assistant', content: second.choices[0]!.message.content, refusal: null } as Message);
    history.push({ role: 'user', content: 'And the price?' });
    await client.chat.completions.create({ model: 'gpt-4o-mini', messages: history });

    for (const request of upstream.chatRequests()) expectValidPrompt(request, { instructions: ['pinned'] });
    const third = promptOf(upstream.chatRequests()[2]!);
    expect(third.filter((m) => m.tool_calls !== undefined)).toHaveLength(1);
    const rows = await storedThrough(conversation, 'echo: And the price?');
    expectStoredOnce(rows);
    expect(rows.map((row) => row.message.role)).toEqual(['user', 'assistant', 'tool', 'assistant', 'user', 'assistant']);
  });

  test.skipIf(!isAvailable)('a whole history re-sent as text parts, longer than the store holds, is stored once', async () => {
    const conversation = newConversation();
    const client = clientFor(contextd, conversation);
    const history: Message[] = [];
    for (let turn = 1; turn <= 6; turn++) {
      history.push({ role: 'user', content: [{ type: 'text', text: `question ${turn}` }] });
      const reply = await client.chat.completions.create({ model: 'gpt-4o-mini', messages: history });
      history.push({ role: 'assistant', content: [{ type: 'text', text: reply.choices[0]!.message.content! }] } as Message);
    }
    for (const request of upstream.chatRequests()) expectValidPrompt(request);
    // Each request sent the stored window plus the one new question: never a re-sent copy on top.
    const last = promptOf(upstream.chatRequests()[5]!);
    expect(last.filter((m) => m.role === 'user' && JSON.stringify(m.content).includes('question 5'))).toHaveLength(1);
    const rows = await storedThrough(conversation, 'echo: question 6');
    expectStoredOnce(rows);
    // Where the store trims (embedded, Redis alone) it holds the newest 6; each message once either way.
    expect(rows.map((row) => row.seq)).toEqual(Array.from({ length: rows.length }, (_, i) => 13 - rows.length + i));
  });

  test.skipIf(!isAvailable)('a new message after a tool call nobody answered: the call is answered as such, and the prompt is valid', async () => {
    const conversation = newConversation();
    const client = clientFor(contextd, conversation);
    upstream.enqueue({ kind: 'tool_calls', toolCalls: [{ id: 'call_abandoned', name: 'lookup', arguments: '{}' }] });
    await client.chat.completions.create({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'look it up' }] });
    await client.chat.completions.create({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'never mind, something else' }] });
    const prompt = expectValidPrompt(upstream.chatRequests()[1]!);
    expect(prompt.find((m) => m.role === 'tool')).toEqual({ role: 'tool', tool_call_id: 'call_abandoned', content: UNANSWERED_CALL_RESULT });
    const rows = await storedThrough(conversation, 'echo: never mind, something else');
    expectStoredOnce(rows);
    expect(rows.map((row) => row.message.role)).toEqual(['user', 'assistant', 'tool', 'user', 'assistant']);
  });
});
