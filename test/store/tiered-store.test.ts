// The two-tier store (Redis in front of MongoDB, with the flusher running)
// against real servers: the shared contract, unchanged.
import { randomUUID } from 'node:crypto';
import { Redis } from 'ioredis';
import { MongoClient } from 'mongodb';
import { afterAll, beforeAll, describe, expect, onTestFinished, test } from 'vitest';
import type { ConversationId, NewMessage, TenantId } from '../../src/domain.js';
import { OutboxFlusher, type OutboxFlusherOptions } from '../../src/background/outbox-flusher.js';
import { MongoStore } from '../../src/store/mongo/mongo-store.js';
import { RedisStore } from '../../src/store/redis/redis-store.js';
import { StoreHealth } from '../../src/store/store-health.js';
import { TieredStore, type TieredStoreOptions } from '../../src/store/tiered-store.js';
import { startMongo, type MongoServer } from '../support/mongo-server.js';
import { startRedis, type RedisServer } from '../support/redis-server.js';
import { describeWithService, serviceAvailability } from '../support/services.js';
import { waitFor } from '../support/wait-for.js';
import { runStoreContract } from './store-contract.js';

/** A TieredStore with the tests' deadlines; `options` names the tiers and anything else that differs. */
function tieredStore(options: Pick<TieredStoreOptions, 'redis' | 'mongo' | 'health'> & Partial<TieredStoreOptions>): TieredStore {
  return new TieredStore({
    redisTimeoutMs: 2_000,
    mongoTimeoutMs: 5_000,
    maxCachedMessages: 200,
    onFlushNeeded: () => undefined,
    onBackgroundError: () => undefined,
    ...options,
  });
}

/** An OutboxFlusher with the tests' timings (no flush delay). */
function testFlusher(options: Pick<OutboxFlusherOptions, 'redis' | 'mongo' | 'health'> & Partial<OutboxFlusherOptions>): OutboxFlusher {
  return new OutboxFlusher({
    redisTimeoutMs: 2_000,
    mongoTimeoutMs: 5_000,
    idleDelayMs: 50,
    flushDelayMs: 0,
    leaseMs: 5_000,
    batchSize: 16,
    sweepIntervalMs: 60_000,
    onFlushed: () => undefined,
    onConflict: () => undefined,
    onError: () => undefined,
    ...options,
  });
}

function message(content: string): NewMessage {
  return { message: { role: 'user', content }, tokens: 5, digest: `${content}-digest` };
}

const available = serviceAvailability();

