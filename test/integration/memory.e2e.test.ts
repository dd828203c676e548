import type OpenAI from 'openai';
import { afterAll, beforeAll, beforeEach, describe, expect, test } from 'vitest';
import type { ChatMessage } from '../../src/domain.js';
import { tokenCounterFor } from '../../src/tokens/count-tokens.js';
import { ensureBuilt, stopAll, type ContextdProcess } from '../support/contextd-process.js';
import { startFakeUpstream, type FakeUpstream } from '../support/fake-upstream.js';
import { waitFor } from '../support/wait-for.js';
import { API_KEY, clientFor, startInFrontOf, storedMessages } from './harness.js';

const SYSTEM = { role: 'system' as const, content: 'You are a terse assistant. Answer in one line.' };
const BUDGET = 600;
const counter = tokenCounterFor('o200k_base');

/** The prompt as the model counts it: messages plus reply priming. */
function promptTokens(messages: readonly ChatMessage[]): number {
  return messages.reduce((sum, m) => sum + counter.countMessage(m), counter.replyPrimingTokens);
}

type Sent = { model: string; messages: ChatMessage[]; stream?: boolean };
const sentBody = (upstream: FakeUpstream, i: number): Sent => upstream.chatRequests()[i]!.json as Sent;

let upstream: FakeUpstream;
let contextd: ContextdProcess;
let conversationNo = 0;
const newConversation = (): string => `conv-${process.pid}-${++conversationNo}`;

beforeAll(async () => {
  await ensureBuilt();
  upstream = await startFakeUpstream();
  contextd = await startInFrontOf(upstream, {
    defaults: { budget: { max_context_tokens: BUDGET, summary_max_tokens: 100 } },
    routes: [{ name: 'roomy', match: { header: { 'x-route': 'roomy' } }, budget: { max_context_tokens: 100_000 } }],
  });
});
beforeEach(() => upstream.reset());
afterAll(async () => {
  await stopAll();
  await upstream.close();
});

describe('a client that sends only the new message', () => {
  test('40 turns: each request carries the pinned system message, recent history in order, within budget; every turn stored once', async () => {
    const conversation = newConversation();
    const client = clientFor(contextd, conversation);
    for (let turn = 1; turn <= 40; turn++) {
      const { data, response } = await client.chat.completions
        .create({ model: 'gpt-4o-mini', messages: [SYSTEM, { role: 'user', content: `question ${turn}: what is ${turn} squared?` }] })
        .withResponse();
      expect(data.choices[0]!.message.content).toBe(`echo: question ${turn}: what is ${turn} squared?`);

      const sent = sentBody(upstream, turn - 1).messages;
      expect(sent[0]).toEqual(SYSTEM);
      expect(sent.at(-1)).toEqual({ role: 'user', content: `question ${turn}: what is ${turn} squared?` });
      expect(sent.filter((m) => m.role === 'system')).toHaveLength(1);
      // History present and in order: user/assistant pairs of the previous turns, newest last.
      const history = sent.slice(1, -1);
      expect(history.length).toBe(Number(response.headers.get('x-contextd-history-messages')));
      if (turn > 1) {
        expect(history.length).toBeGreaterThanOrEqual(2);
        expect(history.at(-1)).toMatchObject({ role: 'assistant', content: `echo: question ${turn - 1}: what is ${turn - 1} squared?` });
        expect(history.at(-2)).toEqual({ role: 'user', content: `question ${turn - 1}: what is ${turn - 1} squared?` });
      }
      for (let i = 1; i < history.length; i++) expect(history[i]!.role).not.toBe(history[i - 1]!.role);
      const used = promptTokens(sent);
      expect(used).toBeLessThanOrEqual(BUDGET);
      expect(Number(response.headers.get('x-contextd-context-tokens'))).toBe(used);
      expect(response.headers.get('x-contextd-summary')).toBe('no');
      expect(response.headers.get('x-contextd-cache')).toBe(turn === 1 ? 'miss' : 'hit');
    }
    // The budget bound the late requests: not all 78 earlier messages fit.
    expect(sentBody(upstream, 39).messages.length).toBeLessThan(80);

    await waitFor(async () => (await storedMessages(contextd, conversation)).length === 80, { message: 'all 80 messages stored' });
    const stored = await storedMessages(contextd, conversation);
    expect(stored.map((r) => r.seq)).toEqual(Array.from({ length: 80 }, (_, i) => i + 1));
    expect(stored.filter((r) => r.message.role === 'system')).toHaveLength(0);
    expect(stored[78]!.message).toEqual({ role: 'user', content: 'question 40: what is 40 squared?' });
    expect(stored[79]!.message).toEqual({ role: 'assistant', content: 'echo: question 40: what is 40 squared?' });
    for (const row of stored) expect(row.tokens).toBeGreaterThanOrEqual(counter.countMessage(row.message as ChatMessage));
  });

  test.each([false, true])('a follow-up sent the moment a long reply ends sees it, although storing it takes a while (stream: %s)', async (stream) => {
    const conversation = newConversation();
    const client = clientFor(contextd, conversation);
    // 180,000 characters: counting the reply takes a dozen turns of the event loop after its last byte.
    const longReply = `${'lorem '.repeat(30_000)}end of reply`;
    upstream.enqueue({ kind: 'text', content: longReply, chunkCount: 4 });
    // The roomy route's budget holds the long reply in the follow-up's window.
    const roomy = { headers: { 'x-route': 'roomy' } };
    const first = client.chat.completions.create({ model: 'gpt-4o', messages: [{ role: 'user', content: 'say something long' }], stream }, roomy);
    if (stream) {
      let text = '';
      for await (const chunk of (await first) as AsyncIterable<OpenAI.ChatCompletionChunk>) text += chunk.choices[0]?.delta.content ?? '';
      expect(text).toBe(longReply);
    } else {
      expect(((await first) as OpenAI.ChatCompletion).choices[0]?.message.content).toBe(longReply);
    }
    const before = upstream.chatRequests().length;
    await client.chat.completions.create({ model: 'gpt-4o', messages: [{ role: 'user', content: 'and now?' }] }, roomy);

    const followUp = sentBody(upstream, before);
    expect(followUp.messages.map((m) => m.content)).toEqual(['say something long', longReply, 'and now?']);
  });

  test('a follow-up sent the moment a reply ends sees that turn', async () => {
    const conversation = newConversation();
    const client = clientFor(contextd, conversation);
    for (let turn = 1; turn <= 10; turn++) {
      await client.chat.completions.create({ model: 'gpt-4o', messages: [{ role: 'user', content: `fact ${turn}` }] });
      if (turn > 1) expect(sentBody(upstream, turn - 1).messages.slice(-3, -1).map((m) => m.content)).toEqual([`fact ${turn - 1}`, `echo: fact ${turn - 1}`]);
    }
  });
});

