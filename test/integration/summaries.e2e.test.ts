import { Redis } from 'ioredis';
import { afterAll, beforeAll, beforeEach, describe, expect, test } from 'vitest';
import { DEFAULT_SUMMARY_PROMPT } from '../../src/config/schema.js';
import type { ChatMessage } from '../../src/domain.js';
import { tokenCounterFor } from '../../src/tokens/count-tokens.js';
import { ensureBuilt, startContextd, stopAll, type ContextdProcess } from '../support/contextd-process.js';
import { startFakeUpstream, type Behaviour, type FakeUpstream, type RecordedRequest } from '../support/fake-upstream.js';
import { startMongo, type MongoServer } from '../support/mongo-server.js';
import { startRedis, type RedisServer } from '../support/redis-server.js';
import { describeWithService, serviceAvailability } from '../support/services.js';
import { waitFor } from '../support/wait-for.js';
import { clientFor, contextdConfig, storedMessages } from './harness.js';

const BUDGET = 400;
const SUMMARY_MAX = 80;
const counter = tokenCounterFor('o200k_base');
const SUMMARY_PREFIX = 'Summary of the earlier conversation';

type Body = { model: string; messages: ChatMessage[]; max_tokens?: number };
const bodyOf = (r: RecordedRequest): Body => r.json as Body;
const isSummaryCall = (r: RecordedRequest): boolean => bodyOf(r).messages[0]?.content === DEFAULT_SUMMARY_PROMPT;

/** Summary calls answer "SUMMARY through question K" (K: the newest question folded) plus filler that overflows the limit. */
function summaryAware(onSummary?: (request: RecordedRequest) => Behaviour) {
  return (request: RecordedRequest): Behaviour => {
    if (!isSummaryCall(request)) return { kind: 'text' };
    if (onSummary !== undefined) return onSummary(request);
    const transcript = String(bodyOf(request).messages[1]?.content ?? '');
    const folded = [...transcript.matchAll(/question (\d+)/g)].map((m) => Number(m[1]));
    return { kind: 'text', content: `SUMMARY through question ${Math.max(...folded)}. ${'The user keeps asking numbered questions. '.repeat(30)}` };
  };
}

const config = (upstream: FakeUpstream, extra: Record<string, unknown> = {}): Record<string, unknown> =>
  contextdConfig(upstream, {
    defaults: { budget: { max_context_tokens: BUDGET, summary_max_tokens: SUMMARY_MAX }, summary: { model: 'gpt-4o-mini', trigger_tokens: 150 } },
    ...extra,
  });

const question = (n: number): string => `question ${n}: please remember that item ${n} costs ${n * 7} euros`;

function summaryIn(messages: readonly ChatMessage[]): ChatMessage | undefined {
  return messages.find((m) => m.role === 'system' && String(m.content).startsWith(SUMMARY_PREFIX));
}

let upstream: FakeUpstream;

beforeAll(async () => {
  await ensureBuilt();
  upstream = await startFakeUpstream();
});
beforeEach(() => {
  upstream.reset();
  upstream.setDefault(summaryAware());
});
afterAll(async () => {
  await stopAll();
  await upstream.close();
});

