import { readFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { PersistQueue } from './background/persist-queue.js';
import { parseCliArgs } from './config/cli-args.js';
import { ConfigError, loadConfig } from './config/load-config.js';
import type { Config } from './config/schema.js';
import { createContextdServer } from './http/server.js';
import { shutdown } from './lifecycle/shutdown.js';
import { createLogger, redactUrl } from './ops/logger.js';
import { Metrics } from './ops/metrics.js';
import { compileRoutes } from './routing/match-route.js';
import type { ConversationStore } from './store/conversation-store.js';
import { MemoryStore } from './store/memory-store.js';
import { encodingForModel } from './tokens/encoding-for-model.js';
import { tokenCounterFor } from './tokens/count-tokens.js';
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
  const store = openStore(config, logger);
  // Encoders are built now, not on the first request.
  for (const route of config.routes) if (route.budget.encoding !== 'auto') tokenCounterFor(route.budget.encoding);
  tokenCounterFor(encodingForModel('gpt-4o', 'auto'));

  const persist = new PersistQueue({
    store,
    maxPendingTurns: 10_000,
    maxAttempts: 5,
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
    isDraining: () => isDraining,
    adminToken: config.admin.token,
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
        drainWrites: () => persist.drain(),
        closeResources: async () => {
          websockets.close();
          await Promise.all([store.close(), upstream.close()]);
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

function openStore(config: Config, logger: ReturnType<typeof createLogger>): ConversationStore {
  const { memory, redis, mongodb } = config.storage;
  if (redis !== undefined || mongodb !== undefined) {
    throw new ConfigError([
      `${config.source}: storage: Redis and MongoDB storage are not available in this version of contextd; unset REDIS_URL / MONGODB_URL (and storage.redis.url / storage.mongodb.url) to run on the embedded store.`,
    ]);
  }
  logger.info(
    { store: 'embedded', ttlMs: memory.ttlMs, maxConversations: memory.maxConversations, maxBytes: memory.maxBytes },
    'no REDIS_URL or MONGODB_URL configured: using the embedded in-process store (history is lost on restart)',
  );
  return new MemoryStore(memory);
}
