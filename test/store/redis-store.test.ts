// RedisStore against a real redis-server (standalone and a 3-master Cluster):
// the shared contract in standalone mode, then what cache mode adds for the
// two-tier store and its flusher, TTLs, and the key layout. What its local
// cache and fast load save is watched from outside (support/redis-watch.ts):
// the commands Redis ran, how the store reported each load, which loaded
// messages it decoded anew.

import { randomUUID } from 'node:crypto';
import { Redis, Cluster, type Command } from 'ioredis';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import type { ConversationId, ConversationKey, NewMessage, StoredMessage, TenantId } from '../../src/domain.js';
import { ColdConversationError, StoreUnavailableError } from '../../src/errors.js';
import type { LoadLimits } from '../../src/store/conversation-store.js';
import { RedisStore, type RedisStoreOptions } from '../../src/store/redis/redis-store.js';
import { RECENT_TURN_KEY_LIMIT } from '../../src/store/redis/scripts.js';
import { RedisTracking } from '../../src/store/redis/tracking.js';
import { startRedis, startRedisCluster, type RedisCluster, type RedisServer } from '../support/redis-server.js';
import { commandsDuring, DecodedMessages, LoadPaths, named } from '../support/redis-watch.js';
import { seededRandom } from '../support/seeded-random.js';
import { describeWithRedis, describeWithRedisCluster } from '../support/services.js';
import { waitFor } from '../support/wait-for.js';
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

/**
 * The seqs of the window as LOAD's walk defines it, read from the raw keys:
 * newest first, after the summary, while fewer than maxMessages are taken and
 * the tokens of those taken add up to at most maxTokens. undefined when not held.
 */
