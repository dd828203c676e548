// Redis + MongoDB end to end: the real contextd process on real servers, driven
// by the openai client; tiers inspected with the project's own store classes.
import { Redis } from 'ioredis';
import { MongoClient } from 'mongodb';
import { afterAll, beforeAll, beforeEach, expect, test } from 'vitest';
import type { ConversationId, ConversationKey, StoredMessage, TenantId } from '../../src/domain.js';
import { resolveTenant } from '../../src/http/conversation-identity.js';
import { MongoStore } from '../../src/store/mongo/mongo-store.js';
import { RedisStore } from '../../src/store/redis/redis-store.js';
import { ensureBuilt, startContextd, stopAll, type ContextdProcess } from '../support/contextd-process.js';
import { startFakeUpstream, type FakeUpstream } from '../support/fake-upstream.js';
import { startMongo, type MongoServer } from '../support/mongo-server.js';
import { startRedis, startRedisCluster, type RedisServer } from '../support/redis-server.js';
import { describeWithService, requireRestartable, serviceAvailability } from '../support/services.js';
import { waitFor } from '../support/wait-for.js';
import { API_KEY, clientFor, contextdConfig } from './harness.js';

const tenant = resolveTenant({ authorization: `Bearer ${API_KEY}` }, { kind: 'authorization' });
const keyOf = (conversation: string): ConversationKey => ({ tenant: tenant as TenantId, conversation: conversation as ConversationId });

const available = serviceAvailability();
const both = !available.redis.isAvailable ? available.redis : available.mongo;

