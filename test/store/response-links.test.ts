// ResponseLinkStore: one contract, run against every implementation (the
// embedded store's, a real redis-server standalone and as a 3-master Cluster,
// a real MongoDB or FerretDB, and the two-tier one over both), then what each
// adds: the memory bounds on an injected clock, Redis's key layout and TTLs
// seen from outside, MongoDB's documents, and the two-tier fallback.

import { randomUUID } from 'node:crypto';
import { MongoClient, type Db } from 'mongodb';
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, test } from 'vitest';
import type { ConversationId, ConversationKey, TenantId } from '../../src/domain.js';
import { StoreUnavailableError } from '../../src/errors.js';
import { MemoryResponseLinks, type MemoryResponseLinksOptions } from '../../src/store/memory-response-links.js';
import { MongoResponseLinks } from '../../src/store/mongo/response-links.js';
import { RedisResponseLinks } from '../../src/store/redis/response-links.js';
import type { ResponseLink, ResponseLinkStore } from '../../src/store/response-links.js';
import { StoreHealth, type TierName } from '../../src/store/store-health.js';
import { TieredResponseLinks } from '../../src/store/tiered-response-links.js';
import { startMongo, type MongoServer } from '../support/mongo-server.js';
import { describeWithMongo, describeWithRedis, describeWithRedisCluster, describeWithService, serviceAvailability } from '../support/services.js';
import { useRedis, useRedisCluster, useTwoServers, wrapMethod } from '../support/tiered-stack.js';
import { waitFor } from '../support/wait-for.js';

interface LinksUnderTest {
  links: ResponseLinkStore;
  cleanup?: () => Promise<void>;
}

const HOUR_MS = 3_600_000;

const tenantOf = (name: string): TenantId => name as TenantId;
const conversationKey = (tenant: string, conversation: string): ConversationKey => ({ tenant: tenant as TenantId, conversation: conversation as ConversationId });
const link = (conversation: string, turnKey = `turn-${randomUUID()}`, createdAtMs = 1_700_000_000_123): ResponseLink => ({
  conversation: conversation as ConversationId,
  turnKey,
  createdAtMs,
});

