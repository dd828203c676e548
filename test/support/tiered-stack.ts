// Building blocks of the two-tier store tests: the suite's servers, a
// TieredStore and an OutboxFlusher with the tests' deadlines and timings, a
// message, and a store with one method wrapped (slow, lossy).
import { randomUUID } from 'node:crypto';
import { Cluster, Redis } from 'ioredis';
import { MongoClient, type Db } from 'mongodb';
import { afterAll, beforeAll } from 'vitest';
import { OutboxFlusher, type OutboxFlusherOptions } from '../../src/background/outbox-flusher.js';
import type { NewMessage } from '../../src/domain.js';
import { OutageMerge } from '../../src/store/outage-merge.js';
import { TieredStore, type TieredStoreOptions } from '../../src/store/tiered-store.js';
import { startMongo, type MongoServer } from './mongo-server.js';
import { startRedis, startRedisCluster, type RedisCluster, type RedisServer } from './redis-server.js';

/** A TieredStore with the tests' deadlines; `options` names the tiers and anything else that differs. */
export function tieredStore(options: Pick<TieredStoreOptions, 'redis' | 'mongo' | 'health'> & Partial<TieredStoreOptions>): TieredStore {
  return new TieredStore({
    redisTimeoutMs: 2_000,
    mongoTimeoutMs: 5_000,
    // FerretDB's reads are slow on a busy machine: tests of the cold-read deadline set their own.
    coldReadTimeoutMs: 5_000,
    maxCachedMessages: 200,
    onFlushNeeded: () => undefined,
    onBackgroundError: () => undefined,
    ...options,
  });
}

/** An OutboxFlusher with the tests' timings (no flush delay). */
export function testFlusher(options: Pick<OutboxFlusherOptions, 'redis' | 'mongo' | 'health'> & Partial<OutboxFlusherOptions>): OutboxFlusher {
  return new OutboxFlusher({
    merge: new OutageMerge({ hot: options.redis, durable: options.mongo, health: options.health, redisTimeoutMs: 2_000, mongoTimeoutMs: 5_000, maxCachedMessages: 200 }),
    redisTimeoutMs: 2_000,
    mongoTimeoutMs: 5_000,
    idleDelayMs: 50,
    maxIdleDelayMs: 400,
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

export function message(content: string): NewMessage {
  return { message: { role: 'user', content }, tokens: 5, digest: `${content}-digest` };
}

/** A question and its answer, as one turn. */
export const turn = (name: string): NewMessage[] => [message(name), message(`${name} answer`)];

/** The suite's Redis and MongoDB servers and clients, started before its tests and stopped after. */
export interface TwoServers {
  redisServer: RedisServer;
  mongoServer: MongoServer;
  redis: Redis;
  mongoClient: MongoClient;
  /** A fresh database on the suite's MongoDB server. */
  freshDb(): Db;
}

/** A client that fails at once while its server is away (no offline queue, one retry), connected. */
async function connectedRedis(url: string): Promise<Redis> {
  const client = new Redis(url, { enableOfflineQueue: false, maxRetriesPerRequest: 1 });
  await new Promise((resolve) => client.once('ready', resolve));
  return client;
}

/** The suite's Redis server and a connected client. */
export interface RedisAlone {
  server: RedisServer;
  client: Redis;
}

/** Call in a describe block: its tests find the server and client in the returned object once beforeAll has run. */
export function useRedis(): RedisAlone {
  const redis = {} as RedisAlone;
  beforeAll(async () => {
    redis.server = await startRedis();
    redis.client = await connectedRedis(redis.server.url);
  });
  afterAll(async () => {
    redis.client?.disconnect();
    await redis.server?.stop();
  });
  return redis;
}

/** The suite's 3-master Redis Cluster and a connected cluster client. */
export interface RedisClusterAlone {
  cluster: RedisCluster;
  client: Cluster;
}

/** As useRedis, for a Redis Cluster of three masters. */
export function useRedisCluster(): RedisClusterAlone {
  const redis = {} as RedisClusterAlone;
  beforeAll(async () => {
    redis.cluster = await startRedisCluster({ masters: 3, timeoutMs: 30_000 });
    redis.client = new Cluster(redis.cluster.nodes, { enableOfflineQueue: false, redisOptions: { maxRetriesPerRequest: 1 } });
    await new Promise((resolve) => redis.client.once('ready', resolve));
  }, 60_000);
  afterAll(async () => {
    await redis.client?.quit();
    await redis.cluster?.stop();
  });
  return redis;
}

/** Call in a describe block: its tests find the servers in the returned object once beforeAll has run. */
export function useTwoServers(): TwoServers {
  const servers = {} as TwoServers;
  beforeAll(async () => {
    [servers.redisServer, servers.mongoServer] = await Promise.all([startRedis(), startMongo()]);
    servers.redis = await connectedRedis(servers.redisServer.url);
    servers.mongoClient = new MongoClient(servers.mongoServer.url, { serverSelectionTimeoutMS: 5_000 });
    servers.freshDb = () => servers.mongoClient.db(`${servers.mongoServer.database}_${randomUUID().slice(0, 8)}`);
  }, 120_000);
  afterAll(async () => {
    servers.redis?.disconnect();
    await servers.mongoClient?.close();
    await Promise.allSettled([servers.redisServer?.stop(), servers.mongoServer?.stop()]);
  });
  return servers;
}

/**
 * `target` with the method `name` replaced by `wrap(method)` (bound to the
 * target, so private fields work), every other member as it is: a store that
 * answers late, loses an answer, or times out, around the real one.
 */
export function wrapMethod<T extends object>(target: T, name: string, wrap: (method: (...args: unknown[]) => Promise<unknown>) => (...args: unknown[]) => Promise<unknown>): T {
  return new Proxy(target, {
    get(object, property) {
      const value: unknown = Reflect.get(object, property, object);
      if (typeof value !== 'function') return value;
      const method = (value as (...args: unknown[]) => Promise<unknown>).bind(object);
      return property === name ? wrap(method) : method;
    },
  });
}
