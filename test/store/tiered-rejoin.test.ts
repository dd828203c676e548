// Redis back after an outage holding turns it had not flushed, while other
// turns of the same conversations went to MongoDB directly: the two tiers'
// histories went apart. Every turn must reach MongoDB once, none torn, and
// later requests must see the turns made while Redis was away.
import { randomUUID } from 'node:crypto';
import { expect, onTestFinished, test } from 'vitest';
import type { ConversationId, ConversationKey, StoredMessage, TenantId } from '../../src/domain.js';
import type { OutboxFlusher } from '../../src/background/outbox-flusher.js';
import type { HotTier } from '../../src/store/conversation-store.js';
import { MongoStore } from '../../src/store/mongo/mongo-store.js';
import { RedisStore } from '../../src/store/redis/redis-store.js';
import { StoreHealth } from '../../src/store/store-health.js';
import { describeWithService, serviceAvailability } from '../support/services.js';
import { message, testFlusher, tieredStore, turn, useTwoServers, wrapMethod } from '../support/tiered-stack.js';
import { waitFor } from '../support/wait-for.js';

const available = serviceAvailability();
const ALL = { maxMessages: 100, maxTokens: 100_000 };
const contentsOf = (messages: readonly StoredMessage[]): unknown[] => messages.map((m) => m.message.content);