function runResponseLinksContract(name: string, factory: () => Promise<LinksUnderTest>): void {
  describe(name, () => {
    let subject: LinksUnderTest;
    let links: ResponseLinkStore;
    // A fresh tenant per test keeps tests apart when a factory reuses one database or prefix.
    let tenant: TenantId;

    beforeEach(async () => {
      subject = await factory();
      links = subject.links;
      tenant = tenantOf(`t-${randomUUID()}`);
    });

    afterEach(async () => {
      await subject.cleanup?.();
    });

    test('a link comes back as it was put', async () => {
      const made = link('chat-1', 'idem-1', 1_700_000_000_123);

      await links.put(tenant, 'resp_1', made);

      expect(await links.get(tenant, 'resp_1')).toEqual(made);
    });

    test('an unknown response id finds nothing', async () => {
      await links.put(tenant, 'resp_known', link('chat-1'));

      expect(await links.get(tenant, 'resp_unknown')).toBeUndefined();
      expect(await links.get(tenantOf(`${tenant}-other`), 'resp_known')).toBeUndefined();
    });

    test('each tenant sees only its own link under a shared response id', async () => {
      const other = tenantOf(`${tenant}-b`);
      const ofA = link('chat-a', 'turn-a');
      const ofB = link('chat-b', 'turn-b');

      await links.put(tenant, 'resp_shared', ofA);
      expect(await links.get(other, 'resp_shared')).toBeUndefined();
      await links.put(other, 'resp_shared', ofB);

      expect(await links.get(tenant, 'resp_shared')).toEqual(ofA);
      expect(await links.get(other, 'resp_shared')).toEqual(ofB);
    });

    test('putting the same id again is idempotent, and a different link replaces the first', async () => {
      const first = link('chat-1', 'turn-1');
      await links.put(tenant, 'resp_1', first);
      await links.put(tenant, 'resp_1', first);
      expect(await links.get(tenant, 'resp_1')).toEqual(first);

      const second = link('chat-1', 'turn-2', 1_700_000_000_999);
      await links.put(tenant, 'resp_1', second);

      expect(await links.get(tenant, 'resp_1')).toEqual(second);
    });

    test("forget removes every link into the conversation and no other conversation's", async () => {
      const other = tenantOf(`${tenant}-b`);
      await links.put(tenant, 'resp_1', link('chat-gone'));
      await links.put(tenant, 'resp_2', link('chat-gone'));
      await links.put(tenant, 'resp_3', link('chat-kept', 'turn-kept'));
      // The same conversation id in another tenant is another conversation.
      await links.put(other, 'resp_1', link('chat-gone', 'turn-other-tenant'));

      await links.forget(conversationKey(tenant, 'chat-gone'));

      expect(await links.get(tenant, 'resp_1')).toBeUndefined();
      expect(await links.get(tenant, 'resp_2')).toBeUndefined();
      expect(await links.get(tenant, 'resp_3')).toMatchObject({ conversation: 'chat-kept', turnKey: 'turn-kept' });
      expect(await links.get(other, 'resp_1')).toMatchObject({ conversation: 'chat-gone', turnKey: 'turn-other-tenant' });
    });

    test('forgetting a conversation with no links resolves', async () => {
      await expect(links.forget(conversationKey(tenant, 'chat-never'))).resolves.toBeUndefined();
    });

    test('a response id put again into another conversation is not forgotten with the first', async () => {
      await links.put(tenant, 'resp_moved', link('chat-first'));
      const moved = link('chat-second', 'turn-moved');
      await links.put(tenant, 'resp_moved', moved);

      await links.forget(conversationKey(tenant, 'chat-first'));
      expect(await links.get(tenant, 'resp_moved')).toEqual(moved);

      await links.forget(conversationKey(tenant, 'chat-second'));
      expect(await links.get(tenant, 'resp_moved')).toBeUndefined();
    });

    test("ids with ':', '{', '}', '%' and unicode keep apart and round-trip", async () => {
      // Tenant `t:a` with id `b` and tenant `t` with id `a:b` must not meet.
      const colonTenant = tenantOf(`${tenant}:a`);
      const viaTenant = link('chat:{x}%7B', 'turn-1');
      const viaId = link('chat-ünïcödé ✓ 🙂', 'turn-2 {ü}');
      await links.put(colonTenant, 'b', viaTenant);
      await links.put(tenant, 'a:b', viaId);
      const braced = link('}{chat', 'turn-3');
      await links.put(tenantOf(`${tenant}{x}`), 'resp}{:%41ü🙂', braced);

      expect(await links.get(colonTenant, 'b')).toEqual(viaTenant);
      expect(await links.get(tenant, 'a:b')).toEqual(viaId);
      expect(await links.get(tenant, 'a%3Ab')).toBeUndefined();
      expect(await links.get(tenantOf(`${tenant}{x}`), 'resp}{:%41ü🙂')).toEqual(braced);
      expect(await links.get(tenantOf(`${tenant}{x}`), 'resp}{:Aü🙂')).toBeUndefined();

      // Conversation `chat:{x}%7B` of tenant `t:a` is not conversation `a:chat:{x}%7B` of tenant `t`.
      await links.forget(conversationKey(tenant, 'a:chat:{x}%7B'));
      expect(await links.get(colonTenant, 'b')).toEqual(viaTenant);
      await links.forget(conversationKey(colonTenant, 'chat:{x}%7B'));
      await links.forget(conversationKey(tenantOf(`${tenant}{x}`), '}{chat'));
      expect(await links.get(colonTenant, 'b')).toBeUndefined();
      expect(await links.get(tenantOf(`${tenant}{x}`), 'resp}{:%41ü🙂')).toBeUndefined();
      expect(await links.get(tenant, 'a:b')).toEqual(viaId);
    });
  });
}

// ---- memory ----

runResponseLinksContract('MemoryResponseLinks contract', async () => ({ links: new MemoryResponseLinks({ ttlMs: HOUR_MS, maxLinks: 10_000 }) }));

