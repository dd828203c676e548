// Client compatibility: the official `openai` npm SDK (v6) against a real
// contextd in front of the fake upstream. Each test checks what the upstream
// received (history present, budget held, tool pairs valid, pinned system
// message first) and what was stored (each message once).
import OpenAI, { AzureOpenAI } from 'openai';
import { afterAll, beforeAll, beforeEach, describe, expect, test } from 'vitest';
import { ensureBuilt, startContextd, stopAll, type ContextdProcess } from '../support/contextd-process.js';
import { expectStoredOnce, expectValidPrompt, promptOf, textOf } from '../support/compat-checks.js';
import { startFakeUpstream, type FakeUpstream, type RecordedRequest } from '../support/fake-upstream.js';
import { waitFor } from '../support/wait-for.js';
import { API_KEY, clientFor, contextdConfig, storedMessages, type StoredRow } from '../integration/harness.js';

const MODEL = 'gpt-4o-mini';
const SYSTEM = { role: 'system' as const, content: 'You are a terse assistant. Answer in one line.' };
/** Small enough that the longer conversations below are trimmed. */
const BUDGET = 300;
// No summaries: a summary call would be one more chat request at the upstream.
const CONFIG_OVERRIDES = { defaults: { budget: { max_context_tokens: BUDGET, summary_max_tokens: 100 }, summary: { enabled: false } } };

let upstream: FakeUpstream;
let contextd: ContextdProcess;
let conversationNo = 0;
const newConversation = (): string => `node-openai-${process.pid}-${++conversationNo}`;

beforeAll(async () => {
  await ensureBuilt();
  upstream = await startFakeUpstream();
  contextd = await startContextd({ config: contextdConfig(upstream, CONFIG_OVERRIDES) });
});
beforeEach(() => upstream.reset());
afterAll(async () => {
  await stopAll();
  await upstream.close();
});

/** The i-th chat request the fake received in this test. */
function chatRequest(i: number): RecordedRequest {
  const request = upstream.chatRequests()[i];
  if (request === undefined) throw new Error(`the upstream received ${upstream.chatRequests().length} chat requests, not ${i + 1}`);
  return request;
}

function lastChatRequest(): RecordedRequest {
  return chatRequest(upstream.chatRequests().length - 1);
}

/** What contextd says the prompt it sent costs; must stay within the route's budget. */
function expectWithinBudget(response: Response): void {
  const header = response.headers.get('x-contextd-context-tokens');
  expect(header, 'x-contextd-context-tokens').not.toBeNull();
  expect(Number(header)).toBeLessThanOrEqual(BUDGET);
}

/** Waits until `count` messages are stored (storing runs in the background), then returns them checked for duplicates. */
async function storedOnce(target: ContextdProcess, conversation: string, count: number): Promise<StoredRow[]> {
  let rows: StoredRow[] = [];
  await waitFor(async () => (rows = await storedMessages(target, conversation)).length >= count, {
    message: () => `${count} stored messages (have ${rows.length}: ${JSON.stringify(rows.map((r) => r.message))})`,
  });
  rows = await storedMessages(target, conversation);
  expect(rows).toHaveLength(count);
  expectStoredOnce(rows);
  return rows;
}

const contentsOf = (rows: readonly StoredRow[]): unknown[] => rows.map((row) => row.message.content);

