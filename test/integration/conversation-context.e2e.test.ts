// What the model was sent, and what it would be sent: the manifest headers
// (x-contextd-window, x-contextd-summary-covers) and the request log line on
// every reply with memory, GET …/:id/context (the context a request would get
// now) and POST …/:id/context (a dry run: the exact upstream body, nothing
// called, nothing stored). On the embedded store and on Redis + MongoDB.
import type OpenAI from 'openai';
import { afterAll, beforeAll, beforeEach, describe, expect, test } from 'vitest';
import { DEFAULT_SUMMARY_PROMPT } from '../../src/config/schema.js';
import type { ChatMessage } from '../../src/domain.js';
import { ensureBuilt, startContextd, stopAll, type ContextdProcess } from '../support/contextd-process.js';
import { startFakeUpstream, type Behaviour, type FakeUpstream, type RecordedRequest } from '../support/fake-upstream.js';
import { startMongo, type MongoServer } from '../support/mongo-server.js';
import { startRedis, type RedisServer } from '../support/redis-server.js';
import { serviceAvailability, servicesRequired } from '../support/services.js';
import { waitFor } from '../support/wait-for.js';
import { API_KEY, clientFor, contextdConfig, storedMessages } from './harness.js';

const available = serviceAvailability();
const hasServers = (available.redis.isAvailable && available.mongo.isAvailable) || servicesRequired;
const BUDGET = 400;

type Body = { messages: ChatMessage[] };
const isSummaryCall = (r: RecordedRequest): boolean => (r.json as Partial<Body>).messages?.[0]?.content === DEFAULT_SUMMARY_PROMPT;
const question = (n: number): string => `question ${n}: please remember that item ${n} costs ${n * 7} euros, ${'and that it ships in a box of cedar wood '.repeat(3)}`;

interface Context {
  route: string;
  budget: { max_context_tokens: number; used_tokens: number; free_tokens: number };
  tokens: { instructions: number; summary: number; window: number; turn: number; fixed: number };
  summary: { covers_seq: number; tokens: number; sent: boolean } | null;
  window: { first_seq: number | null; last_seq: number | null; messages: { seq: number; role: string; tokens: number }[] };
  left_out: { seq: number; reason: string }[];
  headers: Record<string, string>;
  upstream_body: string;
}

let upstream: FakeUpstream;
let redisServer: RedisServer | undefined;
let mongoServer: MongoServer | undefined;
let conversationNo = 0;
const newConversation = (): string => `context-${process.pid}-${++conversationNo}`;

beforeAll(async () => {
  await ensureBuilt();
  upstream = await startFakeUpstream();
  [redisServer, mongoServer] = hasServers ? await Promise.all([startRedis(), startMongo()]) : [undefined, undefined];
}, 120_000);
beforeEach(() => {
  upstream.reset();
  // Summary calls answer a short summary; every other call echoes.
  upstream.setDefault((request): Behaviour => (isSummaryCall(request) ? { kind: 'text', content: 'SUMMARY: numbered questions about item prices.' } : { kind: 'text' }));
});
afterAll(async () => {
  await stopAll();
  await Promise.allSettled([upstream?.close(), redisServer?.stop(), mongoServer?.stop()]);
});

const stores = [
  { name: 'the embedded store', isAvailable: true, storage: (): Record<string, unknown> => ({}) },
  {
    name: 'Redis + MongoDB',
    isAvailable: hasServers,
    storage: (): Record<string, unknown> => ({ redis: { url: redisServer!.url }, mongodb: { url: mongoServer!.url, database: `${mongoServer!.database}_ctx`, timeout: '5s' } }),
  },
];

