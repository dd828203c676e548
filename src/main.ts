import { readFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { PersistQueue } from './background/persist-queue.js';
import { parseCliArgs } from './config/cli-args.js';
import { loadConfig } from './config/load-config.js';
import { ConfigError } from './errors.js';
import type { Config } from './config/config-types.js';
import { createContextdServer } from './http/server.js';
import { shutdown } from './lifecycle/shutdown.js';
import { createLogger, redactUrl } from './ops/logger.js';
import { Metrics } from './ops/metrics.js';
import { compileRoutes } from './routing/match-route.js';
import { setTimeout as delay } from 'node:timers/promises';
import { Redis, type Cluster } from 'ioredis';
import { MongoClient } from 'mongodb';
import type { Logger } from 'pino';
import { OutboxFlusher } from './background/outbox-flusher.js';
import { Summarizer } from './background/summarizer.js';
import { callForSummary, type SummaryTarget } from './upstream/summary-call.js';
import { InProcessLock } from './store/in-process-lock.js';
import type { ConversationStore, SummaryLock } from './store/conversation-store.js';
import { MemoryStore } from './store/memory-store.js';
import { MongoStore } from './store/mongo-store.js';
import { RedisStore } from './store/redis-store.js';
import { RedisTracking } from './store/redis-tracking.js';
import { StoreHealth, callTier, type TierName } from './store/store-health.js';
import { TieredStore } from './store/tiered-store.js';
import { encodingForModel } from './tokens/encoding-for-model.js';
import { tokenCounterFor } from './tokens/count-tokens.js';
import { TokenCountCache } from './tokens/token-count-cache.js';
import { UpstreamClient } from './upstream/upstream-client.js';
import { WebSocketPassThrough } from './upstream/websocket-pass-through.js';

type Env = Readonly<Record<string, string | undefined>>;

function packageVersion(): string {
  const pkg = JSON.parse(readFileSync(new URL('../../package.json', import.meta.url), 'utf8')) as { version: string };
  return pkg.version;
}

/** The composition root: env → config → stores, clients → listen → signals. Returns the process exit code on early exit. */
export async function main(argv: readonly string[], env: Env): Promise<number | undefined> {
  const command = parseCliArgs(argv);
  switch (command.kind) {
    case 'help':
      process.stdout.write(command.text + '\n');
      return 0;
    case 'version':
      process.stdout.write(`contextd ${packageVersion()}\n`);
      return 0;
    case 'error':
      process.stderr.write(`contextd: ${command.message}\nRun contextd --help for usage.\n`);
      return 2;
    case 'run':
      break;
  }

  let config: Config;
  try {
    config = await loadConfig({ path: command.configPath ?? env.CONTEXTD_CONFIG, env, portOverride: command.port });
  } catch (error) {
    if (!(error instanceof ConfigError)) throw error;
    process.stderr.write(`contextd: invalid configuration\n${error.message}\n`);
    return 1;
  }

  const logger = createLogger(env.LOG_LEVEL);
  const metrics = new Metrics();
  const stores = await openStores(config, logger, metrics);
  const store = stores.store;
  const prober = setInterval(() => void stores.probe(), 2_000);
  prober.unref();
  // Encoders are built now, not on the first request.
  for (const route of config.routes) if (route.budget.encoding !== 'auto') tokenCounterFor(route.budget.encoding);
  tokenCounterFor(encodingForModel('gpt-4o', 'auto'));

  const persist = new PersistQueue({
    store,
    maxPendingTurns: 10_000,
    // Both stores down: turns wait in this bounded queue, retried with back-off,
    // for up to about an hour; a full queue drops new turns and counts them.
    maxAttempts: 720,
    retryDelayMs: (attempt) => Math.min(100 * 2 ** attempt, 5_000),
    onDropped: (key, reason, error) => {
      metrics.turnsDropped.inc({ reason });
      logger.error({ err: error, tenant: key.tenant, conversation: key.conversation, reason }, 'turn not stored');
    },
    onRetry: (key, attempt, error) => {
      metrics.storeErrors.inc({ operation: 'append' });
      logger.warn({ err: error, conversation: key.conversation, attempt }, 'store append failed; retrying');
    },
  });
  metrics.countPendingWrites(() => persist.pendingTurns);

  const upstream = new UpstreamClient(config.upstream);
  const summaryTarget: SummaryTarget = config.upstream.kind === 'azure' ? { kind: 'azure', apiVersion: config.upstream.apiVersion } : { kind: 'openai' };
  const summarizer = new Summarizer({
    store,
    lock: stores.lock,
    call: (request) => callForSummary(upstream, summaryTarget, request),
    maxConcurrentJobs: 4,
    maxQueuedJobs: 1_000,
    retryDelaysMs: [1_000, 5_000, 30_000],
    maxMessagesPerJob: 2_000,
    maxTokensPerJob: 16_000,
    onOutcome: (outcome, job, detail) => {
      metrics.summaries.inc({ route: job.route.name, outcome });
      const fields = { conversation: job.key.conversation, route: job.route.name, outcome, coversSeq: detail?.coversSeq, tokens: detail?.tokens };
      if (outcome === 'failed' || outcome === 'retrying' || outcome === 'dropped') logger.warn({ ...fields, err: detail?.error }, 'summary job did not complete');
      else logger.info(fields, 'summary job');
    },
  });
  const websockets = new WebSocketPassThrough((error) => logger.warn({ err: error }, 'websocket pass-through failed'));
  let isDraining = false;
  const server = createContextdServer({
    config,
    routes: compileRoutes(config.routes),
    store,
    persist,
    upstream,
    metrics,
    logger,
    websockets,
    now: Date.now,
    instructionCounts: new TokenCountCache(4_096),
    summarizer,
    isDraining: () => isDraining,
    adminToken: config.admin.token,
    readiness: () => stores.health?.report() ?? { status: 'up', tiers: { embedded: { state: 'up' } } },
  });

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(config.server.port, config.server.host, () => resolve());
  });
  const { port } = server.address() as AddressInfo;
  logger.info(
    { port, host: config.server.host, upstream: redactUrl(config.upstream.baseUrl), config: config.source, routes: config.routes.map((r) => r.name) },
    'contextd listening',
  );

  let stopping: Promise<void> | undefined;
  const stop = (signal: string): void => {
    stopping ??= shutdown(
      {
        server,
        logger,
        timeoutMs: config.server.shutdownTimeoutMs,
        startDraining: () => (isDraining = true),
        drainWrites: async () => {
          // Stores may be down: flush what can be flushed within the shutdown timeout, then say what is left.
          const drained = await Promise.race([persist.drain().then(() => true), delay(config.server.shutdownTimeoutMs).then(() => false)]);
          if (!drained) logger.error({ pendingTurns: persist.pendingTurns }, 'turns still unstored at shutdown');
          await summarizer.stop(Math.min(config.server.shutdownTimeoutMs, 5_000));
          await stores.flusher?.stop(Math.min(config.server.shutdownTimeoutMs, 10_000));
        },
        closeResources: async () => {
          clearInterval(prober);
          websockets.close();
          await Promise.all([store.close(), upstream.close()]);
          await stores.closeClients();
        },
      },
      signal,
    ).then(
      () => process.exit(0),
      (error: unknown) => {
        logger.error({ err: error }, 'shutdown failed');
        process.exit(1);
      },
    );
  };
  process.once('SIGTERM', () => stop('SIGTERM'));
  process.once('SIGINT', () => stop('SIGINT'));
  return undefined;
}

