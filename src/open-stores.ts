// The composition root's storage half (main.ts has the rest): which stores run
// follows from the config's one storage choice, and they are wired here. Each
// adapter owns its connection (store/redis/connection.ts, store/mongo/connection.ts).

import type { Cluster, Redis } from 'ioredis';
import type { MongoClient } from 'mongodb';
import type { Logger } from 'pino';
import { OutboxFlusher } from './background/outbox-flusher.js';
import type { MemoryConfig, MongoConfig, RedisConfig, StorageConfig } from './config/config-types.js';
import { redactUrl } from './ops/logger.js';
import type { Metrics } from './ops/metrics.js';
import type { ConversationDirectory } from './store/conversation-directory.js';
import type { ConversationStore, SummaryLock } from './store/conversation-store.js';
import { InProcessLock } from './store/in-process-lock.js';
import { MemoryDirectory } from './store/memory-directory.js';
import { MemoryResponseLinks } from './store/memory-response-links.js';
import { MemoryStore } from './store/memory-store.js';
import { connectMongo, keepConnecting } from './store/mongo/connection.js';
import { MongoDirectory } from './store/mongo/mongo-directory.js';
import { MongoStore } from './store/mongo/mongo-store.js';
import { MongoResponseLinks } from './store/mongo/response-links.js';
import { OutageMerge } from './store/outage-merge.js';
import { connectRedis, whenRedisReady } from './store/redis/connection.js';
import { RedisDirectory } from './store/redis/redis-directory.js';
import { RedisStore } from './store/redis/redis-store.js';
import { RedisResponseLinks } from './store/redis/response-links.js';
import type { ResponseLinkStore } from './store/response-links.js';
import { RedisTracking } from './store/redis/tracking.js';
import { StoreHealth, callTier, type TierName } from './store/store-health.js';
import { TieredDirectory } from './store/tiered-directory.js';
import { TieredResponseLinks } from './store/tiered-response-links.js';
import { TieredStore } from './store/tiered-store.js';

/** Most conversations one flush round carries to MongoDB in one insert. */
const FLUSH_BATCH_SIZE = 64;
/** Least deadline of a conversation listing: a page of MongoDB, or a scan of the whole Redis keyspace. */
const MIN_LIST_TIMEOUT_MS = 10_000;

export interface OpenedStores {
  store: ConversationStore;
  /** The tenant's conversations, for the conversation API (from MongoDB when configured). */
  directory: ConversationDirectory;
  /** One summary job per conversation: Redis's lock when Redis is configured, else this process's. */
  lock: SummaryLock;
  /** Responses API response id → its conversation and turn, kept in the same tiers as the conversations. */
  links: ResponseLinkStore;
  health: StoreHealth | undefined;
  flusher: OutboxFlusher | undefined;
  /** Connections and timers owned here, closed last. */
  closeClients: () => Promise<void>;
  /** Called periodically: keeps tier states fresh for /readyz even without traffic. */
  probe: () => Promise<void>;
}

export async function openStores(storage: StorageConfig, logger: Logger, metrics: Metrics): Promise<OpenedStores> {
  switch (storage.kind) {
    case 'embedded':
      return openEmbedded(storage.memory, logger);
    case 'redis':
      return openTiers(storage.redis, undefined, logger, metrics);
    case 'mongodb':
      return openTiers(undefined, storage.mongodb, logger, metrics);
    case 'redis+mongodb':
      return openTiers(storage.redis, storage.mongodb, logger, metrics);
  }
}

function openEmbedded(memory: MemoryConfig, logger: Logger): OpenedStores {
  logger.info(
    { store: 'embedded', ttlMs: memory.ttlMs, maxConversations: memory.maxConversations, maxBytes: memory.maxBytes },
    'no REDIS_URL or MONGODB_URL configured: using the embedded in-process store (history is lost on restart)',
  );
  const links = new MemoryResponseLinks({ ttlMs: memory.ttlMs, maxLinks: embeddedMaxLinks(memory) });
  const store = new MemoryStore(memory);
  return {
    store,
    directory: new MemoryDirectory(store),
    lock: new InProcessLock(),
    links,
    health: undefined,
    flusher: undefined,
    closeClients: async () => undefined,
    probe: async () => undefined,
  };
}

