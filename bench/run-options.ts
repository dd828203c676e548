// `npm run bench`'s command line: every flag with its default, --quick's
// smoke-run values, and the settings they give each part of the run.

import { parseArgs } from 'node:util';
import { parseApis } from './apis.js';
import { baselineBuild } from './baseline-build.js';
import { parseMongodbServer } from './mongodb-server.js';
import type { SideBySideSettings } from './side-by-side.js';

export const USAGE = `npm run bench -- [options]
  --stores all|embedded|redis-mongodb   which stores contextd runs on (default all: embedded, then Redis + MongoDB)
  --apis LIST                the APIs measured, comma-separated, the main one first (default chat,responses): the main
                             one gets every path (long, the variants, paced), each other its own direct, floor and short
                             paths in the same rounds; a table sets each API against its own floor (cold reads: chat)
  --quick                    a smoke run (seconds): embedded store, 80 + 160 requests per path in one round, 20 warm-up,
                             16 short and 8 long (20-turn) conversations, none of the three runs at the end (flags given beside it win)
  --concurrency N            workers (one connection each) of the loaded pass (default 8)
  --requests N               measured requests per path at that concurrency, embedded store (default 6000)
  --requests-c1 N            measured requests per path at concurrency 1, embedded store (default 3000)
  --redis-requests N         the same on Redis + MongoDB (default 3000)
  --redis-requests-c1 N      the same on Redis + MongoDB (default 1500)
  --rounds N                 slices each pass is cut into, paths interleaved (default 20)
  --warmup N                 unmeasured requests per path before each pass (default 500)
  --short-conversations N    conversations of the short path (default 512)
  --redis-short-conversations N   the same on Redis + MongoDB (default 64: each is created through contextd, its first
                             turn a new conversation, and on SQLite FerretDB's flusher falls behind when hundreds start at once)
  --short-turns N            turns stored in each short conversation (default 5)
  --long-conversations N     conversations of the long path (default 8)
  --long-turns N             turns stored in each long conversation (default 500)
  --history-tokens N         history the direct and floor clients send (default 2700)
  --paced N                  Redis + MongoDB: requests per path of an extra concurrency-1 pass with idle after each response,
                             so no background work of the previous turn overlaps the next request (default 0: none; try 150)
  --pause-ms N               that idle, ms (default 20)
  --cold-reads N             measured cold reads per case on Redis + MongoDB (default 25)
  --cold-warmup N            unmeasured cold-read rounds first (default 2)
  --cold-messages N          messages in the long conversation read cold (default 10000)
  --no-cold                  skip the cold reads
  --no-redis-alone           skip the contextd on Redis alone (no MongoDB) measured beside the two tiers
  --no-stream                skip the stream: true passes (they send half as many requests; first byte and total)
  --new-share X              share of measured requests that start a new conversation, embedded store (default 0.05);
                             direct and floor clients send no history on as many
  --redis-new-share X        the same on Redis + MongoDB (default 0.05; 0.002 on FerretDB on SQLite, which reads its whole
                             collection for every query, so each new conversation costs a scan of everything stored)
  --mongodb-server pg|sqlite|mongod   the MongoDB-protocol server of Redis + MongoDB: FerretDB v1 on PostgreSQL (started
                             here, GIN-indexed), FerretDB v1 on SQLite, or mongod on PATH / MONGODB_URL (default: mongod
                             when MONGODB_URL is set or mongod is on PATH, else pg when PostgreSQL is installed, else sqlite)
  --reply-tokens N           size of every fake upstream reply (default 300)
  --events-per-write N       SSE events per write of the fake upstream when streaming (default 1)
  --floor-variants           also measure the floor done plainly (undici.request() and a pipe) beside the floor
  --baseline DIR             also measure another build of contextd (DIR holds its dist/src/cli.js; scripts/bench-baseline.sh
                             REV makes one from a git revision): its short path in the same rounds, concurrency 1 and N,
                             streaming too, on the same config and store (Redis + MongoDB: a Redis db and MongoDB database of
                             its own), and ratios this build / baseline
  --summaries                leave contextd's rolling summaries on (default off: their background calls to the
                             fake upstream would fold the long histories and run inside measured slices)
 flattering variants, for comparison with earlier runs (each is labelled in the output):
  --log-level warn           run contextd at LOG_LEVEL=warn, no request log line (default info, contextd's own default)
  --warn-variant             measure a second contextd at LOG_LEVEL=warn (short path) beside the main one
  --seed-directly            Redis + MongoDB: write the starting histories into the stores instead of sending them through contextd
  --mongodb-timeout D        storage.mongodb.timeout for contextd and the cold reads (default: contextd's, 3s)
  --profile                  run the main contextd under --cpu-prof and print where its CPU went
  --readme                   also write the headline targets (chat, short path, one column per store) into README.md, between <!-- bench:start --> and <!-- bench:end -->
  --no-summary-latency       do not run bench/summary-latency.ts at the end
  --no-prefix-cache          do not run bench/prefix-cache.ts at the end (prompt-cache friendliness of sliding and
                             chunked eviction, issue 15; alone: node dist/bench/prefix-cache.js [--help])
  --no-idle-cost             do not run bench/idle-cost.ts at the end (CPU and wake-ups of an idle contextd beside the
                             floor's, about 30 s)`;

