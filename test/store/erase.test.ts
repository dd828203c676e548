// Erasing messages (ConversationStore.eraseMessages, and delete's receipt) on
// every store, against real servers: a tool exchange erased whole leaves the
// rest loading as if it had never been stored (windows, running totals, seqs
// not given again); the erased text is in no Redis key and no MongoDB
// document, and no flush brings it back; a summary covering it goes, and one
// made before the erasure is not stored again.

import { randomUUID } from 'node:crypto';
import { Cluster, Redis } from 'ioredis';
import { MongoClient, type Db } from 'mongodb';
import { afterAll, beforeAll, expect, test } from 'vitest';
import type { OutboxFlusher } from '../../src/background/outbox-flusher.js';
import type { ChatMessage, ConversationId, ConversationKey, NewMessage, Summary, TenantId } from '../../src/domain.js';
import { StoreUnavailableError } from '../../src/errors.js';
import type { ConversationStore, EraseReceipt } from '../../src/store/conversation-store.js';
import { MemoryStore } from '../../src/store/memory-store.js';
import { SUMMARY_SEQ } from '../../src/store/mongo/document-codec.js';
import { MongoStore } from '../../src/store/mongo/mongo-store.js';
import { conversationKeys, dirtySetKey, hashTag } from '../../src/store/redis/keys.js';
import { RedisStore } from '../../src/store/redis/redis-store.js';
import { RedisTracking } from '../../src/store/redis/tracking.js';
import { StoreHealth } from '../../src/store/store-health.js';
import type { TieredStore } from '../../src/store/tiered-store.js';
import { startMongo, type MongoServer } from '../support/mongo-server.js';
import { startRedis, startRedisCluster, type RedisServer } from '../support/redis-server.js';
import { describeWithRedisCluster, describeWithService, serviceAvailability } from '../support/services.js';
import { testFlusher, tieredStore } from '../support/tiered-stack.js';
import { waitFor } from '../support/wait-for.js';
import { redisDump } from '../support/redis-watch.js';

const UNLIMITED = { maxMessages: 10_000, maxTokens: Number.MAX_SAFE_INTEGER };
const SECRET = 'SECRET-7f3a-the-launch-code-is-4711';

/** One store under test, and what its servers hold. */
interface Subject {
  name: 'embedded' | 'redis' | 'mongodb' | 'redis+mongodb';
  store: ConversationStore;
  /** The tiers the receipt names. */
  tiers: string[];
  /** Everything the servers hold under this subject (Redis values of its keys, MongoDB documents), as text. */
  dump(): Promise<string>;
  /** The running totals each tier stores for the conversation's listed messages, and its last running total. */
  storedTotals(key: ConversationKey): Promise<{ tier: string; entries: { seq: number; tokens: number; cum: number }[]; lastCum: number }[]>;
  /** Waits until the durable tier has every turn (two-tier: starts the flusher the first time). */
  settle(): Promise<void>;
  /** Does the store keep messages a summary covers? (MongoDB does; the embedded store and Redis drop them.) */
  keepsCovered: boolean;
}

const available = serviceAvailability();

let redisServer: RedisServer | undefined;
let mongoServer: MongoServer | undefined;
let redis: Redis;
let mongoClient: MongoClient;
const cleanups: (() => Promise<void>)[] = [];

beforeAll(async () => {
  if (available.redis.isAvailable) {
    redisServer = await startRedis();
    redis = new Redis(redisServer.url, { maxRetriesPerRequest: 1 });
  }
  if (available.mongo.isAvailable) {
    mongoServer = await startMongo();
    mongoClient = new MongoClient(mongoServer.url, { serverSelectionTimeoutMS: 10_000 });
  }
}, 120_000);

afterAll(async () => {
  for (const cleanup of cleanups.splice(0)) await cleanup().catch(() => undefined);
  redis?.disconnect();
  await mongoClient?.close();
  await Promise.allSettled([redisServer?.stop(), mongoServer?.stop()]);
});