interface OpenedStores {
  store: ConversationStore;
  /** One summary job per conversation: Redis's lock when Redis is configured, else this process's. */
  lock: SummaryLock;
  health: StoreHealth | undefined;
  flusher: OutboxFlusher | undefined;
  /** Connections and timers owned here, closed last. */
  closeClients: () => Promise<void>;
  /** Called periodically: keeps tier states fresh for /readyz even without traffic. */
  probe: () => Promise<void>;
  describe: string;
}

function redisClient(
  options: NonNullable<Config['storage']['redis']>,
  onError: (error: Error) => void,
  { autoPipelining = false, isSubscriber = false }: { autoPipelining?: boolean; isSubscriber?: boolean } = {},
): Redis | Cluster {
  // Fail fast while disconnected (no offline queue): the tiered store falls back
  // to MongoDB at once instead of waiting; ioredis reconnects in the background.
  // Auto-pipelining (commands of one tick in one write) suits the flusher, whose
  // rounds issue a command per conversation at once.
  const common = {
    enableOfflineQueue: false,
    maxRetriesPerRequest: 1,
    connectTimeout: Math.max(options.timeoutMs, 1_000),
    enableAutoPipelining: autoPipelining,
  };
  if (options.isCluster) {
    // redis+cluster://[user[:password]@]host:port,host:port — several seeds, so not a WHATWG URL.
    const parsed = /^(rediss?)(?:\+cluster)?:\/\/(?:([^:@/]*)(?::([^@/]*))?@)?([^/?]+)/.exec(options.url);
    const seeds = (parsed?.[4] ?? '').split(',').map((hostPort) => {
      const [host, port] = hostPort.split(':');
      return { host: host!, port: Number(port ?? 6379) };
    });
    const cluster = new Redis.Cluster(seeds, {
      enableOfflineQueue: false,
      enableAutoPipelining: autoPipelining,
      clusterRetryStrategy: (times) => Math.min(100 * times, 2_000),
      redisOptions: {
        maxRetriesPerRequest: common.maxRetriesPerRequest,
        connectTimeout: common.connectTimeout,
        username: parsed?.[2] ? decodeURIComponent(parsed[2]) : undefined,
        password: parsed?.[3] ? decodeURIComponent(parsed[3]) : undefined,
        tls: parsed?.[1] === 'rediss' ? {} : undefined,
      },
    });
    cluster.on('error', onError);
    return cluster;
  }
  // A subscriber (tracking's) subscribes again itself, after asking for its new CLIENT ID.
  const client = new Redis(options.url, { ...common, autoResubscribe: !isSubscriber, retryStrategy: (times) => Math.min(100 * times, 2_000) });
  client.on('error', onError);
  return client;
}

