// `npm run bench:load`: contextd on Redis + MongoDB under the load of many
// users at once, then under faults, then for a while (a soak). Figures, not
// timed tests: it prints PASS/FAIL per check and always exits 0 (1 only when
// the bench itself breaks).
//
//   npm run bench:load -- [--help] [--requests 20000] [--conversations 200] [--soak-minutes 2] ...
//
// 1. Load: `conversations` clients at once, each a user in a conversation of
//    its own (its first turn starts it, now and then it starts another),
//    half of them streaming; the same number of clients on the upstream
//    directly and through the floor proxy, in interleaved rounds. Then every
//    conversation is read back from MongoDB once the flusher is idle.
// 2. Soak: the same contextd, a paced load for `--soak-minutes`, its RSS,
//    event-loop delay, handles, sockets and pending writes sampled from its /metrics.
// 3. Faults, on a second contextd under the same kind of load: Redis
//    restarted, MongoDB restarted, the upstream resetting a share of replies
//    mid-stream, clients leaving a share of streams midway. No crash, no
//    acknowledged turn lost, none twice, no partial reply stored.
//
// Loopback only; every server is started here and stopped at the end, temp dirs removed.

import { mkdtemp, rm } from 'node:fs/promises';
import { readFileSync } from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { setTimeout as delay } from 'node:timers/promises';
import { parseArgs } from 'node:util';
import { request, type Pool } from 'undici';
import { seededRandom } from '../test/support/seeded-random.js';
import { openPool } from './load.js';
import { ConversationClient, directTurn, drive, emptySamples, ledgerClockMs, type ClientOptions, type InjectedFault, type Ledger, type PathSamples } from './load-client.js';
import { cpuTimeMs, startContextd, startFloorProxy, startUpstream, tcpConnections, type Child, type ContextdChild } from './processes.js';
import { quantiles } from './report.js';
import { replyTexts } from './replies.js';
import { checkLines, checkStore, type RedisOutage, type StoreCheck } from './store-check.js';
import { parseMongodbServer } from './mongodb-server.js';
import { startBackingStores, type BackingStores, type StorePair } from './stores.js';
import { Workload } from './workload.js';

const USAGE = `npm run bench:load -- [options]     (after npm run build: node dist/bench/load-soak.js [options])
 load
  --conversations N      clients at once, each a user in a conversation of its own (default 200)
  --requests N           measured turns sent to contextd (default 20000)
  --baseline-requests N  measured requests to the upstream directly and through the floor, each (default requests / 4)
  --rounds N             rounds the load is cut into, the three paths interleaved (default 5)
  --warmup N             unmeasured requests per path first; contextd's start the conversations (default 1000)
  --stream-share X       share of requests with stream: true (default 0.5)
  --new-share X          after each turn, the chance a client starts a new conversation (default 0.002: FerretDB on SQLite
                         reads its whole collection for every query, so each new conversation costs a scan of everything
                         stored; on mongod or FerretDB on PostgreSQL try 0.05). Direct and floor clients send no history on as many requests.
  --reply-tokens N       tokens of every upstream reply (default 300); --events-per-write N (default 1: one SSE event per write)
  --verify-every N       check the text of every Nth streamed reply (default 4; JSON replies and every stream's end always)
 faults (after the soak; a second contextd, database of its own, same kind of load)
  --no-faults            skip the phase
  --faults LIST          which faults, of redis,mongodb,reset,leave (default all four)
  --fault-requests N     turns sent during it (default 6000)
  --reset-share X        share of replies the upstream resets mid-reply (default 0.02)
  --leave-share X        share of streams the client leaves midway (the upstream paces them, 5 ms per event; default 0.02)
  --down-ms N            how long Redis and MongoDB each stay down (default 1000)
  --redis-restart saved|empty   saved (default): SHUTDOWN SAVE and back with its data, as a Redis with persistence;
                         empty: killed and back empty, as one without (its unflushed turns are lost: documented)
 soak (after the load, on the same contextd)
  --soak-minutes X       how long (default 2; 0 skips it)
  --soak-rate N          requests per second, paced over the clients (default 100)
  --sample-seconds N     how often /metrics is read (default 5)
 contextd
  --log-level info|warn  (default info, contextd's own default)
  --summaries            rolling summaries on (contextd's default; off here by default: each summary job lists the
                         conversation from MongoDB, which on FerretDB on SQLite is a scan of everything stored)
  --mongodb-timeout D    storage.mongodb.timeout (default: contextd's, 3s)
  --mongodb-server pg|sqlite|mongod   the MongoDB-protocol server: FerretDB v1 on PostgreSQL (started here, GIN-indexed),
                         FerretDB v1 on SQLite, or mongod on PATH / MONGODB_URL (default: mongod when MONGODB_URL is set or
                         mongod is on PATH, else pg when PostgreSQL is installed, else sqlite)
  --max-minutes N        give up (and clean up) after this long (default 20)
  --idle-timeout S       longest wait for contextd to be idle before a check reads MongoDB (default 120)
  --settle-timeout S     longest wait for the flusher after each contextd slice of the load (default 60)
  --keep-logs            keep contextd's logs (their directory is printed)`;