describe('a client that re-sends its whole history', () => {
  test('streaming: history is recognised, replaced by the stored window and never stored twice', async () => {
    const conversation = newConversation();
    const client = clientFor(contextd, conversation);
    const history: OpenAI.ChatCompletionMessageParam[] = [];
    for (let turn = 1; turn <= 12; turn++) {
      history.push({ role: 'user', content: `step ${turn}` });
      const stream = await client.chat.completions.create({ model: 'gpt-4o-mini', messages: [SYSTEM, ...history], stream: true });
      let text = '';
      for await (const chunk of stream) text += chunk.choices[0]?.delta.content ?? '';
      expect(text).toBe(`echo: step ${turn}`);

      const sent = sentBody(upstream, turn - 1);
      expect(sent.stream).toBe(true);
      expect(sent.messages[0]).toEqual(SYSTEM);
      // After the system message: the stored window, then the new message, i.e. the tail of the client's own history.
      expect(sent.messages.slice(1).map((m) => m.content)).toEqual(history.slice(-(sent.messages.length - 1)).map((m) => m.content));
      if (turn > 1) expect(sent.messages.length).toBeGreaterThan(2);
      expect(promptTokens(sent.messages)).toBeLessThanOrEqual(BUDGET);
      history.push({ role: 'assistant', content: text });
    }
    await waitFor(async () => (await storedMessages(contextd, conversation)).length === 24, { message: '24 messages stored' });
    const stored = await storedMessages(contextd, conversation);
    expect(stored.map((r) => r.message.content)).toEqual(history.map((m) => m.content));
  });

  test('the SDK message object of a reply (refusal: null, annotations) is recognised as the stored reply', async () => {
    const conversation = newConversation();
    const client = clientFor(contextd, conversation);
    const first = await client.chat.completions.create({ model: 'gpt-4o', messages: [{ role: 'user', content: 'hello' }] });
    const reply = first.choices[0]!.message;
    await client.chat.completions.create({ model: 'gpt-4o', messages: [{ role: 'user', content: 'hello' }, reply, { role: 'user', content: 'again' }] });
    await waitFor(async () => (await storedMessages(contextd, conversation)).length === 4, { message: '4 messages stored' });
    expect((await storedMessages(contextd, conversation)).map((r) => r.message.content)).toEqual(['hello', 'echo: hello', 'again', 'echo: again']);
  });
});

