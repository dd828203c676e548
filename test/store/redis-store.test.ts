// RedisStore against a real redis-server (standalone and a 3-master Cluster):
// the shared contract in standalone mode, then what cache mode adds for the
// two-tier store and its flusher, TTLs, and the key layout.

import { randomUUID } from 'node:crypto';
import { Redis, Cluster } from 'ioredis';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import type { ConversationId, ConversationKey, NewMessage, StoredMessage, TenantId } from '../../src/domain.js';
import { StoreUnavailableError } from '../../src/errors.js';
import { ColdConversationError, RedisStore, type RedisStoreOptions } from '../../src/store/redis-store.js';
import { RECENT_TURN_KEY_LIMIT } from '../../src/store/redis-scripts.js';
import { startRedis, startRedisCluster, type RedisCluster, type RedisServer } from '../support/redis-server.js';
import { describeWithRedis, describeWithRedisCluster } from '../support/services.js';
import { runStoreContract } from './store-contract.js';

const UNLIMITED = { maxMessages: 10_000, maxTokens: Number.MAX_SAFE_INTEGER };
const HOUR_MS = 3_600_000;

let server: RedisServer;
let client: Redis;

function key(conversation: string, tenant = 'tenant'): ConversationKey {
  return { tenant: tenant as TenantId, conversation: conversation as ConversationId };
}

function texts(count: number, prefix = 'm', tokens = 1): NewMessage[] {
  return Array.from({ length: count }, (_, index) => ({
    message: { role: 'user', content: `${prefix}-${index}` },
    tokens,
    digest: `${prefix}-${index}-digest`,
  }));
}

function stored(seq: number, tokens: number, cumTokens: number): StoredMessage {
  return { message: { role: 'assistant', content: `from mongo ${seq}` }, tokens, digest: `d${seq}`, seq, createdAtMs: 1_000 + seq, cumTokens };
}

/** A store on its own key prefix, so tests never see each other's keys. */
function storeWith(options: Partial<RedisStoreOptions> = {}, on: Redis | Cluster = client): { store: RedisStore; prefix: string } {
  const prefix = options.keyPrefix ?? `test:${randomUUID()}:`;
  const store = new RedisStore({ client: on, ttlMs: HOUR_MS, maxCachedMessages: 1_000, mode: 'standalone', ...options, keyPrefix: prefix });
  return { store, prefix };
}

const seqsOf = (messages: readonly StoredMessage[]): number[] => messages.map((m) => m.seq);