const key = (conversation: string): ConversationKey => ({ tenant: `t-${randomUUID().slice(0, 8)}` as TenantId, conversation: conversation as ConversationId });
const stored = (message: ChatMessage, tokens: number): NewMessage => ({ message, tokens, digest: `${JSON.stringify(message)}-digest` });
const user = (content: string, tokens = 10): NewMessage => stored({ role: 'user', content }, tokens);
const assistant = (content: string, tokens = 10): NewMessage => stored({ role: 'assistant', content }, tokens);

/**
 * seqs 1–7: a question, an assistant message calling two tools, their results (the first carries the
 * secret), the answer, thanks and a last reply. 2–4 is the tool exchange.
 */
const TOOL_TURN: NewMessage[] = [
  user('what is the launch code?', 11),
  stored({ role: 'assistant', content: null, tool_calls: [{ id: 'call_a', type: 'function', function: { name: 'vault', arguments: '{"q":"code"}' } }, { id: 'call_b', type: 'function', function: { name: 'weather', arguments: '{}' } }] }, 23),
  stored({ role: 'tool', tool_call_id: 'call_a', content: SECRET }, 37),
  stored({ role: 'tool', tool_call_id: 'call_b', content: 'sunny' }, 13),
  assistant('I looked it up.', 17),
];
const NEXT_TURN: NewMessage[] = [user('thanks', 5), assistant('you are welcome', 9)];

const dumpRedis = (prefix: string): Promise<string> => redisDump(redis, prefix);

async function mongoDump(db: Db): Promise<string> {
  const parts: string[] = [];
  for (const { name } of await db.listCollections().toArray()) parts.push(name, JSON.stringify(await db.collection(name).find({}).toArray()));
  return parts.join('\n');
}

function redisTotals(prefix: string) {
  return async (k: ConversationKey) => {
    const [meta, msgs] = conversationKeys(prefix, hashTag(k));
    const entries = (await redis.lrange(msgs, 0, -1)).map((entry) => {
      const [seq, tokens, cum] = entry.split(':', 3).map(Number);
      return { seq: seq!, tokens: tokens!, cum: cum! };
    });
    return { tier: 'redis', entries, lastCum: Number(await redis.hget(meta, 'lastCum')) };
  };
}

function mongoTotals(db: Db) {
  return async (k: ConversationKey) => {
    const documents = await db
      .collection('messages')
      .find({ tenant: k.tenant, conversation: k.conversation, seq: { $lt: SUMMARY_SEQ } })
      .sort({ seq: 1 })
      .toArray();
    const entries = documents.filter((d) => d.erased !== true).map((d) => ({ seq: d.seq as number, tokens: d.tokens as number, cum: d.cumTokens as number }));
    return { tier: 'mongodb', entries, lastCum: (documents.at(-1)?.turnLastCum as number | undefined) ?? 0 };
  };
}

function embedded(): Subject {
  const store = new MemoryStore({ ttlMs: 3_600_000, maxConversations: 1_000, maxBytes: 50_000_000, maxMessagesPerConversation: 1_000 });
  return { name: 'embedded', store, tiers: ['embedded'], dump: async () => '', storedTotals: async () => [], settle: async () => undefined, keepsCovered: false };
}

async function redisAlone(): Promise<Subject> {
  const prefix = `erase:${randomUUID()}:`;
  // Its own connection, with CLIENT TRACKING, so that the window it keeps decoded (and trusts) is under test too.
  const client = new Redis(redisServer!.url, { maxRetriesPerRequest: 1, autoResubscribe: false });
  const subscriber = new Redis(redisServer!.url, { maxRetriesPerRequest: 1, autoResubscribe: false });
  const tracking = new RedisTracking({ client, subscriber });
  await waitFor(() => tracking.activeEpoch !== undefined, { message: 'tracking on' });
  cleanups.push(async () => {
    tracking.close();
    client.disconnect();
    subscriber.disconnect();
  });
  const store = new RedisStore({ client, tracking, ttlMs: 3_600_000, maxCachedMessages: 200, mode: 'standalone', keyPrefix: prefix });
  return { name: 'redis', store, tiers: ['redis'], dump: () => dumpRedis(prefix), storedTotals: async (k) => [await redisTotals(prefix)(k)], settle: async () => undefined, keepsCovered: false };
}

