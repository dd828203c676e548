// Issue 15: how much of each prompt could a provider's prefix cache serve when
// contextd keeps the window sliding (the default) and when it evicts in chunks
// (routes[].window.eviction: chunked)? One contextd per store (the embedded
// store, then Redis + MongoDB), four routes (sliding and chunked, each without
// and with rolling summaries), one 200-turn conversation on each; the fake
// upstream (prefix-cache-upstream.ts) compares every prompt with the previous
// one of its conversation, token by token, and applies OpenAI's caching rule
// (1,024 tokens, then steps of 128). bench/README.md has the method and figures.
//
//   node dist/bench/prefix-cache.js [--stores all|embedded|redis-mongodb] [--low-watermark 0.6] [--trace] [--help]
//
// npm run bench runs it last (unless --no-prefix-cache). Nothing is timed: the
// figures are token counts, the same on every machine for the same seed.

import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { setTimeout as delay } from 'node:timers/promises';
import { parseArgs } from 'node:util';
import { decode, encode } from 'gpt-tokenizer/encoding/o200k_base';
import { Pool } from 'undici';
import { seededRandom } from '../test/support/seeded-random.js';
import { CONVERSATION_HEADER, startPrefixUpstream, SUMMARY_MODEL, type PrefixUpstream } from './prefix-cache-upstream.js';
import { conversationFigures, report, trace, type PolicyColumn, type StoreRun, type TurnObservation } from './prefix-cache-report.js';
import { parseMongodbServer } from './mongodb-server.js';
import { startContextd, type ContextdChild } from './processes.js';
import { prose } from './prose.js';
import { startBackingStores, type BackingStores } from './stores.js';
import { SummaryJobLog } from './summary-job-log.js';

const USAGE = `node dist/bench/prefix-cache.js [options]
  --turns N                 turns of each conversation (default 200)
  --max-context-tokens N    every route's budget (default 8000: history no longer fits after about 35 turns)
  --low-watermark X         chunked: the share of the window an eviction leaves (default 0.6)
  --system-tokens N         the client's system prompt (default 400)
  --reply-tokens N          the upstream's replies (default 150)
  --summary-tokens N        the upstream's summaries (default 120)
  --seed N                  user messages: 30-120 tokens each, seeded (default 15)
  --stores all|embedded|redis-mongodb   the stores contextd runs on, one after the other (default all; Redis + MongoDB
                            is skipped, saying why, when its servers cannot start)
  --mongodb-server pg|sqlite|mongod     as npm run bench's
  --trace                   print every turn: history sent, prompt tokens, common prefix, cacheable, what changed`;

const { values: flags } = parseArgs({
  options: {
    turns: { type: 'string', default: '200' },
    'max-context-tokens': { type: 'string', default: '8000' },
    'low-watermark': { type: 'string', default: '0.6' },
    'system-tokens': { type: 'string', default: '400' },
    'reply-tokens': { type: 'string', default: '150' },
    'summary-tokens': { type: 'string', default: '120' },
    seed: { type: 'string', default: '15' },
    stores: { type: 'string', default: 'all' },
    'mongodb-server': { type: 'string' },
    trace: { type: 'boolean', default: false },
    help: { type: 'boolean', default: false },
  },
});

function integer(name: keyof typeof flags): number {
  const value = Number(flags[name]);
  if (!Number.isSafeInteger(value) || value <= 0) throw new Error(`--${name} must be a positive integer, got ${String(flags[name])}`);
  return value;
}

const MODEL = 'gpt-4o-mini';
const API_KEY = 'sk-bench-prefix-cache';
const ROUTE_HEADER = 'x-bench-route';
const USER_TOKENS = { min: 30, max: 120 };
/** The longest the bench waits after a turn for the summary jobs it started (then it says so and goes on). */
const SETTLE_LIMIT_MS = 5_000;

interface Policy {
  route: string;
  eviction: 'sliding' | 'chunked';
  summaries: boolean;
}

const POLICIES: readonly Policy[] = [
  { route: 'sliding', eviction: 'sliding', summaries: false },
  { route: 'chunked', eviction: 'chunked', summaries: false },
  { route: 'sliding-summaries', eviction: 'sliding', summaries: true },
  { route: 'chunked-summaries', eviction: 'chunked', summaries: true },
];

/** Prose cut to exactly `tokens` o200k_base tokens. */
function textOfTokens(seed: number, tokens: number): string {
  return decode(encode(prose(seed, tokens * 6)).slice(0, tokens));
}

