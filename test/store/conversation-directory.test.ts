// The conversation listing (ConversationDirectory) on every store, against
// real servers: the embedded store, Redis alone (standalone and a 3-master
// Cluster), MongoDB alone, and Redis in front of MongoDB with its flusher. One
// suite of behaviour for all of them, then what each store adds: MongoDB's
// index and its conversations written before the listing existed, Redis's
// meta hashes written before activeAt.

import { randomUUID } from 'node:crypto';
import { setTimeout as delay } from 'node:timers/promises';
import type { Cluster, Redis } from 'ioredis';
import { MongoClient, type Db } from 'mongodb';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import type { ConversationId, ConversationKey, TenantId } from '../../src/domain.js';
import { InvalidRequestError } from '../../src/errors.js';
import type { ConversationDirectory, ConversationEntry } from '../../src/store/conversation-directory.js';
import type { ConversationStore } from '../../src/store/conversation-store.js';
import { byActivity } from '../../src/store/directory-order.js';
import { MemoryDirectory } from '../../src/store/memory-directory.js';
import { MemoryStore } from '../../src/store/memory-store.js';
import { ACTIVITY_INDEX } from '../../src/store/mongo/document-codec.js';
import { MongoDirectory } from '../../src/store/mongo/mongo-directory.js';
import { MongoStore } from '../../src/store/mongo/mongo-store.js';
import { RedisDirectory } from '../../src/store/redis/redis-directory.js';
import { RedisStore } from '../../src/store/redis/redis-store.js';
import { StoreHealth } from '../../src/store/store-health.js';
import { TieredDirectory } from '../../src/store/tiered-directory.js';
import { startMongo, type MongoServer } from '../support/mongo-server.js';
import { describeWithMongo, describeWithRedis, describeWithRedisCluster, describeWithService, serviceAvailability } from '../support/services.js';
import { testFlusher, tieredStore, turn, useRedis, useRedisCluster, useTwoServers } from '../support/tiered-stack.js';
import { waitFor } from '../support/wait-for.js';

const HOUR_MS = 3_600_000;

interface DirectoryHarness {
  /** Where the conversations are written. */
  store: ConversationStore;
  directory: ConversationDirectory;
  /** Resolves once everything written is where the directory lists from (Redis + MongoDB: flushed). */
  settle: () => Promise<void>;
  cleanup: () => Promise<void>;
}

const key = (tenant: string, conversation: string): ConversationKey => ({ tenant: tenant as TenantId, conversation: conversation as ConversationId });
const newTenant = (): string => `t.${randomUUID().slice(0, 13)}`;

/** Every page, walked with the cursor. */
async function listAll(directory: ConversationDirectory, tenant: string, limit = 500): Promise<ConversationEntry[]> {
  const all: ConversationEntry[] = [];
  let after: string | undefined;
  for (let pages = 0; pages < 1_000; pages++) {
    const page = await directory.list(tenant as TenantId, { limit, after });
    expect(page.conversations.length).toBeLessThanOrEqual(limit);
    all.push(...page.conversations);
    if (page.next === undefined) return all;
    after = page.next;
  }
  throw new Error('the cursor never ended');
}

const idsOf = (entries: readonly ConversationEntry[]): string[] => entries.map((entry) => entry.conversation);

