// The window policy, end to end: with `chunked`, a conversation's prompts
// keep their prefix from one request to the next between evictions (the
// previous request's messages are the start of the next one's), and evictions
// are few; with `sliding` the prefix moves on every turn once history no longer
// fits. The budget holds either way. Two instances on one Redis, taking turns
// on one conversation, send the same prefixes as one instance does.
import { afterAll, beforeAll, beforeEach, describe, expect, test } from 'vitest';
import type { ChatMessage } from '../../src/domain.js';
import { ensureBuilt, startContextd, stopAll, type ContextdProcess } from '../support/contextd-process.js';
import { startFakeUpstream, type FakeUpstream } from '../support/fake-upstream.js';
import { startRedis, type RedisServer } from '../support/redis-server.js';
import { serviceAvailability, servicesRequired } from '../support/services.js';
import { waitFor } from '../support/wait-for.js';
import { clientFor, contextdConfig, storedMessages } from './harness.js';

const BUDGET = 1_000;
const TURNS = 40;
const hasRedis = serviceAvailability().redis.isAvailable || servicesRequired;
const config = (upstream: FakeUpstream, storage: Record<string, unknown> = {}) =>
  contextdConfig(upstream, {
    storage,
    defaults: { budget: { max_context_tokens: BUDGET, summary_max_tokens: 100 }, summary: { enabled: false } },
    routes: [{ name: 'chunked', match: { model: 'chunked-*' }, window: { eviction: 'chunked', low_watermark: 0.6 } }],
  });

let upstream: FakeUpstream;
let redisServer: RedisServer | undefined;
let conversationNo = 0;
const newConversation = (): string => `window-${process.pid}-${++conversationNo}`;

beforeAll(async () => {
  await ensureBuilt();
  upstream = await startFakeUpstream();
  redisServer = hasRedis ? await startRedis() : undefined;
}, 120_000);
beforeEach(() => upstream.reset());
afterAll(async () => {
  await stopAll();
  await Promise.allSettled([upstream?.close(), redisServer?.stop()]);
});

const question = (n: number): string => `question ${n}: ${'tell me more about the harbour and its boats '.repeat(1 + (n % 3))}`;

interface Turn {
  messages: ChatMessage[];
  /** The body as the upstream received it. */
  raw: string;
  stable: string;
  contextTokens: number;
}

/** `TURNS` turns on one conversation, each through the next of `instances`; what the upstream received and each reply's headers. */
async function converse(instances: readonly ContextdProcess[], model: string): Promise<Turn[]> {
  const conversation = newConversation();
  const clients = instances.map((instance) => clientFor(instance, conversation));
  const turns: Turn[] = [];
  for (let n = 0; n < TURNS; n++) {
    const { response } = await clients[n % clients.length]!
      .chat.completions.create({ model, messages: [{ role: 'system', content: 'You are a harbour guide.' }, { role: 'user', content: question(n) }] })
      .withResponse();
    turns.push({
      messages: (upstream.chatRequests().at(-1)!.json as { messages: ChatMessage[] }).messages,
      raw: upstream.chatRequests().at(-1)!.rawBody.toString('utf8'),
      stable: response.headers.get('x-contextd-prefix-stable')!,
      contextTokens: Number(response.headers.get('x-contextd-context-tokens')),
    });
    // Another instance sees a turn once it is stored (read-your-writes is per instance).
    if (instances.length > 1) await waitFor(async () => (await storedMessages(instances[0]!, conversation)).length === 2 * (n + 1), { message: `turn ${n} stored` });
  }
  return turns;
}

const startsWith = (messages: readonly ChatMessage[], prefix: readonly ChatMessage[]): boolean =>
  prefix.length <= messages.length && prefix.every((m, i) => JSON.stringify(m) === JSON.stringify(messages[i]));

/** For each request after the first: does it start with everything the previous request sent? */
const keptPrefix = (turns: readonly Turn[]): boolean[] => turns.slice(1).map((turn, i) => startsWith(turn.messages, turns[i]!.messages));

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
    // Byte for byte: the previous body, up to the end of its last message, starts the next one (messages is the body's last field).
    turns.slice(1).forEach((turn, i) => {
      if (kept[i]) expect(turn.raw.startsWith(turns[i]!.raw.slice(0, -2)), `request ${i + 1}`).toBe(true);
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
});

describe.runIf(hasRedis)('window policy across instances', () => {
  test('two instances on one Redis taking turns send the prefixes one instance sends', async () => {
    const storage = { redis: { url: redisServer!.url } };
    const [a, b] = await Promise.all([startContextd({ config: config(upstream, storage) }), startContextd({ config: config(upstream, storage) })]);
    const alone = keptPrefix(await converse([a!], 'chunked-model'));
    upstream.reset();
    const together = keptPrefix(await converse([a!, b!], 'chunked-model'));
    expect(together).toEqual(alone);
  }, 60_000);
});