describe('MemoryResponseLinks bounds', () => {
  const tenant = tenantOf('tenant');

  function linksWith(options: Partial<MemoryResponseLinksOptions>) {
    const clock = { nowMs: 1_000_000 };
    const links = new MemoryResponseLinks({ ttlMs: 1_000, maxLinks: 1_000, now: () => clock.nowMs, ...options });
    return { links, clock };
  }

  test("a conversation's links live while it gets new links (turns), and expire together ttlMs after its last", async () => {
    const { links, clock } = linksWith({ ttlMs: 1_000 });
    await links.put(tenant, 'resp_1', link('chat'));
    await links.put(tenant, 'other_1', link('other'));
    clock.nowMs += 800;
    await links.put(tenant, 'resp_2', link('chat'));

    clock.nowMs += 800;

    expect(await links.get(tenant, 'resp_1'), 'older than the TTL, its conversation still going').toBeDefined();
    expect(await links.get(tenant, 'other_1'), 'its conversation had no new link').toBeUndefined();
    clock.nowMs += 1_000;
    expect(await links.get(tenant, 'resp_1')).toBeUndefined();
    expect(await links.get(tenant, 'resp_2')).toBeUndefined();
  });

  test('a read refreshes the TTL', async () => {
    const { links, clock } = linksWith({ ttlMs: 1_000 });
    await links.put(tenant, 'resp_1', link('chat'));

    for (let read = 0; read < 5; read++) {
      clock.nowMs += 999;
      expect(await links.get(tenant, 'resp_1'), `read ${read}`).toBeDefined();
    }
    clock.nowMs += 1_000;

    expect(await links.get(tenant, 'resp_1')).toBeUndefined();
  });

  test("beyond maxLinks the least recently used conversation's links go, whole; a conversation alone over it loses its oldest", async () => {
    const { links } = linksWith({ maxLinks: 3 });
    await links.put(tenant, 'a', link('one'));
    await links.put(tenant, 'b', link('two'));
    await links.put(tenant, 'c', link('two'));
    await links.get(tenant, 'a');

    await links.put(tenant, 'd', link('three'));

    for (const id of ['b', 'c']) expect(await links.get(tenant, id), id).toBeUndefined();
    for (const id of ['a', 'd']) expect(await links.get(tenant, id), id).toBeDefined();

    const { links: alone } = linksWith({ maxLinks: 2 });
    for (const id of ['x', 'y', 'z']) await alone.put(tenant, id, link('long'));
    expect(await alone.get(tenant, 'x')).toBeUndefined();
    for (const id of ['y', 'z']) expect(await alone.get(tenant, id), id).toBeDefined();
  });

  test('putting a link again makes it the most recently used', async () => {
    const { links } = linksWith({ maxLinks: 2 });
    await links.put(tenant, 'a', link('chat'));
    await links.put(tenant, 'b', link('chat'));
    await links.put(tenant, 'a', link('chat'));

    await links.put(tenant, 'c', link('chat'));

    expect(await links.get(tenant, 'b')).toBeUndefined();
    expect(await links.get(tenant, 'a')).toBeDefined();
  });

  test('expired and evicted links leave the conversation index, so forget and later puts still work', async () => {
    const { links, clock } = linksWith({ ttlMs: 1_000, maxLinks: 2 });
    await links.put(tenant, 'old', link('chat'));
    clock.nowMs += 1_000;
    await links.put(tenant, 'a', link('chat'));
    await links.put(tenant, 'b', link('chat'));
    await links.put(tenant, 'c', link('other'));

    await links.forget(conversationKey('tenant', 'chat'));

    expect(await links.get(tenant, 'b')).toBeUndefined();
    expect(await links.get(tenant, 'c')).toBeDefined();
  });

  test('rejects bounds that are not positive integers', () => {
    expect(() => new MemoryResponseLinks({ ttlMs: 0, maxLinks: 1 })).toThrow(RangeError);
    expect(() => new MemoryResponseLinks({ ttlMs: 1, maxLinks: 1.5 })).toThrow(RangeError);
  });
});

// ---- Redis ----