function runDirectoryContract(name: string, make: () => Promise<DirectoryHarness>): void {
  describe(name, () => {
    let h: DirectoryHarness;
    beforeAll(async () => {
      h = await make();
    });
    afterAll(async () => {
      await h?.cleanup();
    });

    /** One turn (two messages) each, a few milliseconds apart so their activity times differ. */
    async function appendTurns(tenant: string, conversations: readonly string[], apartMs = 5): Promise<void> {
      for (const conversation of conversations) {
        await h.store.append(key(tenant, conversation), turn(conversation), { turnKey: randomUUID() });
        if (apartMs > 0) await delay(apartMs);
      }
    }

    test('newest activity first; a conversation appended to later moves to the front; counts are the messages stored', async () => {
      const tenant = newTenant();
      const startedMs = Date.now();
      await appendTurns(tenant, ['a', 'b', 'c']);
      await h.settle();
      expect(idsOf(await listAll(h.directory, tenant))).toEqual(['c', 'b', 'a']);

      const beforeMs = Date.now();
      await appendTurns(tenant, ['a']);
      await h.settle();
      const page = await h.directory.list(tenant as TenantId, { limit: 50, after: undefined });
      expect(page.conversations.map((entry) => [entry.conversation, entry.messageCount])).toEqual([
        ['a', 4],
        ['c', 2],
        ['b', 2],
      ]);
      expect(page.next).toBeUndefined();
      const [a, c, b] = page.conversations;
      expect(a!.lastActivityMs).toBeGreaterThanOrEqual(beforeMs);
      expect(a!.lastActivityMs).toBeLessThanOrEqual(Date.now());
      expect(c!.lastActivityMs).toBeGreaterThan(b!.lastActivityMs);
      expect(b!.lastActivityMs).toBeGreaterThanOrEqual(startedMs);
      for (const entry of page.conversations) expect(entry.summary).toBeUndefined();
    });

    test('paging with the cursor covers every conversation exactly once, in the order of one big page', async () => {
      const tenant = newTenant();
      // No pause between them: many share a millisecond, so the id breaks ties.
      const conversations = Array.from({ length: 23 }, (_, index) => `conversation-${String(index).padStart(2, '0')}`);
      await appendTurns(tenant, conversations, 0);
      await h.settle();
      const whole = await listAll(h.directory, tenant);
      expect(whole).toHaveLength(23);
      expect([...whole].sort(byActivity)).toEqual(whole);
      for (const limit of [1, 5, 7, 22, 23]) {
        const paged = await listAll(h.directory, tenant, limit);
        expect(idsOf(paged), `pages of ${limit}`).toEqual(idsOf(whole));
      }
      expect(new Set(idsOf(whole))).toEqual(new Set(conversations));
      const first = await h.directory.list(tenant as TenantId, { limit: 23, after: undefined });
      expect(first.next).toBeUndefined();
    });

    test("another tenant's conversations are not listed, even under the same id or a tenant id that starts the same", async () => {
      const tenant = newTenant();
      const longer = `${tenant}x`;
      await appendTurns(tenant, ['shared', 'only-mine']);
      await appendTurns(longer, ['shared', 'shared', 'theirs']);
      await h.settle();
      const mine = await listAll(h.directory, tenant);
      expect(mine.map((entry) => [entry.conversation, entry.messageCount])).toEqual([
        ['only-mine', 2],
        ['shared', 2],
      ]);
      const theirs = await listAll(h.directory, longer);
      expect(theirs.map((entry) => [entry.conversation, entry.messageCount])).toEqual([
        ['theirs', 2],
        ['shared', 4],
      ]);
      expect(await h.directory.list(newTenant() as TenantId, { limit: 10, after: undefined })).toEqual({ conversations: [], next: undefined });
    });

    test('the summary: what it covers and its size', async () => {
      const tenant = newTenant();
      await appendTurns(tenant, ['plain', 'summarized', 'summarized']);
      await h.settle();
      expect(await h.store.replaceSummary(key(tenant, 'summarized'), { text: 'they talked', tokens: 17, coversSeq: 2, createdAtMs: Date.now() })).toBe(true);
      await h.settle();
      const listed = await listAll(h.directory, tenant);
      expect(listed.map((entry) => [entry.conversation, entry.messageCount, entry.summary])).toEqual([
        ['summarized', 4, { coversSeq: 2, tokens: 17 }],
        ['plain', 2, undefined],
      ]);
    });

    test('a cursor that is not one is a 400 on after', async () => {
      for (const after of ['not-a-cursor', Buffer.from('[1,2]').toString('base64url'), Buffer.from('{"a":1}').toString('base64url')]) {
        const listing = h.directory.list(newTenant() as TenantId, { limit: 5, after });
        await expect(listing).rejects.toBeInstanceOf(InvalidRequestError);
        await expect(listing).rejects.toMatchObject({ param: 'after', code: 'invalid_value', status: 400 });
      }
    });
  });
}