const parsed = parseArgs({
  tokens: true,
  options: {
    stores: { type: 'string', default: 'all' },
    apis: { type: 'string', default: 'chat,responses' },
    quick: { type: 'boolean', default: false },
    concurrency: { type: 'string', default: '8' },
    requests: { type: 'string', default: '6000' },
    'requests-c1': { type: 'string', default: '3000' },
    'redis-requests': { type: 'string', default: '3000' },
    'redis-requests-c1': { type: 'string', default: '1500' },
    rounds: { type: 'string', default: '20' },
    warmup: { type: 'string', default: '500' },
    'short-conversations': { type: 'string', default: '512' },
    'redis-short-conversations': { type: 'string', default: '64' },
    'short-turns': { type: 'string', default: '5' },
    'long-conversations': { type: 'string', default: '8' },
    'long-turns': { type: 'string', default: '500' },
    'history-tokens': { type: 'string', default: '2700' },
    paced: { type: 'string', default: '0' },
    'pause-ms': { type: 'string', default: '20' },
    'cold-reads': { type: 'string', default: '25' },
    'cold-warmup': { type: 'string', default: '2' },
    'cold-messages': { type: 'string', default: '10000' },
    'no-cold': { type: 'boolean', default: false },
    'no-redis-alone': { type: 'boolean', default: false },
    'no-stream': { type: 'boolean', default: false },
    'new-share': { type: 'string', default: '0.05' },
    'redis-new-share': { type: 'string' },
    'reply-tokens': { type: 'string', default: '300' },
    'events-per-write': { type: 'string', default: '1' },
    'floor-variants': { type: 'boolean', default: false },
    'log-level': { type: 'string', default: 'info' },
    'warn-variant': { type: 'boolean', default: false },
    'seed-directly': { type: 'boolean', default: false },
    'mongodb-timeout': { type: 'string' },
    'mongodb-server': { type: 'string' },
    baseline: { type: 'string' },
    summaries: { type: 'boolean', default: false },
    profile: { type: 'boolean', default: false },
    readme: { type: 'boolean', default: false },
    'no-summary-latency': { type: 'boolean', default: false },
    'no-prefix-cache': { type: 'boolean', default: false },
    'no-idle-cost': { type: 'boolean', default: false },
    help: { type: 'boolean', default: false },
  },
});

export const flags = parsed.values;
const given = parsed.tokens;