describe('tool calls', () => {
  test('streamed tool calls are rebuilt by index and stored; results travel with their call', async () => {
    const conversation = newConversation();
    const client = clientFor(contextd, conversation);
    const tools: OpenAI.ChatCompletionTool[] = [
      { type: 'function', function: { name: 'get_weather', description: 'Weather for a city', parameters: { type: 'object', properties: { city: { type: 'string' } } } } },
    ];
    upstream.enqueue({
      kind: 'tool_calls',
      chunkCount: 5,
      toolCalls: [
        { id: 'call_a', name: 'get_weather', arguments: { city: 'Paris', unit: 'celsius' } },
        { id: 'call_b', name: 'get_weather', arguments: { city: 'Lisbon', unit: 'celsius' } },
      ],
    });
    const stream = await client.chat.completions.create({ model: 'gpt-4o', tools, stream: true, messages: [{ role: 'user', content: 'Weather in Paris and Lisbon?' }] });
    for await (const chunk of stream) void chunk;

    await client.chat.completions.create({
      model: 'gpt-4o',
      tools,
      messages: [
        { role: 'tool', tool_call_id: 'call_a', content: '18C' },
        { role: 'tool', tool_call_id: 'call_b', content: '24C' },
      ],
    });
    const sent = sentBody(upstream, 1).messages;
    expect(sent.map((m) => m.role)).toEqual(['user', 'assistant', 'tool', 'tool']);
    expect(sent[1]!.tool_calls).toEqual([
      { id: 'call_a', type: 'function', function: { name: 'get_weather', arguments: JSON.stringify({ city: 'Paris', unit: 'celsius' }) } },
      { id: 'call_b', type: 'function', function: { name: 'get_weather', arguments: JSON.stringify({ city: 'Lisbon', unit: 'celsius' }) } },
    ]);

    await waitFor(async () => (await storedMessages(contextd, conversation)).length === 5, { message: '5 messages stored' });
    const stored = await storedMessages(contextd, conversation);
    expect(stored.map((r) => r.message.role)).toEqual(['user', 'assistant', 'tool', 'tool', 'assistant']);
    expect(stored[1]!.message.tool_calls).toEqual(sent[1]!.tool_calls);
    expect(stored[1]!.message.content).toBeNull();
  });

  test('a streamed refusal is stored as the refusal', async () => {
    const conversation = newConversation();
    upstream.enqueue({ kind: 'refusal', refusal: ['I cannot ', 'help with that.'] });
    const stream = await clientFor(contextd, conversation).chat.completions.create({ model: 'gpt-4o', stream: true, messages: [{ role: 'user', content: 'something bad' }] });
    for await (const chunk of stream) void chunk;
    await waitFor(async () => (await storedMessages(contextd, conversation)).length === 2, { message: '2 messages stored' });
    expect((await storedMessages(contextd, conversation))[1]!.message).toMatchObject({ role: 'assistant', refusal: 'I cannot help with that.' });
  });
});

