import { readFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { PersistQueue } from './background/persist-queue.js';
import { ReadYourWrites } from './background/read-your-writes.js';
import { ResponseLinkBook } from './background/response-link-book.js';
import { parseCliArgs } from './config/cli-args.js';
import { loadConfig } from './config/load-config.js';
import { ConfigError } from './errors.js';
import type { Config } from './config/config-types.js';
import { SentPrefixes } from './http/sent-prefixes.js';
import { createContextdServer } from './http/server.js';
import { loadInspectorUi } from './http/inspector-ui.js';
import { shutdown } from './lifecycle/shutdown.js';
import { createLogger, redactUrl } from './ops/logger.js';
import { Metrics } from './ops/metrics.js';
import { openStores } from './open-stores.js';
import { compileRoutes } from './routing/match-route.js';
import { setTimeout as delay } from 'node:timers/promises';
import { Summarizer } from './background/summarizer.js';
import { callForSummary, type SummaryTarget } from './upstream/summary-call.js';
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
  const stores = await openStores(config.storage, logger, metrics);
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
  const links = new ResponseLinkBook({
    links: stores.links,
    maxAttempts: 5,
    retryDelayMs: (attempt) => Math.min(100 * 2 ** attempt, 2_000),
    onDropped: (responseId, error) => {
      metrics.storeErrors.inc({ operation: 'link' });
      logger.error({ err: error, responseId }, 'response link not stored: previous_response_id naming it will be a 404');
    },
  });
  const websockets = new WebSocketPassThrough((error) => logger.warn({ err: error }, 'websocket pass-through failed'));
  let isDraining = false;
  const server = createContextdServer({
    config,
    routes: compileRoutes(config.routes),
    store,
    directory: stores.directory,
    windows: new ReadYourWrites(store, persist),
    persist,
    links,
    emulatesResponses: config.routes.some((route) => route.responses.state === 'emulate'),
    upstream,
    metrics,
    logger,
    websockets,
    now: Date.now,
    instructionCounts: new TokenCountCache(4_096),
    sentPrefixes: new SentPrefixes(10_000),
    summarizer,
    isDraining: () => isDraining,
    adminToken: config.admin.token,
    erasure: { pending: persist, lock: stores.lock },
    inspectorUi: config.ui.enabled ? loadInspectorUi() : undefined,
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
  // A supervisor may wait for this line: it does not wait for the log's next batch.
  logger.flush();

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
          const drained = await Promise.race([Promise.all([persist.drain(), links.drain()]).then(() => true), delay(config.server.shutdownTimeoutMs).then(() => false)]);
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