describeWithRedis('RedisResponseLinks', () => {
  const servers = useRedis();

  /** Links on a key prefix of their own, so tests never see each other's keys. */
  function linksWith(ttlMs = HOUR_MS): { links: RedisResponseLinks; prefix: string } {
    const prefix = `test:${randomUUID()}:`;
    return { links: new RedisResponseLinks({ client: servers.client, ttlMs, keyPrefix: prefix }), prefix };
  }

  runResponseLinksContract('RedisResponseLinks contract', async () => ({ links: linksWith().links }));

  test('keys: one string per link, one set per conversation under its hash tag, both with the TTL', async () => {
    const { links, prefix } = linksWith(60_000);
    await links.put(tenantOf('acme'), 'resp_1', link('chat-42', 'turn-1', 5));

    const linkKey = `${prefix}rlink:acme:resp_1`;
    const setKey = `${prefix}{acme:chat-42}:rlinks`;
    expect(JSON.parse((await servers.client.get(linkKey)) ?? 'null')).toEqual({ c: 'chat-42', t: 'turn-1', at: 5 });
    expect(await servers.client.smembers(setKey)).toEqual(['resp_1']);
    for (const key of [linkKey, setKey]) {
      const ttlMs = await servers.client.pttl(key);
      expect(ttlMs, key).toBeGreaterThan(50_000);
      expect(ttlMs, key).toBeLessThanOrEqual(60_000);
    }

    await links.forget(conversationKey('acme', 'chat-42'));
    expect(await servers.client.exists(linkKey, setKey)).toBe(0);
  });

  test("a colon or brace in an id is escaped: keys keep their layout and no id opens a hash tag", async () => {
    const { links, prefix } = linksWith();
    await links.put(tenantOf('a:b{'), 'x}{y:%', link('c{1}'));

    expect(await servers.client.exists(`${prefix}rlink:a%3Ab%7B:x%7D%7By:%25`)).toBe(1);
    expect(await servers.client.exists(`${prefix}{a%3Ab%7B:c%7B1%7D}:rlinks`)).toBe(1);
  });

  test('a link expires ttlMs after it was made', async () => {
    const { links, prefix } = linksWith(200);
    await links.put(tenantOf('acme'), 'resp_1', link('chat'));
    expect(await links.get(tenantOf('acme'), 'resp_1')).toBeDefined();

    await waitFor(async () => (await servers.client.exists(`${prefix}rlink:acme:resp_1`, `${prefix}{acme:chat}:rlinks`)) === 0, {
      timeoutMs: 5_000,
      message: 'the link and the conversation set to expire',
    });

    expect(await links.get(tenantOf('acme'), 'resp_1')).toBeUndefined();
  });

  test("a new link refreshes the conversation's earlier links: they live as long as it gets turns", async () => {
    const { links, prefix } = linksWith(300);
    const acme = tenantOf('acme');
    await links.put(acme, 'resp_1', link('chat'));
    await links.put(acme, 'resp_lone', link('lone'));
    // Turns keep coming, each before the first link's TTL ends, until a link made with it has expired.
    for (let turn = 2; (await servers.client.exists(`${prefix}rlink:acme:resp_lone`)) === 1; turn++) {
      await waitFor(async () => (await servers.client.pttl(`${prefix}rlink:acme:resp_1`)) < 150, { timeoutMs: 5_000, message: 'time to pass' });
      await links.put(acme, `resp_${turn}`, link('chat'));
    }

    expect(await links.get(acme, 'resp_1')).toMatchObject({ conversation: 'chat' });
  });

  test('a read refreshes the TTL of the link', async () => {
    const { links, prefix } = linksWith(60_000);
    const linkKey = `${prefix}rlink:acme:resp_1`;
    await links.put(tenantOf('acme'), 'resp_1', link('chat'));
    await servers.client.pexpire(linkKey, 5_000);

    await links.get(tenantOf('acme'), 'resp_1');

    expect(await servers.client.pttl(linkKey)).toBeGreaterThan(50_000);
  });

  test('rejects a key prefix with a brace and a TTL that is not a positive integer', () => {
    expect(() => new RedisResponseLinks({ client: servers.client, ttlMs: HOUR_MS, keyPrefix: 'a{b}:' })).toThrow(RangeError);
    expect(() => new RedisResponseLinks({ client: servers.client, ttlMs: 0 })).toThrow(RangeError);
  });
});