describe('embedded store', () => {
  runDirectoryContract('MemoryDirectory', async () => {
    const store = new MemoryStore({ ttlMs: HOUR_MS, maxConversations: 10_000, maxBytes: 64 * 1024 * 1024, maxMessagesPerConversation: 1_000 });
    return { store, directory: new MemoryDirectory(store), settle: async () => undefined, cleanup: () => store.close() };
  });

  test('an expired conversation is not listed, and listing refreshes neither TTL nor recency', async () => {
    let nowMs = 1_000_000;
    const store = new MemoryStore({ ttlMs: 10_000, maxConversations: 2, maxBytes: 1024 * 1024, maxMessagesPerConversation: 100, now: () => nowMs });
    const directory = new MemoryDirectory(store);
    const tenant = 'k.tenant' as TenantId;
    await store.append(key(tenant, 'old'), turn('old'));
    nowMs += 6_000;
    await store.append(key(tenant, 'new'), turn('new'));
    nowMs += 3_000;
    // Listed (and so not used): 'old' stays the least recently used, and expires on time.
    expect(idsOf((await directory.list(tenant, { limit: 10, after: undefined })).conversations)).toEqual(['new', 'old']);
    nowMs += 2_000;
    expect((await directory.list(tenant, { limit: 10, after: undefined })).conversations.map((entry) => [entry.conversation, entry.lastActivityMs])).toEqual([
      ['new', 1_006_000],
    ]);
    await store.close();
  });
});

describeWithRedis('Redis alone', () => {
  const servers = useRedis();

  const redisAlone = (on: () => Redis | Cluster) => async (): Promise<DirectoryHarness> => {
    const keyPrefix = `list:${randomUUID()}:`;
    const store = new RedisStore({ client: on(), ttlMs: HOUR_MS, maxCachedMessages: 200, mode: 'standalone', keyPrefix });
    const directory = new TieredDirectory({
      redis: new RedisDirectory({ client: on(), keyPrefix }),
      mongo: undefined,
      health: new StoreHealth({ tiers: ['redis'], probeIntervalMs: 1_000 }),
      redisTimeoutMs: 10_000,
      mongoTimeoutMs: 10_000,
    });
    return { store, directory, settle: async () => undefined, cleanup: () => store.close() };
  };

  runDirectoryContract('RedisDirectory (standalone Redis, through TieredDirectory)', redisAlone(() => servers.client));

  test('the append script sets activeAt; a meta hash without it (an older contextd) takes its newest message time', async () => {
    const keyPrefix = `list:${randomUUID()}:`;
    const store = new RedisStore({ client: servers.client, ttlMs: HOUR_MS, maxCachedMessages: 200, mode: 'standalone', keyPrefix });
    const directory = new RedisDirectory({ client: servers.client, keyPrefix });
    const tenant = 'k.legacy' as TenantId;
    await store.append(key(tenant, 'old'), turn('old'));
    await delay(5);
    await store.append(key(tenant, 'new'), turn('new'));
    const meta = `${keyPrefix}{k.legacy:old}:meta`;
    const [newest] = await store.listMessages(key(tenant, 'old'), { afterSeq: 1, limit: 1 });
    expect(Number(await servers.client.hget(meta, 'activeAt'))).toBe(newest!.createdAtMs);

    await servers.client.hdel(meta, 'activeAt');
    const listed = (await directory.list(tenant, { limit: 10, after: undefined })).conversations;
    expect(listed.map((entry) => [entry.conversation, entry.messageCount])).toEqual([
      ['new', 2],
      ['old', 2],
    ]);
    expect(listed[1]!.lastActivityMs).toBe(newest!.createdAtMs);
    await store.close();
  });

  test("only the store's own key prefix is scanned", async () => {
    const tenant = newTenant() as TenantId;
    const ours = `list:${randomUUID()}:`;
    const store = new RedisStore({ client: servers.client, ttlMs: HOUR_MS, maxCachedMessages: 200, mode: 'standalone', keyPrefix: ours });
    const elsewhere = new RedisStore({ client: servers.client, ttlMs: HOUR_MS, maxCachedMessages: 200, mode: 'standalone', keyPrefix: `list:${randomUUID()}:` });
    await store.append(key(tenant, 'here'), turn('here'));
    await elsewhere.append(key(tenant, 'there'), turn('there'));
    expect(idsOf((await new RedisDirectory({ client: servers.client, keyPrefix: ours }).list(tenant, { limit: 10, after: undefined })).conversations)).toEqual(['here']);
    await Promise.all([store.close(), elsewhere.close()]);
  });
});