async function walkedWindow(on: Redis, base: string, limits: LoadLimits): Promise<number[] | undefined> {
  if ((await on.exists(`${base}:meta`)) === 0) return undefined;
  const coversSeq = Number((await on.hget(`${base}:meta`, 'coversSeq')) ?? 0);
  const seqs: number[] = [];
  let usedTokens = 0;
  for (const entry of (await on.lrange(`${base}:msgs`, 0, -1)).reverse()) {
    const [seq = 0, tokens = 0] = entry.split(':', 2).map(Number);
    if (seqs.length >= limits.maxMessages || usedTokens > limits.maxTokens || seq <= coversSeq) break;
    seqs.unshift(seq);
    usedTokens += tokens;
  }
  return seqs;
}

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
      expect(await client.hgetall(`${prefix}{t.acme:chat:42}:meta`)).toEqual({ lastSeq: '2', lastCum: '2', inc: expect.any(String), activeAt: String(JSON.parse(entries[0]!.slice(6)).createdAtMs) });
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

    test("a key an append creates gets the TTL although meta's was just refreshed", async () => {
      const { store, prefix } = storeWith();
      const keys = ['meta', 'msgs', 'turns'].map((suffix) => `${prefix}{tenant:c}:${suffix}`);
      await store.append(key('c'), texts(2));
      // turns is created now; then the summary empties the list (msgs goes) and an append creates it again.
      await store.append(key('c'), texts(1), { turnKey: 'k' });
      expect(await store.replaceSummary(key('c'), { text: 's', tokens: 1, coversSeq: 3, createdAtMs: 0 })).toBe(true);
      expect(await client.exists(keys[1]!)).toBe(0);
      await store.append(key('c'), texts(1));

      for (const name of keys) expect(await client.pttl(name), name).toBeGreaterThan(HOUR_MS * 0.9);
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
      // load: one LRANGE of 3; listMessages: one LRANGE of 2.
      expect(stats).toMatch(/cmdstat_lrange:calls=2,/);
      // load: the tail and the newest third (contiguous, and its cumTokens shows the budget is no bound);
      // listMessages: head and tail.
      expect(stats).toMatch(/cmdstat_lindex:calls=4,/);
    });

    test(`always remembers the last ${RECENT_TURN_KEY_LIMIT} turn keys, and never more than twice as many`, async () => {
      const { store, prefix } = storeWith();
      const limit = RECENT_TURN_KEY_LIMIT;
      const turns = `${prefix}{tenant:c}:turns`;
      let mostHeld = 0;
      // Turn t is seq t + 1 (a duplicate stores nothing).
      for (let turn = 0; turn <= 2 * limit; turn++) {
        await store.append(key('c'), texts(1), { turnKey: `turn-${turn}` });
        mostHeld = Math.max(mostHeld, await client.hlen(turns));
        const oldestKept = Math.max(0, turn - limit + 1);
        expect(await store.append(key('c'), texts(1), { turnKey: `turn-${oldestKept}` }), `after turn ${turn}`).toEqual({ seqs: [oldestKept + 1], duplicate: true });
      }

      expect(mostHeld).toBe(2 * limit);
      expect(await client.hlen(turns)).toBe(limit);
      for (let turn = limit + 1; turn <= 2 * limit; turn++) {
        expect(await store.append(key('c'), texts(1), { turnKey: `turn-${turn}` })).toEqual({ seqs: [turn + 1], duplicate: true });
      }
      expect(await store.append(key('c'), texts(1), { turnKey: 'turn-0' })).toEqual({ seqs: [2 * limit + 2], duplicate: false });
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

    test('unflushed returns the summary Redis holds along with the messages', async () => {
      const { store } = cacheStore();
      await store.warm(key('c'), { lastSeq: 2, lastCum: 2, summary: undefined, messages: [stored(1, 1, 1), stored(2, 1, 2)] });
      await store.append(key('c'), texts(3));
      expect((await store.unflushed(key('c'))).summary).toBeUndefined();
      const summary = { text: 'the first two', tokens: 4, coversSeq: 2, createdAtMs: 7 };
      await store.replaceSummary(key('c'), summary);

      const pending = await store.unflushed(key('c'));

      expect(pending).toEqual({ flushedSeq: 2, messages: expect.any(Array), summary });
      expect(seqsOf(pending.messages)).toEqual([3, 4, 5]);
      expect(await cacheStore().store.unflushed(key('never-seen'))).toEqual({ flushedSeq: 0, messages: [], summary: undefined });
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

    test('loads, fast or not, never give an unflushed conversation a TTL; flushed, a load due for a refresh gives it back', async () => {
      const clock = { nowMs: 0 };
      const loads = new LoadPaths();
      const { store, prefix } = cacheStore({ ttlMs: 60_000, now: () => clock.nowMs, onLoad: loads.onLoad });
      const otherInstance = cacheStore({ keyPrefix: prefix }).store;
      const names = ['meta', 'msgs', 'turns'].map((suffix) => `${prefix}{tenant:c}:${suffix}`);
      const ttlsMs = () => Promise.all(names.map((name) => client.pttl(name)));
      await store.warm(key('c'), fresh);
      await store.append(key('c'), texts(2), { turnKey: 'k' });

      // ttl/100 is 600 ms: every other load is due for a refresh and runs LOAD, which keeps the TTL off.
      for (let round = 0; round < 4; round++) {
        await store.load(key('c'), UNLIMITED);
        expect(await ttlsMs(), `round ${round}`).toEqual([-1, -1, -1]);
        clock.nowMs += 400;
      }
      expect(loads.seen).toEqual(['script', 'fast', 'script', 'fast']);

      // Flushed: the TTL is back. A due load refreshes it, a fast one 400 ms later leaves it.
      await store.markFlushed(key('c'), 2);
      for (const name of names) await client.pexpire(name, 30_000);
      await store.load(key('c'), UNLIMITED);
      for (const ttlMs of await ttlsMs()) expect(ttlMs).toBeGreaterThan(50_000);
      for (const name of names) await client.pexpire(name, 30_000);
      clock.nowMs += 400;
      await store.load(key('c'), UNLIMITED);
      expect(loads.seen.slice(4)).toEqual(['script', 'fast']);
      for (const ttlMs of await ttlsMs()) expect(ttlMs).toBeLessThanOrEqual(30_000);

      // Another instance's turn takes the TTL away again; this store's fast load sees that turn and gives none.
      await otherInstance.append(key('c'), texts(1, 'theirs'));
      await store.load(key('c'), UNLIMITED);
      expect(loads.seen.slice(6)).toEqual(['fast']);
      expect(await ttlsMs()).toEqual([-1, -1, -1]);
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

  describe('RedisStore local window cache', () => {
    // Separate connections, as separate contextd processes would have; the
    // fourth tracks its reads (CLIENT TRACKING), its messages arriving on the fifth.
    const clients: Redis[] = [];
    let tracking: RedisTracking;

    beforeAll(async () => {
      for (let index = 0; index < 5; index++) clients.push(new Redis(server.url, { maxRetriesPerRequest: 1, autoResubscribe: false }));
      await Promise.all(clients.map((each) => each.ping()));
      tracking = new RedisTracking({ client: clients[3]!, subscriber: clients[4]! });
      await waitFor(() => tracking.activeEpoch !== undefined, { message: 'tracking on' });
    });

    afterAll(async () => {
      tracking?.close();
      await Promise.all(clients.map((each) => each.quit()));
    });

    /**
     * Stores on one prefix over the connections: local cache on (default), on but tiny (5), off, and on with
     * tracking; how the first and the last answered their loads is recorded.
     */
    function instances(mode: RedisStoreOptions['mode'], options: Partial<RedisStoreOptions> = {}) {
      const shared = { ttlMs: HOUR_MS, maxCachedMessages: 1_000, mode, keyPrefix: `test:${randomUUID()}:`, ...options };
      const cachedLoads = new LoadPaths();
      const trackedLoads = new LoadPaths();
      return {
        cached: new RedisStore({ ...shared, client: clients[0]!, onLoad: cachedLoads.onLoad }),
        tiny: new RedisStore({ ...shared, client: clients[1]!, localCacheMaxEntries: 5 }),
        plain: new RedisStore({ ...shared, client: clients[2]!, localCacheMaxEntries: 0 }),
        tracked: new RedisStore({ ...shared, client: clients[3]!, tracking, onLoad: trackedLoads.onLoad }),
        cachedLoads,
        trackedLoads,
        prefix: shared.keyPrefix,
      };
    }

    test('an unmerged conversation loads partial on every path and every instance; a rebase ends it for all of them, once', async () => {
      const { cached, tracked, plain, cachedLoads, trackedLoads } = instances('cache');
      expect(await plain.appendUnmerged(key('u'), texts(2, 'outage'), { turnKey: 'o1' })).toEqual({ seqs: [1, 2], duplicate: false });
      for (const store of [cached, tracked, plain]) {
        for (let round = 0; round < 2; round++) expect(await store.load(key('u'), UNLIMITED)).toMatchObject({ cache: 'partial', lastSeq: 2 });
      }
      expect([cachedLoads.seen, trackedLoads.seen]).toEqual([['script', 'fast'], ['script', 'tracked']]);
      // Its seqs are provisional: no summary, and flushedSeq does not move.
      expect(await plain.replaceSummary(key('u'), { text: 's', tokens: 1, coversSeq: 2, createdAtMs: 1 })).toBe(false);
      await plain.markFlushed(key('u'), 2);
      const unflushed = await plain.unflushed(key('u'));
      expect(unflushed).toMatchObject({ flushedSeq: 0, unmergedIncarnation: expect.any(String) });
      const incarnation = unflushed.unmergedIncarnation!;

      // What MongoDB holds once the turn is merged there, after its own five messages.
      const state = { lastSeq: 7, lastCum: 70, summary: undefined, messages: [stored(6, 5, 65), stored(7, 5, 70)] };
      expect(await plain.rebase(key('u'), { incarnation, lastSeq: 1 }, state, [])).toBe('moved');
      expect(await plain.rebase(key('u'), { incarnation: 'another', lastSeq: 2 }, state, [])).toBe('gone');
      expect(await plain.rebase(key('u'), { incarnation, lastSeq: 2 }, state, [{ turnKey: 'o1', firstSeq: 6, count: 2 }])).toBe('rebased');
      expect(await plain.rebase(key('u'), { incarnation, lastSeq: 2 }, state, [])).toBe('gone');

      await waitFor(async () => (await tracked.load(key('u'), UNLIMITED)).cache === 'hit', { message: 'the tracked window invalidated' });
      for (const store of [cached, tracked, plain]) {
        const after = await store.load(key('u'), UNLIMITED);
        expect([after.cache, after.lastSeq, after.messages.map((m) => m.seq)]).toEqual(['hit', 7, [6, 7]]);
      }
      expect(await plain.unflushed(key('u'))).toEqual({ flushedSeq: 7, messages: [], summary: undefined });
      expect(await plain.append(key('u'), texts(2, 'outage'), { turnKey: 'o1' })).toEqual({ seqs: [6, 7], duplicate: true });
      expect(await plain.append(key('u'), texts(1, 'next'))).toEqual({ seqs: [8], duplicate: false });
    });

    test('a repeated load decodes nothing; then only what another instance appended; an own append is not fetched back', async () => {
      const clock = { nowMs: 0 };
      const { cached: mine, plain: other } = instances('standalone', { now: () => clock.nowMs });
      const decoded = new DecodedMessages();
      for (let turn = 0; turn < 50; turn++) await other.append(key('c'), texts(2, `turn-${turn}`, 3));

      const first = await mine.load(key('c'), UNLIMITED);
      const second = await mine.load(key('c'), UNLIMITED);

      expect(first.messages).toHaveLength(100);
      expect(decoded.newIn(first)).toBe(100);
      expect(decoded.newIn(second)).toBe(0);
      expect(second).toStrictEqual(first);

      await other.append(key('c'), texts(2, 'theirs'));
      const afterTheirs = await mine.load(key('c'), UNLIMITED);
      expect(decoded.newIn(afterTheirs)).toBe(2);
      expect(afterTheirs).toStrictEqual(await other.load(key('c'), UNLIMITED));

      await mine.append(key('c'), texts(2, 'mine', 5), { turnKey: 'k' });
      // Due for a TTL refresh, so LOAD runs, offering the window: Redis sends no entry, its own turn's included.
      clock.nowMs += HOUR_MS;
      let afterMine: Awaited<ReturnType<RedisStore['load']>> | undefined;
      const commands = await commandsDuring(clients[0]!, async () => (afterMine = await mine.load(key('c'), UNLIMITED)));
      expect(named(commands, 'evalsha')).toHaveLength(1);
      expect(named(commands, 'lrange')).toEqual([]);
      // New to the test are its own two messages, decoded from what the append sent; the rest are the cached ones.
      expect(decoded.newIn(afterMine!)).toBe(2);
      expect(afterMine).toStrictEqual(await other.load(key('c'), UNLIMITED));
      expect(afterMine!.messages.at(-2)).toMatchObject({ seq: 103, turnKey: 'k', cumTokens: 307 });
    });

    test('a budget window is reused as it slides, widens and narrows: only messages new to this store are decoded', async () => {
      const { cached: mine, plain: other } = instances('standalone');
      const limits = { maxMessages: 81, maxTokens: 400 };
      const decoded = new DecodedMessages();
      for (let turn = 0; turn < 60; turn++) await other.append(key('c'), texts(2, `turn-${turn}`, 3));
      decoded.newIn(await mine.load(key('c'), limits));

      for (let turn = 0; turn < 5; turn++) {
        await other.append(key('c'), texts(2, `more-${turn}`, 3));
        const loaded = await mine.load(key('c'), limits);
        expect(loaded).toStrictEqual(await other.load(key('c'), limits));
        expect(decoded.newIn(loaded)).toBe(2);
      }

      // Wider: only the 19 older messages are new to it; narrower again: nothing is.
      const wider = await mine.load(key('c'), { maxMessages: 100, maxTokens: 400 });
      const narrower = await mine.load(key('c'), { maxMessages: 10, maxTokens: 400 });
      expect(wider.messages).toHaveLength(100);
      expect(decoded.newIn(wider)).toBe(19);
      expect(decoded.newIn(narrower)).toBe(0);
      expect(narrower).toStrictEqual(await other.load(key('c'), { maxMessages: 10, maxTokens: 400 }));
    });

    test('a conversation an older contextd wrote (no inc) gets one at its first load and is cached from then on', async () => {
      const { cached: mine, prefix } = instances('standalone');
      await mine.append(key('c'), texts(4));
      await clients[0]!.hdel(`${prefix}{tenant:c}:meta`, 'inc');

      const decoded = new DecodedMessages();
      const first = await mine.load(key('c'), UNLIMITED);
      const second = await mine.load(key('c'), UNLIMITED);

      expect(await clients[0]!.hget(`${prefix}{tenant:c}:meta`, 'inc')).toEqual(expect.any(String));
      expect(second).toStrictEqual(first);
      expect(decoded.newIn(first)).toBe(4);
      expect(decoded.newIn(second)).toBe(0);
    });

    test('when Redis calls a seq known that the cached window lacks, the load starts over without the cache', async () => {
      const { cached: mine, plain: other, prefix } = instances('standalone');
      await other.append(key('c'), texts(5));
      // A list with a gap (nothing RedisStore writes): the cached window is 1, 2, 4, 5 ...
      const msgs = `${prefix}{tenant:c}:msgs`;
      const third = (await clients[0]!.lindex(msgs, 2))!;
      await clients[0]!.lrem(msgs, 1, third);
      const decoded = new DecodedMessages();
      expect(decoded.newIn(await mine.load(key('c'), UNLIMITED))).toBe(4);
      // ... and then 3 appears inside it.
      await clients[0]!.linsert(msgs, 'BEFORE', (await clients[0]!.lindex(msgs, 2))!, third);

      const loaded = await mine.load(key('c'), UNLIMITED);

      expect(seqsOf(loaded.messages)).toEqual([1, 2, 3, 4, 5]);
      expect(loaded).toStrictEqual(await other.load(key('c'), UNLIMITED));
      // All five decoded again, the four it had cached too.
      expect(decoded.newIn(loaded)).toBe(5);
    });

    test('a list with gaps (warmed from MongoDB) is windowed by its tokens, and served from the cache', async () => {
      const { cached: mine, plain: other } = instances('cache');
      // MongoDB lacks 3 and 6: the cumTokens of 4 and 7 count them (10 each), the walk does not.
      const messages = [stored(1, 10, 10), stored(2, 10, 20), stored(4, 10, 40), stored(5, 10, 50), stored(7, 10, 80), stored(8, 0, 80)];
      await other.warm(key('c'), { lastSeq: 8, lastCum: 80, summary: undefined, messages });
      const limits = { maxMessages: 10, maxTokens: 20 };

      const decoded = new DecodedMessages();
      const first = await mine.load(key('c'), limits);
      const again = await mine.load(key('c'), limits);
      await other.append(key('c'), texts(2, 'new', 0));
      const afterAppend = await mine.load(key('c'), limits);

      // 8, 7 and 5 add up to 20, 4 is the one that crosses; by cumTokens (80 - 50 > 20) 5 and 4 would be left out.
      expect(seqsOf(first.messages)).toEqual([4, 5, 7, 8]);
      expect(again).toStrictEqual(first);
      expect(afterAppend).toStrictEqual(await other.load(key('c'), limits));
      expect(seqsOf(afterAppend.messages)).toEqual([4, 5, 7, 8, 9, 10]);
      expect(decoded.newIn(first)).toBe(4);
      expect(decoded.newIn(again)).toBe(0);
      expect(decoded.newIn(afterAppend)).toBe(2);
    });

    test('seqs reused after Redis lost writes (failover to a lagging replica) are not served from the cache', async () => {
      const { cached: mine, plain: other, prefix } = instances('standalone');
      await other.append(key('c'), texts(5, 'kept'));
      await mine.load(key('c'), UNLIMITED);
      await mine.append(key('c'), texts(2, 'lost'));
      // The promoted replica never saw the last turn; meta (and its inc) is as before it.
      const meta = `${prefix}{tenant:c}:meta`;
      await clients[0]!.hset(meta, 'lastSeq', '5', 'lastCum', '5');
      await clients[0]!.rpop(`${prefix}{tenant:c}:msgs`, 2);
      expect(await other.append(key('c'), texts(2, 'after failover'))).toEqual({ seqs: [6, 7], duplicate: false });

      const loaded = await mine.load(key('c'), UNLIMITED);

      expect(loaded).toStrictEqual(await other.load(key('c'), UNLIMITED));
      expect(loaded.messages.map((m) => m.message.content).slice(-2)).toEqual(['after failover-0', 'after failover-1']);
    });

    test('a summary that changed under the same coverage is not served from the cache', async () => {
      const { cached: mine, plain: other, prefix } = instances('standalone');
      await other.append(key('c'), texts(4));
      await other.replaceSummary(key('c'), { text: 'before the failover', tokens: 3, coversSeq: 2, createdAtMs: 1 });
      await mine.load(key('c'), UNLIMITED);
      const rewritten = { text: 'written again after it', tokens: 5, coversSeq: 2, createdAtMs: 2 };
      await clients[0]!.hset(`${prefix}{tenant:c}:meta`, 'summary', JSON.stringify(rewritten));

      expect((await mine.load(key('c'), UNLIMITED)).summary).toEqual(rewritten);
    });

    for (const mode of ['standalone', 'cache'] as const) {
      test(`${mode}: every load through a local cache, tracked or not, equals the same load without one, under random interleavings, most of them fast`, async () => {
        let compared = 0;
        let fast = 0;
        let tracked = 0;
        for (let run = 0; run < 40; run++) {
          const counts = await randomRun(mode, 7_000 + run);
          compared += counts.compared;
          fast += counts.fast;
          tracked += counts.tracked;
        }
        // The rest find no window cached (a miss, a delete, an empty window) or need
        // LOAD: a summary, a new incarnation, 4+ new entries, a window wider than the cached one.
        expect(fast / compared).toBeGreaterThan(0.5);
        // Tracked: nobody but the tracking store wrote since its last fast load (a third of the writes are its own).
        expect(tracked / compared).toBeGreaterThan(0.1);
      });
    }

    /**
     * Random appends, loads, summaries, deletes, expiries and (cache mode) warms
     * and flushes over three conversations by three instances; after each step,
     * the two caching instances load what the uncached one loads, which is the
     * window the walk finds in the raw list. Warms may leave gaps (as MongoDB
     * can), so both LOAD's arithmetic and its walk are compared; many messages
     * count zero tokens. Some steps are concurrent bursts, whose results are not
     * compared but whose traces in the caches must not show later. Most loads
     * use their conversation's usual limits, and most appends are followed by a
     * load, as requests are. Returns how many of the caching instance's compared
     * loads took the fast path.
     */
    async function randomRun(mode: RedisStoreOptions['mode'], seed: number): Promise<{ compared: number; fast: number; tracked: number }> {
      const { cached, tiny, plain, tracked, cachedLoads, trackedLoads, prefix } = instances(mode, { maxCachedMessages: 8 });
      const writers = [cached, tiny, plain, tracked];
      const random = seededRandom(seed);
      const between = (low: number, high: number): number => low + Math.floor(random() * (high - low + 1));
      const pick = <T>(items: readonly T[]): T => items[Math.floor(random() * items.length)]!;
      const conversations = [key('a'), key('b'), key('c')];
      const randomLimits = () => ({ maxMessages: between(0, 12), maxTokens: random() < 0.3 ? Number.MAX_SAFE_INTEGER : between(0, 80) });
      // Most loads use their conversation's own limits, as contextd's use its route's budget.
      const usualLimits = new Map(conversations.map((k) => [k.conversation, randomLimits()]));
      const limitsFor = (k: ConversationKey) => (random() < 0.8 ? usualLimits.get(k.conversation)! : randomLimits());
      const randomTokens = () => (random() < 0.3 ? 0 : between(1, 20));
      const lastSeqOf = async (k: ConversationKey) => (await plain.load(k, UNLIMITED)).lastSeq;
      const counts = { compared: 0, fast: 0, tracked: 0 };
      let turn = 0;

      const appendTurn = async (store: RedisStore, k: ConversationKey): Promise<void> => {
        const messages = Array.from({ length: between(1, 3) }, (_, index) => ({
          message: { role: 'user' as const, content: `turn ${turn} message ${index}` },
          tokens: randomTokens(),
          digest: `digest-${turn}-${index}`,
        }));
        const options = random() < 0.3 ? { turnKey: `turn-key-${between(0, 4)}` } : undefined;
        turn++;
        try {
          await store.append(k, messages, options);
        } catch (error) {
          if (!(error instanceof ColdConversationError)) throw error;
          await warmRandomly(store, k);
          await store.append(k, messages, options);
        }
      };

      const warmRandomly = async (store: RedisStore, k: ConversationKey): Promise<void> => {
        const lastSeq = between(0, 12);
        let cum = 0;
        const all = Array.from({ length: lastSeq }, (_, index) => {
          const tokens = randomTokens();
          cum += tokens;
          return { ...stored(index + 1, tokens, cum), createdAtMs: seed + turn };
        });
        // Half the time MongoDB lacks some messages: the list has gaps, and cumTokens counts the missing.
        const messages = random() < 0.5 ? all : all.filter(() => random() < 0.7);
        const summary = lastSeq > 0 && random() < 0.3 ? { text: `summary ${turn}`, tokens: 4, coversSeq: between(1, lastSeq), createdAtMs: turn } : undefined;
        turn++;
        await store.warm(k, { lastSeq, lastCum: cum, summary, messages });
      };

      const expectSameLoads = async (k: ConversationKey, step: string): Promise<void> => {
        const limits = limitsFor(k);
        const expected = await plain.load(k, limits);
        const walked = await walkedWindow(clients[0]!, `${prefix}{${k.tenant}:${k.conversation}}`, limits);
        expect(expected.cache === 'hit' ? seqsOf(expected.messages) : undefined, `seed ${seed}, ${step}, walk, ${JSON.stringify(limits)}`).toEqual(walked);
        const fastBefore = cachedLoads.count('fast');
        const trackedBefore = trackedLoads.count('tracked');
        // The tracking store sees another's write once its invalidation has arrived: the
        // subscriber's PING reply comes after every invalidation Redis queued before it.
        await clients[4]!.ping();
        for (const [name, store] of [['cached', cached], ['tiny', tiny], ['tracked', tracked]] as const) {
          expect(await store.load(k, limits), `seed ${seed}, ${step}, ${name}, ${JSON.stringify(limits)}`).toStrictEqual(expected);
        }
        counts.compared++;
        counts.fast += cachedLoads.count('fast') - fastBefore;
        counts.tracked += trackedLoads.count('tracked') - trackedBefore;
      };

      for (let step = 0; step < 60; step++) {
        const k = pick(conversations);
        const roll = random();
        if (roll < 0.3) {
          await appendTurn(pick(writers), k);
          // Mostly the conversation's next request follows: a load with its usual limits.
          if (random() < 0.6) await expectSameLoads(k, `step ${step}, the next request`);
        } else if (roll < 0.6) {
          await expectSameLoads(k, `step ${step}`);
        } else if (roll < 0.7) {
          const lastSeq = await lastSeqOf(k);
          await pick(writers).replaceSummary(k, { text: `summary at ${step}`, tokens: between(1, 9), coversSeq: between(1, lastSeq + 1), createdAtMs: step });
        } else if (roll < 0.74) {
          await pick(writers).delete(k);
        } else if (roll < 0.77) {
          // Expired (or evicted) meta; the list may outlive it.
          await clients[0]!.del(`${prefix}{${k.tenant}:${k.conversation}}:meta`);
        } else if (roll < 0.8) {
          // As written by an older contextd.
          await clients[0]!.hdel(`${prefix}{${k.tenant}:${k.conversation}}:meta`, 'inc');
        } else if (roll < 0.9 && mode === 'cache') {
          if (random() < 0.5) await warmRandomly(pick(writers), k);
          else await pick(writers).markFlushed(k, between(0, (await lastSeqOf(k)) + 1));
        } else {
          const other = pick(conversations);
          await Promise.all([
            appendTurn(pick(writers), k),
            cached.load(k, limitsFor(k)),
            tiny.load(other, limitsFor(other)),
            tracked.load(k, limitsFor(k)),
            appendTurn(pick(writers), other),
            cached.load(other, limitsFor(other)),
            tiny.load(k, limitsFor(k)),
            tracked.load(other, limitsFor(other)),
          ]);
        }
      }
      for (const k of conversations) await expectSameLoads(k, 'end');
      return counts;
    }
  });

  describe('RedisStore LOAD cost (a Redis of its own, watched with MONITOR)', () => {
    let dedicated: RedisServer;
    let storeClient: Redis;
    let observer: Redis;

    beforeAll(async () => {
      dedicated = await startRedis();
      storeClient = new Redis(dedicated.url, { maxRetriesPerRequest: 1 });
      observer = new Redis(dedicated.url, { maxRetriesPerRequest: 1 });
      await Promise.all([storeClient.ping(), observer.ping()]);
    });

    afterAll(async () => {
      await storeClient?.quit();
      await observer?.quit();
      await dedicated?.stop();
    });

    /** Every command Redis ran while `run` ran, those of scripts included. */
    const commandsOf = (run: () => Promise<unknown>): Promise<string[][]> => commandsDuring(observer, run);

    /** How many entries the LRANGEs returned, on a list of `length`. */
    function entriesRead(commands: string[][], length: number): number {
      return named(commands, 'lrange').reduce((sum, [, , start = '0', stop = '0']) => {
        const from = Number(start) < 0 ? length + Number(start) : Number(start);
        const to = Math.min(Number(stop) < 0 ? length + Number(stop) : Number(stop), length - 1);
        return sum + Math.max(0, to - from + 1);
      }, 0);
    }

    /**
     * How many round trips `run` made the client wait for: a command sent while
     * none of the earlier ones is unanswered starts one. The client's commands
     * still go to Redis as they are; this only watches them leave.
     */
    async function roundTripsOf(run: () => Promise<unknown>): Promise<number> {
      const send = storeClient.sendCommand;
      let unanswered = 0;
      let roundTrips = 0;
      storeClient.sendCommand = function (this: Redis, command: Command, ...rest: unknown[]) {
        if (unanswered === 0) roundTrips++;
        unanswered++;
        const answered = (): void => void unanswered--;
        command.promise.then(answered, answered);
        return (send as (...args: unknown[]) => unknown).call(this, command, ...rest);
      } as typeof send;
      try {
        await run();
      } finally {
        storeClient.sendCommand = send;
      }
      return roundTrips;
    }

    /**
     * Runs `load` with all but the first of the commands it sends at once held
     * back until `write` (on another connection) is done: the write lands
     * between the fast load's first read and the others, as it could when
     * Redis reads a pipeline in two parts.
     */
    async function withWriteBetweenReads(write: () => Promise<unknown>, load: () => Promise<unknown>): Promise<void> {
      const send = storeClient.sendCommand;
      const heldBack: [Command, unknown[]][] = [];
      let first: Command | undefined;
      storeClient.sendCommand = function (this: Redis, command: Command, ...rest: unknown[]) {
        if (first !== undefined) {
          heldBack.push([command, rest]);
          return command.promise;
        }
        first = command;
        return (send as (...args: unknown[]) => unknown).call(this, command, ...rest);
      } as typeof send;
      let loading: Promise<unknown>;
      try {
        // The load sends its reads before its first await.
        loading = load();
      } finally {
        storeClient.sendCommand = send;
      }
      await first?.promise;
      await write();
      for (const [command, rest] of heldBack) (send as (...args: unknown[]) => unknown).call(storeClient, command, ...rest);
      await loading;
    }

    /** `mine` caches windows, reads the clock the test moves and reports how it answered its loads; `other` caches nothing. */
    function storesOn(prefix: string) {
      const shared = { ttlMs: HOUR_MS, maxCachedMessages: 100_000, mode: 'standalone' as const, keyPrefix: prefix };
      const clock = { nowMs: 0 };
      const loads = new LoadPaths();
      return {
        mine: new RedisStore({ ...shared, client: storeClient, now: () => clock.nowMs, onLoad: loads.onLoad }),
        other: new RedisStore({ ...shared, client: observer, localCacheMaxEntries: 0 }),
        clock,
        loads,
      };
    }

    async function appendRandomly(store: RedisStore, count: number, seed: number): Promise<void> {
      const random = seededRandom(seed);
      for (let done = 0; done < count; done += 100) {
        await store.append(
          key('long'),
          Array.from({ length: Math.min(100, count - done) }, (_, index) => ({
            message: { role: 'user' as const, content: `message ${done + index}` },
            tokens: random() < 0.2 ? 0 : 1 + Math.floor(random() * 30),
            digest: `digest-${done + index}`,
          })),
        );
      }
    }

    test('a load reads O(log n) entries of a long conversation and fetches only the window entries this store lacks', async () => {
      const prefix = `test:${randomUUID()}:`;
      const { mine, other, clock } = storesOn(prefix);
      const base = `${prefix}{tenant:long}`;
      await appendRandomly(other, 2_000, 5);
      const byCount = { maxMessages: 100, maxTokens: Number.MAX_SAFE_INTEGER };
      // 2·log2(n) + 4: the tail, a few checks, and binary searches.
      const maxProbes = (length: number): number => 2 * Math.log2(length) + 4;
      // The TTL is due for a refresh at every load, so each runs LOAD rather than the fast reads.
      const loadByScript = async (limits: LoadLimits) => {
        clock.nowMs += HOUR_MS;
        return mine.load(key('long'), limits);
      };
      const decoded = new DecodedMessages();
      let loaded = await loadByScript(byCount);
      decoded.newIn(loaded);

      // Everything in the window held already: nothing is read but a few entries.
      const repeated = await commandsOf(async () => (loaded = await loadByScript(byCount)));
      expect(named(repeated, 'evalsha')).toHaveLength(1);
      expect(named(repeated, 'lindex').length).toBeLessThanOrEqual(maxProbes(2_000));
      expect(entriesRead(repeated, 2_000)).toBe(0);
      expect(decoded.newIn(loaded)).toBe(0);

      // The window slid over what another instance appended: only that is read.
      await other.append(key('long'), texts(3, 'theirs', 4));
      const slid = await commandsOf(async () => (loaded = await loadByScript(byCount)));
      expect(loaded).toStrictEqual(await other.load(key('long'), byCount));
      expect(named(slid, 'lindex').length).toBeLessThanOrEqual(maxProbes(2_003));
      expect(entriesRead(slid, 2_003)).toBe(3);
      expect(decoded.newIn(loaded)).toBe(3);

      // Bound by the budget alone, the window reaches further back: a binary search over the
      // whole list finds its start, and only the entries older than the held ones are read.
      const byBudget = { maxMessages: 10_000, maxTokens: 2_000 };
      const widened = await commandsOf(async () => (loaded = await loadByScript(byBudget)));
      expect(seqsOf(loaded.messages)).toEqual(await walkedWindow(observer, base, byBudget));
      expect(loaded.messages.length).toBeGreaterThan(100);
      expect(named(widened, 'lindex').length).toBeLessThanOrEqual(maxProbes(2_003));
      expect(entriesRead(widened, 2_003)).toBe(loaded.messages.length - 100);
      expect(decoded.newIn(loaded)).toBe(loaded.messages.length - 100);
    });

    test("a hot conversation's load checks meta's TTL once instead of refreshing three keys; fast loads leave it for 1% of the TTL", async () => {
      const prefix = `test:${randomUUID()}:`;
      const { mine, clock } = storesOn(prefix);
      await mine.append(key('c'), texts(2), { turnKey: 'k' });
      const names = ['meta', 'msgs', 'turns'].map((suffix) => `${prefix}{tenant:c}:${suffix}`);
      // Time passes for Redis and for the store alike: the TTLs shrink, the clock moves.
      const pass = async (ms: number): Promise<void> => {
        for (const name of names) await observer.pexpire(name, (await observer.pttl(name)) - ms);
        clock.nowMs += ms;
      };

      // No window cached yet: LOAD, which finds the TTL the append gave.
      const hot = await commandsOf(() => mine.load(key('c'), UNLIMITED));
      await pass(30_000);
      // Within ttl/100 (36 s) of that: the fast reads, which leave the TTL alone.
      const fast = await commandsOf(() => mine.load(key('c'), UNLIMITED));
      const ttlsAfterFast = await Promise.all(names.map((name) => observer.pttl(name)));
      await pass(30_000);
      const later = await commandsOf(() => mine.load(key('c'), UNLIMITED));

      expect(named(hot, 'pttl')).toHaveLength(1);
      expect(named(hot, 'pexpire')).toEqual([]);
      expect(named(fast, 'evalsha')).toEqual([]);
      expect(named(fast, 'pexpire')).toEqual([]);
      for (const ttlMs of ttlsAfterFast) expect(ttlMs).toBeLessThanOrEqual(HOUR_MS - 30_000);
      expect(named(later, 'evalsha')).toHaveLength(1);
      expect(named(later, 'pexpire').map((args) => args[1])).toEqual(names);
      for (const name of names) expect(await observer.pttl(name)).toBeGreaterThan(HOUR_MS - 60_000);
    });

    test('a hot load is one round trip of plain reads; a turn another instance stored is decoded alone; a batch the tail read misses needs LOAD', async () => {
      const prefix = `test:${randomUUID()}:`;
      const { mine, other, loads } = storesOn(prefix);
      const decoded = new DecodedMessages();
      await other.append(key('c'), texts(6, 'old', 3));
      const limits = { maxMessages: 100, maxTokens: 1_000 };
      decoded.newIn(await mine.load(key('c'), limits));
      let loaded: Awaited<ReturnType<RedisStore['load']>> | undefined;
      let roundTrips = 0;
      const watchLoad = () => commandsOf(async () => (roundTrips = await roundTripsOf(async () => (loaded = await mine.load(key('c'), limits)))));

      const hot = await watchLoad();
      expect(hot.map(([name]) => name?.toLowerCase())).toEqual(['lrange', 'llen', 'hmget', 'hstrlen']);
      expect(roundTrips).toBe(1);
      expect(loads.seen).toEqual(['script', 'fast']);
      expect(decoded.newIn(loaded!)).toBe(0);
      expect(loaded).toStrictEqual(await other.load(key('c'), limits));

      // Another instance stores a turn: still the fast reads, and only its two entries are decoded.
      await other.append(key('c'), texts(2, 'theirs', 3));
      const slid = await watchLoad();
      expect(named(slid, 'evalsha')).toEqual([]);
      expect(roundTrips).toBe(1);
      expect(loads.seen.at(-1)).toBe('fast');
      expect(decoded.newIn(loaded!)).toBe(2);
      expect(loaded).toStrictEqual(await other.load(key('c'), limits));
      expect(seqsOf(loaded!.messages)).toEqual([1, 2, 3, 4, 5, 6, 7, 8]);

      // Far more new entries than a turn, so the tail read cannot reach the cached window's end:
      // LOAD, in a second round trip, and only the new entries are decoded.
      await other.append(key('c'), texts(40, 'many', 3));
      const behind = await watchLoad();
      expect(named(behind, 'evalsha')).toHaveLength(1);
      expect(roundTrips).toBe(2);
      expect(loads.seen.at(-1)).toBe('script');
      expect(decoded.newIn(loaded!)).toBe(40);
      expect(loaded).toStrictEqual(await other.load(key('c'), limits));

      // And fast again after it, now that the window is caught up.
      const again = await watchLoad();
      expect(named(again, 'evalsha')).toEqual([]);
      expect(loads.seen.at(-1)).toBe('fast');
      expect(loaded).toStrictEqual(await other.load(key('c'), limits));

      // Wherever the tail read ends: batches of 1 to 8 new entries each load what LOAD does, decoding only them.
      for (let count = 1; count <= 8; count++) {
        await other.append(key('c'), texts(count, `batch-${count}`, 3));
        const batch = await mine.load(key('c'), limits);
        expect(batch, `${count} new`).toStrictEqual(await other.load(key('c'), limits));
        expect(decoded.newIn(batch), `${count} new`).toBe(count);
      }
    });

    test('a turn stored between the fast reads is not mixed into the window: LOAD answers instead', async () => {
      const prefix = `test:${randomUUID()}:`;
      const { mine, other, loads } = storesOn(prefix);
      await other.append(key('c'), texts(6, 'old'));
      const limits = { maxMessages: 3, maxTokens: 1_000 };
      await mine.load(key('c'), limits);
      let loaded: Awaited<ReturnType<RedisStore['load']>> | undefined;

      await withWriteBetweenReads(
        () => other.append(key('c'), texts(2, 'between')),
        async () => (loaded = await mine.load(key('c'), limits)),
      );

      // The tail read showed seq 6 as the newest, meta's lastSeq read after it says 8.
      expect(loads.seen).toEqual(['script', 'script']);
      expect(loaded).toStrictEqual(await other.load(key('c'), limits));
      expect(seqsOf(loaded!.messages)).toEqual([6, 7, 8]);
    });

    test('random limits on a long conversation with a summary and runs of zero-token messages load the walked window', async () => {
      const prefix = `test:${randomUUID()}:`;
      const { mine, other } = storesOn(prefix);
      const base = `${prefix}{tenant:long}`;
      await appendRandomly(other, 300, 9);
      await other.append(key('long'), texts(40, 'free', 0));
      await other.replaceSummary(key('long'), { text: 'the first 50', tokens: 5, coversSeq: 50, createdAtMs: 1 });
      await appendRandomly(other, 60, 10);
      const random = seededRandom(13);

      for (let round = 0; round < 200; round++) {
        const limits = { maxMessages: Math.floor(random() * 400), maxTokens: random() < 0.1 ? Number.MAX_SAFE_INTEGER : Math.floor(random() * 6_000) };
        if (random() < 0.2) await other.append(key('long'), texts(1 + Math.floor(random() * 3), `round-${round}`, Math.floor(random() * 3)));
        const loaded = await mine.load(key('long'), limits);
        expect(seqsOf(loaded.messages), JSON.stringify(limits)).toEqual(await walkedWindow(observer, base, limits));
        expect(loaded).toStrictEqual(await other.load(key('long'), limits));
      }
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

  test("a hot load takes the fast reads (a MULTI on the conversation's slot) and loads what LOAD does", async () => {
    const loads = new LoadPaths();
    const { store, prefix } = storeWith({ onLoad: loads.onLoad }, clusterClient);
    const uncached = storeWith({ keyPrefix: prefix, localCacheMaxEntries: 0 }, clusterClient).store;
    const keys = Array.from({ length: 9 }, (_, index) => key(`conversation-${index}`));
    for (const k of keys) {
      await store.append(k, texts(3));
      await store.load(k, UNLIMITED);
      await uncached.append(k, texts(2, 'theirs'));
    }
    const masters = clusterClient.nodes('master');
    const keysPerMaster = await Promise.all(masters.map((node) => node.keys(`${prefix}{*}:meta`)));
    expect(keysPerMaster.every((metaKeys) => metaKeys.length > 0)).toBe(true);

    const earlierLoads = loads.seen.length;
    for (const k of keys) expect(await store.load(k, UNLIMITED)).toStrictEqual(await uncached.load(k, UNLIMITED));
    expect(loads.seen.slice(earlierLoads)).toEqual(keys.map(() => 'fast'));
  });

  function fresh() {
    return { lastSeq: 0, lastCum: 0, summary: undefined, messages: [] };
  }

  /** As main.ts builds it: no offline queue while the cluster is not ready. */
  function newClusterClient(): Cluster {
    return new Cluster(cluster.nodes, { enableOfflineQueue: false, redisOptions: { maxRetriesPerRequest: 1 } });
  }
});

