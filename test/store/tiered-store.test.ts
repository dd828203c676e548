// The two-tier store (Redis in front of MongoDB, with the flusher running)
// against real servers: the shared contract, unchanged.
import { randomUUID } from 'node:crypto';
import { MongoClient } from 'mongodb';
import { describe, expect, onTestFinished, test } from 'vitest';
import { setTimeout as delay } from 'node:timers/promises';
import type { ConversationId, StoredMessage, TenantId } from '../../src/domain.js';
import type { DurableTier, FlushSource, FlushTarget } from '../../src/store/conversation-store.js';
import type { OutboxFlusher } from '../../src/background/outbox-flusher.js';
import { MongoStore } from '../../src/store/mongo/mongo-store.js';
import { OutageMerge } from '../../src/store/outage-merge.js';
import { RedisStore } from '../../src/store/redis/redis-store.js';
import { StoreHealth } from '../../src/store/store-health.js';
import { describeWithService, serviceAvailability } from '../support/services.js';
import { message, testFlusher, tieredStore, turn, useTwoServers, wrapMethod } from '../support/tiered-stack.js';
import { waitFor } from '../support/wait-for.js';
import { runStoreContract } from './store-contract.js';

/** The real MongoStore, with every read (load, conversationState) answered `delayMs` late, as a slow server would. */
function withSlowReads(store: MongoStore, delayMs: number): DurableTier & FlushTarget {
  let slow: MongoStore = store;
  for (const name of ['load', 'conversationState', 'listMessages']) slow = wrapMethod(slow, name, (method) => async (...args) => (await delay(delayMs), method(...args)));
  return slow;
}

const available = serviceAvailability();