describe('openai (Node) chat completions', () => {
  test('turns that send only the new message: the upstream gets the history, within budget; each message stored once', async () => {
    const conversation = newConversation();
    const client = clientFor(contextd, conversation);
    for (let turn = 1; turn <= 4; turn++) {
      const question = `question ${turn}: what is ${turn} squared?`;
      const { data, response } = await client.chat.completions.create({ model: MODEL, messages: [SYSTEM, { role: 'user', content: question }] }).withResponse();
      expect(data.choices[0]!.message.content).toBe(`echo: ${question}`);
      expectWithinBudget(response);
      const previous = Array.from({ length: turn - 1 }, (_, i) => `question ${i + 1}: what is ${i + 1} squared?`);
      const prompt = expectValidPrompt(lastChatRequest(), { instructions: [SYSTEM.content], contains: previous.flatMap((q) => [q, `echo: ${q}`]) });
      expect(prompt.filter((m) => m.role === 'system')).toHaveLength(1);
      expect(prompt.at(-1)).toEqual({ role: 'user', content: question });
    }
    const rows = await storedOnce(contextd, conversation, 8);
    expect(rows.map((r) => r.message.role)).toEqual(['user', 'assistant', 'user', 'assistant', 'user', 'assistant', 'user', 'assistant']);
    expect(rows[6]!.message).toEqual({ role: 'user', content: 'question 4: what is 4 squared?' });
  });

  test('the conversation header is not forwarded upstream; the API key is', async () => {
    const conversation = newConversation();
    await clientFor(contextd, conversation).chat.completions.create({ model: MODEL, messages: [{ role: 'user', content: 'hello' }] });
    const { headers } = chatRequest(0);
    expect(headers.authorization).toBe(`Bearer ${API_KEY}`);
    expect(headers['x-conversation-id']).toBeUndefined();
  });

  test('streaming with stream_options.include_usage: text and usage arrive, the next turn sees the streamed reply', async () => {
    const conversation = newConversation();
    const client = clientFor(contextd, conversation);
    upstream.enqueue({ kind: 'text', content: ['The answer ', 'is ', '42.'] });
    const { data: stream, response } = await client.chat.completions
      .create({ model: MODEL, messages: [SYSTEM, { role: 'user', content: 'what is the answer?' }], stream: true, stream_options: { include_usage: true } })
      .withResponse();
    let text = '';
    let usage: OpenAI.CompletionUsage | null | undefined;
    let finishReason: string | null | undefined;
    for await (const chunk of stream) {
      text += chunk.choices[0]?.delta.content ?? '';
      finishReason = chunk.choices[0]?.finish_reason ?? finishReason;
      usage = chunk.usage ?? usage;
    }
    expect(text).toBe('The answer is 42.');
    expect(finishReason).toBe('stop');
    expect(usage?.completion_tokens).toBeGreaterThan(0);
    expectWithinBudget(response);
    expect((chatRequest(0).json as { stream_options?: unknown }).stream_options).toEqual({ include_usage: true });

    const second = await client.chat.completions.create({
      model: MODEL,
      messages: [SYSTEM, { role: 'user', content: 'and doubled?' }],
      stream: true,
      stream_options: { include_usage: true },
    });
    let secondText = '';
    for await (const chunk of second) secondText += chunk.choices[0]?.delta.content ?? '';
    expect(secondText).toBe('echo: and doubled?');
    expectValidPrompt(chatRequest(1), { instructions: [SYSTEM.content], contains: ['what is the answer?', 'The answer is 42.'] });

    const rows = await storedOnce(contextd, conversation, 4);
    expect(contentsOf(rows)).toEqual(['what is the answer?', 'The answer is 42.', 'and doubled?', 'echo: and doubled?']);
  });

  // Bug #1 of issue 10: the upstream's end of stream lags its last event, and the
  // client stops reading right after that event: the turn must still be stored.
  test.each([
    { stop: 'breaks out of for-await on the usage chunk', includeUsage: true },
    { stop: 'aborts through stream.controller after the finish_reason chunk', includeUsage: false },
  ])('upstream holds its end after [DONE], the client $stop: the turn is stored', async ({ includeUsage }) => {
    const conversation = newConversation();
    const client = clientFor(contextd, conversation);
    upstream.enqueue({ kind: 'text', content: ['Held ', 'but ', 'complete.'], holdEnd: true });
    try {
      const stream = await client.chat.completions.create({
        model: MODEL,
        messages: [{ role: 'user', content: 'a reply whose end lags' }],
        stream: true,
        ...(includeUsage ? { stream_options: { include_usage: true } } : {}),
      });
      let text = '';
      for await (const chunk of stream) {
        text += chunk.choices[0]?.delta.content ?? '';
        const isLast = includeUsage ? Boolean(chunk.usage) : Boolean(chunk.choices[0]?.finish_reason);
        if (!isLast) continue;
        // The upstream has sent [DONE] and now holds the connection open.
        await upstream.waitForHeld();
        if (includeUsage) break;
        stream.controller.abort();
      }
      expect(text).toBe('Held but complete.');

      const rows = await storedOnce(contextd, conversation, 2);
      expect(rows.map((r) => r.message)).toEqual([
        { role: 'user', content: 'a reply whose end lags' },
        { role: 'assistant', content: 'Held but complete.' },
      ]);
    } finally {
      upstream.release();
    }
    // The stored turn is the next turn's history.
    await client.chat.completions.create({ model: MODEL, messages: [{ role: 'user', content: 'next' }] });
    expect(promptOf(lastChatRequest()).map(textOf)).toEqual(['a reply whose end lags', 'Held but complete.', 'next']);
    await storedOnce(contextd, conversation, 4);
  });

  test('an AbortController that aborts mid-stream: the upstream request is closed and nothing is stored', async () => {
    const conversation = newConversation();
    const client = clientFor(contextd, conversation);
    upstream.enqueue({ kind: 'text', content: ['partial ', 'reply ', 'never ', 'finished'], holdAfterChunks: 2 });
    const abort = new AbortController();
    const stream = await client.chat.completions.create(
      { model: MODEL, messages: [{ role: 'user', content: 'start something long' }], stream: true },
      { signal: abort.signal },
    );
    let text = '';
    try {
      for await (const chunk of stream) {
        text += chunk.choices[0]?.delta.content ?? '';
        if (text !== '') abort.abort();
      }
    } catch (error) {
      // Some SDK versions surface the abort as an error; either way the client has stopped.
      if (!(error instanceof OpenAI.APIUserAbortError) && !(error instanceof Error && error.name === 'AbortError')) throw error;
    }
    expect(text).toBe('partial ');
    await waitFor(() => chatRequest(0).outcome === 'client_closed', {
      message: () => `the upstream request to be closed by contextd (outcome: ${chatRequest(0).outcome})`,
    });

    // Nothing of the aborted turn is history for the next one, nor stored.
    await client.chat.completions.create({ model: MODEL, messages: [{ role: 'user', content: 'start over' }] });
    expect(promptOf(chatRequest(1))).toEqual([{ role: 'user', content: 'start over' }]);
    const rows = await storedOnce(contextd, conversation, 2);
    expect(contentsOf(rows)).toEqual(['start over', 'echo: start over']);
  });

  test('a full-history client with a pinned system message: history recognised, system first, budget held, stored once', async () => {
    const conversation = newConversation();
    const client = clientFor(contextd, conversation);
    const history: OpenAI.ChatCompletionMessageParam[] = [];
    const filler = 'with a few more words so that old turns no longer fit the small budget';
    const turns = 8;
    for (let turn = 1; turn <= turns; turn++) {
      history.push({ role: 'user', content: `turn ${turn}, ${filler}` });
      const { data, response } = await client.chat.completions.create({ model: MODEL, messages: [SYSTEM, ...history] }).withResponse();
      // The SDK's own message object (refusal: null, annotations: []) goes back into the history.
      history.push(data.choices[0]!.message);
      expectWithinBudget(response);

      const prompt = expectValidPrompt(lastChatRequest(), { instructions: [SYSTEM.content] });
      expect(prompt.filter((m) => m.role === 'system')).toHaveLength(1);
      // After the system message: the tail of the client's own history, ending with the new message.
      const sentTail = prompt.slice(1).map((m) => m.content);
      expect(sentTail).toEqual(history.slice(0, -1).slice(-sentTail.length).map((m) => m.content));
      if (turn > 1) expect(sentTail.length).toBeGreaterThan(1);
    }
    // The budget trimmed the oldest turns from the last prompt.
    expect(promptOf(lastChatRequest()).length).toBeLessThan(1 + 2 * turns - 1);

    const rows = await storedOnce(contextd, conversation, 2 * turns);
    expect(contentsOf(rows)).toEqual(history.map((m) => m.content));
    expect(rows.some((r) => r.message.role === 'system')).toBe(false);
  });
});