async function mongoAlone(): Promise<Subject> {
  const db = mongoClient.db(`${mongoServer!.database}_erase_${randomUUID().slice(0, 8)}`);
  const store = new MongoStore({ db });
  await store.ensureIndexes();
  cleanups.push(() => db.dropDatabase().then(() => undefined));
  return { name: 'mongodb', store, tiers: ['mongodb'], dump: () => mongoDump(db), storedTotals: async (k) => [await mongoTotals(db)(k)], settle: async () => undefined, keepsCovered: true };
}

interface TwoTier extends Subject {
  store: TieredStore;
  redisStore: RedisStore;
  mongo: MongoStore;
  prefix: string;
}

async function twoTier(): Promise<TwoTier> {
  const prefix = `erase:${randomUUID()}:`;
  const db = mongoClient.db(`${mongoServer!.database}_erase_${randomUUID().slice(0, 8)}`);
  const health = new StoreHealth({ tiers: ['redis', 'mongodb'], probeIntervalMs: 1_000 });
  const mongo = new MongoStore({ db });
  await mongo.ensureIndexes();
  const redisStore = new RedisStore({ client: redis, ttlMs: 3_600_000, maxCachedMessages: 200, mode: 'cache', keyPrefix: prefix });
  let flusher: OutboxFlusher | undefined;
  const store = tieredStore({ redis: redisStore, mongo, health, onFlushNeeded: () => flusher?.notify(), flushesSettled: async () => flusher?.idle() });
  cleanups.push(async () => {
    await flusher?.stop(2_000);
    await db.dropDatabase();
  });
  return {
    name: 'redis+mongodb',
    store,
    redisStore,
    mongo,
    prefix,
    tiers: ['redis', 'mongodb'],
    dump: async () => `${await dumpRedis(prefix)}\n${await mongoDump(db)}`,
    storedTotals: async (k) => [await redisTotals(prefix)(k), await mongoTotals(db)(k)],
    settle: async () => {
      if (flusher === undefined) {
        flusher = testFlusher({ redis: redisStore, mongo, health });
        flusher.start();
      }
      await waitFor(async () => (await redis.zcard(dirtySetKey(prefix))) === 0, { message: 'every turn flushed' });
    },
    keepsCovered: true,
  };
}

const subjects: { name: Subject['name']; make: () => Subject | Promise<Subject>; availability: typeof available.redis }[] = [
  { name: 'embedded', make: embedded, availability: { isAvailable: true } },
  { name: 'redis', make: redisAlone, availability: available.redis },
  { name: 'mongodb', make: mongoAlone, availability: available.mongo },
  { name: 'redis+mongodb', make: twoTier, availability: !available.redis.isAvailable ? available.redis : available.mongo },
];

function expectReceipt(receipt: EraseReceipt, subject: Subject, messages: number | Record<string, number>, summaryDropped: boolean): void {
  expect(Object.keys(receipt.tiers).sort()).toEqual([...subject.tiers].sort());
  for (const tier of subject.tiers) {
    expect(receipt.tiers[tier], tier).toEqual({ messages: typeof messages === 'number' ? messages : messages[tier], summaryDropped });
  }
}

/** What every store must still agree on after the same appends and erasures: the window rule over what is left. */
const LIMITS = [
  UNLIMITED,
  { maxMessages: 1, maxTokens: UNLIMITED.maxTokens },
  { maxMessages: 2, maxTokens: UNLIMITED.maxTokens },
  { maxMessages: 3, maxTokens: UNLIMITED.maxTokens },
  { maxMessages: 10_000, maxTokens: 0 },
  { maxMessages: 10_000, maxTokens: 14 },
  { maxMessages: 10_000, maxTokens: 20 },
  { maxMessages: 10_000, maxTokens: 40 },
  { maxMessages: 3, maxTokens: 30 },
];