describeWithService(both, 'contextd on Redis + MongoDB', () => {
  let upstream: FakeUpstream;
  let redisServer: RedisServer;
  let mongoServer: MongoServer;
  let redis: Redis;
  let mongoClient: MongoClient;
  let redisView: RedisStore;
  let mongoView: MongoStore;
  let conversationNo = 0;
  const newConversation = (): string => `durable-${process.pid}-${++conversationNo}`;

  // FerretDB on SQLite scans a whole collection per query, so MongoDB gets a generous timeout here.
  const start = (database = mongoServer.database): Promise<ContextdProcess> =>
    startContextd({
      config: contextdConfig(upstream, {
        storage: { redis: { url: redisServer.url, ttl: '1h', timeout: '500ms' }, mongodb: { url: mongoServer.url, database, timeout: '5s' } },
      }),
    });

  async function inMongo(conversation: string): Promise<StoredMessage[]> {
    return mongoView.listMessages(keyOf(conversation), { afterSeq: 0, limit: 100_000 });
  }
  async function metric(contextd: ContextdProcess, name: string): Promise<number> {
    const text = await (await fetch(`${contextd.url}/metrics`)).text();
    return text
      .split('\n')
      .filter((line) => line.startsWith(name))
      .reduce((sum, line) => sum + Number(line.split(' ').at(-1)), 0);
  }
  function expectGapFreeOnce(messages: readonly StoredMessage[], turns: number): void {
    expect(messages.map((m) => m.seq)).toEqual(Array.from({ length: turns * 2 }, (_, i) => i + 1));
    const users = messages.filter((m) => m.message.role === 'user').map((m) => m.message.content);
    expect(new Set(users).size).toBe(turns);
    for (let i = 0; i < messages.length; i += 2) expect(messages[i + 1]!.message.content).toBe(`echo: ${String(messages[i]!.message.content)}`);
  }

  beforeAll(async () => {
    await ensureBuilt();
    [upstream, redisServer, mongoServer] = await Promise.all([startFakeUpstream(), startRedis(), startMongo()]);
    redis = new Redis(redisServer.url, { maxRetriesPerRequest: 1 });
    mongoClient = new MongoClient(mongoServer.url, { serverSelectionTimeoutMS: 5_000 });
    redisView = new RedisStore({ client: redis, ttlMs: 3_600_000, maxCachedMessages: 200, mode: 'cache' });
    mongoView = new MongoStore({ db: mongoClient.db(mongoServer.database) });
  }, 120_000);
  beforeEach(() => upstream.reset());
  afterAll(async () => {
    await stopAll();
    redis?.disconnect();
    await mongoClient?.close();
    await Promise.allSettled([upstream?.close(), redisServer?.stop(), mongoServer?.stop()]);
  });

  test('a 30-turn conversation lands in both tiers, in order; TTL is set and refreshed; cache says miss then hit', async () => {
    const contextd = await start();
    const conversation = newConversation();
    const client = clientFor(contextd, conversation);
    const caches: (string | null)[] = [];
    for (let turn = 1; turn <= 30; turn++) {
      const { response } = await client.chat.completions.create({ model: 'gpt-4o', messages: [{ role: 'user', content: `turn ${turn}` }] }).withResponse();
      caches.push(response.headers.get('x-contextd-cache'));
    }
    expect(caches[0]).toBe('miss');
    expect(caches.slice(2).every((c) => c === 'hit')).toBe(true);
    await waitFor(async () => (await inMongo(conversation)).length === 60, { timeoutMs: 10_000, message: '60 messages in MongoDB' });
    expectGapFreeOnce(await inMongo(conversation), 30);
    const hot = await redisView.listMessages(keyOf(conversation), { afterSeq: 0, limit: 1000 });
    expect(hot.map((m) => m.seq)).toEqual(Array.from({ length: 60 }, (_, i) => i + 1));

    const keys = await redis.keys(`*${conversation}*`);
    expect(keys.length).toBeGreaterThan(0);
    // Unflushed turns are kept without expiry; once MongoDB has them the 1 h TTL is back on every key.
    const allExpireInAnHour = async (): Promise<boolean> => {
      const ttls = await Promise.all((await redis.keys(`*${conversation}*`)).map((k) => redis.pttl(k)));
      return ttls.length > 0 && ttls.every((t) => t > 3_500_000 && t <= 3_600_000);
    };
    await waitFor(allExpireInAnHour, { timeoutMs: 10_000, message: 'TTL set on every key' });
    for (const k of keys) await redis.pexpire(k, 60_000);
    // A read refreshes the TTL (the new turn's messages are then flushed, which keeps it).
    await client.chat.completions.create({ model: 'gpt-4o', messages: [{ role: 'user', content: 'refresh' }] });
    await waitFor(async () => (await inMongo(conversation)).length === 62, { timeoutMs: 10_000, message: 'refresh turn flushed' });
    await waitFor(allExpireInAnHour, { timeoutMs: 10_000, message: 'TTL refreshed on every key' });
    await contextd.stop();
  });

  /** contextd's cold-read costs as its MongoDB command monitoring counts them, around one request. */
  async function coldRead(contextd: ContextdProcess, conversation: string): Promise<{ docs: number; finds: number; getMores: number; sent: string[] }> {
    const docs0 = await metric(contextd, 'contextd_mongodb_documents_read_total');
    const finds0 = await metric(contextd, 'contextd_mongodb_commands_total{command="find"}');
    const getMores0 = await metric(contextd, 'contextd_mongodb_commands_total{command="getMore"}');
    const { response } = await clientFor(contextd, conversation).chat.completions.create({ model: 'gpt-4o', messages: [{ role: 'user', content: 'what do you remember?' }] }).withResponse();
    expect(response.headers.get('x-contextd-cache')).toBe('miss');
    return {
      docs: (await metric(contextd, 'contextd_mongodb_documents_read_total')) - docs0,
      finds: (await metric(contextd, 'contextd_mongodb_commands_total{command="find"}')) - finds0,
      getMores: (await metric(contextd, 'contextd_mongodb_commands_total{command="getMore"}')) - getMores0,
      sent: (upstream.chatRequests().at(-1)!.json as { messages: { content: string }[] }).messages.map((m) => m.content),
    };
  }

  test('after a restart with Redis flushed, the next request carries the history MongoDB served', async () => {
    let contextd = await start();
    const conversation = newConversation();
    const client = clientFor(contextd, conversation);
    for (let turn = 1; turn <= 5; turn++) await client.chat.completions.create({ model: 'gpt-4o', messages: [{ role: 'user', content: `remember ${turn}` }] });
    await waitFor(async () => (await inMongo(conversation)).length === 10, { timeoutMs: 10_000, message: 'flushed' });
    await contextd.stop();
    await redisServer.flushAll();

    contextd = await start();
    const restored = await coldRead(contextd, conversation);
    expect(restored.sent).toEqual([...Array.from({ length: 5 }, (_, i) => [`remember ${i + 1}`, `echo: remember ${i + 1}`]).flat(), 'what do you remember?']);
    // One query: newest first on (tenant, conversation, seq), reading the ten messages and nothing else.
    expect(restored.finds).toBe(1);
    expect(restored.getMores).toBe(0);
    expect(restored.docs).toBe(10);
    await contextd.stop();
  });

  test('a 10,000-message conversation is served with the same MongoDB work as a 10-message one', async () => {
    // A database of its own, so the big conversation does not slow the other tests down on FerretDB.
    const database = `${mongoServer.database}_big`;
    const seeder = new MongoStore({ db: mongoClient.db(database) });
    await seeder.ensureIndexes();
    const long = newConversation();
    const short = newConversation();
    for (const [conv, count] of [[long, 10_000], [short, 10]] as const) {
      const messages: StoredMessage[] = Array.from({ length: count }, (_, i) => ({
        message: { role: i % 2 === 0 ? 'user' : 'assistant', content: `seeded message ${i} with a few more words in it` },
        tokens: 16,
        cumTokens: 16 * (i + 1),
        digest: `seed-${conv}-${i}`,
        seq: i + 1,
        createdAtMs: Date.now(),
      }));
      for (let i = 0; i < messages.length; i += 1000) await seeder.upsertAllocated(keyOf(conv), messages.slice(i, i + 1000));
    }
    const contextd = await startContextd({
      config: contextdConfig(upstream, {
        // No summary jobs here: their reads would be counted with the request's.
        defaults: { budget: { max_context_tokens: 300, summary_max_tokens: 50 }, summary: { enabled: false } },
        // FerretDB scans the whole collection per query: this cold read is slower than the request path's default deadline.
        storage: { redis: { url: redisServer.url, timeout: '500ms' }, mongodb: { url: mongoServer.url, database, timeout: '10s', cold_read_timeout: '10s' } },
      }),
    });
    const longRead = await coldRead(contextd, long);
    const shortRead = await coldRead(contextd, short);
    expect(shortRead.sent).toHaveLength(11);
    expect(longRead.sent.length).toBeGreaterThan(5);
    expect(longRead.sent.length).toBeLessThan(20); // the 300-token budget, not the 10,000 messages
    // One query each, its cursor read in at most two batches.
    expect(longRead.finds).toBe(1);
    expect(shortRead.finds).toBe(1);
    expect(longRead.getMores).toBeLessThanOrEqual(1);
    // Documents read: the window (the one that crosses the budget included), and at most one more.
    expect(longRead.docs).toBeLessThanOrEqual(longRead.sent.length - 1 + 1);
    expect(shortRead.docs).toBe(10);
    await contextd.stop();
  });

  test('two contextd processes, 20 concurrent requests on one conversation and 20 on others: each turn once, seqs gap-free', async () => {
    const [a, b] = await Promise.all([start(), start()]);
    const shared = newConversation();
    const others = Array.from({ length: 20 }, () => newConversation());
    await Promise.all([
      ...Array.from({ length: 20 }, (_, i) =>
        clientFor(i % 2 === 0 ? a : b, shared).chat.completions.create({ model: 'gpt-4o', messages: [{ role: 'user', content: `shared ${i}` }] }),
      ),
      ...others.map((conv, i) => clientFor(i % 2 === 0 ? b : a, conv).chat.completions.create({ model: 'gpt-4o', messages: [{ role: 'user', content: `solo ${i}` }] })),
    ]);
    await waitFor(async () => (await inMongo(shared)).length === 40, { timeoutMs: 15_000, message: 'shared conversation flushed' });
    expectGapFreeOnce(await inMongo(shared), 20);
    for (const conv of others) {
      await waitFor(async () => (await inMongo(conv)).length === 2, { timeoutMs: 15_000, message: `${conv} flushed` });
      expectGapFreeOnce(await inMongo(conv), 1);
    }
    await Promise.all([a.stop(), b.stop()]);
  });

  test("two contextd processes taking turns: each request carries every stored turn, the other process's included, though some loads ask Redis nothing", async () => {
    // Redis alone (no flusher, whose writes would untrack windows at times of its choosing).
    const redisAlone = (): Promise<ContextdProcess> =>
      startContextd({ config: contextdConfig(upstream, { storage: { redis: { url: redisServer.url, ttl: '1h', timeout: '500ms' } } }) });
    const [a, b] = await Promise.all([redisAlone(), redisAlone()]);
    const conversation = newConversation();
    // a's first turn after b's is loaded from Redis (b's write untracked a's window), the next ones from a's tracked window.
    const order = [a, a, a, b, a, a, a, b, a];
    for (const [index, contextd] of order.entries()) {
      upstream.reset();
      await clientFor(contextd, conversation).chat.completions.create({ model: 'gpt-4o', messages: [{ role: 'user', content: `turn ${index}` }] });
      const sent = (upstream.chatRequests()[0]!.json as { messages: { content: string }[] }).messages.map((m) => m.content);
      for (let earlier = 0; earlier < index; earlier++) expect(sent, `turn ${index} carries turn ${earlier}`).toContain(`turn ${earlier}`);
      // The turn is stored after the reply: the next request, on either process, comes once Redis has it
      // (read with LLEN: a store's LIST would refresh the TTL, a write that untracks the window).
      await waitFor(async () => (await redis.llen(`contextd:{${tenant}:${conversation}}:msgs`)) === 2 * (index + 1), { message: `turn ${index} in Redis` });
    }
    // Turns 2, 5 and 6 (turn 1 loads the window with the LOAD script, turns 4 and 8 with the fast reads).
    expect(await metric(a, 'contextd_redis_loads_total{path="tracked"}')).toBe(3);
    const standaloneView = new RedisStore({ client: redis, ttlMs: 3_600_000, maxCachedMessages: 200, mode: 'standalone' });
    expectGapFreeOnce(await standaloneView.listMessages(keyOf(conversation), { afterSeq: 0, limit: 100 }), order.length);
    await Promise.all([a.stop(), b.stop()]);
  });

  test('Redis killed mid-conversation: no client error, served from MongoDB; back again later', async () => {
    const contextd = await start();
    const conversation = newConversation();
    const client = clientFor(contextd, conversation);
    for (let turn = 1; turn <= 3; turn++) await client.chat.completions.create({ model: 'gpt-4o', messages: [{ role: 'user', content: `before ${turn}` }] });
    await waitFor(async () => (await inMongo(conversation)).length === 6, { timeoutMs: 10_000, message: 'flushed before the kill' });
    await redisServer.kill();
    for (let turn = 1; turn <= 3; turn++) {
      const { response } = await client.chat.completions.create({ model: 'gpt-4o', messages: [{ role: 'user', content: `during ${turn}` }] }).withResponse();
      expect(response.headers.get('x-contextd-cache')).toBe('none');
      const sent = (upstream.chatRequests().at(-1)!.json as { messages: { content: string }[] }).messages.map((m) => m.content);
      expect(sent).toContain('before 3');
      if (turn > 1) expect(sent).toContain(`during ${turn - 1}`);
    }
    const ready = await (await fetch(`${contextd.url}/readyz`)).json();
    expect(ready).toMatchObject({ status: 'degraded', tiers: { redis: { state: 'down' }, mongodb: { state: 'up' } } });
    await redisServer.restart();
    await waitFor(async () => ((await (await fetch(`${contextd.url}/readyz`)).json()) as { status: string }).status === 'up', { timeoutMs: 15_000, message: 'redis back' });
    await client.chat.completions.create({ model: 'gpt-4o', messages: [{ role: 'user', content: 'after' }] });
    await waitFor(async () => (await inMongo(conversation)).length === 14, { timeoutMs: 10_000, message: 'all turns in MongoDB' });
    expectGapFreeOnce(await inMongo(conversation), 7);
    await contextd.stop();
  });

  test('MongoDB killed mid-conversation and brought back: served from Redis, writes flushed in order without duplicates', async (context) => {
    requireRestartable(mongoServer, context);
    const contextd = await start();
    const conversation = newConversation();
    const client = clientFor(contextd, conversation);
    for (let turn = 1; turn <= 3; turn++) await client.chat.completions.create({ model: 'gpt-4o', messages: [{ role: 'user', content: `before ${turn}` }] });
    await waitFor(async () => (await inMongo(conversation)).length === 6, { timeoutMs: 10_000, message: 'flushed before the kill' });
    await mongoServer.kill();
    for (let turn = 1; turn <= 4; turn++) {
      const { response } = await client.chat.completions.create({ model: 'gpt-4o', messages: [{ role: 'user', content: `during ${turn}` }] }).withResponse();
      expect(response.headers.get('x-contextd-cache')).toBe('hit');
    }
    await mongoServer.restart();
    await waitFor(async () => (await inMongo(conversation).catch(() => [])).length === 14, { timeoutMs: 20_000, message: 'turns flushed after MongoDB came back' });
    expectGapFreeOnce(await inMongo(conversation), 7);
    await contextd.stop();
  });

  test('contextd SIGKILLed right after replies while MongoDB is down: every acknowledged turn reaches MongoDB once', async (context) => {
    requireRestartable(mongoServer, context);
    let contextd = await start();
    const conversation = newConversation();
    let client = clientFor(contextd, conversation);
    await client.chat.completions.create({ model: 'gpt-4o', messages: [{ role: 'user', content: 'first' }] });
    await waitFor(async () => (await inMongo(conversation)).length === 2, { timeoutMs: 10_000, message: 'first turn flushed' });
    await mongoServer.kill();
    for (let turn = 1; turn <= 5; turn++) await client.chat.completions.create({ model: 'gpt-4o', messages: [{ role: 'user', content: `unflushed ${turn}` }] });
    // Acknowledged = accepted by the hot tier: all five turns are in Redis before the kill.
    await waitFor(async () => (await redisView.unflushed(keyOf(conversation))).messages.length === 10, { timeoutMs: 10_000, message: 'turns in Redis' });
    await contextd.kill();
    await mongoServer.restart();
    contextd = await start();
    await waitFor(async () => (await inMongo(conversation).catch(() => [])).length === 12, { timeoutMs: 30_000, message: 'turns flushed by the restarted instance' });
    expectGapFreeOnce(await inMongo(conversation), 6);
    client = clientFor(contextd, conversation);
    await client.chat.completions.create({ model: 'gpt-4o', messages: [{ role: 'user', content: 'after' }] });
    await waitFor(async () => (await inMongo(conversation)).length === 14, { timeoutMs: 10_000, message: 'next turn flushed' });
    expectGapFreeOnce(await inMongo(conversation), 7);
    await contextd.stop();
  });
});