describeWithService(!available.redis.isAvailable ? available.redis : available.mongo, 'TieredStore on real Redis and MongoDB', () => {
  let redisServer: RedisServer;
  let mongoServer: MongoServer;
  let redis: Redis;
  let mongoClient: MongoClient;

  beforeAll(async () => {
    [redisServer, mongoServer] = await Promise.all([startRedis(), startMongo()]);
    redis = new Redis(redisServer.url, { enableOfflineQueue: false, maxRetriesPerRequest: 1 });
    await new Promise((resolve) => redis.once('ready', resolve));
    mongoClient = new MongoClient(mongoServer.url, { serverSelectionTimeoutMS: 5_000 });
  }, 120_000);

  afterAll(async () => {
    redis?.disconnect();
    await mongoClient?.close();
    await Promise.allSettled([redisServer?.stop(), mongoServer?.stop()]);
  });

  const stack = (mode: 'two-tier' | 'redis-only' | 'mongodb-only') => async () => {
    const health = new StoreHealth({ tiers: mode === 'two-tier' ? ['redis', 'mongodb'] : mode === 'redis-only' ? ['redis'] : ['mongodb'], probeIntervalMs: 1_000 });
    const mongo = mode === 'redis-only' ? undefined : new MongoStore({ db: mongoClient.db(`${mongoServer.database}_${randomUUID().slice(0, 8)}`) });
    await mongo?.ensureIndexes();
    const redisStore =
      mode === 'mongodb-only'
        ? undefined
        : new RedisStore({ client: redis, ttlMs: 3_600_000, maxCachedMessages: 200, mode: mode === 'two-tier' ? 'cache' : 'standalone', keyPrefix: `tiered:${randomUUID()}:` });
    let flusher: OutboxFlusher | undefined;
    const store = tieredStore({
      redis: redisStore,
      mongo,
      health,
      onFlushNeeded: () => flusher?.notify(),
      flushesSettled: async () => flusher?.idle(),
    });
    if (redisStore !== undefined && mongo !== undefined) {
      flusher = testFlusher({ redis: redisStore, mongo, health });
      flusher.start();
    }
    return {
      store,
      cleanup: async () => {
        await flusher?.stop(2_000);
        await store.close();
      },
    };
  };

  describe('contract', () => {
    runStoreContract('TieredStore (Redis + MongoDB)', stack('two-tier'));
    runStoreContract('TieredStore (Redis only)', stack('redis-only'));
    runStoreContract('TieredStore (MongoDB only)', stack('mongodb-only'));
  });

  describe('Redis back after an outage', () => {
    test("a turn written to MongoDB while Redis was down is in the next load, before Redis's stale copy is dropped", async () => {
      const health = new StoreHealth({ tiers: ['redis', 'mongodb'], probeIntervalMs: 60_000 });
      const mongo = new MongoStore({ db: mongoClient.db(`${mongoServer.database}_${randomUUID().slice(0, 8)}`) });
      await mongo.ensureIndexes();
      const redisStore = new RedisStore({ client: redis, ttlMs: 3_600_000, maxCachedMessages: 200, mode: 'cache', keyPrefix: `outage:${randomUUID()}:` });
      const flushed: string[] = [];
      const flusher = testFlusher({ redis: redisStore, mongo, health, onFlushed: (k) => flushed.push(k.conversation) });
      const store = tieredStore({ redis: redisStore, mongo, health, onFlushNeeded: () => flusher.notify() });
      flusher.start();
      onTestFinished(async () => {
        await flusher.stop(2_000);
        await store.close();
      });
      const k = { tenant: 'tenant' as TenantId, conversation: 'outage' as ConversationId };
      await store.append(k, [message('before'), message('before answer')]);
      await waitFor(() => flushed.length > 0, { message: 'first turn flushed' });
      expect((await store.load(k, { maxMessages: 100, maxTokens: 10_000 })).cache).toBe('hit');

      // Redis down (a timeout, say): the turn goes to MongoDB alone.
      health.failed('redis', new Error('timed out'));
      await store.append(k, [message('during'), message('during answer')]);
      // Redis answers again; its copy still lacks that turn until dropStaleCopies runs.
      health.succeeded('redis');
      const loaded = await store.load(k, { maxMessages: 100, maxTokens: 10_000 });
      expect(loaded.messages.map((m) => m.message.content)).toEqual(['before', 'before answer', 'during', 'during answer']);

      expect(await store.dropStaleCopies()).toBe(1);
      const after = await store.load(k, { maxMessages: 100, maxTokens: 10_000 });
      expect(after.messages.map((m) => m.message.content)).toEqual(['before', 'before answer', 'during', 'during answer']);
    });
  });

  describe('the flusher', () => {
    test('one round carries the turns of every due conversation to MongoDB in one insert', async () => {
      const monitored = new MongoClient(mongoServer.url, { serverSelectionTimeoutMS: 5_000, monitorCommands: true });
      onTestFinished(() => monitored.close());
      const inserts: number[] = [];
      monitored.on('commandStarted', (event) => {
        if (event.commandName === 'insert' && event.command.insert === 'messages') inserts.push((event.command.documents as unknown[]).length);
      });
      const health = new StoreHealth({ tiers: ['redis', 'mongodb'], probeIntervalMs: 1_000 });
      const mongo = new MongoStore({ db: monitored.db(`${mongoServer.database}_${randomUUID().slice(0, 8)}`) });
      await mongo.ensureIndexes();
      const prefix = `flush:${randomUUID()}:`;
      const redisStore = new RedisStore({ client: redis, ttlMs: 3_600_000, maxCachedMessages: 200, mode: 'cache', keyPrefix: prefix });
      // No flusher yet: nothing is flushed while the turns are written.
      const store = tieredStore({ redis: redisStore, mongo, health });
      const keys = Array.from({ length: 20 }, (_, index) => ({ tenant: 'tenant' as TenantId, conversation: `c-${index}` as ConversationId }));
      // Written while no flusher runs: all 20 are due when it starts.
      for (const [index, k] of keys.entries()) {
        await store.append(k, [message(`question ${index}`), message(`answer ${index}`)], { turnKey: `turn-${index}` });
      }
      inserts.length = 0;

      const flushed: string[] = [];
      const flusher = testFlusher({ redis: redisStore, mongo, health, batchSize: 64, onFlushed: (k) => flushed.push(k.conversation) });
      flusher.start();
      onTestFinished(async () => {
        await flusher.stop(2_000);
        await store.close();
      });
      await waitFor(() => flushed.length === 20, { timeoutMs: 10_000, message: 'every conversation flushed' });

      expect(inserts).toEqual([40]);
      for (const [index, k] of keys.entries()) {
        const durable = await mongo.listMessages(k, { afterSeq: 0, limit: 10 });
        expect(durable.map((m) => [m.seq, m.message.content])).toEqual([
          [1, `question ${index}`],
          [2, `answer ${index}`],
        ]);
      }
      await waitFor(async () => (await redis.zcard(`${prefix}dirty`)) === 0, { timeoutMs: 5_000, message: 'dirty set empty' });
    });
  });
});