describeWithService(!available.redis.isAvailable ? available.redis : available.mongo, 'Redis back with turns MongoDB lacks, after turns went to MongoDB directly', () => {
  const servers = useTwoServers();

  /** Redis + MongoDB on their own prefix and database; `hot` wraps the RedisStore the TieredStore uses. */
  async function stack(hot: (store: RedisStore) => HotTier = (store) => store) {
    const health = new StoreHealth({ tiers: ['redis', 'mongodb'], probeIntervalMs: 60_000 });
    const mongo = new MongoStore({ db: servers.freshDb() });
    await mongo.ensureIndexes();
    const redisStore = new RedisStore({ client: servers.redis, ttlMs: 3_600_000, maxCachedMessages: 200, mode: 'cache', keyPrefix: `rejoin:${randomUUID()}:` });
    let flusher: OutboxFlusher | undefined;
    const conflicts: number[] = [];
    const store = tieredStore({ redis: hot(redisStore), mongo, health, onFlushNeeded: () => flusher?.notify() });
    onTestFinished(async () => {
      await flusher?.stop(2_000);
      await store.close();
    });
    const startFlusher = (): void => {
      flusher = testFlusher({ redis: redisStore, mongo, health, onConflict: (_key, messages) => conflicts.push(...messages.map((m) => m.seq)) });
      flusher.start();
      flusher.notify();
    };
    /** No flusher runs until the next startFlusher: turns written meanwhile stay unflushed in Redis. */
    const stopFlusher = async (): Promise<void> => {
      await flusher?.stop(2_000);
      flusher = undefined;
    };
    return { health, mongo, redisStore, store, conflicts, startFlusher, stopFlusher };
  }

  const conversation = (name: string): ConversationKey => ({ tenant: 'tenant' as TenantId, conversation: `${name}-${randomUUID().slice(0, 6)}` as ConversationId });

  test.each([
    { found: 'by this instance, which wrote to MongoDB directly (its stale copy is made unmerged)', dropStale: true },
    { found: "by the flusher, whose seqs MongoDB gives to other messages (another instance's, or after a restart)", dropStale: false },
  ])('found $found: every turn in MongoDB once, none torn, the held turn after those made meanwhile; Redis then shows them all', async ({ dropStale }) => {
    const { health, mongo, redisStore, store, conflicts, startFlusher, stopFlusher } = await stack();
    const k = conversation('held');
    // A flushed turn, then one Redis accepted and had not flushed when it went away.
    await store.append(k, turn('early'), { turnKey: 'early' });
    startFlusher();
    await waitFor(async () => (await mongo.listMessages(k, { afterSeq: 0, limit: 100 })).length === 2, { message: 'early turn flushed' });
    await stopFlusher();
    await store.append(k, turn('held'), { turnKey: 'held' });

    // Redis away: two turns go to MongoDB directly, at the seqs after what MongoDB holds;
    // through this store (which remembers it), or through another instance (or before a restart).
    health.failed('redis', new Error('connection refused'));
    const writer = dropStale ? store : mongo;
    await writer.append(k, turn('during 1'), { turnKey: 'during 1' });
    await writer.append(k, turn('during 2'), { turnKey: 'during 2' });
    expect(contentsOf(await mongo.listMessages(k, { afterSeq: 0, limit: 100 }))).toEqual(['early', 'early answer', 'during 1', 'during 1 answer', 'during 2', 'during 2 answer']);

    // Redis back with the held turn.
    health.succeeded('redis');
    if (dropStale) expect(await store.dropStaleCopies()).toBe(0); // made unmerged, not dropped
    startFlusher();
    const everything = ['early', 'early answer', 'during 1', 'during 1 answer', 'during 2', 'during 2 answer', 'held', 'held answer'];
    await waitFor(async () => (await mongo.listMessages(k, { afterSeq: 0, limit: 100 })).length >= 8, { timeoutMs: 10_000, message: 'the held turn in MongoDB' });
    await waitFor(async () => (await redisStore.unflushed(k)).messages.length === 0, { timeoutMs: 10_000, message: 'Redis rebased' });
    const durable = await mongo.listMessages(k, { afterSeq: 0, limit: 100 });
    expect(durable.map((m) => m.seq)).toEqual([1, 2, 3, 4, 5, 6, 7, 8]);
    expect(contentsOf(durable)).toEqual(everything);
    if (!dropStale) expect(conflicts).toEqual([3, 4]);

    // Redis now holds MongoDB's history: the next request sees every turn, and the next turn follows it.
    const after = await store.load(k, ALL);
    expect([after.cache, after.lastSeq]).toEqual(['hit', 8]);
    expect(contentsOf(after.messages)).toEqual(everything);
    expect((await store.append(k, turn('next'), { turnKey: 'next' })).seqs).toEqual([9, 10]);
    await waitFor(async () => (await mongo.listMessages(k, { afterSeq: 0, limit: 100 })).length === 10, { timeoutMs: 10_000, message: 'the next turn flushed' });
    expect(contentsOf(await mongo.listMessages(k, { afterSeq: 8, limit: 100 }))).toEqual(['next', 'next answer']);
  });

  test('a flush that placed some of its messages after a conflicting seq takes them back, and leaves a message with the same text alone: no turn is torn or stored twice', async () => {
    const { mongo, redisStore, store, startFlusher } = await stack();
    const k = conversation('torn');
    // Redis holds three unflushed turns (seqs 1-6); MongoDB got one turn (seqs 1-2) directly meanwhile.
    await redisStore.warm(k, { lastSeq: 0, lastCum: 0, summary: undefined, messages: [] });
    for (const name of ['r1', 'r2', 'r3']) await redisStore.append(k, turn(name), { turnKey: name });
    // The turn MongoDB got has the same reply as Redis's first: equal text at the same seq is not the same message.
    await mongo.append(k, [message('direct'), message('r1 answer')], { turnKey: 'direct' });

    startFlusher();
    await waitFor(async () => (await redisStore.unflushed(k)).messages.length === 0, { timeoutMs: 10_000, message: 'Redis rebased' });
    const durable = await mongo.listMessages(k, { afterSeq: 0, limit: 100 });
    expect(durable.map((m) => m.seq)).toEqual([1, 2, 3, 4, 5, 6, 7, 8]);
    expect(contentsOf(durable)).toEqual(['direct', 'r1 answer', 'r1', 'r1 answer', 'r2', 'r2 answer', 'r3', 'r3 answer']);
    expect(contentsOf((await store.load(k, ALL)).messages)).toEqual(contentsOf(durable));
  });

  test('a turn Redis applied though its answer was lost goes to MongoDB under the same turn key, and is stored once', async () => {
    let loseNextAnswer = false;
    // Redis applies the append, but its answer never arrives (a timeout, a cut connection).
    const { health, mongo, redisStore, store, startFlusher, stopFlusher } = await stack((real) =>
      wrapMethod(real, 'append', (append) => async (...args) => {
        const result = await append(...args);
        if (!loseNextAnswer) return result;
        loseNextAnswer = false;
        throw new Error('Redis timed out');
      }),
    );
    const k = conversation('lost-answer');
    await store.append(k, turn('early'));
    startFlusher();
    await waitFor(async () => (await mongo.listMessages(k, { afterSeq: 0, limit: 100 })).length === 2, { message: 'early turn flushed' });
    await stopFlusher();
    loseNextAnswer = true;
    // No turn key from the client: the store gives one, the same to both tiers.
    const lost = await store.append(k, turn('lost'));
    expect(lost.duplicate).toBe(false);
    expect(health.isUp('redis')).toBe(false);
    await store.append(k, turn('during'));
    expect(contentsOf(await mongo.listMessages(k, { afterSeq: 0, limit: 100 }))).toEqual(['early', 'early answer', 'lost', 'lost answer', 'during', 'during answer']);

    health.succeeded('redis');
    await store.dropStaleCopies();
    startFlusher();
    await waitFor(async () => (await redisStore.unflushed(k)).messages.length === 0, { timeoutMs: 10_000, message: 'Redis rebased' });
    const durable = await mongo.listMessages(k, { afterSeq: 0, limit: 100 });
    expect(contentsOf(durable)).toEqual(['early', 'early answer', 'lost', 'lost answer', 'during', 'during answer']);
    expect(contentsOf((await store.load(k, ALL)).messages)).toEqual(contentsOf(durable));
  });
});