describe('openai (Node) tool calls', () => {
  const tools: OpenAI.ChatCompletionTool[] = [
    {
      type: 'function',
      function: { name: 'lookup', description: 'Look an item up', parameters: { type: 'object', properties: { q: { type: 'string' } }, required: ['q'] } },
    },
  ];

  test.each(['create', 'stream helper'] as const)(
    'the SDK message with tool_calls goes back with the tool result (%s): every prompt valid, the call stored once',
    async (mode) => {
      const conversation = newConversation();
      const client = clientFor(contextd, conversation);
      upstream.enqueue(
        { kind: 'tool_calls', toolCalls: [{ id: 'call_1', name: 'lookup', arguments: { q: 'item 5' } }] },
        { kind: 'text', content: 'Item 5 is blue.' },
      );
      const messages: OpenAI.ChatCompletionMessageParam[] = [SYSTEM, { role: 'user', content: 'What colour is item 5?' }];
      const ask = async (): Promise<OpenAI.ChatCompletionMessage> => {
        if (mode === 'create') return (await client.chat.completions.create({ model: MODEL, messages, tools })).choices[0]!.message;
        // The streaming helper rebuilds the message from the deltas; its finalMessage() is what apps push back.
        return client.chat.completions.stream({ model: MODEL, messages, tools, stream_options: { include_usage: true } }).finalMessage();
      };

      const call = await ask();
      expect(call.tool_calls).toHaveLength(1);
      const toolCall = call.tool_calls![0]!;
      expect(toolCall.type === 'function' && toolCall.function.name).toBe('lookup');
      messages.push(call, { role: 'tool', tool_call_id: toolCall.id, content: JSON.stringify({ colour: 'blue' }) });
      const answer = await ask();
      expect(answer.content).toBe('Item 5 is blue.');
      messages.push(answer);

      // A follow-up that sends only the new message gets the whole exchange as history.
      const { response } = await client.chat.completions.create({ model: MODEL, messages: [SYSTEM, { role: 'user', content: 'And item 6?' }], tools }).withResponse();
      expectWithinBudget(response);

      expect(upstream.chatRequests()).toHaveLength(3);
      for (const request of upstream.chatRequests()) expectValidPrompt(request, { instructions: [SYSTEM.content] });
      const second = promptOf(chatRequest(1));
      expect(second.map((m) => m.role)).toEqual(['system', 'user', 'assistant', 'tool']);
      expect(second.filter((m) => m.tool_calls !== undefined && m.tool_calls !== null)).toHaveLength(1);
      const third = expectValidPrompt(chatRequest(2), { instructions: [SYSTEM.content], contains: ['What colour is item 5?', 'Item 5 is blue.'] });
      expect(third.map((m) => m.role)).toEqual(['system', 'user', 'assistant', 'tool', 'assistant', 'user']);

      const rows = await storedOnce(contextd, conversation, 6);
      expect(rows.map((r) => r.message.role)).toEqual(['user', 'assistant', 'tool', 'assistant', 'user', 'assistant']);
      expect(rows.filter((r) => Array.isArray(r.message.tool_calls))).toHaveLength(1);
      expect(rows[1]!.message.tool_calls).toEqual([
        { id: 'call_1', type: 'function', function: { name: 'lookup', arguments: JSON.stringify({ q: 'item 5' }) } },
      ]);
    },
  );
});