describe('rolling summaries on the embedded store', () => {
  test('60 turns with a small budget: summary calls go upstream, later requests carry a bounded summary, covered messages are not repeated', async () => {
    const contextd = await startContextd({ config: config(upstream) });
    const client = clientFor(contextd, 'sum-60');
    let withSummary = 0;
    for (let turn = 1; turn <= 60; turn++) {
      const { response } = await client.chat.completions.create({ model: 'gpt-4o', messages: [{ role: 'user', content: question(turn) }] }).withResponse();
      const sent = upstream.chatRequests().filter((r) => !isSummaryCall(r)).at(-1)!;
      const messages = bodyOf(sent).messages;
      const summary = summaryIn(messages);
      expect(response.headers.get('x-contextd-summary')).toBe(summary === undefined ? 'no' : 'yes');
      // Within budget, as the model counts, every turn.
      expect(messages.reduce((sum, m) => sum + counter.countMessage(m), counter.replyPrimingTokens)).toBeLessThanOrEqual(BUDGET);
      expect(messages.at(-1)!.content).toBe(question(turn));
      if (summary === undefined) continue;
      withSummary++;
      expect(counter.countMessage(summary)).toBeLessThanOrEqual(SUMMARY_MAX);
      // What the summary covers is not sent again.
      const coveredThrough = Number(/SUMMARY through question (\d+)/.exec(String(summary.content))![1]);
      const windowQuestions = messages.flatMap((m) => [...String(m.content).matchAll(/^question (\d+):/g)].map((x) => Number(x[1])));
      for (const k of windowQuestions) expect(k).toBeGreaterThan(coveredThrough);
      // Nothing between the summary and the window was lost without a trace: it is either in the window or counted.
      expect(Math.min(...windowQuestions)).toBeGreaterThan(coveredThrough);
    }
    const summaryCalls = upstream.chatRequests().filter(isSummaryCall);
    expect(summaryCalls.length).toBeGreaterThan(0);
    for (const call of summaryCalls) {
      expect(bodyOf(call).model).toBe('gpt-4o-mini');
      expect(bodyOf(call).max_tokens).toBeLessThanOrEqual(SUMMARY_MAX);
      expect(call.headers.authorization).toMatch(/^Bearer sk-test-e2e/); // the triggering request's key
    }
    expect(withSummary).toBeGreaterThan(20);
    const metrics = await (await fetch(`${contextd.url}/metrics`)).text();
    expect(metrics).toMatch(/contextd_summaries_total\{route="default",outcome="stored"\} [1-9]/);
    await contextd.stop();
  });

  test('a client that re-sends its whole history across summaries: recognised though the store no longer loads the summarised part, each message stored once', async () => {
    const contextd = await startContextd({ config: config(upstream) });
    const conversation = 'sum-full-history';
    const client = clientFor(contextd, conversation);
    const history: { role: 'user' | 'assistant'; content: string }[] = [];
    for (let turn = 1; turn <= 40; turn++) {
      history.push({ role: 'user', content: question(turn) });
      const reply = await client.chat.completions.create({ model: 'gpt-4o', messages: [{ role: 'system', content: 'pinned' }, ...history] });
      history.push({ role: 'assistant', content: reply.choices[0]!.message.content! });
      const sent = bodyOf(upstream.chatRequests().filter((r) => !isSummaryCall(r)).at(-1)!).messages;
      // The new question goes once, after the stored window; nothing the client re-sent is sent twice.
      expect(sent.filter((m) => m.content === question(turn))).toHaveLength(1);
      expect(sent.reduce((sum, m) => sum + counter.countMessage(m), counter.replyPrimingTokens)).toBeLessThanOrEqual(BUDGET);
    }
    expect(upstream.chatRequests().some(isSummaryCall)).toBe(true);
    let rows: Awaited<ReturnType<typeof storedMessages>> = [];
    await waitFor(async () => (rows = await storedMessages(contextd, conversation)).at(-1)?.seq === 80, { message: 'all 40 turns stored' });
    // The embedded store drops what a summary covers; what it holds is the conversation's tail, each message once, in order.
    const first = rows[0]!.seq;
    expect(first).toBeGreaterThan(1);
    expect(rows.map((row) => row.seq)).toEqual(Array.from({ length: 81 - first }, (_, i) => first + i));
    expect(rows.map((row) => row.message.content)).toEqual(history.slice(first - 1).map((m) => m.content));
    await contextd.stop();
  });

  test('a failing, slow or garbage summarizer changes nothing for the client', async () => {
    const contextd = await startContextd({ config: config(upstream, { defaults: { budget: { max_context_tokens: BUDGET, summary_max_tokens: SUMMARY_MAX }, summary: { trigger_tokens: 150, timeout: '300ms' } } }) });
    let calls = 0;
    upstream.setDefault(
      summaryAware(() => {
        calls++;
        const failures: Behaviour[] = [
          { kind: 'error', status: 500, message: 'summary model down' },
          { kind: 'text', content: 'late', delayBeforeHeadersMs: 1_000 },
          { kind: 'refusal', refusal: 'I will not summarize.' },
          { kind: 'text', content: '   ' },
          { kind: 'error', status: 429, message: 'slow down' },
        ];
        return failures[calls % failures.length]!;
      }),
    );
    const client = clientFor(contextd, 'sum-failing');
    for (let turn = 1; turn <= 40; turn++) {
      const { data, response } = await client.chat.completions.create({ model: 'gpt-4o', messages: [{ role: 'user', content: question(turn) }] }).withResponse();
      expect(data.choices[0]!.message.content).toBe(`echo: ${question(turn)}`);
      expect(response.headers.get('x-contextd-summary')).toBe('no');
      expect(Number(response.headers.get('x-contextd-context-tokens'))).toBeLessThanOrEqual(BUDGET);
    }
    await waitFor(async () => /contextd_summaries_total\{route="default",outcome="retrying"\} [1-9]/.test(await (await fetch(`${contextd.url}/metrics`)).text()), {
      message: 'failed summary calls counted and retried',
    });
    expect(calls).toBeGreaterThan(0);
    const metrics = await (await fetch(`${contextd.url}/metrics`)).text();
    expect(metrics).not.toMatch(/outcome="stored"/);
    await contextd.stop();
  });
});