describe('tenancy, retries and concurrency', () => {
  test('another API key with the same conversation id sees nothing of the first one', async () => {
    const conversation = newConversation();
    await clientFor(contextd, conversation).chat.completions.create({ model: 'gpt-4o', messages: [{ role: 'user', content: 'my secret plan is X' }] });
    const other = 'sk-other-tenant-key-9876543210zyxwvutsrq';
    await clientFor(contextd, conversation, other).chat.completions.create({ model: 'gpt-4o', messages: [{ role: 'user', content: 'what was the plan?' }] });

    expect(sentBody(upstream, 1).messages).toEqual([{ role: 'user', content: 'what was the plan?' }]);
    expect(await storedMessages(contextd, conversation, other)).toHaveLength(2);
    const res = await fetch(`${contextd.url}/contextd/v1/conversations/never-used-${conversation}/messages`, { headers: { authorization: `Bearer ${other}` } });
    expect(res.status).toBe(404);
    expect((await storedMessages(contextd, conversation)).map((r) => r.message.content)).toEqual(['my secret plan is X', 'echo: my secret plan is X']);
  });

  test('a retried request (same Idempotency-Key) is answered but not stored twice', async () => {
    const conversation = newConversation();
    const client = clientFor(contextd, conversation);
    await client.chat.completions.create({ model: 'gpt-4o', messages: [{ role: 'user', content: 'one' }] });
    for (let attempt = 0; attempt < 2; attempt++) {
      await client.chat.completions.create({ model: 'gpt-4o', messages: [{ role: 'user', content: 'two' }] }, { headers: { 'idempotency-key': 'req-two' } });
    }
    await client.chat.completions.create({ model: 'gpt-4o', messages: [{ role: 'user', content: 'three' }] });
    // The retry was sent with the history its first attempt had, not with its own first answer.
    expect(sentBody(upstream, 2).messages.map((m) => m.content)).toEqual(['one', 'echo: one', 'two']);
    await waitFor(async () => (await storedMessages(contextd, conversation)).length === 6, { message: '6 messages stored' });
    expect((await storedMessages(contextd, conversation)).map((r) => r.message.content)).toEqual(['one', 'echo: one', 'two', 'echo: two', 'three', 'echo: three']);
  });

  test('the same new turn re-sent after an upstream failure is stored once', async () => {
    const conversation = newConversation();
    const client = clientFor(contextd, conversation);
    upstream.enqueue({ kind: 'error', status: 503, message: 'overloaded' });
    await expect(client.chat.completions.create({ model: 'gpt-4o', messages: [{ role: 'user', content: 'please' }] })).rejects.toMatchObject({ status: 503 });
    await client.chat.completions.create({ model: 'gpt-4o', messages: [{ role: 'user', content: 'please' }] });
    await waitFor(async () => (await storedMessages(contextd, conversation)).length === 2, { message: '2 messages stored' });
    expect((await storedMessages(contextd, conversation)).map((r) => r.message.content)).toEqual(['please', 'echo: please']);
  });

  test('20 concurrent requests on one conversation: unique, gap-free seqs, each turn contiguous', async () => {
    const conversation = newConversation();
    const client = clientFor(contextd, conversation);
    await Promise.all(
      Array.from({ length: 20 }, (_, i) => client.chat.completions.create({ model: 'gpt-4o', messages: [{ role: 'user', content: `parallel ${i}` }] })),
    );
    await waitFor(async () => (await storedMessages(contextd, conversation)).length === 40, { message: '40 messages stored' });
    const stored = await storedMessages(contextd, conversation);
    expect(stored.map((r) => r.seq)).toEqual(Array.from({ length: 40 }, (_, i) => i + 1));
    for (let i = 0; i < 40; i += 2) {
      expect(stored[i]!.message.role).toBe('user');
      expect(stored[i + 1]!.message.content).toBe(`echo: ${String(stored[i]!.message.content)}`);
    }
    expect(new Set(stored.filter((r) => r.message.role === 'user').map((r) => r.message.content)).size).toBe(20);
  });

  test('the API key appears in no log line and no stored message', async () => {
    const conversation = newConversation();
    await clientFor(contextd, conversation).chat.completions.create({ model: 'gpt-4o', messages: [{ role: 'user', content: 'hi' }] });
    await waitFor(async () => (await storedMessages(contextd, conversation)).length === 2, { message: 'stored' });
    expect(contextd.output()).not.toContain(API_KEY);
    expect(JSON.stringify(await storedMessages(contextd, conversation))).not.toContain(API_KEY);
    await contextd.waitForLog((l) => l.msg === 'request' && l.conversation === conversation);
    expect(contextd.output()).not.toContain(API_KEY);
  });
});

describe('budget per route', () => {
  test('a route header picks a larger budget: all history fits', async () => {
    const conversation = newConversation();
    const client = clientFor(contextd, conversation);
    for (let turn = 1; turn <= 30; turn++) {
      await client.chat.completions.create(
        { model: 'gpt-4o-mini', messages: [{ role: 'user', content: `a somewhat longer message number ${turn} so that the small budget would overflow` }] },
        { headers: { 'x-route': 'roomy' } },
      );
    }
    expect(sentBody(upstream, 29).messages).toHaveLength(59);
  });

  test('overflow with on_overflow: forward sends no history and flags it', async () => {
    const conversation = newConversation();
    const client = clientFor(contextd, conversation);
    await client.chat.completions.create({ model: 'gpt-4o', messages: [{ role: 'user', content: 'short' }] });
    const huge = 'lorem ipsum dolor '.repeat(400);
    const { response } = await client.chat.completions.create({ model: 'gpt-4o', messages: [{ role: 'user', content: huge }] }).withResponse();
    expect(response.headers.get('x-contextd-overflow')).toBe('forwarded');
    expect(response.headers.get('x-contextd-history-messages')).toBe('0');
    expect(sentBody(upstream, 1).messages).toEqual([{ role: 'user', content: huge }]);
    await contextd.waitForLog((l) => l.msg === 'instructions and new turn exceed the route budget; no history sent');
  });
});