describe('openai (Node) runTools', () => {
  test('the SDK runs the tool loop itself (streaming): both prompts valid, the exchange stored once and history for the next turn', async () => {
    const conversation = newConversation();
    const client = clientFor(contextd, conversation);
    upstream.enqueue(
      { kind: 'tool_calls', toolCalls: [{ id: 'call_1', name: 'lookup', arguments: { q: 'item 5' } }], chunkCount: 3 },
      { kind: 'text', content: ['Item 5 ', 'is blue.'] },
    );
    const runner = client.chat.completions.runTools({
      model: MODEL,
      stream: true,
      stream_options: { include_usage: true },
      messages: [SYSTEM, { role: 'user', content: 'What colour is item 5?' }],
      tools: [
        {
          type: 'function',
          function: {
            name: 'lookup',
            description: 'Look an item up',
            parameters: { type: 'object', properties: { q: { type: 'string' } }, required: ['q'] },
            parse: (text: string) => JSON.parse(text) as { q: string },
            function: (args: { q: string }) => ({ item: args.q, colour: 'blue' }),
          },
        },
      ],
    });
    expect(await runner.finalContent()).toBe('Item 5 is blue.');

    expect(upstream.chatRequests()).toHaveLength(2);
    for (const request of upstream.chatRequests()) expectValidPrompt(request, { instructions: [SYSTEM.content] });
    expect(promptOf(chatRequest(1)).map((m) => m.role)).toEqual(['system', 'user', 'assistant', 'tool']);

    await client.chat.completions.create({ model: MODEL, messages: [SYSTEM, { role: 'user', content: 'And item 6?' }] });
    const third = expectValidPrompt(chatRequest(2), { instructions: [SYSTEM.content], contains: ['What colour is item 5?', 'Item 5 is blue.'] });
    expect(third.map((m) => m.role)).toEqual(['system', 'user', 'assistant', 'tool', 'assistant', 'user']);

    const rows = await storedOnce(contextd, conversation, 6);
    expect(rows.map((r) => r.message.role)).toEqual(['user', 'assistant', 'tool', 'assistant', 'user', 'assistant']);
    expect(rows.filter((r) => Array.isArray(r.message.tool_calls))).toHaveLength(1);
    expect(JSON.parse(textOf(rows[2]!.message))).toEqual({ item: 'item 5', colour: 'blue' });
  });
});