const { values: flags } = parseArgs({
  options: {
    conversations: { type: 'string', default: '200' },
    requests: { type: 'string', default: '20000' },
    'baseline-requests': { type: 'string' },
    rounds: { type: 'string', default: '5' },
    warmup: { type: 'string', default: '1000' },
    'stream-share': { type: 'string', default: '0.5' },
    'new-share': { type: 'string', default: '0.002' },
    'reply-tokens': { type: 'string', default: '300' },
    'events-per-write': { type: 'string', default: '1' },
    'verify-every': { type: 'string', default: '4' },
    'no-faults': { type: 'boolean', default: false },
    faults: { type: 'string', default: 'redis,mongodb,reset,leave' },
    'fault-requests': { type: 'string', default: '6000' },
    'reset-share': { type: 'string', default: '0.02' },
    'leave-share': { type: 'string', default: '0.02' },
    'down-ms': { type: 'string', default: '1000' },
    'redis-restart': { type: 'string', default: 'saved' },
    'soak-minutes': { type: 'string', default: '2' },
    'soak-rate': { type: 'string', default: '100' },
    'sample-seconds': { type: 'string', default: '5' },
    'log-level': { type: 'string', default: 'info' },
    summaries: { type: 'boolean', default: false },
    'mongodb-timeout': { type: 'string' },
    'mongodb-server': { type: 'string' },
    'max-minutes': { type: 'string', default: '20' },
    'idle-timeout': { type: 'string', default: '120' },
    'settle-timeout': { type: 'string', default: '60' },
    'keep-logs': { type: 'boolean', default: false },
    help: { type: 'boolean', default: false },
  },
});

function number(name: keyof typeof flags, { min = 0, max = Number.POSITIVE_INFINITY, integer = true } = {}): number {
  const value = Number(flags[name]);
  if (!Number.isFinite(value) || value < min || value > max || (integer && !Number.isSafeInteger(value))) {
    throw new Error(`--${name} must be ${integer ? 'an integer' : 'a number'} from ${min}${Number.isFinite(max) ? ` to ${max}` : ''}, got ${String(flags[name])}`);
  }
  return value;
}

const log = (text: string): void => console.log(text);
const fmt = (value: number, digits = 2): string => (Number.isFinite(value) ? value.toFixed(digits) : '–');
const mb = (bytes: number): string => `${(bytes / 1024 / 1024).toFixed(1)} MB`;
const passFail = (ok: boolean): string => (ok ? 'PASS' : 'FAIL');

// ---- contextd's /metrics ----

type Metrics = Map<string, number>;

async function scrape(contextd: Child): Promise<Metrics> {
  const res = await request(`${contextd.url}/metrics`);
  const metrics: Metrics = new Map();
  for (const line of (await res.body.text()).split('\n')) {
    if (line === '' || line.startsWith('#')) continue;
    const at = line.lastIndexOf(' ');
    metrics.set(line.slice(0, at), Number(line.slice(at + 1)));
  }
  return metrics;
}

/** A series by its name without contextd's prefix (the process metrics are `contextd_process_<prom-client name>`), labels included. */
function metric(metrics: Metrics, name: string): number {
  for (const [series, value] of metrics) if (series === name || series.endsWith(`_${name}`)) return value;
  return Number.NaN;
}

/** The sum of a counter's series whose name starts with `name` (any labels), e.g. contextd_turns_dropped_total. */
function counter(metrics: Metrics, name: string, labels = ''): number {
  let sum = 0;
  for (const [series, value] of metrics) if ((series === name || series.startsWith(`${name}{`)) && series.includes(labels)) sum += value;
  return sum;
}

interface Sample {
  atS: number;
  rssBytes: number;
  heapUsedBytes: number;
  lagP50Ms: number;
  lagP99Ms: number;
  lagMaxMs: number;
  handles: number;
  sockets: number;
  connections: number;
  pendingWrites: number;
  dirty: number;
  /** contextd's TCP connections by peer (clients, redis, mongodb, upstream, other), from /proc. */
  tcp: Record<string, number> | undefined;
}

/** Where contextd's connections go: its own port (clients), the servers', the upstream's. */
let peers: { listenPort: number; ports: Record<string, number> } = { listenPort: 0, ports: {} };

async function sample(contextd: Child, pair: StorePair, atS: number): Promise<Sample> {
  const m = await scrape(contextd);
  return {
    tcp: tcpConnections(contextd.process.pid, peers.listenPort, peers.ports),
    atS,
    rssBytes: metric(m, 'process_resident_memory_bytes'),
    heapUsedBytes: metric(m, 'nodejs_heap_size_used_bytes'),
    lagP50Ms: metric(m, 'nodejs_eventloop_lag_p50_seconds') * 1000,
    lagP99Ms: metric(m, 'nodejs_eventloop_lag_p99_seconds') * 1000,
    lagMaxMs: metric(m, 'nodejs_eventloop_lag_max_seconds') * 1000,
    handles: metric(m, 'nodejs_active_handles_total'),
    sockets: metric(m, 'nodejs_active_handles{type="Socket"}'),
    connections: metric(m, 'contextd_connections'),
    pendingWrites: metric(m, 'contextd_pending_writes'),
    dirty: await pair.dirtyCount().catch(() => Number.NaN),
  };
}

/** Waits until contextd has no turn waiting to be written and the flusher has moved everything to MongoDB. */
async function waitIdle(contextd: Child, pair: StorePair, timeoutMs: number): Promise<{ idle: boolean; waitedMs: number }> {
  const startedAt = performance.now();
  for (;;) {
    const pending = metric(await scrape(contextd).catch(() => new Map()), 'contextd_pending_writes');
    const dirty = await pair.dirtyCount().catch(() => Number.NaN);
    if (pending === 0 && dirty === 0) {
      // The flusher may still be inside a round whose mark is already gone: one more look after a beat.
      await delay(50);
      if ((await pair.dirtyCount().catch(() => Number.NaN)) === 0) return { idle: true, waitedMs: performance.now() - startedAt };
    }
    if (performance.now() - startedAt > timeoutMs) return { idle: false, waitedMs: performance.now() - startedAt };
    await delay(20);
  }
}

// ---- the report ----