const available = serviceAvailability();
describeWithService(!available.redis.isAvailable ? available.redis : available.mongo, 'rolling summaries on Redis + MongoDB', () => {
  let redisServer: RedisServer;
  let mongoServer: MongoServer;
  beforeAll(async () => {
    [redisServer, mongoServer] = await Promise.all([startRedis(), startMongo()]);
  }, 120_000);
  afterAll(async () => {
    await stopAll();
    await Promise.allSettled([redisServer?.stop(), mongoServer?.stop()]);
  });
  const start = (): Promise<ContextdProcess> =>
    startContextd({
      config: config(upstream, {
        storage: { redis: { url: redisServer.url, timeout: '500ms' }, mongodb: { url: mongoServer.url, database: mongoServer.database, timeout: '5s' } },
      }),
    });

  test('the summary survives a restart with Redis flushed', async () => {
    let contextd = await start();
    const client = clientFor(contextd, 'sum-restart');
    for (let turn = 1; turn <= 30; turn++) await client.chat.completions.create({ model: 'gpt-4o', messages: [{ role: 'user', content: question(turn) }] });
    await waitFor(async () => /outcome="stored"\} [1-9]/.test(await (await fetch(`${contextd.url}/metrics`)).text()), { timeoutMs: 10_000, message: 'a summary stored' });
    await contextd.stop();
    await new Redis(redisServer.url).flushall().then(() => undefined);
    contextd = await start();
    const { response } = await clientFor(contextd, 'sum-restart').chat.completions.create({ model: 'gpt-4o', messages: [{ role: 'user', content: question(31) }] }).withResponse();
    expect(response.headers.get('x-contextd-cache')).toBe('miss');
    expect(response.headers.get('x-contextd-summary')).toBe('yes');
    expect(summaryIn(bodyOf(upstream.chatRequests().filter((r) => !isSummaryCall(r)).at(-1)!).messages)).toBeDefined();
    await contextd.stop();
  });

  test('two contextd processes on one conversation never run overlapping summary jobs', async () => {
    upstream.setDefault(
      summaryAware((request) => ({ ...(summaryAware()(request) as Extract<Behaviour, { kind: 'text' }>), delayBeforeHeadersMs: 400 })),
    );
    const [a, b] = await Promise.all([start(), start()]);
    for (let turn = 1; turn <= 60; turn++) {
      await clientFor(turn % 2 === 0 ? a : b, 'sum-two').chat.completions.create({ model: 'gpt-4o', messages: [{ role: 'user', content: question(turn) }] });
    }
    await waitFor(() => upstream.chatRequests().filter(isSummaryCall).every((r) => r.endedAtMs !== undefined), { timeoutMs: 10_000, message: 'summary calls done' });
    const calls = upstream.chatRequests().filter(isSummaryCall).sort((x, y) => x.receivedAtMs - y.receivedAtMs);
    expect(calls.length).toBeGreaterThan(0);
    for (let i = 1; i < calls.length; i++) expect(calls[i]!.receivedAtMs).toBeGreaterThanOrEqual(calls[i - 1]!.endedAtMs!);
    // The jobs did contend: while one instance held the lock, the other's offers found it taken.
    const locked = async (c: ContextdProcess): Promise<number> =>
      Number(/contextd_summaries_total\{route="default",outcome="locked"\} (\d+)/.exec(await (await fetch(`${c.url}/metrics`)).text())?.[1] ?? 0);
    expect((await locked(a)) + (await locked(b))).toBeGreaterThan(0);
    await Promise.all([a.stop(), b.stop()]);
  });
});