describe('AzureOpenAI (openai package) through contextd with upstream.kind azure', () => {
  const DEPLOYMENT = 'my-deployment';
  const API_VERSION = '2024-10-21';

  test('deployment paths keep their api-version; the second turn has the first as history; api-key forwarded, conversation header not', async () => {
    // Started here rather than in a beforeAll, so a config contextd rejects fails this test, not the suite.
    const azure = await startContextd({
      config: contextdConfig(upstream, {
        ...CONFIG_OVERRIDES,
        upstream: { kind: 'azure', base_url: `${upstream.origin}/openai`, timeout: '5s', connect_timeout: '2s' },
      }),
    });
    const conversation = newConversation();
    const client = new AzureOpenAI({
      endpoint: azure.url,
      apiKey: API_KEY,
      apiVersion: API_VERSION,
      deployment: DEPLOYMENT,
      maxRetries: 0,
      defaultHeaders: { 'x-conversation-id': conversation },
    });
    const first = await client.chat.completions.create({ model: MODEL, messages: [SYSTEM, { role: 'user', content: 'azure turn one' }] });
    expect(first.choices[0]!.message.content).toBe('echo: azure turn one');

    const { data: stream, response } = await client.chat.completions
      .create({ model: MODEL, messages: [SYSTEM, { role: 'user', content: 'azure turn two' }], stream: true, stream_options: { include_usage: true } })
      .withResponse();
    let text = '';
    for await (const chunk of stream) text += chunk.choices[0]?.delta.content ?? '';
    expect(text).toBe('echo: azure turn two');
    expectWithinBudget(response);

    expect(upstream.chatRequests()).toHaveLength(2);
    for (const request of upstream.chatRequests()) {
      expect(request.path).toBe(`/openai/deployments/${DEPLOYMENT}/chat/completions`);
      expect(request.url).toBe(`/openai/deployments/${DEPLOYMENT}/chat/completions?api-version=${API_VERSION}`);
      expect(request.headers['api-key']).toBe(API_KEY);
    }
    expectValidPrompt(chatRequest(1), { instructions: [SYSTEM.content], contains: ['azure turn one', 'echo: azure turn one'] });

    const rows = await storedOnce(azure, conversation, 4);
    expect(contentsOf(rows)).toEqual(['azure turn one', 'echo: azure turn one', 'azure turn two', 'echo: azure turn two']);
    for (const request of upstream.chatRequests()) expect(request.headers['x-conversation-id']).toBeUndefined();
  });
});