describeWithRedisCluster('Redis Cluster alone', () => {
  const servers = useRedisCluster();

  runDirectoryContract('RedisDirectory (3-master Cluster)', async () => {
    const keyPrefix = `list:${randomUUID()}:`;
    const store = new RedisStore({ client: servers.client, ttlMs: HOUR_MS, maxCachedMessages: 200, mode: 'standalone', keyPrefix });
    return { store, directory: new RedisDirectory({ client: servers.client, keyPrefix }), settle: async () => undefined, cleanup: () => store.close() };
  });

  test('conversations on every master are listed', async () => {
    const keyPrefix = `list:${randomUUID()}:`;
    const store = new RedisStore({ client: servers.client, ttlMs: HOUR_MS, maxCachedMessages: 200, mode: 'standalone', keyPrefix });
    const tenant = newTenant();
    const conversations = Array.from({ length: 30 }, (_, index) => `spread-${index}`);
    for (const conversation of conversations) await store.append(key(tenant, conversation), turn(conversation));
    const mastersHolding = await Promise.all(
      servers.client.nodes('master').map(async (node) => (await node.keys(`${keyPrefix}*:meta`)).length),
    );
    expect(mastersHolding.filter((count) => count > 0).length).toBeGreaterThan(1);
    const listed = await listAll(new RedisDirectory({ client: servers.client, keyPrefix }), tenant, 4);
    expect(new Set(idsOf(listed))).toEqual(new Set(conversations));
    expect(listed).toHaveLength(30);
    await store.close();
  });
});