/** What --quick sets, unless given too. */
const QUICK: Partial<Record<keyof typeof flags, string | boolean>> = {
  stores: 'embedded',
  'requests-c1': '80',
  requests: '160',
  'redis-requests-c1': '80',
  'redis-requests': '160',
  rounds: '1',
  warmup: '20',
  'short-conversations': '16',
  'redis-short-conversations': '16',
  'long-conversations': '8',
  'long-turns': '20',
  'cold-reads': '3',
  'cold-warmup': '0',
  'cold-messages': '200',
  'no-summary-latency': true,
  'no-prefix-cache': true,
  'no-idle-cost': true,
};
if (flags.quick) {
  const explicit = new Set<string>(given.flatMap((token) => (token.kind === 'option' ? [token.name] : [])));
  for (const [name, value] of Object.entries(QUICK)) if (!explicit.has(name)) (flags as Record<string, string | boolean | undefined>)[name] = value;
}

function positive(name: keyof typeof flags, { zero = false } = {}): number {
  const value = Number(flags[name]);
  if (!Number.isSafeInteger(value) || value < 0 || (value === 0 && !zero)) throw new Error(`--${name} must be a ${zero ? 'non-negative' : 'positive'} integer, got ${String(flags[name])}`);
  return value;
}

/** A share (0 ≤ X < 1) as "every Nth request" (0: never). */
export function every(name: 'new-share' | 'redis-new-share', value: string): number {
  const share = Number(value);
  if (!Number.isFinite(share) || share < 0 || share >= 1) throw new Error(`--${name} must be a share from 0 to below 1, got ${value}`);
  return share === 0 ? 0 : Math.max(2, Math.round(1 / share));
}

function logLevel(): 'info' | 'warn' {
  const level = flags['log-level'];
  if (level === 'info' || level === 'warn') return level;
  throw new Error(`--log-level must be info or warn, got ${String(level)}`);
}

const STORE_MODES = ['embedded', 'redis-mongodb'] as const;
export type StoreMode = (typeof STORE_MODES)[number];
export function storeModes(): StoreMode[] {
  const choice = flags.stores;
  if (choice === 'all') return [...STORE_MODES];
  if ((STORE_MODES as readonly string[]).includes(choice ?? '')) return [choice as StoreMode];
  throw new Error(`--stores must be all, embedded or redis-mongodb, got ${String(choice)}`);
}

export const embedded: SideBySideSettings = {
  concurrency: positive('concurrency'),
  requests: positive('requests'),
  requestsC1: positive('requests-c1'),
  rounds: positive('rounds'),
  warmup: positive('warmup'),
  shortConversations: positive('short-conversations'),
  shortTurns: positive('short-turns'),
  longConversations: positive('long-conversations'),
  longTurns: positive('long-turns'),
  stream: !flags['no-stream'],
  logLevel: logLevel(),
  warnVariant: flags['warn-variant'],
  floorVariants: flags['floor-variants'],
  seedDirectly: flags['seed-directly'],
  newEvery: every('new-share', flags['new-share']!),
  upstream: { replyTokens: positive('reply-tokens'), eventsPerWrite: positive('events-per-write') },
  profile: flags.profile,
  summaries: flags.summaries,
  pacedRequests: 0,
  pauseMs: positive('pause-ms'),
  apis: parseApis(flags.apis!),
  ...(flags.baseline === undefined ? {} : { baseline: baselineBuild(flags.baseline) }),
};
// Fewer requests: the question there is what the two tiers add, and the whole bench should stay within a few minutes.
export const redisMongo: SideBySideSettings = {
  ...embedded,
  requests: positive('redis-requests'),
  requestsC1: positive('redis-requests-c1'),
  shortConversations: positive('redis-short-conversations'),
  pacedRequests: positive('paced', { zero: true }),
};
/** FerretDB on SQLite reads a whole collection per query: a new conversation's first read costs a scan of every message stored. */
export const FERRETDB_NEW_SHARE = '0.002';
/** --mongodb-server, checked; undefined: the default. */
export const mongodbServer = parseMongodbServer(flags['mongodb-server']);
export const cold = {
  reads: positive('cold-reads'),
  warmupReads: positive('cold-warmup', { zero: true }),
  longMessages: positive('cold-messages'),
  summaries: flags.summaries,
  logLevel: embedded.logLevel,
  upstream: embedded.upstream,
};
export const historyTokens = positive('history-tokens');