const report: string[] = [];
const verdicts: { phase: string; line: string }[] = [];
/** A line of the markdown report, printed whole at the end. */
function emit(text = ''): void {
  report.push(text);
}
function judge(phase: string, ok: boolean, text: string): void {
  const line = `${passFail(ok)}  ${text}`;
  verdicts.push({ phase, line });
  log(`  ${line}`);
}

function distribution(values: readonly number[]): string {
  if (values.length === 0) return '–';
  const { p50, p99 } = quantiles(values);
  return `${fmt(p50)} / ${fmt(p99)}`;
}

interface PathResult {
  name: string;
  samples: PathSamples;
  wallMs: number;
  settleMs: number;
  requests: number;
  proxyCpuMs: number;
  upstreamCpuMs: number;
}

function pathTable(results: readonly PathResult[]): string[] {
  const direct = results[0]!;
  const p = (values: readonly number[], q: 'p50' | 'p99'): number => quantiles(values)[q];
  const added = (r: PathResult, pick: (s: PathSamples) => number[], q: 'p50' | 'p99'): string => (r === direct ? '–' : fmt(p(pick(r.samples), q) - p(pick(direct.samples), q)));
  const rows = results.map((r) => {
    const rps = (r.requests / (r.wallMs + r.settleMs)) * 1000;
    return (
      `| ${r.name} | ${r.requests} | ${distribution(r.samples.jsonMs)} | ${added(r, (s) => s.jsonMs, 'p50')} / ${added(r, (s) => s.jsonMs, 'p99')} | ` +
      `${distribution(r.samples.streamFirstByteMs)} | ${added(r, (s) => s.streamFirstByteMs, 'p50')} / ${added(r, (s) => s.streamFirstByteMs, 'p99')} | ` +
      `${distribution(r.samples.streamMs)} | ${fmt(rps, 0)}${r.settleMs > 0 ? ` (${fmt((r.requests / r.wallMs) * 1000, 0)} replies only)` : ''} | ` +
      `${r === direct ? '–' : fmt(r.proxyCpuMs / r.requests, 3)} | ${fmt(r.upstreamCpuMs / r.requests, 3)} | ${r.samples.errors} |`
    );
  });
  return [
    '| path | requests | JSON p50 / p99 ms | JSON added p50 / p99 ms | stream first byte p50 / p99 ms | first byte added p50 / p99 ms | stream whole p50 / p99 ms | req/s (flushing included) | proxy CPU ms/req | upstream CPU ms/req | client errors |',
    '| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |',
    ...rows,
  ];
}

function ratioLines(results: readonly PathResult[]): string[] {
  const [direct, floor, contextd] = results as [PathResult, PathResult, PathResult];
  const p = (r: PathResult, pick: (s: PathSamples) => number[], q: 'p50' | 'p99'): number => quantiles(pick(r.samples))[q];
  const addedRatio = (pick: (s: PathSamples) => number[], q: 'p50' | 'p99'): string => fmt((p(contextd, pick, q) - p(direct, pick, q)) / (p(floor, pick, q) - p(direct, pick, q)));
  const rps = (r: PathResult): number => r.requests / (r.wallMs + r.settleMs);
  return [
    `| contextd added / floor added, JSON p50 · p99 | ${addedRatio((s) => s.jsonMs, 'p50')} · ${addedRatio((s) => s.jsonMs, 'p99')} |`,
    `| contextd added / floor added, stream first byte p50 · p99 | ${addedRatio((s) => s.streamFirstByteMs, 'p50')} · ${addedRatio((s) => s.streamFirstByteMs, 'p99')} |`,
    `| contextd added / floor added, stream whole p50 · p99 | ${addedRatio((s) => s.streamMs, 'p50')} · ${addedRatio((s) => s.streamMs, 'p99')} |`,
    `| contextd req/s (flushing included) / floor req/s | ${fmt(rps(contextd) / rps(floor))} |`,
    `| contextd req/s / direct req/s | ${fmt(rps(contextd) / rps(direct))} |`,
    `| floor req/s / direct req/s | ${fmt(rps(floor) / rps(direct))} |`,
    `| contextd CPU / floor CPU per request | ${fmt(contextd.proxyCpuMs / contextd.requests / (floor.proxyCpuMs / floor.requests))} |`,
  ];
}

// ---- main ----

