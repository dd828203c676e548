// RedisStore with CLIENT TRACKING (src/store/redis/tracking.ts) against a real
// redis-server of its own: a tracked load asks Redis nothing, and every way
// Redis can change what a window holds (another client's write, expiry,
// deletion, a flush of the database, a lost connection) sends the next load
// back to Redis. The randomized equivalence test in redis-store.test.ts runs a
// tracking store beside the others too.

import { randomUUID } from 'node:crypto';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import type { ConversationId, ConversationKey, NewMessage, TenantId } from '../../src/domain.js';
import { RedisStore, type RedisStoreOptions } from '../../src/store/redis/redis-store.js';
import { RedisTracking } from '../../src/store/redis/tracking.js';
import { startRedis, type RedisServer } from '../support/redis-server.js';
import { LoadPaths } from '../support/redis-watch.js';
import { describeWithRedis } from '../support/services.js';
import { waitFor } from '../support/wait-for.js';

const HOUR_MS = 3_600_000;
const UNLIMITED = { maxMessages: 10_000, maxTokens: Number.MAX_SAFE_INTEGER };
const key = (conversation: string): ConversationKey => ({ tenant: 'tenant' as TenantId, conversation: conversation as ConversationId });
const turn = (label: string): NewMessage[] => [
  { message: { role: 'user', content: `${label} question` }, tokens: 5, digest: `${label}-q` },
  { message: { role: 'assistant', content: `${label} answer` }, tokens: 7, digest: `${label}-a` },
];
const contents = (messages: readonly { message: { content?: unknown } }[]): unknown[] => messages.map((m) => m.message.content);