describeWithService(!available.redis.isAvailable ? available.redis : available.mongo, 'TieredStore on real Redis and MongoDB', () => {
  const servers = useTwoServers();

  const stack = (mode: 'two-tier' | 'redis-only' | 'mongodb-only') => async () => {
    const health = new StoreHealth({ tiers: mode === 'two-tier' ? ['redis', 'mongodb'] : mode === 'redis-only' ? ['redis'] : ['mongodb'], probeIntervalMs: 1_000 });
    const mongo = mode === 'redis-only' ? undefined : new MongoStore({ db: servers.freshDb() });
    await mongo?.ensureIndexes();
    const redisStore =
      mode === 'mongodb-only'
        ? undefined
        : new RedisStore({ client: servers.redis, ttlMs: 3_600_000, maxCachedMessages: 200, mode: mode === 'two-tier' ? 'cache' : 'standalone', keyPrefix: `tiered:${randomUUID()}:` });
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

  describe('a flush that finds its seqs taken', () => {
    test('a turn MongoDB already holds under its turn key, at other seqs, is not stored again', async () => {
      const health = new StoreHealth({ tiers: ['redis', 'mongodb'], probeIntervalMs: 60_000 });
      const mongo = new MongoStore({ db: servers.freshDb() });
      await mongo.ensureIndexes();
      const redisStore = new RedisStore({ client: servers.redis, ttlMs: 3_600_000, maxCachedMessages: 200, mode: 'cache', keyPrefix: `conflict:${randomUUID()}:` });
      const k = { tenant: 't' as TenantId, conversation: 'taken-seqs' as ConversationId };
      // Redis applied turn t (seqs 1-2, unflushed); its answer was lost, so the
      // same turn went to MongoDB too, after a turn Redis never saw (seqs 3-4).
      await redisStore.warm(k, { lastSeq: 0, lastCum: 0, summary: undefined, messages: [] });
      await redisStore.append(k, [message('t-question'), message('t-answer')], { turnKey: 't' });
      await mongo.append(k, [message('a-question'), message('a-answer')], { turnKey: 'a' });
      await mongo.append(k, [message('t-question'), message('t-answer')], { turnKey: 't' });
      const conflicts: StoredMessage[] = [];
      const flusher = testFlusher({ redis: redisStore, mongo, health, onConflict: (_key, messages) => conflicts.push(...messages) });
      flusher.start();
      onTestFinished(() => flusher.stop(2_000));
      flusher.notify();
      await waitFor(async () => (await redisStore.unflushed(k)).messages.length === 0, { timeoutMs: 10_000, message: 'the turn flushed' });
      expect(conflicts.map((m) => m.seq)).toEqual([1, 2]);
      const stored = await mongo.listMessages(k, { afterSeq: 0, limit: 100 });
      expect(stored.map((m) => m.message.content)).toEqual(['a-question', 'a-answer', 't-question', 't-answer']);
    });
  });

  describe('Redis back after an outage', () => {
    test("a turn written to MongoDB while Redis was down is in the next load, before Redis's stale copy is dropped", async () => {
      const health = new StoreHealth({ tiers: ['redis', 'mongodb'], probeIntervalMs: 60_000 });
      const mongo = new MongoStore({ db: servers.freshDb() });
      await mongo.ensureIndexes();
      const redisStore = new RedisStore({ client: servers.redis, ttlMs: 3_600_000, maxCachedMessages: 200, mode: 'cache', keyPrefix: `outage:${randomUUID()}:` });
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

  describe('MongoDB cannot answer: Redis takes the conversation unmerged', () => {
    const ALL = { maxMessages: 100, maxTokens: 100_000 };
    const contentsOf = (messages: readonly StoredMessage[]): unknown[] => messages.map((m) => m.message.content);

    /** Redis + MongoDB on their own prefix and database; the flusher is started by the test (`startFlusher`). */
    async function unmergedStack(options: { mongo?: (real: MongoStore) => DurableTier & FlushTarget; coldReadTimeoutMs?: number } = {}) {
      const health = new StoreHealth({ tiers: ['redis', 'mongodb'], probeIntervalMs: 60_000 });
      const realMongo = new MongoStore({ db: servers.freshDb() });
      await realMongo.ensureIndexes();
      const mongo = options.mongo?.(realMongo) ?? realMongo;
      const prefix = `unmerged:${randomUUID()}:`;
      const redisStore = new RedisStore({ client: servers.redis, ttlMs: 3_600_000, maxCachedMessages: 200, mode: 'cache', keyPrefix: prefix });
      let flusher: OutboxFlusher | undefined;
      const flushed: string[] = [];
      const store = tieredStore({
        redis: redisStore,
        mongo,
        health,
        coldReadTimeoutMs: options.coldReadTimeoutMs ?? 200,
        onFlushNeeded: () => flusher?.notify(),
        flushesSettled: async () => flusher?.idle(),
      });
      const merge = new OutageMerge({ hot: redisStore, durable: mongo, health, redisTimeoutMs: 2_000, mongoTimeoutMs: 5_000, maxCachedMessages: 200 });
      onTestFinished(async () => {
        await flusher?.stop(2_000);
        await store.close();
      });
      return {
        health,
        realMongo,
        redisStore,
        store,
        merge,
        prefix,
        flushed,
        startFlusher: () => {
          flusher = testFlusher({ redis: redisStore, mongo, health, merge, onFlushed: (k) => flushed.push(k.conversation) });
          flusher.start();
        },
      };
    }

    test('turns on a conversation Redis does not hold are stored in Redis at once and read back partial; once MongoDB is back they follow what it held, renumbered, in order, once, and its history comes in front again', async () => {
      const { health, realMongo, redisStore, store, startFlusher } = await unmergedStack();
      const k = { tenant: 'tenant' as TenantId, conversation: 'expired' as ConversationId };
      // MongoDB holds two turns Redis has let expire.
      await realMongo.append(k, turn('early 1'), { turnKey: 'early-1' });
      await realMongo.append(k, turn('early 2'), { turnKey: 'early-2' });
      health.failed('mongodb', new Error('connection refused'));

      expect(await store.load(k, ALL)).toEqual({ summary: undefined, messages: [], lastSeq: 0, cache: 'partial' });
      const seqs = [];
      for (const name of ['outage 1', 'outage 2', 'outage 3']) seqs.push((await store.append(k, turn(name), { turnKey: name })).seqs);
      // Provisional seqs, from 1: MongoDB's state is unknown.
      expect(seqs).toEqual([[1, 2], [3, 4], [5, 6]]);
      // A client retry of a turn during the outage is stored once.
      expect(await store.append(k, turn('outage 3'), { turnKey: 'outage 3' })).toEqual({ seqs: [5, 6], duplicate: true });
      const during = await store.load(k, ALL);
      expect(during.cache).toBe('partial');
      expect(contentsOf(during.messages)).toEqual(['outage 1', 'outage 1 answer', 'outage 2', 'outage 2 answer', 'outage 3', 'outage 3 answer']);
      expect((await redisStore.unflushed(k)).unmergedIncarnation).toEqual(expect.any(String));
      // An unmerged conversation takes no summary: its seqs are about to change.
      expect(await store.replaceSummary(k, { text: 'sum', tokens: 3, coversSeq: 2, createdAtMs: 1 })).toBe(false);

      health.succeeded('mongodb');
      startFlusher();
      await waitFor(async () => (await realMongo.listMessages(k, { afterSeq: 0, limit: 100 })).length === 10, { timeoutMs: 10_000, message: 'outage turns in MongoDB' });
      const durable = await realMongo.listMessages(k, { afterSeq: 0, limit: 100 });
      expect(durable.map((m) => m.seq)).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
      const everything = ['early 1', 'early 1 answer', 'early 2', 'early 2 answer', 'outage 1', 'outage 1 answer', 'outage 2', 'outage 2 answer', 'outage 3', 'outage 3 answer'];
      expect(contentsOf(durable)).toEqual(everything);
      expect(durable[4]?.turnKey).toBe('outage 1');

      await waitFor(async () => (await redisStore.unflushed(k)).unmergedIncarnation === undefined, { message: 'Redis rebased' });
      const after = await store.load(k, ALL);
      expect(after.cache).toBe('hit');
      expect(after.messages.map((m) => m.seq)).toEqual([1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
      expect(contentsOf(after.messages)).toEqual(everything);
      // The merged turns' keys are remembered at their new seqs; new turns continue MongoDB's seqs and flush as usual.
      expect(await store.append(k, turn('outage 2'), { turnKey: 'outage 2' })).toEqual({ seqs: [7, 8], duplicate: true });
      expect((await store.append(k, turn('after'), { turnKey: 'after' })).seqs).toEqual([11, 12]);
      await waitFor(async () => (await realMongo.listMessages(k, { afterSeq: 0, limit: 100 })).length === 12, { timeoutMs: 10_000, message: 'the next turn in MongoDB' });
    });

    test('a merge repeated after a crash, or run by two instances at once, stores no turn twice and keeps the order', async () => {
      const { health, realMongo, redisStore, store, merge } = await unmergedStack();
      const k = { tenant: 'tenant' as TenantId, conversation: 'crashed' as ConversationId };
      await realMongo.append(k, turn('early'), { turnKey: 'early' });
      health.failed('mongodb', new Error('connection refused'));
      for (const name of ['outage 1', 'outage 2', 'outage 3']) await store.append(k, turn(name), { turnKey: name });
      health.succeeded('mongodb');
      // A merge that crashed after its first two appends: MongoDB holds those turns already, at the seqs after its own.
      await realMongo.append(k, turn('outage 1'), { turnKey: 'outage 1' });
      await realMongo.append(k, turn('outage 2'), { turnKey: 'outage 2' });

      const unflushed = await redisStore.unflushed(k);
      const incarnation = unflushed.unmergedIncarnation;
      if (incarnation === undefined) throw new Error('expected an unmerged conversation');
      const results = await Promise.all([merge.merge(k, { ...unflushed, unmergedIncarnation: incarnation }), merge.merge(k, { ...unflushed, unmergedIncarnation: incarnation })]);
      // One rebased Redis; the other found it merged already.
      expect(results.filter((result) => result !== undefined)).toHaveLength(1);
      const result = results.find((each) => each !== undefined);
      expect(result).toMatchObject({ throughSeq: 8, seqs: [3, 4, 5, 6, 7, 8] });

      const durable = await realMongo.listMessages(k, { afterSeq: 0, limit: 100 });
      expect(durable.map((m) => m.seq)).toEqual([1, 2, 3, 4, 5, 6, 7, 8]);
      expect(contentsOf(durable)).toEqual(['early', 'early answer', 'outage 1', 'outage 1 answer', 'outage 2', 'outage 2 answer', 'outage 3', 'outage 3 answer']);
      const after = await store.load(k, ALL);
      expect([after.cache, after.lastSeq]).toEqual(['hit', 8]);
      expect(contentsOf(after.messages)).toEqual(contentsOf(durable));
      // Run once more from the same (stale) read: nothing to do, nothing stored.
      expect(await merge.merge(k, { ...unflushed, unmergedIncarnation: incarnation })).toBeUndefined();
      expect(await realMongo.listMessages(k, { afterSeq: 0, limit: 100 })).toHaveLength(8);
    });

    test('a turn appended while the merge runs is merged too: the rebase is tried again, never over it', async () => {
      const { health, realMongo, redisStore, store } = await unmergedStack();
      const k = { tenant: 'tenant' as TenantId, conversation: 'busy' as ConversationId };
      health.failed('mongodb', new Error('connection refused'));
      await store.append(k, turn('outage 1'), { turnKey: 'outage 1' });
      health.succeeded('mongodb');
      // Another instance's turn lands between the merge's read and its rebase.
      let isFirstRebase = true;
      const racing: Pick<FlushSource, 'unflushed' | 'rebase'> = {
        unflushed: (key) => redisStore.unflushed(key),
        rebase: async (...args) => {
          if (isFirstRebase) {
            isFirstRebase = false;
            await store.append(k, turn('meanwhile'), { turnKey: 'meanwhile' });
          }
          return redisStore.rebase(...args);
        },
      };
      const merge = new OutageMerge({ hot: racing, durable: realMongo, health, redisTimeoutMs: 2_000, mongoTimeoutMs: 5_000, maxCachedMessages: 200 });
      const unflushed = await redisStore.unflushed(k);
      const result = await merge.merge(k, { ...unflushed, unmergedIncarnation: unflushed.unmergedIncarnation ?? '' });
      expect(result?.throughSeq).toBe(4);
      expect(contentsOf(await realMongo.listMessages(k, { afterSeq: 0, limit: 100 }))).toEqual(['outage 1', 'outage 1 answer', 'meanwhile', 'meanwhile answer']);
      const after = await store.load(k, ALL);
      expect([after.cache, after.lastSeq]).toEqual(['hit', 4]);
      expect(await redisStore.unflushed(k)).toMatchObject({ flushedSeq: 4, messages: [] });
    });

    test('a MongoDB slower than the cold-read deadline holds no load or append for long and is not marked down; its late answer warms Redis', async () => {
      const slowMs = 1_000;
      const { health, realMongo, store, startFlusher, flushed } = await unmergedStack({ mongo: (real) => withSlowReads(real, slowMs), coldReadTimeoutMs: 100 });
      const early = { tenant: 'tenant' as TenantId, conversation: 'slow-known' as ConversationId };
      await realMongo.append(early, turn('early'), { turnKey: 'early' });
      const fresh = { tenant: 'tenant' as TenantId, conversation: 'slow-new' as ConversationId };
      startFlusher();

      let startedAt = performance.now();
      expect((await store.load(fresh, ALL)).cache).toBe('partial');
      await store.append(fresh, turn('first'), { turnKey: 'first' });
      expect(performance.now() - startedAt).toBeLessThan(slowMs * 0.8);
      expect(contentsOf((await store.load(fresh, ALL)).messages)).toEqual(['first', 'first answer']);

      // A conversation MongoDB knows: the request goes on without its history, and the late read warms Redis.
      startedAt = performance.now();
      expect((await store.load(early, ALL)).cache).toBe('partial');
      expect(performance.now() - startedAt).toBeLessThan(slowMs * 0.8);
      await waitFor(async () => (await store.load(early, ALL)).cache === 'hit', { timeoutMs: 5_000, message: 'Redis warmed by the late read' });
      expect(contentsOf((await store.load(early, ALL)).messages)).toEqual(['early', 'early answer']);

      await waitFor(() => flushed.includes('slow-new'), { timeoutMs: 10_000, message: 'the new conversation merged' });
      expect(contentsOf(await realMongo.listMessages(fresh, { afterSeq: 0, limit: 100 }))).toEqual(['first', 'first answer']);
      expect(health.isUp('mongodb')).toBe(true);
    });
  });

  describe('the flusher', () => {
    test('a MongoDB that cannot take a big round in time gets smaller rounds until it keeps up, and every turn', async () => {
      const health = new StoreHealth({ tiers: ['redis', 'mongodb'], probeIntervalMs: 100 });
      const realMongo = new MongoStore({ db: servers.freshDb() });
      await realMongo.ensureIndexes();
      // Rounds of more than four conversations are answered far past the flusher's deadline.
      const roundSizes: number[] = [];
      const mongo = wrapMethod(realMongo, 'upsertAllocatedMany', (upsert) => async (...args) => {
        const batches = args[0] as unknown[];
        roundSizes.push(batches.length);
        if (batches.length > 4) await delay(1_500);
        return upsert(...args);
      });
      const prefix = `slow-round:${randomUUID()}:`;
      const redisStore = new RedisStore({ client: servers.redis, ttlMs: 3_600_000, maxCachedMessages: 200, mode: 'cache', keyPrefix: prefix });
      const store = tieredStore({ redis: redisStore, mongo: realMongo, health });
      const keys = Array.from({ length: 20 }, (_, index) => ({ tenant: 'tenant' as TenantId, conversation: `slow-${index}` as ConversationId }));
      for (const [index, k] of keys.entries()) await store.append(k, [message(`question ${index}`), message(`answer ${index}`)], { turnKey: `turn-${index}` });

      const batchSizes: number[] = [];
      const flusher = testFlusher({ redis: redisStore, mongo, health, batchSize: 16, mongoTimeoutMs: 300, onBatchSize: (size) => batchSizes.push(size) });
      flusher.start();
      onTestFinished(async () => {
        await flusher.stop(2_000);
        await store.close();
      });
      await waitFor(async () => (await servers.redis.zcard(`${prefix}dirty`)) === 0, { timeoutMs: 20_000, message: 'every conversation flushed' });
      // The first round (16) and the next (8) timed out; rounds of four went through.
      expect(roundSizes.slice(0, 3)).toEqual([16, 8, 4]);
      expect(batchSizes.slice(0, 2)).toEqual([8, 4]);
      for (const [index, k] of keys.entries()) {
        expect((await realMongo.listMessages(k, { afterSeq: 0, limit: 10 })).map((m) => m.message.content)).toEqual([`question ${index}`, `answer ${index}`]);
      }
    });

    test('one round carries the turns of every due conversation to MongoDB in one insert', async () => {
      const monitored = new MongoClient(servers.mongoServer.url, { serverSelectionTimeoutMS: 5_000, monitorCommands: true });
      onTestFinished(() => monitored.close());
      const inserts: number[] = [];
      monitored.on('commandStarted', (event) => {
        if (event.commandName === 'insert' && event.command.insert === 'messages') inserts.push((event.command.documents as unknown[]).length);
      });
      const health = new StoreHealth({ tiers: ['redis', 'mongodb'], probeIntervalMs: 1_000 });
      const mongo = new MongoStore({ db: monitored.db(`${servers.mongoServer.database}_${randomUUID().slice(0, 8)}`) });
      await mongo.ensureIndexes();
      const prefix = `flush:${randomUUID()}:`;
      const redisStore = new RedisStore({ client: servers.redis, ttlMs: 3_600_000, maxCachedMessages: 200, mode: 'cache', keyPrefix: prefix });
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
      await waitFor(async () => (await servers.redis.zcard(`${prefix}dirty`)) === 0, { timeoutMs: 5_000, message: 'dirty set empty' });
    });
  });
});