describeWithMongo('MongoDB alone', () => {
  let server: MongoServer;
  let client: MongoClient;
  beforeAll(async () => {
    server = await startMongo();
    client = new MongoClient(server.url, { serverSelectionTimeoutMS: 10_000 });
    await client.connect();
  }, 60_000);
  afterAll(async () => {
    await client?.close();
    await server?.stop();
  });

  const freshDb = (): Db => client.db(`${server.database}_${randomUUID().slice(0, 8)}`);

  runDirectoryContract('MongoDirectory (through TieredDirectory)', async () => {
    const db = freshDb();
    const store = new MongoStore({ db });
    await store.ensureIndexes();
    const directory = new TieredDirectory({
      redis: undefined,
      mongo: new MongoDirectory({ db }),
      health: new StoreHealth({ tiers: ['mongodb'], probeIntervalMs: 1_000 }),
      redisTimeoutMs: 10_000,
      mongoTimeoutMs: 10_000,
    });
    return {
      store,
      directory,
      settle: async () => undefined,
      cleanup: async () => {
        await store.close();
        await db.dropDatabase();
      },
    };
  });

  describe('beyond the contract', () => {
    let db: Db;
    let store: MongoStore;
    let directory: MongoDirectory;
    beforeAll(async () => {
      db = freshDb();
      store = new MongoStore({ db });
      await store.ensureIndexes();
      directory = new MongoDirectory({ db });
    });
    afterAll(async () => {
      await store?.close();
      await db?.dropDatabase();
    });

    test('the listing index is created with the others', async () => {
      const indexes = await db.collection('conversations').indexes();
      expect(indexes.find((index) => index.name === ACTIVITY_INDEX)?.key).toEqual({ tenant: 1, lastActivityAt: -1, conversation: 1 });
    });

    test('a conversation stored before the listing existed (no lastActivityAt, no lastSeq) is listed, and filled in by the first listing', async () => {
      const tenant = newTenant();
      await store.append(key(tenant, 'legacy'), turn('legacy'), { createdAtMs: 1_700_000_000_000 });
      await store.append(key(tenant, 'legacy'), turn('legacy again'), { createdAtMs: 1_700_000_100_000 });
      await store.append(key(tenant, 'recent'), turn('recent'));
      await store.append(key(tenant, 'oldest'), turn('oldest'), { createdAtMs: 1_600_000_000_000 });
      const conversations = db.collection('conversations');
      // As an older contextd left them: { tenant, conversation, createdAt } only.
      await conversations.updateMany({ tenant, conversation: { $in: ['legacy', 'oldest'] } }, { $unset: { lastActivityAt: '', lastSeq: '' } });
      expect(await conversations.countDocuments({ tenant, lastActivityAt: { $exists: false } })).toBe(2);

      const listed = (await directory.list(tenant as TenantId, { limit: 10, after: undefined })).conversations;
      expect(listed.map((entry) => [entry.conversation, entry.messageCount, entry.lastActivityMs])).toEqual([
        ['recent', 2, expect.any(Number)],
        ['legacy', 4, 1_700_000_100_000],
        ['oldest', 2, 1_600_000_000_000],
      ]);
      expect(await conversations.countDocuments({ tenant, lastActivityAt: { $exists: false } })).toBe(0);
      expect(await conversations.findOne({ tenant, conversation: 'legacy' }, { projection: { _id: 0, lastSeq: 1, lastActivityAt: 1 } })).toEqual({
        lastSeq: 4,
        lastActivityAt: new Date(1_700_000_100_000),
      });
    });

    test("the flusher's writes (upsertAllocated) keep the listing's fields: the newest message's time, the last seq", async () => {
      const tenant = newTenant();
      const stored = (seq: number, createdAtMs: number) => ({ message: { role: 'user' as const, content: `m${seq}` }, tokens: 3, digest: `d${seq}`, seq, createdAtMs, cumTokens: 3 * seq });
      await store.upsertAllocated(key(tenant, 'flushed'), [stored(1, 1_700_000_000_000), stored(2, 1_700_000_000_500)]);
      await store.upsertAllocated(key(tenant, 'flushed'), [stored(3, 1_700_000_009_000)]);
      // A round repeated after a crash writes the same again: nothing moves back.
      await store.upsertAllocated(key(tenant, 'flushed'), [stored(1, 1_700_000_000_000), stored(2, 1_700_000_000_500)]);
      const [entry] = (await directory.list(tenant as TenantId, { limit: 10, after: undefined })).conversations;
      expect(entry).toEqual({ conversation: 'flushed', messageCount: 3, lastActivityMs: 1_700_000_009_000, summary: undefined });
    });
  });
});

const available = serviceAvailability();

describeWithService(!available.redis.isAvailable ? available.redis : available.mongo, 'Redis in front of MongoDB', () => {
  const servers = useTwoServers();

  runDirectoryContract('TieredDirectory (from MongoDB, after the flusher)', async () => {
    const keyPrefix = `list:${randomUUID()}:`;
    const health = new StoreHealth({ tiers: ['redis', 'mongodb'], probeIntervalMs: 1_000 });
    const db = servers.freshDb();
    const mongo = new MongoStore({ db });
    await mongo.ensureIndexes();
    const redis = new RedisStore({ client: servers.redis, ttlMs: HOUR_MS, maxCachedMessages: 200, mode: 'cache', keyPrefix });
    // The store tells the flusher of each turn; the closures run only after both exist.
    const store = tieredStore({ redis, mongo, health, onFlushNeeded: () => flusher.notify(), flushesSettled: async () => flusher.idle() });
    const flusher = testFlusher({ redis, mongo, health });
    flusher.start();
    const directory = new TieredDirectory({
      redis: new RedisDirectory({ client: servers.redis, keyPrefix }),
      mongo: new MongoDirectory({ db }),
      health,
      redisTimeoutMs: 10_000,
      mongoTimeoutMs: 10_000,
    });
    return {
      store,
      directory,
      settle: async () => {
        await waitFor(async () => (await servers.redis.zcard(`${keyPrefix}dirty`)) === 0, { timeoutMs: 20_000, message: 'every turn flushed' });
        await flusher.idle();
      },
      cleanup: async () => {
        await flusher.stop(2_000);
        await store.close();
        await db.dropDatabase();
      },
    };
  });
});
