// The window policy, end to end: with `chunked`, a conversation's prompts
// keep their prefix from one request to the next between evictions (the
// previous request's messages are the start of the next one's), and evictions
// are few; with `sliding` the prefix moves on every turn once history no longer
// fits. The budget holds either way. With rolling summaries, the prefix changes
// only where the window starts later or the summary is new. Two instances on
// one store (Redis, MongoDB, Redis + MongoDB), taking turns on one
// conversation, send upstream the bytes one instance sends.
import { afterAll, beforeAll, beforeEach, describe, expect, test } from 'vitest';
import { DEFAULT_SUMMARY_PROMPT } from '../../src/config/schema.js';
import type { ChatMessage } from '../../src/domain.js';
import { ensureBuilt, startContextd, stopAll, type ContextdProcess } from '../support/contextd-process.js';
import { startFakeUpstream, type Behaviour, type FakeUpstream, type RecordedRequest } from '../support/fake-upstream.js';
import { startMongo, type MongoServer } from '../support/mongo-server.js';
import { startRedis, type RedisServer } from '../support/redis-server.js';
import { serviceAvailability, servicesRequired } from '../support/services.js';
import { waitFor } from '../support/wait-for.js';
import { clientFor, contextdConfig, storedMessages } from './harness.js';

const BUDGET = 1_000;
const TURNS = 40;
const available = serviceAvailability();
// With CI set a missing server is a failure (the servers fail to start), never a skip.
const hasRedis = available.redis.isAvailable || servicesRequired;
const hasMongo = available.mongo.isAvailable || servicesRequired;
const SUMMARY_PREFIX = 'Summary of the earlier conversation';
const isSummaryCall = (r: RecordedRequest): boolean => (r.json as { messages?: ChatMessage[] }).messages?.[0]?.content === DEFAULT_SUMMARY_PROMPT;
let summaryCalls = 0;
/** Replies echo the question; a summary call gets a new text every time, as a model's is. */
const answer = (request: RecordedRequest): Behaviour =>
  isSummaryCall(request) ? { kind: 'text', content: `SUMMARY ${++summaryCalls}: the user asks about the harbour. ${'Boats, tides and quays. '.repeat(8)}` } : { kind: 'text' };

const config = (upstream: FakeUpstream, storage: Record<string, unknown> = {}) =>
  contextdConfig(upstream, {
    storage,
    defaults: { budget: { max_context_tokens: BUDGET, summary_max_tokens: 100 }, summary: { enabled: false } },
    routes: [
      { name: 'summarized', match: { model: 'summarized-*' }, window: { eviction: 'chunked', low_watermark: 0.6 }, summary: { enabled: true, model: 'gpt-4o-mini', trigger_tokens: 150 } },
      { name: 'chunked', match: { model: 'chunked-*' }, window: { eviction: 'chunked', low_watermark: 0.6 } },
    ],
  });

let upstream: FakeUpstream;
let redisServer: RedisServer | undefined;
let mongoServer: MongoServer | undefined;
let conversationNo = 0;
const newConversation = (): string => `window-${process.pid}-${++conversationNo}`;

beforeAll(async () => {
  await ensureBuilt();
  upstream = await startFakeUpstream();
  [redisServer, mongoServer] = await Promise.all([hasRedis ? startRedis() : undefined, hasMongo ? startMongo() : undefined]);
}, 120_000);
beforeEach(() => {
  upstream.reset();
  upstream.setDefault(answer);
});
afterAll(async () => {
  await stopAll();
  await Promise.allSettled([upstream?.close(), redisServer?.stop(), mongoServer?.stop()]);
});

const question = (n: number): string => `question ${n}: ${'tell me more about the harbour and its boats '.repeat(1 + (n % 3))}`;

interface Turn {
  messages: ChatMessage[];
  /** The body as the upstream received it. */
  raw: string;
  stable: string;
  contextTokens: number;
}

/**
 * `turns` turns on one conversation, each through the next of `instances`; what the upstream received and each
 * reply's headers. `afterTurn` runs once each reply is in (it may wait for the turn's background work).
 */
async function converse(instances: readonly ContextdProcess[], model: string, turns = TURNS, afterTurn?: (conversation: string, requestId: string) => Promise<void>): Promise<Turn[]> {
  const conversation = newConversation();
  const clients = instances.map((instance) => clientFor(instance, conversation));
  const sent: Turn[] = [];
  for (let n = 0; n < turns; n++) {
    const { response } = await clients[n % clients.length]!
      .chat.completions.create({ model, messages: [{ role: 'system', content: 'You are a harbour guide.' }, { role: 'user', content: question(n) }] })
      .withResponse();
    const request = upstream.chatRequests().filter((r) => !isSummaryCall(r)).at(-1)!;
    sent.push({
      messages: (request.json as { messages: ChatMessage[] }).messages,
      raw: request.rawBody.toString('utf8'),
      stable: response.headers.get('x-contextd-prefix-stable')!,
      contextTokens: Number(response.headers.get('x-contextd-context-tokens')),
    });
    // Another instance sees a turn once it is stored (read-your-writes is per instance).
    if (instances.length > 1) await waitFor(async () => (await storedMessages(instances[0]!, conversation)).length === 2 * (n + 1), { message: `turn ${n} stored` });
    await afterTurn?.(conversation, response.headers.get('x-contextd-request-id')!);
  }
  return sent;
}