/** The same user messages on every route, so the four conversations differ only by policy (the upstream picks replies by them too). */
function userMessages(turns: number, seed: number): string[] {
  const random = seededRandom(seed);
  return Array.from({ length: turns }, (_, turn) => {
    const tokens = USER_TOKENS.min + Math.floor(random() * (USER_TOKENS.max - USER_TOKENS.min + 1));
    return `Turn ${turn + 1}. ${textOfTokens(seed * 1_000 + turn, tokens)}`;
  });
}

/** A metric's value for one route (summed over its other labels, filtered by `where`); undefined when contextd exports no such series. */
function metricValue(text: string, name: string, route: string, where: (line: string) => boolean = () => true): number | undefined {
  const lines = text.split('\n').filter((line) => line.startsWith(`${name}{`) && line.includes(`route="${route}"`) && where(line));
  return lines.length === 0 ? undefined : lines.reduce((sum, line) => sum + Number(line.slice(line.lastIndexOf(' ') + 1)), 0);
}

async function scrapeMetrics(contextd: ContextdChild): Promise<string> {
  const response = await fetch(`${contextd.url}/metrics`);
  return response.text();
}

/**
 * Waits until every summary job the last turns offered has ended, as if the
 * user took a few seconds to answer (on Redis + MongoDB a job starts tens of
 * milliseconds after the reply: it takes a lock and reads the history first).
 */
async function settleSummaries(jobs: SummaryJobLog, requestsSoFar: number, upstream: PrefixUpstream): Promise<void> {
  const deadlineMs = performance.now() + SETTLE_LIMIT_MS;
  for (;;) {
    await jobs.read();
    // Every request's log line is in (it is written as the reply ends), every job it offered has ended, and no summary call is being answered.
    if (jobs.requests >= requestsSoFar && jobs.ended >= jobs.offered && upstream.activity().requestsInFlight === 0) return;
    if (performance.now() > deadlineMs) {
      console.log(`(summary jobs still running ${SETTLE_LIMIT_MS} ms after a turn: ${jobs.offered} offered, ${jobs.ended} ended; going on)`);
      return;
    }
    await delay(5);
  }
}

async function sendTurn(pool: Pool, conversation: string, policy: Policy, system: string, user: string): Promise<Omit<TurnObservation, 'record'>> {
  const response = await pool.request({
    method: 'POST',
    path: '/v1/chat/completions',
    headers: {
      'content-type': 'application/json',
      authorization: `Bearer ${API_KEY}`,
      'x-conversation-id': conversation,
      [CONVERSATION_HEADER]: conversation,
      [ROUTE_HEADER]: policy.route,
    },
    body: JSON.stringify({ model: MODEL, messages: [{ role: 'system', content: system }, { role: 'user', content: user }] }),
  });
  const text = await response.body.text();
  if (response.statusCode !== 200) throw new Error(`contextd answered ${response.statusCode} on route ${policy.route}: ${text.slice(0, 300)}`);
  const header = (name: string): string | undefined => {
    const value = response.headers[name];
    return Array.isArray(value) ? value[0] : value;
  };
  return {
    historyMessages: Number(header('x-contextd-history-messages') ?? Number.NaN),
    contextTokens: Number(header('x-contextd-context-tokens') ?? Number.NaN),
    summaryUsed: header('x-contextd-summary') === 'yes',
    prefixStable: header('x-contextd-prefix-stable'),
  };
}

interface Workload {
  system: string;
  users: readonly string[];
  budgetTokens: number;
  lowWatermark: number;
}

interface StoreUnderTest {
  /** For the report. */
  label: string;
  /** Prefix of this run's conversation ids (the upstream keeps every run's apart). */
  name: string;
  /** contextd's `storage:`; the embedded store when absent. */
  storage?: Record<string, unknown>;
}