describeWithRedisCluster('RedisResponseLinks on a 3-master Redis Cluster', () => {
  const servers = useRedisCluster();

  runResponseLinksContract('RedisResponseLinks contract (Cluster)', async () => ({
    links: new RedisResponseLinks({ client: servers.client, ttlMs: HOUR_MS, keyPrefix: `test:${randomUUID()}:` }),
  }));

  test('forget reaches links on every master', async () => {
    const links = new RedisResponseLinks({ client: servers.client, ttlMs: HOUR_MS, keyPrefix: `test:${randomUUID()}:` });
    const ids = Array.from({ length: 30 }, (_, index) => `resp_${index}`);
    for (const id of ids) await links.put(tenantOf('acme'), id, link('chat'));

    await links.forget(conversationKey('acme', 'chat'));

    for (const id of ids) expect(await links.get(tenantOf('acme'), id), id).toBeUndefined();
  });
});

// ---- MongoDB ----

describeWithMongo('MongoResponseLinks', () => {
  let server: MongoServer;
  let client: MongoClient;
  let db: Db;
  let databaseCount = 0;

  beforeAll(async () => {
    server = await startMongo();
    client = new MongoClient(server.url, { serverSelectionTimeoutMS: 10_000 });
    await client.connect();
    db = client.db(server.database);
  });

  afterAll(async () => {
    await client?.close();
    await server?.stop();
  });

  runResponseLinksContract('MongoResponseLinks contract', async () => ({ links: new MongoResponseLinks({ db }) }));

  test('one document per link, and the index forget uses, created with the first link', async () => {
    const fresh = client.db(`${server.database}_${++databaseCount}`);
    const links = new MongoResponseLinks({ db: fresh });
    await links.put(tenantOf('a:b%'), 'resp_1', link('chat-42', 'turn-1', 1_700_000_000_123));

    const documents = await fresh.collection('response_links').find().toArray();
    expect(documents).toEqual([
      { _id: 'a%3Ab%25:resp_1', tenant: 'a:b%', responseId: 'resp_1', conversation: 'chat-42', turnKey: 'turn-1', createdAt: new Date(1_700_000_000_123) },
    ]);
    const indexes = await fresh.collection('response_links').indexes();
    expect(indexes.find((index) => index.name === 'tenant_conversation')?.key).toEqual({ tenant: 1, conversation: 1 });
    await fresh.dropDatabase();
  });

  test('forget before any link was made resolves', async () => {
    const fresh = client.db(`${server.database}_${++databaseCount}`);
    await expect(new MongoResponseLinks({ db: fresh }).forget(conversationKey('acme', 'chat'))).resolves.toBeUndefined();
    await fresh.dropDatabase();
  });

  test('concurrent puts of one new link store one document', async () => {
    const links = new MongoResponseLinks({ db });
    const tenant = tenantOf(`t-${randomUUID()}`);
    const made = link('chat', 'turn-1');

    await Promise.all(Array.from({ length: 8 }, () => links.put(tenant, 'resp_race', made)));

    expect(await db.collection('response_links').countDocuments({ tenant })).toBe(1);
    expect(await links.get(tenant, 'resp_race')).toEqual(made);
  });
});

// ---- two tiers ----

const available = serviceAvailability();