const startsWith = (messages: readonly ChatMessage[], prefix: readonly ChatMessage[]): boolean =>
  prefix.length <= messages.length && prefix.every((m, i) => JSON.stringify(m) === JSON.stringify(messages[i]));

/** For each request after the first: does it start with everything the previous request sent? */
const keptPrefix = (turns: readonly Turn[]): boolean[] => turns.slice(1).map((turn, i) => startsWith(turn.messages, turns[i]!.messages));

/** Byte for byte: the previous body, up to the end of its last message, starts the next one (messages is the body's last field). */
const startsWithPreviousBody = (turn: Turn, previous: Turn): boolean => turn.raw.startsWith(previous.raw.slice(0, -2));

describe('window policy', () => {
  let contextd: ContextdProcess;
  beforeAll(async () => {
    contextd = await startContextd({ config: config(upstream) });
  }, 60_000);

  test('chunked: between evictions each prompt starts with the whole previous one; x-contextd-prefix-stable says when; few evictions; within budget', async () => {
    const turns = await converse([contextd], 'chunked-model');
    const kept = keptPrefix(turns);
    expect(turns.slice(1).map((turn) => turn.stable === 'yes')).toEqual(kept);
    const breaks = kept.filter((k) => !k).length;
    expect(breaks).toBeGreaterThan(0); // the conversation outgrew the window
    expect(breaks).toBeLessThanOrEqual(TURNS / 4);
    for (const turn of turns) expect(turn.contextTokens).toBeLessThanOrEqual(BUDGET);
    turns.slice(1).forEach((turn, i) => {
      if (kept[i]) expect(startsWithPreviousBody(turn, turns[i]!), `request ${i + 1}`).toBe(true);
    });
    // Each eviction dropped whole turns: a window never starts with an assistant message.
    for (const turn of turns) expect(turn.messages[1]?.role).toBe('user');
  });

  test('sliding: once history no longer fits, every prompt moves on', async () => {
    const turns = await converse([contextd], 'sliding-model');
    const kept = keptPrefix(turns);
    expect(turns.slice(1).map((turn) => turn.stable === 'yes')).toEqual(kept);
    const firstBreak = kept.indexOf(false);
    expect(firstBreak).toBeGreaterThan(0);
    expect(kept.slice(firstBreak).every((k) => !k)).toBe(true);
    for (const turn of turns) expect(turn.contextTokens).toBeLessThanOrEqual(BUDGET);
  });

  test("the client's own part of the prefix: new instructions or a new tool set are a new prefix, the same ones again a stable one", async () => {
    const client = clientFor(contextd, newConversation());
    const tools = (name: string) => [{ type: 'function' as const, function: { name, parameters: { type: 'object', properties: { q: { type: 'string' } } } } }];
    const send = async (system: string, toolName: string, n: number): Promise<string> => {
      const { response } = await client.chat.completions
        .create({ model: 'chunked-model', messages: [{ role: 'system', content: system }, { role: 'user', content: `short question ${n}` }], tools: tools(toolName) })
        .withResponse();
      return response.headers.get('x-contextd-prefix-stable')!;
    };
    const answers = [
      await send('You are a harbour guide.', 'lookup', 0),
      await send('You are a harbour guide.', 'lookup', 1),
      await send('You are a river guide.', 'lookup', 2),
      await send('You are a river guide.', 'lookup', 3),
      await send('You are a river guide.', 'search_the_whole_harbour_archive_for_boats', 4),
      await send('You are a river guide.', 'search_the_whole_harbour_archive_for_boats', 5),
    ];
    // The first has no previous request; the history stays far within the budget, so only the client's changes count.
    expect(answers.slice(1)).toEqual(['yes', 'no', 'yes', 'no', 'yes']);
  });

  test('the eviction counter counts the chunked steps', async () => {
    const metric = async (): Promise<number> => {
      const text = await (await fetch(`${contextd.url}/metrics`)).text();
      const line = text.split('\n').find((l) => l.startsWith('contextd_window_evictions_total{route="chunked"}'));
      return line === undefined ? 0 : Number(line.split(' ').at(-1));
    };
    const before = await metric();
    const turns = await converse([contextd], 'chunked-model');
    expect((await metric()) - before).toBe(keptPrefix(turns).filter((k) => !k).length);
  });

  test('chunked with rolling summaries: the prefix changes only where the window starts later or the summary is new, byte for byte the previous one in between; within budget', async () => {
    /** Once the turn's request line is in: if it offered a summary job, until every job offered so far has logged its outcome. */
    const summaryJobsSettled = async (conversation: string, requestId: string): Promise<void> => {
      await contextd.waitForLog((l) => l.msg === 'request' && l.requestId === requestId);
      const offered = (): number => contextd.logs.filter((l) => l.msg === 'request' && l.conversation === conversation && l.summaryOffered === true).length;
      const ended = (): number => contextd.logs.filter((l) => l.conversation === conversation && (l.msg === 'summary job' || (l.msg === 'summary job did not complete' && l.outcome !== 'retrying'))).length;
      await waitFor(() => ended() >= offered(), { timeoutMs: 10_000, message: `the summary jobs offered in ${conversation} ended` });
    };
    // Each turn's summary job is awaited, as a user's reading time would: the job is offered four turns like the
    // last before the step, and one slower than those turns lands a request after the window stepped.
    const turns = await converse([contextd], 'summarized-model', 70, summaryJobsSettled);

    const summaryOf = (turn: Turn): string | undefined => turn.messages.find((m) => m.role === 'system' && String(m.content).startsWith(SUMMARY_PREFIX))?.content as string | undefined;
    /** The first history message: the window's start (each question is sent once, so its text names it). */
    const windowStartOf = (turn: Turn): unknown => turn.messages.find((m, i) => i > 0 && !(m.role === 'system' && String(m.content).startsWith(SUMMARY_PREFIX)))?.content;
    const changes = turns.slice(1).map((turn, i) => ({
      request: i + 1,
      stable: turn.stable,
      summaryChanged: summaryOf(turn) !== summaryOf(turns[i]!),
      windowMoved: windowStartOf(turn) !== windowStartOf(turns[i]!),
      keptBytes: startsWithPreviousBody(turn, turns[i]!),
    }));
    for (const change of changes) {
      // Every "no" is a step of the window or a new summary, and every request between them sends the previous prompt, byte for byte, first.
      expect(change.stable, `request ${change.request}`).toBe(change.summaryChanged || change.windowMoved ? 'no' : 'yes');
      if (change.stable === 'yes') expect(change.keptBytes, `request ${change.request}`).toBe(true);
    }
    for (const turn of turns) expect(turn.contextTokens).toBeLessThanOrEqual(BUDGET);
    // Summaries were written and sent, and they change where the window steps: no new summary with the window left where it was.
    const summaryChanges = changes.filter((c) => c.summaryChanged);
    expect(summaryChanges.filter((c) => summaryOf(turns[c.request]!) !== undefined).length).toBeGreaterThanOrEqual(2);
    expect(summaryChanges.filter((c) => !c.windowMoved)).toEqual([]);
    expect(contextd.logs.some((l) => l.msg === 'summary job' && l.outcome === 'stored')).toBe(true);
  }, 120_000);
});