describeWithService(!available.redisCluster.isAvailable ? available.redisCluster : available.mongo, 'contextd on a Redis Cluster + MongoDB', () => {
  test('a conversation works across a 3-master cluster: history in every request, all turns in MongoDB', async () => {
    const [upstream, cluster, mongoServer] = await Promise.all([startFakeUpstream(), startRedisCluster({ masters: 3 }), startMongo()]);
    const mongoClient = new MongoClient(mongoServer.url, { serverSelectionTimeoutMS: 5_000 });
    try {
      const contextd = await startContextd({
        config: contextdConfig(upstream, {
          storage: { redis: { url: cluster.url, timeout: '1s' }, mongodb: { url: mongoServer.url, database: mongoServer.database, timeout: '5s' } },
        }),
      });
      expect(contextd.logs.some((l) => l.msg === 'conversation store' && String(l.store).includes('redis cluster'))).toBe(true);
      // Several conversations, so their hash tags land on different masters.
      const conversations = Array.from({ length: 6 }, (_, i) => `cluster-${process.pid}-${i}`);
      for (let turn = 1; turn <= 4; turn++) {
        for (const conversation of conversations) {
          const { response } = await clientFor(contextd, conversation)
            .chat.completions.create({ model: 'gpt-4o', messages: [{ role: 'user', content: `${conversation} turn ${turn}` }] })
            .withResponse();
          if (turn > 1) expect(response.headers.get('x-contextd-cache')).toBe('hit');
          const sent = (upstream.chatRequests().at(-1)!.json as { messages: { content: string }[] }).messages.map((m) => m.content);
          expect(sent).toHaveLength(turn * 2 - 1);
        }
      }
      const mongo = new MongoStore({ db: mongoClient.db(mongoServer.database) });
      for (const conversation of conversations) {
        await waitFor(async () => (await mongo.listMessages(keyOf(conversation), { afterSeq: 0, limit: 100 })).length === 8, { timeoutMs: 15_000, message: `${conversation} flushed` });
      }
      await contextd.stop();
    } finally {
      await mongoClient.close();
      await Promise.allSettled([upstream.close(), cluster.stop(), mongoServer.stop()]);
    }
  }, 90_000);
});