describeWithRedis('RedisStore with CLIENT TRACKING', () => {
  let server: RedisServer;
  let admin: Redis;
  const connections: Redis[] = [];
  const trackings: RedisTracking[] = [];

  const connect = async (options: { username?: string; password?: string } = {}): Promise<Redis> => {
    const connection = new Redis(server.url, { maxRetriesPerRequest: 1, autoResubscribe: false, ...options });
    connections.push(connection);
    await new Promise((resolve) => connection.once('ready', resolve));
    return connection;
  };

  /**
   * A tracking store (how it answered its loads recorded) and a plain one (another instance) on one key prefix.
   * `settled()` resolves once every invalidation for a write Redis ran before it has reached the tracking
   * store: a PING on the subscriber, whose reply Redis queues behind the messages already queued for it.
   */
  async function pair(options: Partial<RedisStoreOptions> = {}) {
    const client = await connect();
    const subscriber = await connect();
    const tracking = new RedisTracking({ client, subscriber });
    trackings.push(tracking);
    await waitFor(() => tracking.activeEpoch !== undefined, { message: 'tracking on' });
    const shared = { ttlMs: HOUR_MS, maxCachedMessages: 1_000, mode: 'standalone' as const, keyPrefix: `tracking:${randomUUID()}:`, ...options };
    const loads = new LoadPaths();
    return {
      tracked: new RedisStore({ ...shared, client, tracking, onLoad: loads.onLoad }),
      other: new RedisStore({ ...shared, client: await connect() }),
      loads,
      tracking,
      settled: async (): Promise<void> => void (await subscriber.ping()),
      client,
      prefix: shared.keyPrefix,
    };
  }

  /** Commands Redis ran for any client (INFO's own excluded). */
  async function commandsRun(): Promise<number> {
    let calls = 0;
    for (const line of (await admin.info('commandstats')).split('\n')) {
      const match = /^cmdstat_([^:]+):calls=(\d+)/.exec(line);
      if (match !== null && match[1] !== 'info') calls += Number(match[2]);
    }
    return calls;
  }

  beforeAll(async () => {
    server = await startRedis();
    admin = new Redis(server.url, { maxRetriesPerRequest: 1 });
  });

  afterAll(async () => {
    for (const tracking of trackings) tracking.close();
    await Promise.all([...connections, admin].map((connection) => connection?.quit().catch(() => undefined)));
    await server?.stop();
  });

  test('a tracked load asks Redis nothing; another instance\'s turn is loaded once its invalidation has arrived', async () => {
    const { tracked, other, loads, settled } = await pair();
    await other.append(key('c'), turn('first'));
    // LOAD leaves the window tracked (no invalidation came while it was out).
    expect(contents((await tracked.load(key('c'), UNLIMITED)).messages)).toEqual(['first question', 'first answer']);
    await tracked.append(key('c'), turn('own'));

    const before = await commandsRun();
    const earlierLoads = loads.seen.length;
    const snapshot = await tracked.load(key('c'), UNLIMITED);
    const narrower = await tracked.load(key('c'), { maxMessages: 3, maxTokens: 1_000 });
    const again = await tracked.load(key('c'), { maxMessages: 3, maxTokens: 1_000 });
    expect(await commandsRun()).toBe(before);
    expect(loads.seen.slice(earlierLoads)).toEqual(['tracked', 'tracked', 'tracked']);
    // Its own append joined the window; a narrower budget walks the same window.
    expect(contents(snapshot.messages)).toEqual(['first question', 'first answer', 'own question', 'own answer']);
    expect(snapshot).toMatchObject({ cache: 'hit', lastSeq: 4 });
    expect(narrower.messages.map((m) => m.seq)).toEqual([2, 3, 4]);
    expect(again).toStrictEqual(narrower);

    await other.append(key('c'), turn('theirs'));
    await settled();
    const seen = await tracked.load(key('c'), { maxMessages: 3, maxTokens: 1_000 });
    expect(contents(seen.messages)).toEqual(['own answer', 'theirs question', 'theirs answer']);
    expect(loads.seen.at(-1)).toBe('fast');
    // Tracked again from that fast load on.
    expect(await tracked.load(key('c'), { maxMessages: 3, maxTokens: 1_000 })).toStrictEqual(seen);
    expect(loads.seen.slice(earlierLoads)).toEqual(['tracked', 'tracked', 'tracked', 'fast', 'tracked']);
  });

  test("another instance's summary, a delete, an expiry and a FLUSHDB each reach a tracked window", async () => {
    const { tracked, other, loads, settled, prefix } = await pair();
    const warmTracked = async (conversation: string): Promise<void> => {
      await other.append(key(conversation), turn(conversation));
      await tracked.load(key(conversation), UNLIMITED);
      await tracked.load(key(conversation), UNLIMITED);
      expect(loads.seen.at(-1), `${conversation} tracked`).toBe('tracked');
    };

    await warmTracked('summarized');
    const summary = { text: 'so far', tokens: 3, coversSeq: 1, createdAtMs: 1 };
    expect(await other.replaceSummary(key('summarized'), summary)).toBe(true);
    await settled();
    const summarized = await tracked.load(key('summarized'), UNLIMITED);
    expect(summarized.summary).toEqual(summary);
    expect(summarized.messages.map((m) => m.seq)).toEqual([2]);

    await warmTracked('deleted');
    await other.delete(key('deleted'));
    await settled();
    expect(await tracked.load(key('deleted'), UNLIMITED)).toMatchObject({ cache: 'miss', messages: [] });

    await warmTracked('expired');
    for (const suffix of ['meta', 'msgs', 'turns']) await admin.pexpire(`${prefix}{tenant:expired}:${suffix}`, 1);
    await waitFor(async () => (await admin.exists(`${prefix}{tenant:expired}:meta`)) === 0, { message: 'keys expired' });
    await settled();
    expect(await tracked.load(key('expired'), UNLIMITED)).toMatchObject({ cache: 'miss', messages: [] });

    await warmTracked('flushed');
    await admin.flushdb();
    await settled();
    expect(await tracked.load(key('flushed'), UNLIMITED)).toMatchObject({ cache: 'miss', messages: [] });
  });

  for (const which of ['subscriber', 'client'] as const) {
    test(`a lost ${which} connection ends tracking until both are back; writes made meanwhile are loaded`, async () => {
      const { tracked, other, loads, tracking, client } = await pair();
      await other.append(key('c'), turn('before'));
      await tracked.load(key('c'), UNLIMITED);
      const epoch = tracking.activeEpoch;
      expect(epoch).toBeDefined();

      // The subscriber answers nothing but (un)subscribing: its id is where the client's tracking redirects.
      const id = which === 'client' ? await client.client('ID') : await client.client('GETREDIR');
      await admin.client('KILL', 'ID', String(id));
      await waitFor(() => tracking.activeEpoch !== epoch, { message: 'tracking off after the kill' });
      // Invalidations for this write may never arrive: the old epoch is not trusted any more.
      await other.append(key('c'), turn('meanwhile'));
      await waitFor(() => tracking.activeEpoch !== undefined, { timeoutMs: 10_000, message: 'tracking on again' });
      expect(tracking.activeEpoch).not.toBe(epoch);
      const loaded = await tracked.load(key('c'), UNLIMITED);
      expect(contents(loaded.messages).slice(-2)).toEqual(['meanwhile question', 'meanwhile answer']);
      expect(loads.seen.at(-1)).not.toBe('tracked');
      // And tracked again after that load.
      await tracked.load(key('c'), UNLIMITED);
      expect(loads.seen.at(-1)).toBe('tracked');
    });
  }

  test('cache mode: its own markFlushed keeps the window tracked and its cap trim exact', async () => {
    const { tracked, other, loads } = await pair({ mode: 'cache', maxCachedMessages: 4 });
    await tracked.warm(key('c'), { lastSeq: 0, lastCum: 0, summary: undefined, messages: [] });
    for (const label of ['one', 'two', 'three']) await tracked.append(key('c'), turn(label));
    // Unflushed messages are never trimmed: all six are held.
    expect((await tracked.load(key('c'), UNLIMITED)).messages).toHaveLength(6);
    await tracked.markFlushed(key('c'), 6);
    const loaded = await tracked.load(key('c'), UNLIMITED);
    expect(loads.seen.at(-1)).toBe('tracked');
    expect(loaded).toStrictEqual(await other.load(key('c'), UNLIMITED));
    expect(loaded.messages.map((m) => m.seq)).toEqual([3, 4, 5, 6]);
  });

  test('a Redis that refuses CLIENT TRACKING (an ACL without CLIENT) leaves it off; loads still answer', async () => {
    const password = randomUUID();
    await admin.acl('SETUSER', 'no-client', 'on', `>${password}`, '~*', '&*', '+@all', '-client');
    const refusals: unknown[] = [];
    const client = await connect({ username: 'no-client', password });
    const tracking = new RedisTracking({ client, subscriber: await connect({ username: 'no-client', password }), onError: (error) => refusals.push(error) });
    trackings.push(tracking);
    await waitFor(() => refusals.length > 0, { message: 'CLIENT refused' });
    expect(tracking.activeEpoch).toBeUndefined();
    const loads = new LoadPaths();
    const store = new RedisStore({ client, tracking, ttlMs: HOUR_MS, maxCachedMessages: 100, mode: 'standalone', keyPrefix: `tracking:${randomUUID()}:`, onLoad: loads.onLoad });
    await store.append(key('c'), turn('one'));
    for (let i = 0; i < 3; i++) expect(contents((await store.load(key('c'), UNLIMITED)).messages)).toEqual(['one question', 'one answer']);
    expect(loads.seen).toEqual(['script', 'fast', 'fast']);
  });

  test('tracking must be on the store\'s own connection', async () => {
    const { tracking } = await pair();
    expect(() => new RedisStore({ client: admin, tracking, ttlMs: HOUR_MS, maxCachedMessages: 10, mode: 'standalone' })).toThrow(/own client/);
  });
});

describe('RedisTracking without a server', () => {
  test('stays off when its connections cannot connect', async () => {
    const offline = new Redis({ port: 1, lazyConnect: true, retryStrategy: () => null });
    offline.on('error', () => undefined);
    const tracking = new RedisTracking({ client: offline, subscriber: offline });
    await offline.connect().catch(() => undefined);
    expect(offline.status).toBe('end');
    expect(tracking.activeEpoch).toBeUndefined();
    tracking.close();
    offline.disconnect();
  });
});