async function main(): Promise<void> {
  if (flags.help) {
    log(USAGE);
    return;
  }
  const conversations = number('conversations', { min: 1 });
  const requests = number('requests', { min: 1 });
  const baselineRequests = flags['baseline-requests'] === undefined ? Math.ceil(requests / 4) : number('baseline-requests', { min: 1 });
  const rounds = number('rounds', { min: 1 });
  const warmup = number('warmup');
  const streamShare = number('stream-share', { max: 1, integer: false });
  const newShare = number('new-share', { max: 1, integer: false });
  const replyTokens = number('reply-tokens', { min: 1 });
  const faultRequests = number('fault-requests', { min: 1 });
  const resetShare = number('reset-share', { max: 1, integer: false });
  const leaveShare = number('leave-share', { max: 1, integer: false });
  const downMs = number('down-ms');
  const soakMinutes = number('soak-minutes', { integer: false });
  const soakRate = number('soak-rate', { min: 1, integer: false });
  const sampleSeconds = number('sample-seconds', { min: 1, integer: false });
  const keepRedisData = flags['redis-restart'] === 'saved';
  const faultKinds = new Set((flags.faults ?? '').split(',').filter((kind) => kind !== ''));
  for (const kind of faultKinds) if (!['redis', 'mongodb', 'reset', 'leave'].includes(kind)) throw new Error(`--faults takes redis, mongodb, reset and leave, got ${kind}`);
  if (!keepRedisData && flags['redis-restart'] !== 'empty') throw new Error(`--redis-restart must be saved or empty, got ${String(flags['redis-restart'])}`);
  const logLevel = flags['log-level'] === 'warn' ? 'warn' : 'info';
  const maxMs = number('max-minutes', { min: 1, integer: false }) * 60_000;
  const idleTimeoutMs = number('idle-timeout', { min: 1 }) * 1000;
  const settleTimeoutMs = number('settle-timeout', { min: 1 }) * 1000;
  const keepLogs = flags['keep-logs'];
  const mongodbServer = parseMongodbServer(flags['mongodb-server']);

  const startedAt = performance.now();
  const loadAtStart = loadavg()[0] ?? 0;
  log(`contextd load and soak — ${cpus().length} CPUs (${cpus()[0]?.model ?? '?'}), node ${process.version}, loopback only, load average ${fmt(loadAtStart)} at start`);

  let stores: BackingStores;
  try {
    stores = await startBackingStores({ mongoTimeout: flags['mongodb-timeout'], mongodbServer });
  } catch (error) {
    log(`Redis + MongoDB could not be started, nothing measured: ${(error instanceof Error ? error.message : String(error)).split('\n')[0]}`);
    return;
  }
  const runDir = await mkdtemp(join(tmpdir(), 'contextd-load-'));
  const children: Child[] = [];
  const pools: Pool[] = [];
  // Bounded in time: past --max-minutes the bench stops where it is and cleans up.
  const giveUp = new AbortController();
  const watchdog = setTimeout(() => giveUp.abort(new Error(`--max-minutes ${flags['max-minutes']} passed`)), maxMs);
  const checkTime = (): void => giveUp.signal.throwIfAborted();
  try {
    const pair = await stores.pair('load', 0);
    const upstream = await startUpstream({ replyTokens, eventsPerWrite: number('events-per-write', { min: 1 }) });
    children.push(upstream);
    const floor = await startFloorProxy(upstream.url);
    children.push(floor);
    const contextdLog = join(runDir, 'contextd.log');
    const faultLog = join(runDir, 'contextd-faults.log');
    const contextd: ContextdChild = await startContextd({ upstreamUrl: upstream.baseUrl, logLevel, logPath: contextdLog, storage: pair.storage, summaries: flags.summaries });
    children.push(contextd);
    const replies = replyTexts(replyTokens);
    peers = { listenPort: Number(new URL(contextd.url).port), ports: { redis: stores.ports.redis, mongodb: stores.ports.mongo, upstream: Number(new URL(upstream.url).port) } };
    const workload = new Workload({ historyTokens: 2700, bigTurns: 5, newEvery: newShare > 0 ? Math.max(2, Math.round(1 / newShare)) : 0 });
    const clientOptions: ClientOptions = { workload, replies, streamShare, newShare, verifyEvery: number('verify-every', { min: 1 }) };
    const ledger: Ledger = new Map();
    const clients = Array.from({ length: conversations }, (_, i) => new ConversationClient(i, `load${Date.now().toString(36)}`, clientOptions, ledger));
    const open = (url: string): Pool => {
      const pool = openPool(url, conversations);
      pools.push(pool);
      return pool;
    };
    const contextdPool = open(contextd.url);
    const directPool = open(upstream.url);
    const floorPool = open(floor.url);
    const directRandoms = Array.from({ length: conversations }, (_, i) => seededRandom(104_729 * (i + 1)));
    let directCount = 0;
    const turnOf = (path: 'direct' | 'floor' | 'contextd', samples: PathSamples, fault?: (stream: boolean) => InjectedFault | undefined): ((worker: number) => Promise<void>) => {
      if (path === 'contextd') return (worker) => clients[worker]!.turn(contextdPool, samples, fault);
      const pool = path === 'direct' ? directPool : floorPool;
      return (worker) => directTurn(pool, clientOptions, samples, directRandoms[worker]!, directCount++ % clientOptions.verifyEvery === 0);
    };

    emit(`## Load: ${conversations} conversations at once on Redis + MongoDB (redis-server, ${stores.mongo.label})`);
    emit();
    emit(
      `${cpus().length} CPUs, node ${process.version}, load average ${fmt(loadAtStart)} at start (other work shares this machine: the absolute figures move with it, the ratios less). ` +
        `contextd at LOG_LEVEL=${logLevel}, default store timeouts${flags['mongodb-timeout'] === undefined ? '' : ` but storage.mongodb.timeout ${flags['mongodb-timeout']}`}, rolling summaries ${flags.summaries ? 'on (its default)' : `off (--summaries turns them on: each job lists the conversation from MongoDB${stores.mongo.scansCollections ? ', here a scan of everything stored' : ''})`}. ` +
        `Every reply is ${replyTokens} tokens of prose; ${fmt(streamShare * 100, 0)}% of requests stream (one token per SSE event). ` +
        `${conversations} clients at once on each path, each with a keep-alive connection and one request at a time; a contextd client is a user in a conversation of its own, ` +
        `started by its first turn; after each turn it starts a new one with chance ${newShare}. Direct and floor clients send a budget's worth of history (≈2,700 tokens), none on 1 in ${workload.options.newEvery || '∞'}. ` +
        `${warmup} warm-up requests per path, then ${requests} to contextd and ${baselineRequests} each directly and through the floor, in ${rounds} interleaved rounds. ` +
        `After each contextd slice the bench waits until contextd has no pending write and the flusher has moved every turn to MongoDB; req/s counts that wait.`,
    );
    emit();

    // -- warm-up: every path, and every client's first turn (its conversation starts)
    const ignored = emptySamples();
    for (const path of ['direct', 'floor', 'contextd'] as const) await drive(conversations, Math.max(warmup, path === 'contextd' ? conversations : 0), turnOf(path, ignored));
    await waitIdle(contextd, pair, 60_000);
    log(`warm-up done (${ignored.errors} errors${ignored.errorExamples.length > 0 ? `: ${ignored.errorExamples.join(' | ')}` : ''})`);
    checkTime();

    // -- measured rounds
    const results: PathResult[] = (['direct', 'floor (undici pass-through)', 'contextd'] as const).map((name) => ({
      name,
      samples: emptySamples(),
      wallMs: 0,
      settleMs: 0,
      requests: 0,
      proxyCpuMs: 0,
      upstreamCpuMs: 0,
    }));
    const [directResult, floorResult, contextdResult] = results as [PathResult, PathResult, PathResult];
    let settleMisses = 0;
    const sliceOf = (r: PathResult): number => Math.ceil((r === contextdResult ? requests : baselineRequests) / rounds);
    for (let round = 0; round < rounds; round++) {
      for (let i = 0; i < 3; i++) {
        const r = results[(round + i) % 3]!;
        const path = r === directResult ? 'direct' : r === floorResult ? 'floor' : 'contextd';
        const proxy = r === directResult ? undefined : r === floorResult ? floor : contextd;
        const cpuBefore = [cpuTimeMs(proxy?.process.pid), cpuTimeMs(upstream.process.pid)];
        const { wallMs, sent } = await drive(conversations, sliceOf(r), turnOf(path, r.samples));
        const settled = r === contextdResult ? await waitIdle(contextd, pair, settleTimeoutMs) : { waitedMs: 0, idle: true };
        if (!settled.idle) settleMisses += 1;
        await delay(10);
        const cpuAfter = [cpuTimeMs(proxy?.process.pid), cpuTimeMs(upstream.process.pid)];
        r.wallMs += wallMs;
        r.settleMs += settled.waitedMs;
        r.requests += sent;
        r.proxyCpuMs += (cpuAfter[0] ?? 0) - (cpuBefore[0] ?? 0);
        r.upstreamCpuMs += (cpuAfter[1] ?? Number.NaN) - (cpuBefore[1] ?? Number.NaN);
        checkTime();
      }
      log(`  round ${round + 1}/${rounds}: ${results.map((r) => `${r.name.split(' ')[0]} ${r.requests}`).join(', ')}; load average ${fmt(loadavg()[0] ?? 0)}`);
    }
    const loadAtEnd = loadavg()[0] ?? 0;
    for (const line of pathTable(results)) emit(line);
    emit();
    emit('| ratio | value |');
    emit('| --- | ---: |');
    for (const line of ratioLines(results)) emit(line);
    emit();
    emit(
      `Load average ${fmt(loadAtEnd)} at the end of the load. Added = the path's percentile minus the direct path's (same percentile). contextd CPU/request includes its flusher and log writes.` +
        (settleMisses > 0 ? ` **The flusher did not catch up within ${fmt(settleTimeoutMs / 1000, 0)} s after ${settleMisses} of ${rounds} contextd slices** (that wait is in req/s: the throughput contextd could not sustain).` : ''),
    );
    emit();

    const phaseCheck = async (phase: string, on: { contextd: Child; pair: StorePair; ledger: Ledger; redisOutages?: readonly RedisOutage[] } = { contextd, pair, ledger }): Promise<StoreCheck> => {
      const idle = await waitIdle(on.contextd, on.pair, idleTimeoutMs);
      judge(phase, idle.idle, `contextd idle (no pending write, nothing awaiting the flusher) ${idle.idle ? `within ${fmt(idle.waitedMs / 1000, 1)} s` : `not reached within ${fmt(idleTimeoutMs / 1000, 0)} s (${await on.pair.dirtyCount().catch(() => '?')} conversations still awaiting it)`}`);
      const startedCheck = performance.now();
      const documents = await on.pair.storedMessages();
      // Not idle: what Redis still holds for the flusher is not lost, only late.
      let waiting: Map<string, Set<string>> | undefined;
      if (!idle.idle) {
        waiting = new Map();
        for (const conversation of on.ledger.keys()) waiting.set(conversation, new Set(await on.pair.unflushedUsers(conversation).catch(() => [])));
      }
      const check = checkStore(on.ledger, documents, replies, waiting, on.redisOutages);
      log(`  (read ${documents.length} messages back from MongoDB in ${fmt((performance.now() - startedCheck) / 1000, 1)} s)`);
      for (const line of checkLines(check)) {
        if (line.startsWith('PASS') || line.startsWith('FAIL')) judge(phase, line.startsWith('PASS'), line.slice(6));
        else log(`  ${line}`);
      }
      return check;
    };
    log('\nchecks after the load:');
    const errorsLoad = results.reduce((sum, r) => sum + r.samples.errors, 0);
    judge('load', errorsLoad === 0, `client errors: ${errorsLoad}${errorsLoad === 0 ? '' : ` — ${results.flatMap((r) => r.samples.errorExamples).slice(0, 3).join(' | ')}`}`);
    const loadCheck = await phaseCheck('load');
    emit(`Stored after the load: ${loadCheck.acknowledged} acknowledged turns in ${loadCheck.conversations} conversations, ${loadCheck.storedTurns} turns in MongoDB.`);
    emit();
    checkTime();

    // -- soak
    if (soakMinutes > 0) {
      const soakMs = soakMinutes * 60_000;
      const warmupMs = Math.max(20_000, soakMs * 0.2);
      emit(`## Soak: ${soakMinutes} min at ${soakRate} req/s over ${conversations} conversations`);
      emit();
      // Idle before and after, with the bench's own connections to contextd closed, so both count only contextd's own.
      const idleSnapshot = async (): Promise<Sample> => {
        await contextdPool.close();
        pools.splice(pools.indexOf(contextdPool), 1);
        await waitIdle(contextd, pair, idleTimeoutMs);
        await delay(3_000);
        return sample(contextd, pair, 0);
      };
      const idleBefore = await idleSnapshot();
      const soakPool = open(contextd.url);
      const samples = emptySamples();
      const series: Sample[] = [];
      const soakStart = performance.now();
      let soaking = true;
      const sampler = (async (): Promise<void> => {
        await scrape(contextd); // resets the event-loop histogram: the first sample covers the first interval only
        while (soaking) {
          await delay(sampleSeconds * 1000);
          if (!soaking) break;
          series.push(await sample(contextd, pair, (performance.now() - soakStart) / 1000));
          const last = series.at(-1)!;
          log(`  ${fmt(last.atS, 0)} s: RSS ${mb(last.rssBytes)}, heap ${mb(last.heapUsedBytes)}, loop delay p99 ${fmt(last.lagP99Ms, 1)} ms, handles ${last.handles} (sockets ${last.sockets}), pending writes ${last.pendingWrites}, awaiting flush ${last.dirty}, load average ${fmt(loadavg()[0] ?? 0)}`);
        }
      })();
      const turn = (worker: number): Promise<void> => clients[worker]!.turn(soakPool, samples);
      const soakDrive = await drive(conversations, Number.MAX_SAFE_INTEGER, turn, { intervalMs: (conversations * 1000) / soakRate, until: () => performance.now() - soakStart >= soakMs || giveUp.signal.aborted });
      soaking = false;
      await sampler;
      const sentDuring = samples.completed + samples.errors;
      const underLoad = series.filter((s) => s.atS * 1000 >= warmupMs);
      // RSS follows the heap's sawtooth (it grows between major GCs, by 100 MB and more under this load): what a
      // leak moves is the floor after each GC, so each side is the lowest sample of its half of the time after the warm-up.
      const floorOf = (samples: readonly Sample[]): Sample => samples.reduce((low, s) => (s.rssBytes < low.rssBytes ? s : low), samples[0] ?? series.at(-1)!);
      const half = Math.ceil(underLoad.length / 2);
      const warm = floorOf(underLoad.slice(0, half));
      const end = floorOf(underLoad.slice(half));
      await soakPool.close();
      pools.splice(pools.indexOf(soakPool), 1);
      const idleAfter = await waitIdle(contextd, pair, idleTimeoutMs);
      await delay(3_000);
      const idleAfterSample = await sample(contextd, pair, 0);
      // Growth under load after the warm-up: a least-squares slope, per minute.
      const slope = (pick: (s: Sample) => number): number => {
        const points = underLoad.map((s) => [s.atS / 60, pick(s)] as const);
        if (points.length < 2) return Number.NaN;
        const mx = points.reduce((a, [x]) => a + x, 0) / points.length;
        const my = points.reduce((a, [, y]) => a + y, 0) / points.length;
        const sxx = points.reduce((a, [x]) => a + (x - mx) ** 2, 0);
        return points.reduce((a, [x, y]) => a + (x - mx) * (y - my), 0) / sxx;
      };
      const lag = (pick: (s: Sample) => number): string => distribution(series.map(pick));
      emit(
        `${sentDuring} turns in ${fmt(soakDrive.wallMs / 1000, 0)} s (${samples.streamMs.length} streamed), JSON p50 / p99 ${distribution(samples.jsonMs)} ms, ` +
          `stream first byte ${distribution(samples.streamFirstByteMs)} ms, client errors ${samples.errors}. /metrics read every ${sampleSeconds} s; the warm-up is the first ${fmt(warmupMs / 1000, 0)} s.`,
      );
      emit();
      emit('| contextd | first half after warm-up (its lowest RSS sample) | second half (its lowest RSS sample) | growth per minute after warm-up | idle before the soak | idle after the soak |');
      emit('| --- | ---: | ---: | ---: | ---: | ---: |');
      emit(`| RSS (highest sample) | ${mb(warm.rssBytes)} (${mb(Math.max(...underLoad.slice(0, half).map((s) => s.rssBytes)))}) | ${mb(end.rssBytes)} (${mb(Math.max(...underLoad.slice(half).map((s) => s.rssBytes)))}) | ${mb(slope((s) => s.rssBytes))} | ${mb(idleBefore.rssBytes)} | ${mb(idleAfterSample.rssBytes)} |`);
      emit(`| heap used | ${mb(warm.heapUsedBytes)} | ${mb(end.heapUsedBytes)} | ${mb(slope((s) => s.heapUsedBytes))} | ${mb(idleBefore.heapUsedBytes)} | ${mb(idleAfterSample.heapUsedBytes)} |`);
      emit(`| active handles (of which sockets) | ${warm.handles} (${warm.sockets}) | ${end.handles} (${end.sockets}) | ${fmt(slope((s) => s.handles))} (${fmt(slope((s) => s.sockets))}) | ${idleBefore.handles} (${idleBefore.sockets}) | ${idleAfterSample.handles} (${idleAfterSample.sockets}) |`);
      emit(`| client connections (contextd_connections) | ${warm.connections} | ${end.connections} | ${fmt(slope((s) => s.connections))} | ${idleBefore.connections} | ${idleAfterSample.connections} |`);
      const tcpCell = (s: Sample): string => (s.tcp === undefined ? '–' : Object.entries(s.tcp).filter(([, n]) => n > 0).map(([peer, n]) => `${peer} ${n}`).join(', ') || 'none');
      emit(`| TCP connections by peer | ${tcpCell(warm)} | ${tcpCell(end)} | | ${tcpCell(idleBefore)} | ${tcpCell(idleAfterSample)} |`);
      emit(`| pending writes · conversations awaiting the flusher | ${warm.pendingWrites} · ${warm.dirty} | ${end.pendingWrites} · ${end.dirty} | ${fmt(slope((s) => s.pendingWrites))} · ${fmt(slope((s) => s.dirty))} | ${idleBefore.pendingWrites} · ${idleBefore.dirty} | ${idleAfterSample.pendingWrites} · ${idleAfterSample.dirty} |`);
      emit();
      emit(
        `Event-loop delay (prom-client's monitor, 10 ms resolution: an idle loop reads ≈10 ms), per ${sampleSeconds} s interval, p50 / p99 over the intervals: ` +
          `its p50 ${lag((s) => s.lagP50Ms)} ms, its p99 ${lag((s) => s.lagP99Ms)} ms, its max ${lag((s) => s.lagMaxMs)} ms.`,
      );
      emit();
      log('\nchecks after the soak:');
      const rssGrowth = end.rssBytes / warm.rssBytes - 1;
      judge('soak', rssGrowth <= 0.1, `RSS in the second half of the soak at most 10% above the first half after warm-up (the lowest sample of each, after a GC): ${mb(warm.rssBytes)} → ${mb(end.rssBytes)} (${rssGrowth >= 0 ? '+' : ''}${fmt(rssGrowth * 100, 1)}%)`);
      const other = (s: Sample): number => s.handles - s.sockets;
      judge('soak', other(idleAfterSample) <= other(idleBefore) + 2, `no growth in active handles other than sockets (timers, servers…), idle before and after: ${other(idleBefore)} → ${other(idleAfterSample)} (2 allowed)`);
      const tcpLine = (t: Record<string, number> | undefined): string => (t === undefined ? '–' : Object.entries(t).map(([peer, n]) => `${peer} ${n}`).join(', '));
      const grown = Object.entries(idleAfterSample.tcp ?? {}).filter(([peer, n]) => n > (idleBefore.tcp?.[peer] ?? 0) + 2);
      judge(
        'soak',
        idleAfterSample.sockets <= idleBefore.sockets + 2 || (idleAfterSample.tcp !== undefined && grown.length === 0),
        `no growth in sockets, idle before and after: ${idleBefore.sockets} → ${idleAfterSample.sockets} socket handles; TCP connections by peer ${tcpLine(idleBefore.tcp)} → ${tcpLine(idleAfterSample.tcp)}` +
          (grown.length > 0 ? ` (grew: ${grown.map(([peer]) => peer).join(', ')}; pools keep idle connections: upstream 30 s, the MongoDB driver's until closed)` : ''),
      );
      judge(
        'soak',
        idleAfter.idle,
        idleAfter.idle
          ? `no pending writes left: none pending and nothing awaiting the flusher ${fmt(idleAfter.waitedMs / 1000, 1)} s after the load stopped`
          : `no pending writes left: still ${idleAfterSample.pendingWrites} pending and ${idleAfterSample.dirty} conversations awaiting the flusher ${fmt(idleTimeoutMs / 1000, 0)} s after the load stopped`,
      );
      judge('soak', !(slope((s) => s.pendingWrites) > 1) && end.pendingWrites <= Math.max(warm.pendingWrites, conversations), `no growth in pending writes under load: ${warm.pendingWrites} after warm-up, ${end.pendingWrites} at the end`);
      judge('soak', samples.errors === 0, `client errors: ${samples.errors}${samples.errors === 0 ? '' : ` — ${samples.errorExamples.slice(0, 3).join(' | ')}`}`);
      const soakCheck = await phaseCheck('soak');
      emit(`Stored after the soak: ${soakCheck.acknowledged} acknowledged turns in ${soakCheck.conversations} conversations (the load's and the soak's), ${soakCheck.storedTurns} turns in MongoDB.`);
      emit();
    }

    // -- faults under load
    if (!flags['no-faults']) {
      // A contextd and a MongoDB database of their own: on SQLite FerretDB's reads scan a whole collection, so
      // with the load's history in it the outage's reads (all from MongoDB while Redis is down) would measure FerretDB.
      const faultPair = await stores.pair('faults', 1);
      const faultContextd: ContextdChild = await startContextd({ upstreamUrl: upstream.baseUrl, logLevel, logPath: faultLog, storage: faultPair.storage, summaries: flags.summaries });
      children.push(faultContextd);
      const faultLedger: Ledger = new Map();
      const faultClients = Array.from({ length: conversations }, (_, i) => new ConversationClient(i, `fault${Date.now().toString(36)}`, clientOptions, faultLedger));
      const faultPool = open(faultContextd.url);
      emit(`## Faults under load (${faultRequests} turns to contextd, ${conversations} clients)`);
      emit();
      emit(
        `A second contextd with a MongoDB database and a Redis database of its own (the same servers), same settings; its ${conversations} clients start their conversations ` +
          `(${conversations} unmeasured turns), then send ${faultRequests} turns while the faults below are injected.`,
      );
      emit();
      const samples = emptySamples();
      await drive(conversations, conversations, (worker) => faultClients[worker]!.turn(faultPool, ignored));
      const before = await scrape(faultContextd);
      const faultRandom = seededRandom(31_337);
      const fault = (stream: boolean): InjectedFault | undefined => {
        const draw = faultRandom();
        const events = replyTokens + 2;
        const resets = faultKinds.has('reset') ? resetShare : 0;
        if (draw < resets) return { kind: 'reset', resetAfter: 1 + Math.floor(faultRandom() * (events - 2)) };
        if (stream && faultKinds.has('leave') && draw < resets + leaveShare) return { kind: 'leave', leaveAfter: 2 + Math.floor(faultRandom() * Math.min(40, events - 4)), paceMs: 5 };
        return undefined;
      };
      const timeline: string[] = [];
      // On the ledger's clock: the order check lets a turn answered before one began come after the turns made during it.
      const redisOutages: RedisOutage[] = [];
      const phaseStart = performance.now();
      const at = (): string => `${fmt((performance.now() - phaseStart) / 1000, 1)} s`;
      let progress = 0;
      const reached = async (share: number): Promise<void> => {
        while (progress < faultRequests * share && !giveUp.signal.aborted) await delay(20);
      };
      const injector = (async (): Promise<void> => {
        await reached(0.25);
        if (faultKinds.has('redis')) {
          timeline.push(`${at()}: Redis ${keepRedisData ? 'shut down with SHUTDOWN SAVE' : 'killed (SIGKILL, no persistence)'}`);
          const startMs = ledgerClockMs();
          await stores.restartRedis({ keepData: keepRedisData, downMs });
          redisOutages.push({ startMs, endMs: ledgerClockMs() });
          timeline.push(`${at()}: Redis back${keepRedisData ? ' with its data' : ', empty'}`);
        }
        await reached(0.6);
        if (!faultKinds.has('mongodb')) return;
        if (stores.mongo.kind === 'external') {
          timeline.push(`${at()}: MongoDB not restarted (MONGODB_URL's server is not ours)`);
          return;
        }
        timeline.push(`${at()}: MongoDB (${stores.mongo.label}): ${stores.mongo.crashes}`);
        await stores.restartMongo({ downMs });
        timeline.push(`${at()}: MongoDB back on its data`);
      })();
      const { wallMs } = await drive(conversations, faultRequests, (worker) => faultClients[worker]!.turn(faultPool, samples, fault), { onProgress: (done) => (progress = done) });
      await injector;
      const after = await scrape(faultContextd);
      const alive = faultContextd.process.exitCode === null && faultContextd.process.signalCode === null;
      const turns = [...faultLedger.values()].flat();
      emit(`Injected, during ${fmt(wallMs / 1000, 1)} s of load: ${timeline.length === 0 ? 'no restart' : `${timeline.join('; ')}. Each down ${downMs} ms plus its start-up`}.`);
      emit(
        `Upstream resets mid-reply: ${samples.injected.reset} (the client saw the cut); clients that left a stream midway: ${samples.injected.leave}. ` +
          `Turns acknowledged in the phase: ${samples.completed}. contextd counted: turns dropped ${counter(after, 'contextd_turns_dropped_total') - counter(before, 'contextd_turns_dropped_total')}, ` +
          `store errors ${counter(after, 'contextd_store_errors_total') - counter(before, 'contextd_store_errors_total')}, seq conflicts ${counter(after, 'contextd_seq_conflicts_total') - counter(before, 'contextd_seq_conflicts_total')}, ` +
          `turns not stored ${counter(after, 'contextd_turns_stored_total', 'outcome="not_stored"') - counter(before, 'contextd_turns_stored_total', 'outcome="not_stored"')}.`,
      );
      emit();
      log('\nchecks after the faults:');
      judge('faults', alive, `contextd did not crash (${alive ? 'still running' : `exited: ${String(faultContextd.process.exitCode ?? faultContextd.process.signalCode)}`})`);
      judge('faults', samples.errors === 0, `client errors not injected: ${samples.errors}${samples.errors === 0 ? '' : ` — ${samples.errorExamples.slice(0, 3).join(' | ')}`}`);
      const unplayed = turns.filter((turn) => turn.detail?.startsWith('injected') === true).length;
      if (unplayed > 0) log(`  (${unplayed} injected faults did not play out: the client got the whole reply, so those turns count as acknowledged)`);
      const faultCheck = await phaseCheck('faults', { contextd: faultContextd, pair: faultPair, ledger: faultLedger, redisOutages });
      emit(`Stored after the faults: ${faultCheck.acknowledged} acknowledged turns in ${faultCheck.conversations} conversations, ${faultCheck.storedTurns} turns in MongoDB.`);
      emit();
      checkTime();
    }

    log('');
    for (const [name, child, path] of [['load', contextd, contextdLog], ['faults', children.find((c) => c !== contextd && (c as ContextdChild).logPath === faultLog), faultLog]] as const) {
      if (child === undefined) continue;
      const levels = { warn: 0, error: 0, fatal: 0 };
      for (const line of readFileSync(path, 'utf8').split('\n')) {
        if (line.includes('"level":40')) levels.warn++;
        if (line.includes('"level":50')) levels.error++;
        if (line.includes('"level":60')) levels.fatal++;
      }
      const alive = child.process.exitCode === null && child.process.signalCode === null;
      judge('all', alive && levels.fatal === 0, `the ${name} contextd still running at the end, no fatal log line (its log: ${levels.warn} warn, ${levels.error} error, ${levels.fatal} fatal lines)`);
      if (keepLogs) log(`  its log: ${path}`);
    }
  } catch (error) {
    if (giveUp.signal.aborted) log(`\nstopped: ${(giveUp.signal.reason as Error).message}`);
    throw error;
  } finally {
    clearTimeout(watchdog);
    await Promise.allSettled(pools.map((pool) => pool.destroy()));
    await Promise.allSettled(children.map((child) => child.stop()));
    await stores.stop();
    if (keepLogs) log(`contextd logs kept in ${runDir}`);
    else await rm(runDir, { recursive: true, force: true });
    log(`\nfinished in ${fmt((performance.now() - startedAt) / 1000, 0)} s, load average ${fmt(loadavg()[0] ?? 0)}`);
    // Whatever ran is reported, also when the bench stopped early.
    log('\n## Verdicts\n');
    for (const { phase, line } of verdicts) log(`${phase.padEnd(6)} ${line}`);
    log('\n## Report (markdown)\n');
    log(report.join('\n'));
  }
}

main().catch((error: unknown) => {
  console.error(error);
  process.exitCode = 1;
});