/**
 * previous_response_id nearly always names a conversation's newest response;
 * LINKS_PER_CONVERSATION more leave room to regenerate or branch from its recent
 * turns. A link costs about LINK_HEAP_BYTES of heap (measured with 50-character
 * response ids), so links also stay within a quarter of max_bytes on top of the
 * conversations: with the defaults (10,000 conversations, 256 MB) that bound is
 * the one that applies, about 100,000 links in 65 MB. Eviction takes the least
 * recently used link, so what goes first is old turns of idle conversations.
 */
const LINKS_PER_CONVERSATION = 64;
const LINK_HEAP_BYTES = 650;

function embeddedMaxLinks(memory: MemoryConfig): number {
  return Math.max(1, Math.min(memory.maxConversations * LINKS_PER_CONVERSATION, Math.floor(memory.maxBytes / 4 / LINK_HEAP_BYTES)));
}

/** Redis connections and stores: the request path's (with CLIENT TRACKING when it can) and, in front of MongoDB, the flusher's own. */
interface RedisTier {
  store: RedisStore;
  /** Redis alone: the listing scans the request path's connection. */
  directory: RedisDirectory;
  /** On the request path's connection and key prefix, beside the conversations. */
  links: RedisResponseLinks;
  flushStore: RedisStore | undefined;
  tracking: RedisTracking | undefined;
  connections: (Redis | Cluster)[];
}

async function openRedis(config: RedisConfig, isCache: boolean, logger: Logger, metrics: Metrics): Promise<RedisTier> {
  const connection = connectRedis(config, (error) => logger.debug({ err: error }, 'redis connection error'));
  const connections: (Redis | Cluster)[] = [connection];
  let tracking: RedisTracking | undefined;
  if (config.tracking && !config.isCluster && config.localCacheMessages > 0) {
    // CLIENT TRACKING's invalidation messages arrive on a connection of their own.
    const subscriber = connectRedis(config, (error) => logger.debug({ err: error }, 'redis (tracking) connection error'), { isSubscriber: true }) as Redis;
    connections.push(subscriber);
    tracking = new RedisTracking({
      client: connection as Redis,
      subscriber,
      onError: (error) => logger.warn({ err: error }, 'could not turn on Redis CLIENT TRACKING: every load asks Redis until it reconnects'),
    });
  }
  const store = new RedisStore({
    client: connection,
    ttlMs: config.ttlMs,
    maxCachedMessages: config.maxCachedMessages,
    mode: isCache ? 'cache' : 'standalone',
    localCacheMaxEntries: config.localCacheMessages,
    ...(tracking !== undefined ? { tracking } : {}),
    onLoad: (path) => metrics.redisLoads.inc({ path }),
    onDirtyMarkFailed: (key, error) => logger.warn({ err: error, conversation: key.conversation }, 'could not mark a conversation for flushing; the sweep will find it'),
  });
  let flushStore: RedisStore | undefined;
  if (isCache) {
    // The flusher has a connection of its own, so a request's read never queues behind a flush.
    const flushConnection = connectRedis(config, (error) => logger.debug({ err: error }, 'redis (flusher) connection error'), { autoPipelining: true });
    connections.push(flushConnection);
    // The flusher reads each turn once: nothing to keep decoded.
    flushStore = new RedisStore({ client: flushConnection, ttlMs: config.ttlMs, maxCachedMessages: config.maxCachedMessages, mode: 'cache', localCacheMaxEntries: 0 });
  }
  if (!(await whenRedisReady(connection, config.timeoutMs))) logger.warn('Redis did not answer at start; serving without it until it does');
  const links = new RedisResponseLinks({ client: connection, ttlMs: config.ttlMs });
  return { store, directory: new RedisDirectory({ client: connection }), links, flushStore, tracking, connections };
}