describeWithService(!available.redis.isAvailable ? available.redis : available.mongo, 'TieredResponseLinks on real Redis and MongoDB', () => {
  const servers = useTwoServers();

  function stack(tiers: readonly TierName[], wrap: { redis?: (links: ResponseLinkStore) => ResponseLinkStore; mongo?: (links: ResponseLinkStore) => ResponseLinkStore } = {}) {
    const prefix = `tiered:${randomUUID()}:`;
    const health = new StoreHealth({ tiers, probeIntervalMs: 1_000 });
    const hot = tiers.includes('redis') ? new RedisResponseLinks({ client: servers.redis, ttlMs: HOUR_MS, keyPrefix: prefix }) : undefined;
    const durable = tiers.includes('mongodb') ? new MongoResponseLinks({ db: servers.freshDb() }) : undefined;
    const redis = hot === undefined ? undefined : (wrap.redis?.(hot) ?? hot);
    const mongo = durable === undefined ? undefined : (wrap.mongo?.(durable) ?? durable);
    const links = new TieredResponseLinks({ redis, mongo, health, redisTimeoutMs: 2_000, mongoTimeoutMs: 5_000 });
    return { links, hot, durable, prefix, health };
  }

  runResponseLinksContract('TieredResponseLinks contract (Redis + MongoDB)', async () => ({ links: stack(['redis', 'mongodb']).links }));
  runResponseLinksContract('TieredResponseLinks contract (Redis only)', async () => ({ links: stack(['redis']).links }));
  runResponseLinksContract('TieredResponseLinks contract (MongoDB only)', async () => ({ links: stack(['mongodb']).links }));

  test('a put reaches both tiers', async () => {
    const { links, hot, durable } = stack(['redis', 'mongodb']);
    const made = link('chat');

    await links.put(tenantOf('acme'), 'resp_1', made);

    expect(await hot?.get(tenantOf('acme'), 'resp_1')).toEqual(made);
    expect(await durable?.get(tenantOf('acme'), 'resp_1')).toEqual(made);
  });

  test('a link Redis lost is read from MongoDB and written back to Redis', async () => {
    const { links, prefix } = stack(['redis', 'mongodb']);
    const made = link('chat');
    await links.put(tenantOf('acme'), 'resp_1', made);
    const linkKey = `${prefix}rlink:acme:resp_1`;
    expect(await servers.redis.del(linkKey)).toBe(1);

    expect(await links.get(tenantOf('acme'), 'resp_1')).toEqual(made);

    await waitFor(async () => (await servers.redis.exists(linkKey)) === 1, { message: 'the link written back to Redis' });
    expect(JSON.parse((await servers.redis.get(linkKey)) ?? 'null')).toMatchObject({ c: 'chat', t: made.turnKey });
  });

  test("a put resolves when MongoDB took the link though Redis's write failed", async () => {
    const failing = (links: ResponseLinkStore) => wrapMethod(links, 'put', () => () => Promise.reject(new Error('redis write lost')));
    const { links, health } = stack(['redis', 'mongodb'], { redis: failing });
    const made = link('chat');

    await links.put(tenantOf('acme'), 'resp_1', made);

    expect(health.isUp('redis')).toBe(false);
    expect(await links.get(tenantOf('acme'), 'resp_1')).toEqual(made);
  });

  test("a put fails when MongoDB's write failed, whatever Redis did", async () => {
    const failing = (links: ResponseLinkStore) => wrapMethod(links, 'put', () => () => Promise.reject(new Error('mongodb write lost')));
    const { links } = stack(['redis', 'mongodb'], { mongo: failing });

    await expect(links.put(tenantOf('acme'), 'resp_1', link('chat'))).rejects.toBeInstanceOf(StoreUnavailableError);
  });

  test('a get with Redis failing is answered by MongoDB', async () => {
    const failing = (links: ResponseLinkStore) => wrapMethod(links, 'get', () => () => Promise.reject(new Error('redis read lost')));
    const { links } = stack(['redis', 'mongodb'], { redis: failing });
    const made = link('chat');
    await links.put(tenantOf('acme'), 'resp_1', made);

    expect(await links.get(tenantOf('acme'), 'resp_1')).toEqual(made);
  });

  test('a Redis miss with MongoDB failing is an error, not "no such link"', async () => {
    const failing = (links: ResponseLinkStore) => wrapMethod(links, 'get', () => () => Promise.reject(new Error('mongodb read lost')));
    const { links } = stack(['redis', 'mongodb'], { mongo: failing });

    await expect(links.get(tenantOf('acme'), 'resp_unknown')).rejects.toBeInstanceOf(StoreUnavailableError);
  });
});