const stacks: { name: string; isAvailable: boolean; storage: () => Record<string, unknown> }[] = [
  { name: 'Redis', isAvailable: hasRedis, storage: () => ({ redis: { url: redisServer!.url } }) },
  { name: 'MongoDB', isAvailable: hasMongo, storage: () => ({ mongodb: { url: mongoServer!.url, database: `${mongoServer!.database}_window_m`, timeout: '5s' } }) },
  {
    name: 'Redis + MongoDB',
    isAvailable: hasRedis && hasMongo,
    storage: () => ({ redis: { url: redisServer!.url }, mongodb: { url: mongoServer!.url, database: `${mongoServer!.database}_window_rm`, timeout: '5s' } }),
  },
];

/** The bodies one instance on the embedded store sends for the conversation: what every store and instance count must send. */
let reference: Promise<string[]> | undefined;
async function referenceBodies(): Promise<string[]> {
  reference ??= (async () => {
    const single = await startContextd({ config: config(upstream) });
    const turns = await converse([single], 'chunked-model');
    await single.stop();
    expect(keptPrefix(turns)).toContain(false); // the window stepped
    return turns.map((turn) => turn.raw);
  })();
  return reference;
}

describe.each(stacks)('window policy across instances on $name', ({ isAvailable, storage }) => {
  test.runIf(isAvailable)('two instances taking turns send, byte for byte, the bodies one instance sends', async () => {
    const expected = await referenceBodies();
    const [a, b] = await Promise.all([startContextd({ config: config(upstream, storage()) }), startContextd({ config: config(upstream, storage()) })]);
    const alone = await converse([a!], 'chunked-model');
    const together = await converse([a!, b!], 'chunked-model');
    expect(alone.map((turn) => turn.raw)).toEqual(expected);
    expect(together.map((turn) => turn.raw)).toEqual(expected);
    await Promise.all([a!.stop(), b!.stop()]);
  }, 180_000);
});