async function openMongo(config: MongoConfig, health: StoreHealth, logger: Logger, metrics: Metrics): Promise<{ store: MongoStore; directory: MongoDirectory; links: MongoResponseLinks; client: MongoClient; connecting: { stop: () => void } }> {
  const client = connectMongo(config, (command, documentsRead) => {
    metrics.mongoCommands.inc({ command });
    if (documentsRead !== undefined) metrics.mongoDocumentsRead.inc(documentsRead);
  });
  const connecting = keepConnecting(client, (error) => logger.debug({ err: error }, 'MongoDB connection attempt failed; trying again'));
  const db = client.db(config.database);
  const store = new MongoStore({ db });
  // Creates its one index with its first link.
  const links = new MongoResponseLinks({ db });
  // Indexes are created at start; if MongoDB is down now, on its first answer.
  const ensureIndexes = (): Promise<void> => callTier(health, 'mongodb', 'ensureIndexes', Math.max(config.timeoutMs, 10_000), () => store.ensureIndexes());
  // After the first connection attempt: a command racing an attempt that fails
  // meets the topology it closes, and reports "Topology is closed" instead of why.
  const firstError = await connecting.firstAttempt;
  if (firstError !== undefined) health.failed('mongodb', firstError);
  await (firstError === undefined ? ensureIndexes() : Promise.reject(firstError)).catch((error: unknown) => {
    logger.warn({ err: error }, 'MongoDB did not answer at start; indexes will be created when it does');
    const again = (): void => {
      setTimeout(() => void ensureIndexes().catch(again), 2_000).unref();
    };
    again();
  });
  return { store, directory: new MongoDirectory({ db }), links, client, connecting };
}

async function openTiers(redisConfig: RedisConfig | undefined, mongoConfig: MongoConfig | undefined, logger: Logger, metrics: Metrics): Promise<OpenedStores> {
  const tiers: TierName[] = [...(redisConfig ? (['redis'] as const) : []), ...(mongoConfig ? (['mongodb'] as const) : [])];
  // Set once the tiered store exists: Redis coming back drops copies that went stale while it was down.
  const hooks: { onRedisUp?: () => void } = {};
  const health = new StoreHealth({
    tiers,
    probeIntervalMs: 1_000,
    onChange: (tier, state, error) => {
      metrics.storeUp.set({ tier }, state === 'up' ? 1 : 0);
      if (state === 'up') logger.info({ tier }, 'store tier is up');
      else logger.warn({ tier, error }, 'store tier is down');
      if (tier === 'redis' && state === 'up') hooks.onRedisUp?.();
    },
  });
  for (const tier of tiers) metrics.storeUp.set({ tier }, 1);

  const redis = redisConfig === undefined ? undefined : await openRedis(redisConfig, mongoConfig !== undefined, logger, metrics);
  const mongo = mongoConfig === undefined ? undefined : await openMongo(mongoConfig, health, logger, metrics);
  const tiered = new TieredStore({
    redis: redis?.store,
    mongo: mongo?.store,
    health,
    redisTimeoutMs: redisConfig?.timeoutMs ?? 0,
    mongoTimeoutMs: mongoConfig?.timeoutMs ?? 0,
    // A cold read never waits longer than any MongoDB call may.
    coldReadTimeoutMs: mongoConfig === undefined ? 0 : Math.min(mongoConfig.coldReadTimeoutMs, mongoConfig.timeoutMs),
    maxCachedMessages: redisConfig?.maxCachedMessages ?? 0,
    onFlushNeeded: () => flusher?.notify(),
    flushesSettled: async () => flusher?.idle(),
    onBackgroundError: (operation, error) => logger.warn({ err: error, operation }, 'background store work failed'),
  });
  const flusher =
    redis !== undefined && mongo !== undefined && redisConfig !== undefined && mongoConfig !== undefined
      ? startFlusher(redis, mongo.store, health, redisConfig, mongoConfig, logger, metrics)
      : undefined;

  const describe = [redisConfig ? `redis${redisConfig.isCluster ? ' cluster' : ''} ${redactUrl(redisConfig.url)}` : undefined, mongoConfig ? `mongodb ${redactUrl(mongoConfig.url)}` : undefined]
    .filter(Boolean)
    .join(' + ');
  logger.info({ store: describe, tiers }, 'conversation store');
  hooks.onRedisUp = () => void tiered.dropStaleCopies().catch((e: unknown) => logger.warn({ err: e }, 'dropping stale redis copies failed'));
  return {
    store: tiered,
    directory: new TieredDirectory({
      redis: redis?.directory,
      mongo: mongo?.directory,
      health,
      redisTimeoutMs: Math.max(redisConfig?.timeoutMs ?? 0, MIN_LIST_TIMEOUT_MS),
      mongoTimeoutMs: Math.max(mongoConfig?.timeoutMs ?? 0, MIN_LIST_TIMEOUT_MS),
    }),
    lock: tiered,
    links: new TieredResponseLinks({
      redis: redis?.links,
      mongo: mongo?.links,
      health,
      redisTimeoutMs: redisConfig?.timeoutMs ?? 0,
      mongoTimeoutMs: mongoConfig?.timeoutMs ?? 0,
    }),
    health,
    flusher,
    probe: () => tiered.ping().catch(() => undefined),
    closeClients: async () => {
      redis?.tracking?.close();
      mongo?.connecting.stop();
      await Promise.allSettled([...(redis?.connections ?? []).map((connection) => connection.quit()), mongo?.client.close()]);
    },
  };
}