for (const { name, make, availability } of subjects) {
  describeWithService(availability, `erasing messages: ${name}`, () => {
    let subject: Subject;
    beforeAll(async () => {
      subject = await make();
    }, 60_000);

    test('a tool exchange erased whole: the rest loads, lists and counts as if it had never been stored, and its seqs are not given again', async () => {
      const k = key('exchange');
      await subject.store.append(k, TOOL_TURN, { turnKey: 'turn-1' });
      await subject.store.append(k, NEXT_TURN, { turnKey: 'turn-2' });
      await subject.settle();
      // The same history in the embedded store, as the rule every store cuts windows by sees it.
      const oracle = new MemoryStore({ ttlMs: 3_600_000, maxConversations: 10, maxBytes: 10_000_000, maxMessagesPerConversation: 1_000 });
      await oracle.append(k, [TOOL_TURN[0]!, TOOL_TURN[4]!, ...NEXT_TURN]);
      // Warm the windows a store keeps decoded, so that erasure has to make them stale.
      for (const limits of LIMITS) await subject.store.load(k, limits);

      expectReceipt(await subject.store.eraseMessages(k, [2, 3, 4]), subject, 3, false);

      const loaded = await subject.store.load(k, UNLIMITED);
      expect(loaded.messages.map((m) => m.seq)).toEqual([1, 5, 6, 7]);
      expect(loaded.lastSeq).toBe(7);
      expect(JSON.stringify(loaded)).not.toContain(SECRET);
      expect((await subject.store.listMessages(k, { afterSeq: 0, limit: 100 })).map((m) => m.seq)).toEqual([1, 5, 6, 7]);
      expect((await subject.store.listMessages(k, { afterSeq: 1, limit: 2 })).map((m) => m.seq)).toEqual([5, 6]);
      const oracleTokens = (await oracle.load(k, UNLIMITED)).messages.map((m) => m.tokens);
      for (const limits of LIMITS) {
        const window = await subject.store.load(k, limits);
        const expected = (await oracle.load(k, limits)).messages.map((m) => oracleTokens.indexOf(m.tokens));
        expect(window.messages.map((m) => [1, 5, 6, 7].indexOf(m.seq)), JSON.stringify(limits)).toEqual(expected);
      }
      // Running totals as stored: each the previous one plus the message's tokens, and the last one what the next append starts from.
      for (const { tier, entries, lastCum } of await subject.storedTotals(k)) {
        expect(entries.map((e) => e.seq), tier).toEqual([1, 5, 6, 7]);
        let running = 0;
        for (const entry of entries) {
          running += entry.tokens;
          expect(entry.cum, `${tier} seq ${entry.seq}`).toBe(running);
        }
        expect(lastCum, tier).toBe(running);
      }

      const next = await subject.store.append(k, [user('and now?', 4)]);
      expect(next.seqs).toEqual([8]);
      expect((await subject.store.load(k, UNLIMITED)).messages.map((m) => m.seq)).toEqual([1, 5, 6, 7, 8]);
      // A retried append of the erased turn is a duplicate, never a way back in.
      expect(await subject.store.append(k, TOOL_TURN, { turnKey: 'turn-1' })).toMatchObject({ duplicate: true });
      await subject.settle();
      expect((await subject.store.load(k, UNLIMITED)).messages.map((m) => m.seq)).toEqual([1, 5, 6, 7, 8]);
      for (const { tier, entries, lastCum } of await subject.storedTotals(k)) expect(lastCum, tier).toBe(entries.reduce((sum, e) => sum + e.tokens, 0));
      expect(await subject.dump()).not.toContain(SECRET);
    });

    test('erasing the newest messages: their seqs are not given again, and seqs never stored are no-ops', async () => {
      const k = key('tail');
      await subject.store.append(k, [user('one'), assistant('two'), user(SECRET), assistant('four')]);
      await subject.settle();

      expectReceipt(await subject.store.eraseMessages(k, [3, 4, 99]), subject, 2, false);
      expect((await subject.store.load(k, UNLIMITED)).lastSeq).toBe(4);
      expect((await subject.store.append(k, [user('five')])).seqs).toEqual([5]);
      expectReceipt(await subject.store.eraseMessages(k, [3]), subject, 0, false);
      expectReceipt(await subject.store.eraseMessages(key('never-seen'), [1]), subject, 0, false);
      await subject.settle();
      const loaded = await subject.store.load(k, UNLIMITED);
      expect(loaded.messages.map((m) => [m.seq, m.message.content])).toEqual([
        [1, 'one'],
        [2, 'two'],
        [5, 'five'],
      ]);
      expect(await subject.dump()).not.toContain(SECRET);
    });

    test('a summary covering an erased seq is dropped everywhere; a newer one is stored', async () => {
      const k = key('summary');
      await subject.store.append(k, [user('q1'), assistant(`a1 ${SECRET}`), user('q2'), assistant('a2'), user('q3'), assistant('a3')]);
      await subject.settle();
      const summary: Summary = { text: `they talked about ${SECRET}`, tokens: 12, coversSeq: 4, createdAtMs: Date.now() };
      expect(await subject.store.replaceSummary(k, summary)).toBe(true);
      await subject.settle();

      // The embedded store and Redis no longer hold what the summary covers; MongoDB does.
      const receipt = await subject.store.eraseMessages(k, [2]);
      expectReceipt(receipt, subject, subject.name === 'redis+mongodb' ? { redis: 0, mongodb: 1 } : subject.keepsCovered ? 1 : 0, true);

      const loaded = await subject.store.load(k, UNLIMITED);
      expect(loaded.summary).toBeUndefined();
      expect(loaded.messages.map((m) => m.seq)).toEqual(subject.keepsCovered ? [1, 3, 4, 5, 6] : [5, 6]);
      expect(await subject.dump()).not.toContain(SECRET);
      // A summary of what is left, made after the erasure, is stored as any other.
      const refolded: Summary = { text: 'they talked about q1 and q2', tokens: 9, coversSeq: 4, createdAtMs: Date.now() + 1 };
      expect(await subject.store.replaceSummary(k, refolded)).toBe(true);
      expect((await subject.store.load(k, UNLIMITED)).summary?.text).toBe(refolded.text);
    });

    test('delete says what each tier held', async () => {
      const k = key('deleted');
      await subject.store.append(k, [user('q1'), assistant('a1'), user('q2')]);
      await subject.settle();
      expectReceipt(await subject.store.delete(k), subject, 3, false);
      expectReceipt(await subject.store.delete(k), subject, 0, false);
    });
  });
}