/** One contextd on `store`, the four routes' conversations turn by turn, then each route's figures. */
async function measure(upstream: PrefixUpstream, workload: Workload, store: StoreUnderTest): Promise<Map<string, PolicyColumn>> {
  const dir = await mkdtemp(join(tmpdir(), 'contextd-prefix-cache-'));
  const logPath = join(dir, 'contextd.log');
  let contextd: ContextdChild | undefined;
  let client: Pool | undefined;
  try {
    contextd = await startContextd({
      upstreamUrl: upstream.baseUrl,
      logLevel: 'info',
      logPath,
      ...(store.storage === undefined ? {} : { storage: store.storage }),
      // Summaries off by default, on for the routes that say so; their calls go to the same upstream.
      defaults: { budget: { max_context_tokens: workload.budgetTokens }, summary: { model: SUMMARY_MODEL } },
      routes: POLICIES.map((p) => ({
        name: p.route,
        match: { header: { [ROUTE_HEADER]: p.route } },
        ...(p.summaries ? { summary: { enabled: true } } : {}),
        window: { eviction: p.eviction, low_watermark: workload.lowWatermark },
      })),
    });
    client = new Pool(contextd.url, { connections: POLICIES.length });
    const summaryRoutes = POLICIES.filter((p) => p.summaries);
    const jobs = new SummaryJobLog(logPath, new Set(summaryRoutes.map((p) => p.route)));
    const conversationOf = (p: Policy): string => `prefix-cache-${store.name}-${p.route}`;
    const seen = new Map<string, Omit<TurnObservation, 'record'>[]>(POLICIES.map((p) => [p.route, []]));
    for (const [turn, user] of workload.users.entries()) {
      // The four conversations' turn at once: they share nothing but the process.
      const answers = await Promise.all(POLICIES.map((p) => sendTurn(client!, conversationOf(p), p, workload.system, user)));
      answers.forEach((answer, i) => seen.get(POLICIES[i]!.route)!.push(answer));
      await settleSummaries(jobs, (turn + 1) * summaryRoutes.length, upstream);
    }
    const metrics = await scrapeMetrics(contextd);

    const columns = new Map<string, PolicyColumn>();
    for (const p of POLICIES) {
      const records = upstream.records(conversationOf(p));
      const observed = seen.get(p.route)!;
      if (records.length !== observed.length) throw new Error(`route ${p.route}: the upstream saw ${records.length} requests for ${observed.length} turns`);
      const observations = observed.map((o, i) => ({ ...o, record: records[i]! }));
      if (flags.trace) trace(`${store.name}/${p.route}`, observations);
      columns.set(p.route, {
        figures: conversationFigures(observations),
        evictionsMetric: metricValue(metrics, 'contextd_window_evictions_total', p.route),
        summariesStored: metricValue(metrics, 'contextd_summaries_total', p.route, (line) => line.includes('outcome="stored"')) ?? 0,
      });
    }
    return columns;
  } finally {
    await client?.close();
    await contextd?.stop();
    await rm(dir, { recursive: true, force: true });
  }
}

/** Redis + MongoDB (the servers the main bench uses, started here), or why not. */
async function onRedisMongo(upstream: PrefixUpstream, workload: Workload): Promise<StoreRun> {
  let stores: BackingStores;
  try {
    stores = await startBackingStores({ mongodbServer: parseMongodbServer(flags['mongodb-server']) });
  } catch (error) {
    // Benchmarks report, they do not gate: say why and go on.
    return { label: 'Redis + MongoDB', reason: (error instanceof Error ? error.message : String(error)).split('\n')[0] };
  }
  try {
    const label = `Redis + MongoDB (redis-server, ${stores.mongo.label})`;
    const pair = await stores.pair('prefix_cache', 6);
    return { label, columns: await measure(upstream, workload, { label, name: 'two-tier', storage: pair.storage }) };
  } finally {
    await stores.stop();
  }
}

async function main(): Promise<void> {
  if (flags.help) {
    console.log(USAGE);
    return;
  }
  const stores = flags.stores;
  if (stores !== 'all' && stores !== 'embedded' && stores !== 'redis-mongodb') throw new Error(`--stores must be all, embedded or redis-mongodb, got ${String(stores)}`);
  const lowWatermark = Number(flags['low-watermark']);
  if (!(lowWatermark > 0 && lowWatermark < 1)) throw new Error(`--low-watermark must be between 0 and 1, got ${String(flags['low-watermark'])}`);
  const workload: Workload = {
    system: textOfTokens(integer('seed') + 500_000, integer('system-tokens')),
    users: userMessages(integer('turns'), integer('seed')),
    budgetTokens: integer('max-context-tokens'),
    lowWatermark,
  };
  const startedAt = performance.now();
  const upstream = await startPrefixUpstream({ replyTokens: integer('reply-tokens'), summaryTokens: integer('summary-tokens') });
  try {
    const runs: StoreRun[] = [];
    if (stores !== 'redis-mongodb') runs.push({ label: 'the embedded store', columns: await measure(upstream, workload, { label: 'the embedded store', name: 'embedded' }) });
    if (stores !== 'embedded') runs.push(await onRedisMongo(upstream, workload));
    report(runs, { userTokens: USER_TOKENS, turns: workload.users.length, budgetTokens: workload.budgetTokens, lowWatermark, systemTokens: integer('system-tokens'), replyTokens: integer('reply-tokens') });
    console.log(`\nprefix-cache finished in ${((performance.now() - startedAt) / 1000).toFixed(0)} s`);
  } finally {
    await upstream.stop();
  }
}

main().catch((error: unknown) => {
  console.error(error);
  process.exitCode = 1;
});