describe.each(stores)('the context a request gets, on $name', ({ name, isAvailable, storage }) => {
  let contextd: ContextdProcess;
  beforeAll(async () => {
    if (!isAvailable) return;
    contextd = await startContextd({
      config: contextdConfig(upstream, {
        storage: storage(),
        defaults: { budget: { max_context_tokens: BUDGET, summary_max_tokens: 60 }, summary: { enabled: false } },
        routes: [{ name: 'summarised', match: { model: 'summarised-*' }, summary: { enabled: true, trigger_tokens: 100, model: 'gpt-4o-mini' } }],
      }),
    });
  }, 60_000);

  const context = async (conversation: string, init: { method?: string; query?: string; body?: unknown; apiKey?: string } = {}): Promise<Response> =>
    fetch(`${contextd.url}/contextd/v1/conversations/${conversation}/context${init.query ?? ''}`, {
      method: init.method ?? 'GET',
      headers: { authorization: `Bearer ${init.apiKey ?? API_KEY}`, 'content-type': 'application/json' },
      ...(init.body !== undefined ? { body: JSON.stringify(init.body) } : {}),
    });

  async function converse(client: OpenAI, model: string, turns: number): Promise<void> {
    for (let n = 1; n <= turns; n++) await client.chat.completions.create({ model, messages: [{ role: 'system', content: 'Be brief.' }, { role: 'user', content: question(n) }] });
  }

  test.runIf(isAvailable)('every reply names the stored messages it sent and the log line says the same; GET context adds up to the budget', async () => {
    const conversation = newConversation();
    const client = clientFor(contextd, conversation);
    await converse(client, 'gpt-4o', 8);
    await waitFor(async () => (await storedMessages(contextd, conversation)).length === 16, { message: '16 stored messages' });

    const { response } = await client.chat.completions.create({ model: 'gpt-4o', messages: [{ role: 'system', content: 'Be brief.' }, { role: 'user', content: question(9) }] }).withResponse();
    const manifest = response.headers.get('x-contextd-window');
    expect(manifest).toMatch(/^\d+-16$/);
    const [first, last] = manifest!.split('-').map(Number) as [number, number];
    expect(last - first + 1).toBe(Number(response.headers.get('x-contextd-history-messages')));
    expect(first).toBeGreaterThan(1); // the budget keeps the oldest out
    expect(response.headers.get('x-contextd-summary-covers')).toBeNull();
    // What went upstream is exactly that window.
    const sent = (upstream.chatRequests().at(-1)!.json as Body).messages;
    const stored = await storedMessages(contextd, conversation);
    expect(sent.slice(1, -1)).toEqual(stored.filter((row) => row.seq >= first && row.seq <= last).map((row) => row.message));
    const line = await contextd.waitForLog((l) => l.msg === 'request' && l.requestId === response.headers.get('x-contextd-request-id'));
    expect(line.window).toBe(manifest);
    expect(line).not.toHaveProperty('summaryCovers');

    await waitFor(async () => (await storedMessages(contextd, conversation)).length === 18, { message: '18 stored messages' });
    const res = await context(conversation, { query: '?model=gpt-4o' });
    expect(res.status).toBe(200);
    const ctx = (await res.json()) as Context;
    expect(ctx.route).toBe('default');
    expect(ctx.budget.max_context_tokens).toBe(BUDGET);
    const { instructions, summary, window, turn, fixed } = ctx.tokens;
    expect(instructions + summary + window + turn + fixed).toBe(ctx.budget.used_tokens);
    expect(ctx.budget.used_tokens + ctx.budget.free_tokens).toBe(BUDGET);
    expect(window).toBe(ctx.window.messages.reduce((sum, m) => sum + m.tokens, 0));
    expect(ctx.window.last_seq).toBe(18);
    // Every stored message is either in the window or left out, with a reason.
    const seqs = [...ctx.left_out.map((m) => m.seq), ...ctx.window.messages.map((m) => m.seq)].sort((a, b) => a - b);
    expect(seqs).toEqual(Array.from({ length: 18 }, (_, i) => i + 1));
    expect(new Set(ctx.left_out.map((m) => m.reason))).toEqual(new Set(['over_budget']));
  });

  test.runIf(isAvailable)('POST context is a dry run: the body the upstream then receives for the same request, byte for byte; nothing called, nothing stored', async () => {
    const conversation = newConversation();
    const client = clientFor(contextd, conversation);
    await converse(client, 'gpt-4o', 5);
    await waitFor(async () => (await storedMessages(contextd, conversation)).length === 10, { message: '10 stored messages' });
    const request = {
      model: 'gpt-4o',
      temperature: 0.2,
      messages: [{ role: 'system', content: 'Be brief.' }, { role: 'user', content: question(6) }],
      tools: [{ type: 'function', function: { name: 'lookup', parameters: { type: 'object', properties: {} } } }],
    };
    const calls = upstream.chatRequests().length;
    const res = await context(conversation, { method: 'POST', body: request });
    expect(res.status).toBe(200);
    const dry = (await res.json()) as Context;
    expect(upstream.chatRequests()).toHaveLength(calls);
    expect(await storedMessages(contextd, conversation)).toHaveLength(10);

    const { response } = await client.chat.completions.create(request as OpenAI.ChatCompletionCreateParamsNonStreaming).withResponse();
    expect(upstream.chatRequests().at(-1)!.rawBody.toString('utf8')).toBe(dry.upstream_body);
    for (const [name, value] of Object.entries(dry.headers)) expect(response.headers.get(name), name).toBe(value);
    expect(Number(response.headers.get('x-contextd-context-tokens'))).toBe(dry.budget.used_tokens);
  });

  test.runIf(isAvailable)('POST context with stream: true is the body the upstream then receives for the streamed request, byte for byte', async () => {
    const conversation = newConversation();
    const client = clientFor(contextd, conversation);
    await converse(client, 'gpt-4o', 5);
    await waitFor(async () => (await storedMessages(contextd, conversation)).length === 10, { message: '10 stored messages' });
    const request: OpenAI.ChatCompletionCreateParamsStreaming = { model: 'gpt-4o', stream: true, messages: [{ role: 'system', content: 'Be brief.' }, { role: 'user', content: question(6) }] };
    const dry = (await (await context(conversation, { method: 'POST', body: request })).json()) as Context;
    expect(JSON.parse(dry.upstream_body)).toMatchObject({ stream: true });

    const { data: stream, response } = await client.chat.completions.create(request).withResponse();
    let text = '';
    for await (const chunk of stream) text += chunk.choices[0]?.delta.content ?? '';
    expect(text).toBe(`echo: ${question(6)}`);
    expect(upstream.chatRequests().at(-1)!.rawBody.toString('utf8')).toBe(dry.upstream_body);
    for (const [name, value] of Object.entries(dry.headers)) expect(response.headers.get(name), name).toBe(value);
  });

  test.runIf(isAvailable)('POST context with a Responses API body is the body the upstream then receives on /v1/responses, byte for byte', async () => {
    const conversation = newConversation();
    const client = clientFor(contextd, conversation);
    await converse(client, 'gpt-4o', 3);
    await waitFor(async () => (await storedMessages(contextd, conversation)).length === 6, { message: '6 stored messages' });
    const request = { model: 'gpt-4o', instructions: 'Be brief.', input: question(4) };
    const res = await context(conversation, { method: 'POST', body: request });
    expect(res.status).toBe(200);
    const dry = (await res.json()) as Context & { api: string };
    expect(dry.api).toBe('responses');
    expect(upstream.responsesRequests()).toHaveLength(0);

    const { response } = await client.responses.create(request).withResponse();
    const received = upstream.responsesRequests().at(-1)!;
    expect(received.rawBody.toString('utf8')).toBe(dry.upstream_body);
    // The stored history went as items, and the dry run said so.
    expect(JSON.stringify(received.json)).toContain(question(1));
    for (const [name, value] of Object.entries(dry.headers)) expect(response.headers.get(name), name).toBe(value);
  });

  test.runIf(isAvailable)("a dry run's x-contextd-prefix-stable is the real request's when a summary arrived after the last turn, and peeking changes nothing", async () => {
    const conversation = newConversation();
    const client = clientFor(contextd, conversation);
    const ask = (content: string) => client.chat.completions.create({ model: 'summarised-model', messages: [{ role: 'user', content }] }).withResponse();
    // The last seq stored (the embedded store drops what a summary covers, so not how many are held).
    const lastSeq = async (): Promise<number> => (await storedMessages(contextd, conversation)).at(-1)?.seq ?? 0;
    // Summary calls wait until released: the job reads the history, then the next turn is stored before its summary is.
    // Replies are short, so that once the long first message is folded, everything after it fits the budget.
    upstream.setDefault((request): Behaviour => (isSummaryCall(request) ? { kind: 'text', content: 'SUMMARY: the cedar box.', holdAfterChunks: 0 } : { kind: 'text', content: 'Noted.' }));
    await ask('please remember the cedar box and the weather note '.repeat(14));
    // Short turns until the first message no longer fits: the window starts at seq 2, and a job folds seq 1.
    let window = '';
    for (let n = 1; n <= 40 && !window.startsWith('2-'); n++) window = (await ask(`short question ${n} about the box`)).response.headers.get('x-contextd-window') ?? '';
    expect(window).toMatch(/^2-/);
    await upstream.waitForHeld(1, 10_000);
    // The job read the history already; this turn is stored after that read, before the summary.
    await ask('and?');
    const stored = Number(window.split('-')[1]) + 4;
    await waitFor(async () => (await lastSeq()) === stored, { message: 'the turn after the read stored' });
    upstream.release();
    await waitFor(async () => ((await (await context(conversation, { query: '?model=summarised-model' })).json()) as Context).summary !== null, { timeoutMs: 10_000, message: 'the summary stored' });

    // The summary is dated by its read, before the last turn was stored, yet this process never sent it: a new prefix.
    // Then the same summary again, and nothing left out: the same prefix.
    const answers: string[] = [];
    for (const content of ['now?', 'then?']) {
      const request = { model: 'summarised-model', messages: [{ role: 'user', content }] };
      const dry = (await (await context(conversation, { method: 'POST', body: request })).json()) as Context;
      expect(dry.summary).toMatchObject({ sent: true });
      expect(dry.window.first_seq).toBe(dry.summary!.covers_seq + 1);
      const { response } = await ask(content);
      expect(upstream.chatRequests().at(-1)!.rawBody.toString('utf8')).toBe(dry.upstream_body);
      for (const [name, value] of Object.entries(dry.headers)) expect(response.headers.get(name), name).toBe(value);
      answers.push(dry.headers['x-contextd-prefix-stable']!);
      await waitFor(async () => (await lastSeq()) === stored + 2 * answers.length, { message: 'the turn stored' });
    }
    expect(answers).toEqual(['no', 'yes']);
  });

  test.runIf(isAvailable)('with a summary: the reply names what it covers; context says it was sent', async () => {
    const conversation = newConversation();
    const client = clientFor(contextd, conversation);
    await converse(client, 'summarised-model', 10);
    await waitFor(async () => (await fetch(`${contextd.url}/contextd/v1/conversations/${conversation}/messages`, { headers: { authorization: `Bearer ${API_KEY}` } }).then((r) => r.json() as Promise<{ summary: unknown }>)).summary !== null, {
      message: 'a summary',
      timeoutMs: 10_000,
    });
    const { response } = await client.chat.completions.create({ model: 'summarised-model', messages: [{ role: 'user', content: question(11) }] }).withResponse();
    const covers = Number(response.headers.get('x-contextd-summary-covers'));
    expect(response.headers.get('x-contextd-summary')).toBe('yes');
    expect(covers).toBeGreaterThan(0);
    expect(Number(response.headers.get('x-contextd-window')!.split('-')[0])).toBeGreaterThan(covers);
    // The request log line says the same.
    const line = await contextd.waitForLog((l) => l.msg === 'request' && l.requestId === response.headers.get('x-contextd-request-id'));
    expect([line.window, line.summaryCovers]).toEqual([response.headers.get('x-contextd-window'), covers]);

    const ctx = (await (await context(conversation, { query: '?model=summarised-model' })).json()) as Context;
    expect(ctx.route).toBe('summarised');
    expect(ctx.summary).toMatchObject({ sent: true });
    expect(ctx.tokens.summary).toBe(ctx.summary!.tokens);
    expect(ctx.window.first_seq!).toBeGreaterThan(ctx.summary!.covers_seq);
    // A store that keeps what the summary covers lists it as covered; one that drops it lists nothing older.
    for (const m of ctx.left_out) expect(m.reason === 'covered_by_summary' ? m.seq <= ctx.summary!.covers_seq : m.seq > ctx.summary!.covers_seq).toBe(true);
    const covered = ctx.left_out.filter((m) => m.reason === 'covered_by_summary').map((m) => m.seq);
    expect(covered).toEqual(name === 'Redis + MongoDB' ? Array.from({ length: ctx.summary!.covers_seq }, (_, i) => i + 1) : []);
  });

  test.runIf(isAvailable)("another tenant's conversation is a 404 for GET and POST; an unknown one too", async () => {
    const conversation = newConversation();
    await converse(clientFor(contextd, conversation), 'gpt-4o', 1);
    await waitFor(async () => (await storedMessages(contextd, conversation)).length === 2, { message: '2 stored messages' });
    const other = 'sk-other-tenant-context-0123456789';
    expect((await context(conversation, { apiKey: other })).status).toBe(404);
    expect((await context(conversation, { method: 'POST', apiKey: other, body: { model: 'gpt-4o', messages: [{ role: 'user', content: 'hi' }] } })).status).toBe(404);
    expect((await context(`${conversation}-unknown`)).status).toBe(404);
    expect((await context(conversation)).status).toBe(200);
  });
});