describeWithService(!available.redis.isAvailable ? available.redis : available.mongo, 'erasing messages: Redis in front of MongoDB, before and during flushes', () => {
  /** Flushes by hand what Redis holds above flushedSeq, through `throughSeq`, as one flush round would. */
  async function flushThrough(subject: TwoTier, k: ConversationKey, throughSeq: number): Promise<void> {
    const { messages } = await subject.redisStore.unflushed(k);
    await subject.mongo.upsertAllocated(k, messages.filter((m) => m.seq <= throughSeq));
    await subject.redisStore.markFlushed(k, throughSeq);
  }

  test('erased before it was flushed: MongoDB gets the rest, with running totals that leave it out', async () => {
    const subject = await twoTier();
    const k = key('unflushed');
    await subject.store.append(k, [user('q1', 4), assistant('a1', 6)], { turnKey: 'first' });
    await subject.store.append(k, [user(`tell me ${SECRET}`, 21), assistant('done', 6), user('q3', 8)], { turnKey: 'second' });

    expectReceipt(await subject.store.eraseMessages(k, [3, 4]), subject, { redis: 2, mongodb: 0 }, false);
    await subject.settle();

    expect(await subject.dump()).not.toContain(SECRET);
    expect((await subject.mongo.listMessages(k, { afterSeq: 0, limit: 100 })).map((m) => m.seq)).toEqual([1, 2, 5]);
    for (const { tier, entries, lastCum } of await subject.storedTotals(k)) {
      expect(entries.map((e) => [e.seq, e.cum]), tier).toEqual([
        [1, 4],
        [2, 10],
        [5, 18],
      ]);
      expect(lastCum, tier).toBe(18);
    }
    // Redis's copy gone (a miss warms it from MongoDB): the same history, and seqs going on after the erased ones.
    await subject.redisStore.delete(k);
    expect((await subject.store.load(k, UNLIMITED)).messages.map((m) => m.seq)).toEqual([1, 2, 5]);
    await waitFor(async () => (await redis.exists(conversationKeys(subject.prefix, hashTag(k))[0])) === 1, { message: 'Redis warmed' });
    expect((await subject.store.append(k, [user('q4', 3)])).seqs).toEqual([6]);
    await subject.settle();
    for (const { tier, lastCum } of await subject.storedTotals(k)) expect(lastCum, tier).toBe(21);
  });

  test('a flush round that read the message before the erasure and writes after it stores nothing of it', async () => {
    const subject = await twoTier();
    const k = key('stale-round');
    await subject.store.append(k, [user('q1'), assistant('a1')], { turnKey: 'first' });
    await subject.store.append(k, [user(`tell me ${SECRET}`), assistant('done'), user('q3')], { turnKey: 'second' });
    // A flush round of another instance reads the turns now, and writes only after the erasure.
    const staleRead = await subject.redisStore.unflushed(k);
    expect(staleRead.messages.map((m) => m.seq)).toEqual([1, 2, 3, 4, 5]);

    await subject.store.eraseMessages(k, [3, 4]);
    const late = await subject.mongo.upsertAllocated(k, staleRead.messages);
    expect(late).toMatchObject({ inserted: 3, alreadyStored: 2, conflicts: [] });
    await subject.settle();

    expect(await subject.dump()).not.toContain(SECRET);
    expect((await subject.mongo.listMessages(k, { afterSeq: 0, limit: 100 })).map((m) => m.seq)).toEqual([1, 2, 5]);
    expect((await subject.store.load(k, UNLIMITED)).messages.map((m) => m.seq)).toEqual([1, 2, 5]);
  });

  test('the unflushed tail erased: the conversation counts as flushed, leaves the dirty set and gets its TTL back', async () => {
    const subject = await twoTier();
    const k = key('tail');
    const [meta] = conversationKeys(subject.prefix, hashTag(k));
    await subject.store.append(k, [user('q1'), assistant('a1')]);
    await flushThrough(subject, k, 2);
    await subject.store.append(k, [user(SECRET), assistant('a2')]);
    expect(await redis.pttl(meta)).toBe(-1);

    await subject.store.eraseMessages(k, [3, 4]);
    expect(await redis.hget(meta, 'flushedSeq')).toBe('4');
    expect(await redis.pttl(meta)).toBeGreaterThan(0);
    await subject.settle();
    expect(await subject.dump()).not.toContain(SECRET);

    // Part of the unflushed tail erased: once the rest is flushed, so is the conversation.
    await subject.store.append(k, [user('q3'), assistant('a3'), user(SECRET)]);
    await subject.store.eraseMessages(k, [7]);
    await subject.settle();
    expect(await redis.hget(meta, 'flushedSeq')).toBe('7');
    expect(await redis.pttl(meta)).toBeGreaterThan(0);
    expect((await subject.mongo.listMessages(k, { afterSeq: 0, limit: 10 })).map((m) => m.seq)).toEqual([1, 2, 5, 6]);
    expect((await subject.store.append(k, [user('q4')])).seqs).toEqual([8]);
    expect(await subject.dump()).not.toContain(SECRET);
  });

  test('a summary Redis held from before the erasure, handed to MongoDB late, is refused there', async () => {
    const subject = await twoTier();
    const k = key('late-summary');
    await subject.store.append(k, [user('q1'), assistant(SECRET), user('q2'), assistant('a2')]);
    await subject.settle();
    const before: Summary = { text: `summary: ${SECRET}`, tokens: 8, coversSeq: 3, createdAtMs: Date.now() - 1_000 };

    await subject.store.eraseMessages(k, [2]);
    // What the flusher's hand-over of a summary it read before the erasure does.
    expect(await subject.mongo.replaceSummary(k, before)).toBe(false);
    expect(await subject.dump()).not.toContain(SECRET);
    // One covering only what came before the erased seq, or made after the erasure, is stored.
    expect(await subject.mongo.replaceSummary(k, { ...before, text: 'q1 only', coversSeq: 1 })).toBe(true);
    expect(await subject.mongo.replaceSummary(k, { ...before, text: 'q1 and q2', createdAtMs: Date.now() })).toBe(true);
    expect((await subject.mongo.load(k, UNLIMITED)).summary?.text).toBe('q1 and q2');
  });

  test('an unmerged conversation (MongoDB could not tell its state) is refused until it is merged', async () => {
    const subject = await twoTier();
    const k = key('unmerged');
    await subject.redisStore.appendUnmerged(k, [user('q1'), assistant('a1')]);
    await expect(subject.store.eraseMessages(k, [1])).rejects.toBeInstanceOf(StoreUnavailableError);
    expect((await subject.redisStore.listMessages(k, { afterSeq: 0, limit: 10 })).map((m) => m.seq)).toEqual([1, 2]);
  });
});