function startFlusher(
  redis: RedisTier,
  mongo: MongoStore,
  health: StoreHealth,
  redisConfig: RedisConfig,
  mongoConfig: MongoConfig,
  logger: Logger,
  metrics: Metrics,
): OutboxFlusher {
  const flushSource = redis.flushStore ?? redis.store;
  let batchSize = FLUSH_BATCH_SIZE;
  metrics.flushBatchSize.set(batchSize);
  const flusher = new OutboxFlusher({
    redis: flushSource,
    // With tracking, flushedSeq advances on the tracked connection, so a flush does not untrack what this process holds.
    ...(redis.tracking !== undefined ? { marker: redis.store } : {}),
    mongo,
    merge: new OutageMerge({
      hot: flushSource,
      durable: mongo,
      health,
      redisTimeoutMs: redisConfig.timeoutMs,
      mongoTimeoutMs: mongoConfig.timeoutMs,
      maxCachedMessages: redisConfig.maxCachedMessages,
    }),
    health,
    redisTimeoutMs: redisConfig.timeoutMs,
    mongoTimeoutMs: mongoConfig.timeoutMs,
    idleDelayMs: 250,
    maxIdleDelayMs: 2_000,
    flushDelayMs: mongoConfig.flushDelayMs,
    leaseMs: 15_000,
    batchSize: FLUSH_BATCH_SIZE,
    onBatchSize: (size) => {
      if (size < batchSize) logger.warn({ size }, 'MongoDB did not take a flush round in time; rounds now carry fewer conversations');
      else if (size === FLUSH_BATCH_SIZE) logger.info({ size }, 'flush rounds carry full batches again');
      batchSize = size;
      metrics.flushBatchSize.set(size);
    },
    sweepIntervalMs: 60_000,
    onFlushed: (key, seqs, result) => {
      metrics.messagesFlushed.inc(result.inserted);
      logger.debug({ conversation: key.conversation, seqs, ...result }, 'flushed to MongoDB');
    },
    onConflict: (key, messages) => {
      metrics.seqConflicts.inc(messages.length);
      logger.warn(
        { tenant: key.tenant, conversation: key.conversation, seqs: messages.map((m) => m.seq) },
        "seq conflict between Redis and MongoDB (turns reached MongoDB while Redis was away); Redis's turns are merged after MongoDB's history",
      );
    },
    onError: (operation, error) => logger.warn({ err: error, operation }, 'flushing turns to MongoDB failed; will retry'),
  });
  flusher.start();
  return flusher;
}

/** The request path's deadline for MongoDB when Redis has answered (TieredStore), never longer than MongoDB's own. */