describeWithRedis('RedisStore', () => {
  beforeAll(async () => {
    server = await startRedis();
    client = new Redis(server.url, { enableOfflineQueue: false, maxRetriesPerRequest: 1 });
    await new Promise((resolve) => client.once('ready', resolve));
  });

  afterAll(async () => {
    await client?.quit();
    await server?.stop();
  });

  runStoreContract('RedisStore (standalone)', async () => {
    const { store } = storeWith();
    return { store, cleanup: () => store.close() };
  });

  describe('RedisStore layout and bounds', () => {
    test('keeps one conversation under three hash-tagged keys', async () => {
      const { store, prefix } = storeWith();
      await store.append(key('chat:42', 't.acme'), texts(2), { turnKey: 'k' });

      const keys = (await client.keys(`${prefix}*`)).sort();
      const entries = await client.lrange(`${prefix}{t.acme:chat:42}:msgs`, 0, -1);

      expect(keys).toEqual([`${prefix}{t.acme:chat:42}:meta`, `${prefix}{t.acme:chat:42}:msgs`, `${prefix}{t.acme:chat:42}:turns`]);
      expect(entries.map((entry) => entry.slice(0, 6))).toEqual(['1:1:1:', '2:1:2:']);
      expect(JSON.parse(entries[0]!.slice(6))).toEqual({ message: { role: 'user', content: 'm-0' }, digest: 'm-0-digest', createdAtMs: expect.any(Number), turnKey: 'k' });
      expect(await client.hgetall(`${prefix}{t.acme:chat:42}:meta`)).toEqual({ lastSeq: '2', lastCum: '2' });
      expect(await client.hgetall(`${prefix}{t.acme:chat:42}:turns`)).toEqual({ k: '1:2' });
    });

    test('escapes separators and braces so the tag can only be read one way', async () => {
      const { store, prefix } = storeWith();
      await store.append(key('b}c', 'x:a{'), texts(1));

      expect(await client.keys(`${prefix}*:meta`)).toEqual([`${prefix}{x%3Aa%7B:b%7Dc}:meta`]);
      expect((await store.load(key('b}c', 'x:a{'), UNLIMITED)).lastSeq).toBe(1);
    });

    test('every key gets the TTL, and load refreshes it', async () => {
      const { store, prefix } = storeWith({ ttlMs: 60_000 });
      await store.append(key('c'), texts(2), { turnKey: 'k' });
      const keys = ['meta', 'msgs', 'turns'].map((suffix) => `${prefix}{tenant:c}:${suffix}`);

      for (const name of keys) {
        const ttlMs = await client.pttl(name);
        expect(ttlMs).toBeGreaterThan(50_000);
        expect(ttlMs).toBeLessThanOrEqual(60_000);
      }
      for (const name of keys) await client.pexpire(name, 5_000);
      await store.load(key('c'), UNLIMITED);
      for (const name of keys) expect(await client.pttl(name)).toBeGreaterThan(50_000);
    });

    test('standalone: the cap keeps the newest messages; seqs and trimmed turn keys are not forgotten', async () => {
      const { store } = storeWith({ maxCachedMessages: 3 });
      await store.append(key('c'), texts(2, 'first'), { turnKey: 'first-turn' });
      await store.append(key('c'), texts(3, 'second'));

      expect(seqsOf((await store.load(key('c'), UNLIMITED)).messages)).toEqual([3, 4, 5]);
      expect(await store.append(key('c'), texts(1))).toEqual({ seqs: [6], duplicate: false });
      expect(await store.append(key('c'), texts(2), { turnKey: 'first-turn' })).toEqual({ seqs: [1, 2], duplicate: true });
      expect(seqsOf(await store.listMessages(key('c'), { afterSeq: 0, limit: 10 }))).toEqual([4, 5, 6]);
    });

    test('a long capped conversation loads its newest window, with running token totals', async () => {
      const { store } = storeWith({ maxCachedMessages: 50 });
      for (let turn = 0; turn < 200; turn++) await store.append(key('long'), texts(1, `t${turn}`, 2));

      const snapshot = await store.load(key('long'), { maxMessages: 10, maxTokens: 5 });

      // 2 + 2 fit the 5-token budget, the third crosses it and comes too.
      expect(seqsOf(snapshot.messages)).toEqual([198, 199, 200]);
      expect(snapshot.messages.map((m) => m.cumTokens)).toEqual([396, 398, 400]);
      expect(seqsOf(await store.listMessages(key('long'), { afterSeq: 180, limit: 3 }))).toEqual([181, 182, 183]);
    });

    test("load and listMessages read the window, not the conversation: one short LRANGE in 20,000 messages", async () => {
      const { store } = storeWith({ maxCachedMessages: 100_000 });
      for (let batch = 0; batch < 10; batch++) await store.append(key('huge'), texts(2_000, `b${batch}`));
      await client.config('RESETSTAT');

      const snapshot = await store.load(key('huge'), { maxMessages: 3, maxTokens: 1_000 });
      const page = await store.listMessages(key('huge'), { afterSeq: 12_345, limit: 2 });
      const stats = await client.info('commandstats');

      expect(seqsOf(snapshot.messages)).toEqual([19_998, 19_999, 20_000]);
      expect(seqsOf(page)).toEqual([12_346, 12_347]);
      // load: one LRANGE of 3; listMessages: head and tail by LINDEX, then one LRANGE of 2.
      expect(stats).toMatch(/cmdstat_lrange:calls=2,/);
      expect(stats).toMatch(/cmdstat_lindex:calls=2,/);
    });

    test(`remembers only the last ${RECENT_TURN_KEY_LIMIT} turn keys`, async () => {
      const { store, prefix } = storeWith();
      for (let turn = 0; turn <= RECENT_TURN_KEY_LIMIT; turn++) await store.append(key('c'), texts(1), { turnKey: `turn-${turn}` });

      expect(await client.hlen(`${prefix}{tenant:c}:turns`)).toBe(RECENT_TURN_KEY_LIMIT);
      expect(await store.append(key('c'), texts(1), { turnKey: 'turn-1' })).toEqual({ seqs: [2], duplicate: true });
      expect(await store.append(key('c'), texts(1), { turnKey: 'turn-0' })).toEqual({ seqs: [RECENT_TURN_KEY_LIMIT + 2], duplicate: false });
    });

    test('a conversation whose meta expired starts again at seq 1, without leftovers', async () => {
      const { store, prefix } = storeWith();
      await store.append(key('c'), texts(3, 'old'), { turnKey: 'k' });
      await client.del(`${prefix}{tenant:c}:meta`);

      expect(await store.append(key('c'), texts(1, 'new'), { turnKey: 'k' })).toEqual({ seqs: [1], duplicate: false });
      expect((await store.load(key('c'), UNLIMITED)).messages.map((m) => m.message.content)).toEqual(['new-0']);
    });

    test('rejects a token count the scripts cannot read, storing nothing', async () => {
      const { store } = storeWith();

      await expect(store.append(key('c'), [{ ...texts(1)[0]!, tokens: 1.5 }])).rejects.toThrow(RangeError);
      expect((await store.load(key('c'), UNLIMITED)).cache).toBe('miss');
    });

    test('rejects options that are not positive integers, and a prefix with braces', () => {
      for (const value of [0, -1, 1.5, Number.NaN]) {
        expect(() => new RedisStore({ client, ttlMs: value, maxCachedMessages: 1, mode: 'standalone' })).toThrow(RangeError);
        expect(() => new RedisStore({ client, ttlMs: 1, maxCachedMessages: value, mode: 'standalone' })).toThrow(RangeError);
      }
      expect(() => new RedisStore({ client, ttlMs: 1, maxCachedMessages: 1, mode: 'standalone', keyPrefix: 'a{b}:' })).toThrow(RangeError);
    });

    test('after close every call rejects with StoreUnavailableError, and the client stays open', async () => {
      const { store } = storeWith();
      await store.close();

      await expect(store.load(key('c'), UNLIMITED)).rejects.toBeInstanceOf(StoreUnavailableError);
      await expect(store.append(key('c'), texts(1))).rejects.toBeInstanceOf(StoreUnavailableError);
      await expect(store.ping()).rejects.toBeInstanceOf(StoreUnavailableError);
      expect(await client.ping()).toBe('PONG');
    });

    test('cache-mode operations are refused in standalone mode', async () => {
      const { store } = storeWith();

      await expect(store.claimDirty(1, 1_000, Date.now())).rejects.toThrow(/cache mode/);
    });
  });

  describe('RedisStore (cache mode)', () => {
    const cacheStore = (options: Partial<RedisStoreOptions> = {}) => storeWith({ mode: 'cache', ...options });
    const fresh = { lastSeq: 0, lastCum: 0, summary: undefined, messages: [] };

    test('refuses an append to a conversation it does not hold, storing nothing', async () => {
      const { store, prefix } = cacheStore();

      await expect(store.append(key('c'), texts(1))).rejects.toBeInstanceOf(ColdConversationError);
      expect(await store.load(key('c'), UNLIMITED)).toEqual({ summary: undefined, messages: [], lastSeq: 0, cache: 'miss' });
      expect(await client.keys(`${prefix}*`)).toEqual([]);
    });

    test("after warm, seqs and running totals continue MongoDB's", async () => {
      const { store } = cacheStore();
      const summary = { text: 'the first 38', tokens: 9, coversSeq: 38, createdAtMs: 5 };
      await store.warm(key('c'), { lastSeq: 41, lastCum: 1_000, summary, messages: [stored(38, 5, 985), stored(39, 5, 990), stored(40, 5, 995), stored(41, 5, 1_000)] });

      const warmed = await store.load(key('c'), UNLIMITED);
      const appended = await store.append(key('c'), texts(2, 'new', 7));
      const after = await store.load(key('c'), UNLIMITED);

      expect(warmed).toMatchObject({ cache: 'hit', lastSeq: 41, summary });
      expect(warmed.messages).toEqual([stored(39, 5, 990), stored(40, 5, 995), stored(41, 5, 1_000)]);
      expect(appended).toEqual({ seqs: [42, 43], duplicate: false });
      expect(after.messages.map((m) => [m.seq, m.cumTokens])).toEqual([[39, 990], [40, 995], [41, 1_000], [42, 1_007], [43, 1_014]]);
    });

    test('warm derives running totals the messages do not carry, and keeps only the newest maxCachedMessages', async () => {
      const { store } = cacheStore({ maxCachedMessages: 2 });
      const withoutCum = (message: StoredMessage): StoredMessage => ({ ...message, cumTokens: undefined });
      await store.warm(key('c'), { lastSeq: 3, lastCum: 60, summary: undefined, messages: [stored(1, 10, 10), stored(2, 20, 30), stored(3, 30, 60)].map(withoutCum) });

      expect((await store.load(key('c'), UNLIMITED)).messages.map((m) => [m.seq, m.cumTokens])).toEqual([[2, 30], [3, 60]]);
    });

    test('warm never clobbers a conversation Redis holds', async () => {
      const { store } = cacheStore();
      await store.warm(key('c'), fresh);
      await store.append(key('c'), texts(2));

      await store.warm(key('c'), { lastSeq: 90, lastCum: 0, summary: undefined, messages: [] });

      expect((await store.load(key('c'), UNLIMITED)).lastSeq).toBe(2);
      expect(await store.append(key('c'), texts(1))).toEqual({ seqs: [3], duplicate: false });
    });

    test('unflushed lists what MongoDB lacks; markFlushed catches up and leaves the dirty set', async () => {
      const { store } = cacheStore();
      await store.warm(key('c'), { lastSeq: 2, lastCum: 2, summary: undefined, messages: [stored(1, 1, 1), stored(2, 1, 2)] });
      await store.append(key('c'), texts(2, 'a', 3));

      const pending = await store.unflushed(key('c'));
      expect(pending.flushedSeq).toBe(2);
      expect(pending.messages.map((m) => [m.seq, m.tokens, m.cumTokens, m.message.content])).toEqual([
        [3, 3, 5, 'a-0'],
        [4, 3, 8, 'a-1'],
      ]);

      await store.markFlushed(key('c'), 4);

      expect(await store.unflushed(key('c'))).toEqual({ flushedSeq: 4, messages: [] });
      expect(await store.claimDirty(10, 1_000, Date.now() + 1_000)).toEqual([]);
    });

    test('a partial markFlushed keeps the conversation dirty and due at once', async () => {
      const { store } = cacheStore();
      await store.warm(key('c'), fresh);
      await store.append(key('c'), texts(2, 'a'));
      const nowMs = Date.now() + 1_000;
      expect(await store.claimDirty(10, 60_000, nowMs)).toEqual([key('c')]);
      await store.append(key('c'), texts(1, 'b'));

      await store.markFlushed(key('c'), 2);

      expect(await store.claimDirty(10, 60_000, nowMs)).toEqual([key('c')]);
      expect(seqsOf((await store.unflushed(key('c'))).messages)).toEqual([3]);
    });

    test('markFlushed never moves flushedSeq back or past lastSeq; a hand-back (seq 0) makes the claim due again', async () => {
      const { store } = cacheStore();
      await store.warm(key('c'), { lastSeq: 5, lastCum: 5, summary: undefined, messages: [] });
      await store.append(key('c'), texts(2));
      const nowMs = Date.now() + 1_000;
      await store.claimDirty(10, 60_000, nowMs);

      await store.markFlushed(key('c'), 0);
      expect((await store.unflushed(key('c'))).flushedSeq).toBe(5);
      expect(await store.claimDirty(10, 60_000, nowMs)).toEqual([key('c')]);

      await store.markFlushed(key('c'), 99);
      expect((await store.unflushed(key('c'))).flushedSeq).toBe(7);
    });

    test('two claimers never get the same conversation, and an expired lease is claimable again', async () => {
      const prefix = `test:${randomUUID()}:`;
      const other = new Redis(server.url);
      try {
        const first = storeWith({ mode: 'cache', keyPrefix: prefix }).store;
        const second = storeWith({ mode: 'cache', keyPrefix: prefix }, other).store;
        const keys = Array.from({ length: 40 }, (_, index) => key(`c${index}`));
        for (const k of keys) {
          await first.warm(k, fresh);
          await first.append(k, texts(1));
        }
        const nowMs = Date.now() + 1_000;

        const claims = await Promise.all(Array.from({ length: 8 }, (_, index) => (index % 2 === 0 ? first : second).claimDirty(7, 10_000, nowMs)));

        const claimed = claims.flat().map((k) => k.conversation);
        expect(new Set(claimed).size).toBe(claimed.length);
        expect(claimed.sort()).toEqual(keys.map((k) => k.conversation).sort());
        expect(await second.claimDirty(100, 10_000, nowMs + 9_999)).toEqual([]);
        expect(await second.claimDirty(100, 10_000, nowMs + 10_000)).toHaveLength(40);
      } finally {
        await other.quit();
      }
    });

    test('the cap never trims a message MongoDB does not have; markFlushed applies the held-back trim', async () => {
      const { store } = cacheStore({ maxCachedMessages: 3 });
      await store.warm(key('c'), { lastSeq: 2, lastCum: 2, summary: undefined, messages: [stored(1, 1, 1), stored(2, 1, 2)] });
      await store.append(key('c'), texts(4));

      // 1 and 2 came from MongoDB and go; 3-6 stay above the cap until flushed.
      expect(seqsOf((await store.load(key('c'), UNLIMITED)).messages)).toEqual([3, 4, 5, 6]);

      await store.markFlushed(key('c'), 4);
      expect(seqsOf((await store.load(key('c'), UNLIMITED)).messages)).toEqual([4, 5, 6]);
      expect(seqsOf((await store.unflushed(key('c'))).messages)).toEqual([5, 6]);

      await store.append(key('c'), texts(1));
      expect(seqsOf((await store.load(key('c'), UNLIMITED)).messages)).toEqual([5, 6, 7]);
    });

    test('a summary drops only the covered messages MongoDB already has', async () => {
      const { store } = cacheStore();
      await store.warm(key('c'), { lastSeq: 2, lastCum: 2, summary: undefined, messages: [stored(1, 1, 1), stored(2, 1, 2)] });
      await store.append(key('c'), texts(3));

      expect(await store.replaceSummary(key('c'), { text: 's', tokens: 1, coversSeq: 4, createdAtMs: 0 })).toBe(true);

      expect(seqsOf(await store.listMessages(key('c'), { afterSeq: 0, limit: 10 }))).toEqual([3, 4, 5]);
      expect(seqsOf((await store.unflushed(key('c'))).messages)).toEqual([3, 4, 5]);
      expect(seqsOf((await store.load(key('c'), UNLIMITED)).messages)).toEqual([5]);
    });

    test('sweepDirty puts back a conversation missing from the dirty set, and only such', async () => {
      const { store, prefix } = cacheStore();
      await store.warm(key('lost'), fresh);
      await store.append(key('lost'), texts(1));
      await store.warm(key('flushed'), fresh);
      await store.append(key('flushed'), texts(1));
      await store.markFlushed(key('flushed'), 1);
      // As if the instance died between the append script and its ZADD.
      await client.zrem(`${prefix}dirty`, 'tenant:lost');

      expect(await store.claimDirty(10, 1_000, Date.now() + 1_000)).toEqual([]);
      expect(await store.sweepDirty()).toBe(1);
      expect(await store.sweepDirty()).toBe(0);
      expect(await store.claimDirty(10, 1_000, Date.now() + 1_000)).toEqual([key('lost')]);
    });

    test('dirty members decode back to keys whose ids hold separators', async () => {
      const { store } = cacheStore();
      const odd = key('a:b%7D{c}', 't:1%');
      await store.warm(odd, fresh);
      await store.append(odd, texts(1));

      expect(await store.claimDirty(10, 1_000, Date.now() + 1_000)).toEqual([odd]);
    });

    test('an unflushed conversation does not expire; caught up, it gets its TTL back', async () => {
      const { store, prefix } = cacheStore({ ttlMs: 60_000 });
      await store.warm(key('c'), fresh);
      const meta = `${prefix}{tenant:c}:meta`;
      expect(await client.pttl(meta)).toBeGreaterThan(50_000);

      await store.append(key('c'), texts(2), { turnKey: 'k' });
      await store.load(key('c'), UNLIMITED);
      for (const suffix of ['meta', 'msgs', 'turns']) expect(await client.pttl(`${prefix}{tenant:c}:${suffix}`)).toBe(-1);

      await store.markFlushed(key('c'), 2);
      for (const suffix of ['meta', 'msgs', 'turns']) expect(await client.pttl(`${prefix}{tenant:c}:${suffix}`)).toBeGreaterThan(50_000);
    });

    test('delete removes the conversation from the dirty set; an append after it is cold', async () => {
      const { store } = cacheStore();
      await store.warm(key('c'), fresh);
      await store.append(key('c'), texts(1));

      await store.delete(key('c'));

      expect(await store.claimDirty(10, 1_000, Date.now() + 1_000)).toEqual([]);
      await expect(store.append(key('c'), texts(1))).rejects.toBeInstanceOf(ColdConversationError);
    });

    test('a repeated turn key is answered without marking the conversation dirty again', async () => {
      const { store } = cacheStore();
      await store.warm(key('c'), fresh);
      await store.append(key('c'), texts(2), { turnKey: 'k' });
      await store.markFlushed(key('c'), 2);

      expect(await store.append(key('c'), texts(2), { turnKey: 'k' })).toEqual({ seqs: [1, 2], duplicate: true });
      expect(await store.claimDirty(10, 1_000, Date.now() + 1_000)).toEqual([]);
    });
  });
});