async function openStores(config: Config, logger: Logger, metrics: Metrics): Promise<OpenedStores> {
  const { memory, redis: redisConfig, mongodb: mongoConfig } = config.storage;
  if (redisConfig === undefined && mongoConfig === undefined) {
    logger.info(
      { store: 'embedded', ttlMs: memory.ttlMs, maxConversations: memory.maxConversations, maxBytes: memory.maxBytes },
      'no REDIS_URL or MONGODB_URL configured: using the embedded in-process store (history is lost on restart)',
    );
    return { store: new MemoryStore(memory), lock: new InProcessLock(), health: undefined, flusher: undefined, closeClients: async () => undefined, probe: async () => undefined, describe: 'embedded' };
  }

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
      if (tier === 'redis' && state === 'up') {
        hooks.onRedisUp?.();
      }
    },
  });
  for (const tier of tiers) metrics.storeUp.set({ tier }, 1);

  let redisConnection: Redis | Cluster | undefined;
  // The flusher has a connection of its own, so a request's read never queues behind a flush.
  let flushConnection: Redis | Cluster | undefined;
  let flushRedisStore: RedisStore | undefined;
  let redisStore: RedisStore | undefined;
  // CLIENT TRACKING's invalidation messages arrive on a connection of their own.
  let trackingConnection: Redis | undefined;
  let tracking: RedisTracking | undefined;
  if (redisConfig !== undefined) {
    redisConnection = redisClient(redisConfig, (error) => logger.debug({ err: error }, 'redis connection error'));
    if (redisConfig.tracking && !redisConfig.isCluster && redisConfig.localCacheMessages > 0) {
      trackingConnection = redisClient(redisConfig, (error) => logger.debug({ err: error }, 'redis (tracking) connection error'), { isSubscriber: true }) as Redis;
      tracking = new RedisTracking({
        client: redisConnection as Redis,
        subscriber: trackingConnection,
        onError: (error) => logger.warn({ err: error }, 'could not turn on Redis CLIENT TRACKING: every load asks Redis until it reconnects'),
      });
    }
    redisStore = new RedisStore({
      client: redisConnection,
      ttlMs: redisConfig.ttlMs,
      maxCachedMessages: redisConfig.maxCachedMessages,
      mode: mongoConfig === undefined ? 'standalone' : 'cache',
      localCacheMaxEntries: redisConfig.localCacheMessages,
      ...(tracking !== undefined ? { tracking } : {}),
      onLoad: (path) => metrics.redisLoads.inc({ path }),
      onDirtyMarkFailed: (key, error) => logger.warn({ err: error, conversation: key.conversation }, 'could not mark a conversation for flushing; the sweep will find it'),
    });
  }

  if (redisConfig !== undefined && mongoConfig !== undefined) {
    flushConnection = redisClient(redisConfig, (error) => logger.debug({ err: error }, 'redis (flusher) connection error'), { autoPipelining: true });
    flushRedisStore = new RedisStore({
      client: flushConnection,
      ttlMs: redisConfig.ttlMs,
      maxCachedMessages: redisConfig.maxCachedMessages,
      mode: 'cache',
      // The flusher reads each turn once: nothing to keep decoded.
      localCacheMaxEntries: 0,
    });
  }

  if (redisConnection !== undefined) {
    // Give Redis a moment to connect before the first request (without the
    // offline queue, calls before that fail); start degraded if it does not.
    const connection = redisConnection;
    const isReady = await Promise.race([
      new Promise<boolean>((resolve) => connection.once('ready', () => resolve(true))),
      delay(Math.max(redisConfig!.timeoutMs * 4, 2_000)).then(() => false),
    ]);
    if (!isReady) logger.warn('Redis did not answer at start; serving without it until it does');
  }

  let mongoClient: MongoClient | undefined;
  let mongoStore: MongoStore | undefined;
  if (mongoConfig !== undefined) {
    mongoClient = new MongoClient(mongoConfig.url, {
      serverSelectionTimeoutMS: mongoConfig.timeoutMs,
      connectTimeoutMS: mongoConfig.timeoutMs,
      maxPoolSize: 50,
      monitorCommands: true,
    });
    // Command monitoring feeds the metrics that show what a cold read costs (queries, documents read).
    mongoClient.on('commandSucceeded', (event) => {
      const reply = event.reply as { cursor?: { firstBatch?: unknown[]; nextBatch?: unknown[] } } | undefined;
      const batch = reply?.cursor?.firstBatch ?? reply?.cursor?.nextBatch;
      metrics.mongoCommands.inc({ command: event.commandName });
      if (batch !== undefined) metrics.mongoDocumentsRead.inc(batch.length);
    });
    mongoStore = new MongoStore({ db: mongoClient.db(mongoConfig.database) });
    const store = mongoStore;
    // Indexes are created at start; if MongoDB is down now, on its first answer.
    const ensureIndexes = (): Promise<void> =>
      callTier(health, 'mongodb', 'ensureIndexes', Math.max(mongoConfig.timeoutMs, 10_000), () => store.ensureIndexes());
    await ensureIndexes().catch((error: unknown) => {
      logger.warn({ err: error }, 'MongoDB did not answer at start; indexes will be created when it does');
      let retry: NodeJS.Timeout;
      const again = (): void => {
        retry = setTimeout(() => void ensureIndexes().catch(again), 2_000);
        retry.unref();
      };
      again();
    });
  }

  const tiered = new TieredStore({
    redis: redisStore,
    mongo: mongoStore,
    health,
    redisTimeoutMs: redisConfig?.timeoutMs ?? 0,
    mongoTimeoutMs: mongoConfig?.timeoutMs ?? 0,
    maxCachedMessages: redisConfig?.maxCachedMessages ?? 0,
    onFlushNeeded: () => flusher?.notify(),
    flushesSettled: async () => flusher?.idle(),
    onBackgroundError: (operation, error) => logger.warn({ err: error, operation }, 'background store work failed'),
  });

  let flusher: OutboxFlusher | undefined;
  if (redisStore !== undefined && mongoStore !== undefined) {
    flusher = new OutboxFlusher({
      redis: flushRedisStore ?? redisStore,
      // With tracking, flushedSeq advances on the tracked connection, so a flush does not untrack what this process holds.
      ...(tracking !== undefined && redisStore !== undefined ? { marker: redisStore } : {}),
      mongo: mongoStore,
      health,
      redisTimeoutMs: redisConfig!.timeoutMs,
      mongoTimeoutMs: mongoConfig!.timeoutMs,
      idleDelayMs: 250,
      flushDelayMs: mongoConfig!.flushDelayMs,
      leaseMs: 15_000,
      batchSize: 64,
      sweepIntervalMs: 60_000,
      onFlushed: (key, seqs, result) => {
        metrics.messagesFlushed.inc(result.inserted);
        logger.debug({ conversation: key.conversation, seqs, ...result }, 'flushed to MongoDB');
      },
      onConflict: (key, messages) => {
        metrics.seqConflicts.inc(messages.length);
        logger.error({ tenant: key.tenant, conversation: key.conversation, seqs: messages.map((m) => m.seq) }, 'seq conflict between Redis and MongoDB; kept both');
      },
      onError: (operation, error) => logger.warn({ err: error, operation }, 'flushing turns to MongoDB failed; will retry'),
    });
    flusher.start();
  }

  const describe = [redisConfig ? `redis${redisConfig.isCluster ? ' cluster' : ''} ${redactUrl(redisConfig.url)}` : undefined, mongoConfig ? `mongodb ${redactUrl(mongoConfig.url)}` : undefined]
    .filter(Boolean)
    .join(' + ');
  logger.info({ store: describe, tiers }, 'conversation store');
  hooks.onRedisUp = () => void tiered.dropStaleCopies().catch((e: unknown) => logger.warn({ err: e }, 'dropping stale redis copies failed'));
  const store = tiered;
  return {
    store,
    lock: tiered,
    health,
    flusher,
    probe: () => store.ping().catch(() => undefined),
    closeClients: async () => {
      tracking?.close();
      await Promise.allSettled([redisConnection?.quit(), flushConnection?.quit(), trackingConnection?.quit(), mongoClient?.close()]);
    },
    describe,
  };
}
