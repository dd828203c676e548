// A store that is down when contextd starts is connected to as soon as it
// comes up, and a store that goes away and comes back is used again: no
// restart of contextd, no turn lost, none twice. A MongoDB that is down, or
// slow, while Redis is up leaves Redis to take the conversation unmerged
// (docs/storage.md): its turns are stored there at once, seen by every
// instance, survive a crash of contextd, and are merged after MongoDB's.
import { performance } from 'node:perf_hooks';
import { Redis } from 'ioredis';
import { MongoClient } from 'mongodb';
import { afterAll, afterEach, beforeAll, beforeEach, expect, test } from 'vitest';
import type { ConversationId, ConversationKey, StoredMessage, TenantId } from '../../src/domain.js';
import { resolveTenant } from '../../src/http/conversation-identity.js';
import { MongoStore } from '../../src/store/mongo/mongo-store.js';
import { RedisStore } from '../../src/store/redis/redis-store.js';
import { ensureBuilt, startContextd, stopAll, type ContextdProcess } from '../support/contextd-process.js';
import { startDelayProxy } from '../support/delay-proxy.js';
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
  let redis: Redis;
  let redisView: RedisStore;
  let conversationNo = 0;
  const newConversation = (): string => `recovery-${process.pid}-${++conversationNo}`;

  const start = (mongodb: { url?: string; timeout?: string } = {}): Promise<ContextdProcess> =>
    startContextd({
      config: contextdConfig(upstream, {
        storage: {
          redis: { url: redisServer.url, ttl: '1h', timeout: '500ms' },
          mongodb: { url: mongodb.url ?? mongoServer.url, database: mongoServer.database, timeout: mongodb.timeout ?? '5s' },
        },
      }),
    });
  const readiness = async (contextd: ContextdProcess): Promise<Readiness> => (await (await fetch(`${contextd.url}/readyz`)).json()) as Readiness;
  const waitForTier = (contextd: ContextdProcess, tier: string, state: 'up' | 'down'): Promise<void> =>
    waitFor(async () => (await readiness(contextd)).tiers[tier]?.state === state, { timeoutMs: 20_000, message: `${tier} ${state} in /readyz` });
  const inMongo = (conversation: string): Promise<StoredMessage[]> => mongoView.listMessages(keyOf(conversation), { afterSeq: 0, limit: 10_000 });
  const sentContents = (): string[] => (upstream.chatRequests().at(-1)!.json as { messages: { content: string }[] }).messages.map((m) => m.content);
  /** Acknowledged: Redis holds the turns (Redis, not contextd's memory, is what survives contextd). */
  const inRedis = async (conversation: string): Promise<number> => (await redisView.unflushed(keyOf(conversation))).messages.length;
  const isUnmerged = async (conversation: string): Promise<boolean> => (await redisView.unflushed(keyOf(conversation))).unmergedIncarnation !== undefined;
  async function metric(contextd: ContextdProcess, line: string): Promise<number | undefined> {
    const text = await (await fetch(`${contextd.url}/metrics`)).text();
    const found = text.split('\n').find((each) => each.startsWith(`${line} `));
    return found === undefined ? undefined : Number(found.split(' ').at(-1));
  }
  const askOn = async (contextd: ContextdProcess, conversation: string, question: string): Promise<string | null> => {
    const { response } = await clientFor(contextd, conversation).chat.completions.create({ model: 'gpt-4o', messages: [{ role: 'user', content: question }] }).withResponse();
    return response.headers.get('x-contextd-cache');
  };
  function expectInOrderOnce(messages: readonly StoredMessage[], questions: readonly string[]): void {
    expect(messages.map((m) => m.seq)).toEqual(Array.from({ length: questions.length * 2 }, (_, i) => i + 1));
    expect(messages.map((m) => m.message.content)).toEqual(questions.flatMap((q) => [q, `echo: ${q}`]));
  }

  beforeAll(async () => {
    await ensureBuilt();
    [upstream, redisServer, mongoServer] = await Promise.all([startFakeUpstream(), startRedis(), startMongo()]);
    mongoClient = new MongoClient(mongoServer.url, { serverSelectionTimeoutMS: 10_000 });
    mongoView = new MongoStore({ db: mongoClient.db(mongoServer.database) });
    redis = new Redis(redisServer.url, { maxRetriesPerRequest: 1 });
    // The Redis tests kill the server under it: this client reconnects, and need not say so.
    redis.on('error', () => undefined);
    redisView = new RedisStore({ client: redis, ttlMs: 3_600_000, maxCachedMessages: 200, mode: 'cache', localCacheMaxEntries: 0 });
  }, 120_000);
  beforeEach(() => upstream.reset());
  // Each test kills servers; the next one starts with both up (a failed test may have left one down).
  afterEach(async () => {
    await stopAll();
    await Promise.all([redisServer.restart(), ...(mongoServer.canRestart ? [mongoServer.restart()] : [])]);
  });
  afterAll(async () => {
    await stopAll();
    redis?.disconnect();
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
  test('MongoDB down at start-up: connected as soon as it is up, and again after each of two more outages; every turn reaches it once, in order', async (context) => {
    requireRestartable(mongoServer, context);
    await mongoServer.kill();
    const contextd = await start();
    const conversation = newConversation();
    const client = clientFor(contextd, conversation);
    const questions: string[] = [];
    const ask = async (question: string): Promise<void> => {
      questions.push(question);
      await client.chat.completions.create({ model: 'gpt-4o', messages: [{ role: 'user', content: question }] });
    };
    await waitForTier(contextd, 'mongodb', 'down');
    for (let outage = 1; outage <= 3; outage++) {
      await ask(`during outage ${outage}`);
      if (outage > 1) {
        await mongoServer.kill();
        await waitForTier(contextd, 'mongodb', 'down');
      }
      await ask(`late in outage ${outage}`);
      expect(sentContents()).toContain(`during outage ${outage}`);
      await mongoServer.restart();
      await waitForTier(contextd, 'mongodb', 'up');
      await waitFor(async () => (await inMongo(conversation).catch(() => [])).length === questions.length * 2, {
        timeoutMs: 20_000,
        message: `turns of outage ${outage} in MongoDB`,
      });
      expectInOrderOnce(await inMongo(conversation), questions);
    }
    expect(contextd.logs.some((line) => String(line.err && (line.err as { message?: string }).message).includes('Topology is closed'))).toBe(false);
    await contextd.stop();
  });


  test.for([
    { case: 'a new conversation', earlierTurns: 0 },
    { case: 'a conversation MongoDB held and Redis had let expire', earlierTurns: 2 },
  ])('MongoDB down, $case: 5 acknowledged turns survive a SIGKILL of contextd and reach MongoDB once, in order, after what it held', async ({ earlierTurns }, context) => {
    requireRestartable(mongoServer, context);
    let contextd = await start();
    const conversation = newConversation();
    const questions: string[] = [];
    for (let turn = 1; turn <= earlierTurns; turn++) {
      questions.push(`earlier ${turn}`);
      await askOn(contextd, conversation, `earlier ${turn}`);
    }
    if (earlierTurns > 0) {
      await waitFor(async () => (await inMongo(conversation)).length === earlierTurns * 2, { timeoutMs: 10_000, message: 'earlier turns in MongoDB' });
      // Expired from Redis (every key goes; the dirty set is empty, everything being flushed).
      await redisServer.flushAll();
    }
    await mongoServer.kill();
    await waitForTier(contextd, 'mongodb', 'down');
    for (let turn = 1; turn <= 5; turn++) {
      questions.push(`outage ${turn}`);
      // Redis answers alone: what MongoDB held is not in the window, the turns made since are.
      expect(await askOn(contextd, conversation, `outage ${turn}`)).toBe('partial');
      expect(sentContents()).toEqual([...Array.from({ length: turn - 1 }, (_, i) => [`outage ${i + 1}`, `echo: outage ${i + 1}`]).flat(), `outage ${turn}`]);
    }
    await waitFor(async () => (await inRedis(conversation)) === 10, { timeoutMs: 10_000, message: 'the outage turns in Redis' });
    await contextd.kill();
    await mongoServer.restart();
    contextd = await start();
    await waitFor(async () => (await inMongo(conversation).catch(() => [])).length === questions.length * 2, { timeoutMs: 20_000, message: 'the outage turns in MongoDB' });
    expectInOrderOnce(await inMongo(conversation), questions);
    // From then on the history MongoDB had comes in front of them again.
    await waitFor(async () => !(await isUnmerged(conversation)), { timeoutMs: 10_000, message: 'Redis rebased on MongoDB' });
    expect(await askOn(contextd, conversation, 'after')).toBe('hit');
    expect(sentContents()).toEqual([...questions.flatMap((q) => [q, `echo: ${q}`]), 'after']);
    await contextd.stop();
  });

  test('MongoDB down: two contextd instances on one Redis each see the turn the other just made, and MongoDB gets every turn once', async (context) => {
    requireRestartable(mongoServer, context);
    const [a, b] = await Promise.all([start(), start()]);
    const conversation = newConversation();
    await mongoServer.kill();
    await Promise.all([waitForTier(a, 'mongodb', 'down'), waitForTier(b, 'mongodb', 'down')]);
    const turns = [
      { on: a, question: 'on a 1' },
      { on: b, question: 'on b 1' },
      { on: a, question: 'on a 2' },
      { on: b, question: 'on b 2' },
    ];
    for (const [index, { on, question }] of turns.entries()) {
      expect(await askOn(on, conversation, question)).toBe('partial');
      // The other instance's turn before it came through Redis, not this process's memory.
      expect(sentContents()).toEqual([...turns.slice(0, index).flatMap((t) => [t.question, `echo: ${t.question}`]), question]);
      await waitFor(async () => (await inRedis(conversation)) === 2 * (index + 1), { message: `${question} acknowledged` });
    }
    await mongoServer.restart();
    await waitFor(async () => (await inMongo(conversation).catch(() => [])).length === turns.length * 2, { timeoutMs: 20_000, message: 'the turns in MongoDB' });
    expectInOrderOnce(await inMongo(conversation), turns.map((t) => t.question));
    await Promise.all([a.stop(), b.stop()]);
  });

  test('a slow MongoDB (600 ms each way) and 8 new conversations at once: no request waits for it, it is never marked down, and every turn is seen next and lands in MongoDB once', async () => {
    const { hostname, port } = new URL(mongoServer.url);
    const proxy = await startDelayProxy({ host: hostname, port: Number(port) });
    try {
      // Connected (and indexes made) at full speed; from then on every byte to and from MongoDB is late.
      const contextd = await start({ url: `mongodb://127.0.0.1:${proxy.port}/`, timeout: '15s' });
      proxy.delayMs = 600;
      const conversations = Array.from({ length: 8 }, () => newConversation());
      const firsts = await Promise.all(
        conversations.map(async (conversation) => {
          const startedAt = performance.now();
          const cache = await askOn(contextd, conversation, `${conversation} first`);
          return { cache, ms: performance.now() - startedAt };
        }),
      );
      // The cold-read deadline (400 ms by default) passed; a MongoDB round trip alone takes 1,200 ms.
      expect(firsts.map((first) => first.cache)).toEqual(conversations.map(() => 'partial'));
      for (const { ms } of firsts) expect(ms).toBeLessThan(1_100);
      for (const conversation of conversations) {
        await waitFor(async () => (await inRedis(conversation)) >= 2 || (await inMongo(conversation)).length >= 2, { message: `${conversation} first turn stored` });
        const startedAt = performance.now();
        await askOn(contextd, conversation, `${conversation} second`);
        expect(performance.now() - startedAt).toBeLessThan(1_100);
        expect(sentContents()).toEqual([`${conversation} first`, `echo: ${conversation} first`, `${conversation} second`]);
      }
      for (const conversation of conversations) {
        await waitFor(async () => (await inMongo(conversation)).length === 4, { timeoutMs: 30_000, message: `${conversation} in MongoDB` });
        expectInOrderOnce(await inMongo(conversation), [`${conversation} first`, `${conversation} second`]);
      }
      // One slow query is not a down store: the tier stayed up throughout.
      expect(contextd.logs.filter((line) => line.msg === 'store tier is down')).toEqual([]);
      expect((await readiness(contextd)).tiers.mongodb?.state).toBe('up');
      expect(await metric(contextd, 'contextd_store_up{tier="mongodb"}')).toBe(1);
      await contextd.stop();
    } finally {
      await proxy.close();
    }
  }, 90_000);
});