describeWithRedisCluster('RedisStore on a 3-master Redis Cluster', () => {
  let cluster: RedisCluster;
  let clusterClient: Cluster;

  beforeAll(async () => {
    cluster = await startRedisCluster({ masters: 3, timeoutMs: 30_000 });
    clusterClient = newClusterClient();
    await new Promise((resolve) => clusterClient.once('ready', resolve));
  }, 60_000);

  afterAll(async () => {
    await clusterClient?.quit();
    await cluster?.stop();
  });

  runStoreContract('RedisStore (Cluster, standalone mode)', async () => {
    const { store } = storeWith({}, clusterClient);
    return { store, cleanup: () => store.close() };
  });

  test('cache mode: conversations on every master are flushed, swept and claimed', async () => {
    const { store, prefix } = storeWith({ mode: 'cache' }, clusterClient);
    const keys = Array.from({ length: 30 }, (_, index) => key(`conversation-${index}`));
    for (const k of keys) {
      await store.warm(k, fresh());
      await store.append(k, texts(2));
    }
    const masters = clusterClient.nodes('master');
    const keysPerMaster = await Promise.all(masters.map((node) => node.keys(`${prefix}{*}:meta`)));
    expect(keysPerMaster.every((metaKeys) => metaKeys.length > 0)).toBe(true);

    await clusterClient.del(`${prefix}dirty`);
    // A just-connected client, most of whose node connections are not open yet, as after a restart.
    const restarted = newClusterClient();
    try {
      await new Promise((resolve) => restarted.once('ready', resolve));
      expect(await storeWith({ mode: 'cache', keyPrefix: prefix }, restarted).store.sweepDirty()).toBe(30);
    } finally {
      await restarted.quit();
    }

    const claimed = await store.claimDirty(100, 10_000, Date.now() + 1_000);
    expect(claimed.map((k) => k.conversation).sort()).toEqual(keys.map((k) => k.conversation).sort());
    for (const k of claimed) {
      const { messages } = await store.unflushed(k);
      await store.markFlushed(k, messages.at(-1)!.seq);
    }
    expect(await store.sweepDirty()).toBe(0);
    expect(await store.claimDirty(100, 10_000, Date.now() + 20_000)).toEqual([]);
  });

  function fresh() {
    return { lastSeq: 0, lastCum: 0, summary: undefined, messages: [] };
  }

  /** As main.ts builds it: no offline queue while the cluster is not ready. */
  function newClusterClient(): Cluster {
    return new Cluster(cluster.nodes, { enableOfflineQueue: false, redisOptions: { maxRetriesPerRequest: 1 } });
  }
});

