// A store that is down when contextd starts is connected to as soon as it
// comes up, and a store that goes away and comes back is used again: no
// restart of contextd, no turn lost, none twice.
import { MongoClient } from 'mongodb';
import { afterAll, afterEach, beforeAll, beforeEach, expect, test } from 'vitest';
import type { ConversationId, ConversationKey, StoredMessage, TenantId } from '../../src/domain.js';
import { resolveTenant } from '../../src/http/conversation-identity.js';
import { MongoStore } from '../../src/store/mongo/mongo-store.js';
import { ensureBuilt, startContextd, stopAll, type ContextdProcess } from '../support/contextd-process.js';
import { startFakeUpstream, type FakeUpstream } from '../support/fake-upstream.js';
import { startMongo, type MongoServer } from '../support/mongo-server.js';
import { startRedis, type RedisServer } from '../support/redis-server.js';
import { describeWithService, requireRestartable, serviceAvailability } from '../support/services.js';
import { waitFor } from '../support/wait-for.js';
import { API_KEY, clientFor, contextdConfig } from './harness.js';

const tenant = resolveTenant({ authorization: `Bearer ${API_KEY}` }, { kind: 'authorization' });
const keyOf = (conversation: string): ConversationKey => ({ tenant: tenant as TenantId, conversation: conversation as ConversationId });
const available = serviceAvailability();

interface Readiness {
  status: string;
  tiers: Record<string, { state: string }>;
}

describeWithService(!available.redis.isAvailable ? available.redis : available.mongo, 'stores that come and go', () => {
  let upstream: FakeUpstream;
  let redisServer: RedisServer;
  let mongoServer: MongoServer;
  let mongoClient: MongoClient;
  let mongoView: MongoStore;
  let conversationNo = 0;
  const newConversation = (): string => `recovery-${process.pid}-${++conversationNo}`;

  const start = (): Promise<ContextdProcess> =>
    startContextd({
      config: contextdConfig(upstream, {
        storage: { redis: { url: redisServer.url, ttl: '1h', timeout: '500ms' }, mongodb: { url: mongoServer.url, database: mongoServer.database, timeout: '5s' } },
      }),
    });
  const readiness = async (contextd: ContextdProcess): Promise<Readiness> => (await (await fetch(`${contextd.url}/readyz`)).json()) as Readiness;
  const waitForTier = (contextd: ContextdProcess, tier: string, state: 'up' | 'down'): Promise<void> =>
    waitFor(async () => (await readiness(contextd)).tiers[tier]?.state === state, { timeoutMs: 20_000, message: `${tier} ${state} in /readyz` });
  const inMongo = (conversation: string): Promise<StoredMessage[]> => mongoView.listMessages(keyOf(conversation), { afterSeq: 0, limit: 10_000 });
  const sentContents = (): string[] => (upstream.chatRequests().at(-1)!.json as { messages: { content: string }[] }).messages.map((m) => m.content);
  function expectInOrderOnce(messages: readonly StoredMessage[], questions: readonly string[]): void {
    expect(messages.map((m) => m.seq)).toEqual(Array.from({ length: questions.length * 2 }, (_, i) => i + 1));
    expect(messages.map((m) => m.message.content)).toEqual(questions.flatMap((q) => [q, `echo: ${q}`]));
  }

  beforeAll(async () => {
    await ensureBuilt();
    [upstream, redisServer, mongoServer] = await Promise.all([startFakeUpstream(), startRedis(), startMongo()]);
    mongoClient = new MongoClient(mongoServer.url, { serverSelectionTimeoutMS: 10_000 });
    mongoView = new MongoStore({ db: mongoClient.db(mongoServer.database) });
  }, 120_000);
  beforeEach(() => upstream.reset());
  // Each test kills servers; the next one starts with both up (a failed test may have left one down).
  afterEach(async () => {
    await stopAll();
    await Promise.all([redisServer.restart(), ...(mongoServer.canRestart ? [mongoServer.restart()] : [])]);
  });
  afterAll(async () => {
    await stopAll();
    await mongoClient?.close();
    await Promise.allSettled([upstream?.close(), redisServer?.stop(), mongoServer?.stop()]);
  });

  test('Redis down at start-up: served from MongoDB meanwhile, Redis used as soon as it is up, and again after it restarts', async () => {
    await redisServer.kill();
    const contextd = await start();
    const conversation = newConversation();
    const client = clientFor(contextd, conversation);
    await waitForTier(contextd, 'redis', 'down');
    const questions = ['redis down 1', 'redis down 2'];
    for (const question of questions) await client.chat.completions.create({ model: 'gpt-4o', messages: [{ role: 'user', content: question }] });
    expect(sentContents()).toContain('redis down 1');
    for (let round = 1; round <= 2; round++) {
      await redisServer.restart();
      await waitForTier(contextd, 'redis', 'up');
      for (const question of [`redis back ${round}a`, `redis back ${round}b`]) {
        questions.push(question);
        await client.chat.completions.create({ model: 'gpt-4o', messages: [{ role: 'user', content: question }] });
      }
      // The second request of the round was answered from Redis, with every earlier turn in its window.
      const { response } = await client.chat.completions.create({ model: 'gpt-4o', messages: [{ role: 'user', content: `redis check ${round}` }] }).withResponse();
      questions.push(`redis check ${round}`);
      expect(response.headers.get('x-contextd-cache')).toBe('hit');
      expect(sentContents()).toEqual(expect.arrayContaining(questions.slice(0, -1)));
      await waitFor(async () => (await inMongo(conversation)).length === questions.length * 2, { timeoutMs: 20_000, message: `round ${round} in MongoDB` });
      expectInOrderOnce(await inMongo(conversation), questions);
      if (round === 1) {
        await redisServer.kill();
        await waitForTier(contextd, 'redis', 'down');
      }
    }
    await contextd.stop();
  });

  test('both down at start-up: requests pass through without memory, then both are used once up', async (context) => {
    requireRestartable(mongoServer, context);
    await Promise.all([redisServer.kill(), mongoServer.kill()]);
    const contextd = await start();
    const conversation = newConversation();
    const client = clientFor(contextd, conversation);
    await waitFor(async () => (await readiness(contextd)).status === 'down', { timeoutMs: 20_000, message: 'both tiers down' });
    const { response } = await client.chat.completions.create({ model: 'gpt-4o', messages: [{ role: 'user', content: 'nobody home' }] }).withResponse();
    expect(response.headers.get('x-contextd-memory')).toBe('unavailable');
    await Promise.all([redisServer.restart(), mongoServer.restart()]);
    await waitFor(async () => (await readiness(contextd)).status === 'up', { timeoutMs: 20_000, message: 'both tiers up' });
    const questions = ['both back 1', 'both back 2'];
    for (const question of questions) await client.chat.completions.create({ model: 'gpt-4o', messages: [{ role: 'user', content: question }] });
    expect(sentContents()).toContain('both back 1');
    await waitFor(async () => (await inMongo(conversation)).length >= questions.length * 2, { timeoutMs: 20_000, message: 'turns in MongoDB' });
    const stored = (await inMongo(conversation)).map((m) => m.message.content);
    expect(stored.slice(-4)).toEqual(questions.flatMap((q) => [q, `echo: ${q}`]));
    expect(new Set(stored).size).toBe(stored.length);
    await contextd.stop();
  });
});