describeWithService(available.redis, 'erasing messages: the windows another Redis client keeps decoded', () => {
  test('a window decoded (and tracked) by another process does not serve an erased message', async () => {
    const prefix = `erase:${randomUUID()}:`;
    const client = new Redis(redisServer!.url, { maxRetriesPerRequest: 1, autoResubscribe: false });
    const subscriber = new Redis(redisServer!.url, { maxRetriesPerRequest: 1, autoResubscribe: false });
    const tracking = new RedisTracking({ client, subscriber });
    await waitFor(() => tracking.activeEpoch !== undefined, { message: 'tracking on' });
    const paths: string[] = [];
    const reader = new RedisStore({ client, tracking, ttlMs: 3_600_000, maxCachedMessages: 200, mode: 'standalone', keyPrefix: prefix, onLoad: (path) => paths.push(path) });
    const eraser = new RedisStore({ client: redis, ttlMs: 3_600_000, maxCachedMessages: 200, mode: 'standalone', keyPrefix: prefix });
    try {
      const k = key('decoded');
      await reader.append(k, [user('q1'), assistant(SECRET), user('q2')]);
      await reader.load(k, UNLIMITED);
      await reader.load(k, UNLIMITED);
      expect(paths.at(-1)).toBe('tracked');

      await eraser.eraseMessages(k, [2]);
      await subscriber.ping(); // the invalidation, queued before this reply, has arrived
      const after = await reader.load(k, UNLIMITED);
      expect(after.messages.map((m) => m.seq)).toEqual([1, 3]);
      expect(JSON.stringify(after)).not.toContain(SECRET);
    } finally {
      tracking.close();
      client.disconnect();
      subscriber.disconnect();
    }
  });
});

describeWithRedisCluster('erasing messages: Redis Cluster', () => {
  test('ERASE and delete run in the conversation\'s slot', async () => {
    const cluster = await startRedisCluster({ masters: 3, timeoutMs: 30_000 });
    const client = new Cluster(cluster.nodes, { enableOfflineQueue: false, redisOptions: { maxRetriesPerRequest: 1 } });
    try {
      await new Promise((resolve) => client.once('ready', resolve));
      const store = new RedisStore({ client, ttlMs: 3_600_000, maxCachedMessages: 200, mode: 'standalone', keyPrefix: `erase:${randomUUID()}:` });
      const k = key('cluster');
      await store.append(k, [...TOOL_TURN, ...NEXT_TURN]);
      expect(await store.eraseMessages(k, [2, 3, 4])).toMatchObject({ tiers: { redis: { messages: 3, summaryDropped: false } } });
      expect((await store.load(k, UNLIMITED)).messages.map((m) => m.seq)).toEqual([1, 5, 6, 7]);
      expect(await store.delete(k)).toEqual({ tiers: { redis: { messages: 4, summaryDropped: false } } });
    } finally {
      await client.quit();
      await cluster.stop();
    }
  }, 60_000);
});
