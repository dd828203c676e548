// The side-by-side pass on one store: direct, floor proxy, contextd with a
// short and a long stored history (and the stream: true passes, and on
// request a contextd at LOG_LEVEL=warn and the plain undici.request floor),
// measured in interleaved rounds at concurrency 1 and N, reported as ratios
// against the direct path and the floor of the same run.

import { mkdtemp, rm } from 'node:fs/promises';
import { readFileSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { setTimeout as delay } from 'node:timers/promises';
import { request, type Pool } from 'undici';
import { summarizeProfile } from './cpu-profile.js';
import { openPool } from './load.js';
import { interleave, PathRun, type Target } from './measure.js';
import { cpuTimeMs, startContextd, startFloorProxy, startUpstream, type Child, type ContextdChild, type UpstreamOptions } from './processes.js';
import { latencyTable, quantiles, ratioTable, streamingTable, verdict, type PathRow, type RatioLine } from './report.js';
import { DEFAULT_REPLY_TOKENS } from './replies.js';
import { API_KEY, type RequestSpec, type Turn, type Workload } from './workload.js';

export interface SideBySideSettings {
  concurrency: number;
  requests: number;
  requestsC1: number;
  rounds: number;
  warmup: number;
  shortConversations: number;
  shortTurns: number;
  longConversations: number;
  longTurns: number;
  stream: boolean;
  /** The main contextd's LOG_LEVEL: info, its default (a line per request), unless warn is asked for (a flattering extra). */
  logLevel: 'info' | 'warn';
  /** A second contextd at LOG_LEVEL=warn, short path, in the same rounds: what the request log line costs. */
  warnVariant: boolean;
  /** The floor done the plain way (undici.request() and a pipe) as an extra path: the floor must not be the slower. */
  floorVariants: boolean;
  /** Set-up writes the histories into the stores directly (when the store can) instead of sending them through contextd. */
  seedDirectly: boolean;
  /** Every `newEvery`-th measured request starts a new conversation (0: none); direct and floor clients then send no history. */
  newEvery: number;
  upstream: UpstreamOptions;
  profile: boolean;
  /** contextd's rolling summaries on (their background upstream calls then run during the measurement). */
  summaries: boolean;
  /**
   * Requests per path of a paced concurrency-1 pass (0: none): each response is
   * followed by `pauseMs` of idle, so no background work of the previous turn
   * (store writes, flushing) is still running when the next request arrives.
   */
  pacedRequests: number;
  pauseMs: number;
}

export interface ConversationPlan {
  id: string;
  turns: () => Turn[];
}

/** What contextd stores its conversations in, and how the bench gives them their history. */
export interface StoreUnderTest {
  /** For headings and the description, e.g. "the embedded store". */
  title: string;
  /** For figure names, e.g. "two tiers". */
  shortTitle: string;
  /** contextd's `storage:` config section; the embedded store when absent. */
  storage?: Record<string, unknown>;
  /** What the store keeps of a long conversation, for the description. */
  keeps: string;
  /**
   * Gives the conversations their history before measuring. When absent, each
   * turn is sent through contextd itself (it stores them as it would any turn).
   */
  seed?: (plans: readonly ConversationPlan[]) => Promise<void>;
  /** Server processes whose CPU time counts per contextd request (Redis, MongoDB); `servesVariant`: the variant's requests count too. */
  services?: readonly { name: string; pid: number | undefined; servesVariant: boolean }[];
  /**
   * A second contextd on other storage (e.g. Redis alone), with short and long
   * paths of its own measured in the same rounds: what the difference costs.
   */
  variant?: { label: string; storage: Record<string, unknown>; seed: (plans: readonly ConversationPlan[]) => Promise<void> };
  /** A note after each pass, e.g. how many conversations still await the flusher. */
  afterPass?: () => Promise<string>;
  /** Waits until the store's background work is done (see Target.settle), after each slice of the main contextd's paths. */
  settle?: () => Promise<void>;
  /**
   * Cumulative store commands by name, read around each pass: per-request work.
   * Names starting `redis ` are divided by every contextd's requests (the variant's too), the others by the main contextd's.
   */
  commandCounts?: (contextd: Child) => Promise<Map<string, number>>;
}

export interface TargetVerdict {
  name: string;
  value: number | undefined;
  limit: number;
  kind: 'at most' | 'at least';
  verdict: 'PASS' | 'FAIL' | 'n/a';
}

export interface SideBySideResult {
  /** Markdown: description, tables, targets. */
  markdown: string[];
  verdicts: TargetVerdict[];
  /** Console lines: the CPU profile summary, when --profile. */
  profile: string[];
  profileDir: string | undefined;
}

const SETUP_CONCURRENCY = 8;
const log = (text: string): void => console.log(text);

async function sendSetupTurn(pool: Pool, spec: RequestSpec, expected: string): Promise<void> {
  const res = await pool.request({ path: spec.path, method: 'POST', headers: spec.headers, body: spec.body });
  const text = await res.body.text();
  if (res.statusCode !== 200 || !text.includes(JSON.stringify(expected).slice(1, 40))) {
    throw new Error(`set-up turn failed: ${res.statusCode} ${text.slice(0, 300)}`);
  }
}

/**
 * Each plan's turns sent through contextd, as a client creates its conversations:
 * first every conversation's first turn (each a new conversation, a miss in
 * every store), then the rest, one conversation per worker at a time, its turns
 * in order. First turns go first because FerretDB reads a whole collection per
 * query: a first turn costs what MongoDB holds by then.
 */
async function createConversations(contextd: Child, workload: Workload, plans: readonly ConversationPlan[]): Promise<void> {
  const pool = openPool(contextd.url, SETUP_CONCURRENCY);
  const turns = plans.map((plan) => plan.turns());
  const inParallel = async (work: (index: number) => Promise<void>): Promise<void> => {
    let next = 0;
    const worker = async (): Promise<void> => {
      for (let index = next++; index < plans.length; index = next++) await work(index);
    };
    await Promise.all(Array.from({ length: SETUP_CONCURRENCY }, () => worker()));
  };
  await inParallel(async (index) => {
    const first = turns[index]![0];
    if (first !== undefined) await sendSetupTurn(pool, workload.setupTurn(plans[index]!.id, first), first.assistant);
  });
  await inParallel(async (index) => {
    for (const turn of turns[index]!.slice(1)) await sendSetupTurn(pool, workload.setupTurn(plans[index]!.id, turn), turn.assistant);
  });
  await pool.close();
}

async function storedMessageCount(contextd: Child, conversation: string): Promise<number> {
  let count = 0;
  let after = 0;
  for (;;) {
    const res = await request(`${contextd.url}/contextd/v1/conversations/${conversation}/messages?after=${after}&limit=500`, {
      headers: { authorization: `Bearer ${API_KEY}` },
    });
    const page = (await res.body.json()) as { data: unknown[]; has_more: boolean; next_after: number };
    count += page.data.length;
    if (!page.has_more) return count;
    after = page.next_after;
  }
}

function shortPlans(settings: SideBySideSettings, workload: Workload, prefix: string): ConversationPlan[] {
  return Array.from({ length: settings.shortConversations }, (_, n) => ({
    id: `${prefix}-short-${n}`,
    turns: () => workload.bigTurns(n + 1).slice(0, settings.shortTurns),
  }));
}

function longPlans(settings: SideBySideSettings, workload: Workload, prefix: string): ConversationPlan[] {
  const big = Math.min(settings.shortTurns, settings.longTurns);
  return Array.from({ length: settings.longConversations }, (_, n) => ({
    id: `${prefix}-long-${n}`,
    // Older turns are short exchanges; the last ones are the size of a short conversation's, so both windows start budget-full.
    turns: () => [
      ...Array.from({ length: settings.longTurns - big }, (_, t) => workload.smallTurn(n * 100_000 + t)),
      ...workload.bigTurns(10_000 + n).slice(0, big),
    ],
  }));
}

interface ConversationCursor {
  next: (worker: number, concurrency: number) => RequestSpec;
  /** Requests handed out so far, warm-ups included: each stored one more turn. */
  issued: () => number;
}

/**
 * Conversations dealt out so that each belongs to one worker: turns of one
 * conversation never race. Every `workload.options.newEvery`-th request starts
 * a conversation of its own instead (`<newPrefix>-<n>`), its first turn.
 */
function conversationCursor(workload: Workload, ids: readonly string[], stream: boolean, newPrefix: string): ConversationCursor {
  const positions = new Map<string, number>();
  let issued = 0;
  let started = 0;
  return {
    issued: () => issued,
    next: (worker, concurrency) => {
      if (ids.length < concurrency) throw new Error(`${ids.length} conversations cannot serve ${concurrency} workers`);
      if (workload.startsConversation(issued++)) return workload.withMemory(`${newPrefix}-${started++}`, stream);
      const key = `${concurrency}:${worker}`;
      const position = positions.get(key) ?? 0;
      positions.set(key, position + 1);
      const mine = Math.floor((ids.length - worker - 1) / concurrency) + 1;
      return workload.withMemory(ids[worker + concurrency * (position % mine)]!, stream);
    },
  };
}

/** contextd's own per-request log lines (info level) between two byte offsets of its log file. */
function requestLogLines(path: string, fromByte: number, toByte: number): { addedMs: number[]; upstreamMs: number[]; durationMs: number[] } {
  const text = readFileSync(path).subarray(fromByte, toByte).toString('utf8');
  const out = { addedMs: [] as number[], upstreamMs: [] as number[], durationMs: [] as number[] };
  for (const line of text.split('\n')) {
    if (!line.startsWith('{')) continue;
    const entry = JSON.parse(line) as { msg?: string; kind?: string; addedMs?: number; upstreamMs?: number; durationMs?: number };
    if (entry.msg !== 'request' || entry.kind !== 'memory') continue;
    if (typeof entry.addedMs === 'number') out.addedMs.push(entry.addedMs);
    if (typeof entry.upstreamMs === 'number') out.upstreamMs.push(entry.upstreamMs);
    if (typeof entry.durationMs === 'number') out.durationMs.push(entry.durationMs);
  }
  return out;
}

interface ServiceLoad {
  concurrency: number;
  contextdRequests: number;
  variantRequests: number;
  /** CPU ms per measured contextd request, per service, over the measured rounds (the warm-up excluded). */
  cpuMsPerRequest: number[];
  /** Store commands per measured contextd request, e.g. "redis evalsha 4.00". */
  commands: string;
  note: string;
}

/** Per-request differences of two command count snapshots, in the order given; µs counters as whole µs. */
function commandsPerRequest(before: Map<string, number>, after: Map<string, number>, requests: (name: string) => number): string {
  return [...after]
    .map(([name, count]) => [name, (count - (before.get(name) ?? 0)) / requests(name)] as const)
    .filter(([, perRequest]) => perRequest >= 0.005)
    .map(([name, perRequest]) => `${name} ${perRequest.toFixed(name.endsWith('µs') ? 0 : 2)}`)
    .join(', ');
}

export async function sideBySide(settings: SideBySideSettings, store: StoreUnderTest, workload: Workload): Promise<SideBySideResult> {
  const loadAtStart = loadavg()[0] ?? 0;
  const runDir = await mkdtemp(join(tmpdir(), 'contextd-bench-run-'));
  const children: Child[] = [];
  const n = settings.concurrency;
  const services = store.services ?? [];
  try {
    const upstream = await startUpstream(settings.upstream);
    children.push(upstream);
    const floor = await startFloorProxy(upstream.url, 'stream');
    children.push(floor);
    const plainFloor = settings.floorVariants ? await startFloorProxy(upstream.url, 'request') : undefined;
    if (plainFloor !== undefined) children.push(plainFloor);
    const profileDir = join(runDir, 'profile');
    const storage = { summaries: settings.summaries, ...(store.storage === undefined ? {} : { storage: store.storage }) };
    const logPath = join(runDir, 'contextd.log');
    const contextd: ContextdChild = await startContextd({
      upstreamUrl: upstream.baseUrl,
      logLevel: settings.logLevel,
      logPath,
      nodeArgs: settings.profile ? ['--cpu-prof', `--cpu-prof-dir=${profileDir}`] : [],
      ...storage,
    });
    children.push(contextd);
    const variant = store.variant;
    const variantContextd =
      variant === undefined
        ? undefined
        : await startContextd({ upstreamUrl: upstream.baseUrl, logLevel: settings.logLevel, logPath: join(runDir, 'contextd-variant.log'), summaries: settings.summaries, storage: variant.storage });
    if (variantContextd !== undefined) children.push(variantContextd);
    const quiet = settings.warnVariant ? await startContextd({ upstreamUrl: upstream.baseUrl, logLevel: 'warn', logPath: join(runDir, 'contextd-warn.log'), ...storage }) : undefined;
    if (quiet !== undefined) children.push(quiet);

    const prefix = `bench${Date.now().toString(36)}`;
    const shorts = shortPlans(settings, workload, prefix);
    const longs = longPlans(settings, workload, prefix);
    const quietShorts = shortPlans(settings, workload, `${prefix}w`);
    const seedDirectly = settings.seedDirectly && store.seed !== undefined;
    const prepare = async (target: Child, plans: readonly ConversationPlan[], seed: ((plans: readonly ConversationPlan[]) => Promise<void>) | undefined): Promise<number> => {
      const startedAt = performance.now();
      await (seedDirectly && seed !== undefined ? seed(plans) : createConversations(target, workload, plans));
      return (performance.now() - startedAt) / 1000;
    };
    const shortSetupS = await prepare(contextd, shorts, store.seed);
    const longSetupS = await prepare(contextd, longs, store.seed);
    if (quiet !== undefined) await prepare(quiet, quietShorts, store.seed);
    const variantShorts = shortPlans(settings, workload, `${prefix}v`);
    const variantLongs = longPlans(settings, workload, `${prefix}v`);
    if (variant !== undefined && variantContextd !== undefined) await prepare(variantContextd, [...variantShorts, ...variantLongs], variant.seed);
    // What set-up left to the flusher is done before anything is measured.
    await store.settle?.().catch((error: unknown) => {
      throw new Error(`after set-up: ${error instanceof Error ? error.message : String(error)} (on FerretDB with contextd's 3 s MongoDB timeout the flusher falls behind when many conversations start at once: fewer --redis-short-conversations, or --mongodb-timeout 10s)`);
    });
    const longStored = await storedMessageCount(contextd, longs[0]!.id);
    log(
      `set-up (not measured${seedDirectly ? ', seeded into the stores directly (--seed-directly)' : ', turns sent through contextd'}): ${shorts.length} short conversations of ${settings.shortTurns} turns in ${shortSetupS.toFixed(1)} s, ` +
        `${longs.length} long conversations of ${settings.longTurns} turns in ${longSetupS.toFixed(1)} s (${longStored} messages stored in the first).`,
    );

    const settle = store.settle === undefined ? {} : { settle: store.settle };
    const shortCursor = conversationCursor(workload, shorts.map((p) => p.id), false, `${prefix}-new-s`);
    const longCursor = conversationCursor(workload, longs.map((p) => p.id), false, `${prefix}-new-l`);
    const quietCursor = conversationCursor(workload, quietShorts.map((p) => p.id), false, `${prefix}w-new-s`);
    const names = {
      direct: 'direct',
      floor: 'floor (undici pass-through)',
      plainFloor: 'floor done plainly (undici.request + pipe)',
      short: `contextd short (${settings.shortTurns} turns)`,
      long: `contextd long (${settings.longTurns} turns)`,
      quiet: 'contextd short, LOG_LEVEL=warn',
      variantShort: `contextd short, ${variant?.label ?? ''}`,
      variantLong: `contextd long, ${variant?.label ?? ''}`,
    };
    const targets: Target[] = [
      { name: names.direct, child: upstream, next: () => workload.direct(false), isContextd: false, stream: false },
      { name: names.floor, child: floor, proxy: floor, next: () => workload.direct(false), isContextd: false, stream: false },
      { name: names.short, child: contextd, proxy: contextd, next: shortCursor.next, isContextd: true, stream: false, ...settle },
      { name: names.long, child: contextd, proxy: contextd, next: longCursor.next, isContextd: true, stream: false, ...settle },
    ];
    if (variantContextd !== undefined) {
      const shortNext = conversationCursor(workload, variantShorts.map((p) => p.id), false, `${prefix}v-new-s`).next;
      const longNext = conversationCursor(workload, variantLongs.map((p) => p.id), false, `${prefix}v-new-l`).next;
      targets.push(
        { name: names.variantShort, child: variantContextd, proxy: variantContextd, next: shortNext, isContextd: true, stream: false },
        { name: names.variantLong, child: variantContextd, proxy: variantContextd, next: longNext, isContextd: true, stream: false },
      );
    }
    if (quiet !== undefined) targets.push({ name: names.quiet, child: quiet, proxy: quiet, next: quietCursor.next, isContextd: true, stream: false, ...settle });
    if (plainFloor !== undefined) targets.push({ name: names.plainFloor, child: plainFloor, proxy: plainFloor, next: () => workload.direct(false), isContextd: false, stream: false });

    const serviceLoads: ServiceLoad[] = [];
    /** Every path at one concurrency: warm each, then interleaved rounds. */
    const pass = async (
      passTargets: readonly Target[],
      concurrency: number,
      requests: number,
      { afterWarmup, warmup = settings.warmup, pauseMs = 0 }: { afterWarmup?: () => Promise<void>; warmup?: number; pauseMs?: number } = {},
    ): Promise<PathRun[]> => {
      const runs: PathRun[] = [];
      for (const target of passTargets) runs.push(await PathRun.open(target, concurrency, warmup, pauseMs));
      await afterWarmup?.();
      const cpuBefore = services.map((service) => cpuTimeMs(service.pid));
      const commandsBefore = await store.commandCounts?.(contextd);
      await interleave(runs, requests, settings.rounds, upstream);
      await Promise.all(runs.map((run) => run.close()));
      for (const run of runs) {
        const row = run.row();
        log(`  ${run.target.name.padEnd(30)} c=${concurrency}${pauseMs > 0 ? ` paced` : ''}  p50 ${row.p50Ms.toFixed(3)} ms  p99 ${row.p99Ms.toFixed(3)} ms  ${row.requestsPerSecond.toFixed(0)} req/s`);
      }
      if (services.length > 0 && !passTargets.some((target) => target.stream) && pauseMs === 0) {
        const requestsOf = (child: Child | undefined): number => runs.filter((run) => run.target.child === child).reduce((sum, run) => sum + run.row().requests, 0);
        const contextdRequests = requestsOf(contextd);
        const variantRequests = requestsOf(variantContextd);
        const cpuAfter = services.map((service) => cpuTimeMs(service.pid));
        const commandsAfter = await store.commandCounts?.(contextd);
        const commands =
          commandsBefore === undefined || commandsAfter === undefined
            ? ''
            : commandsPerRequest(commandsBefore, commandsAfter, (name) => contextdRequests + (name.startsWith('redis ') ? variantRequests : 0));
        const cpuMsPerRequest = services.map(
          (service, i) => ((cpuAfter[i] ?? Number.NaN) - (cpuBefore[i] ?? Number.NaN)) / (contextdRequests + (service.servesVariant ? variantRequests : 0)),
        );
        const settledMs = runs.reduce((sum, run) => sum + run.settleMs, 0);
        const note = `${(await store.afterPass?.()) ?? ''}${settledMs > 0 ? `; ${settledMs.toFixed(0)} ms waited in all for it after slices (counted in "flushing included")` : ''}`;
        serviceLoads.push({ concurrency, contextdRequests, variantRequests, cpuMsPerRequest, commands, note });
        log(`  ${services.map((service, i) => `${service.name} CPU ${cpuMsPerRequest[i]!.toFixed(3)} ms`).join(', ')} per contextd request${note === '' ? '' : `; ${note}`}`);
        if (commands !== '') log(`  store commands per contextd request: ${commands}`);
      }
      return runs;
    };

    log(`\nmeasuring on ${store.title} (contextd at LOG_LEVEL=${settings.logLevel}${quiet === undefined ? '' : ', except the path marked warn'}):`);
    // A request's log line is written just after its response: wait a moment before taking the file's size.
    let measuredFromByte = 0;
    const c1 = await pass(targets, 1, settings.requestsC1, {
      afterWarmup: async () => {
        await delay(200);
        measuredFromByte = statSync(logPath).size;
      },
    });
    await delay(200);
    const infoLog = settings.logLevel === 'info' ? requestLogLines(logPath, measuredFromByte, statSync(logPath).size) : undefined;
    const cn = await pass(targets, n, settings.requests);

    let pacedRuns: PathRun[] = [];
    if (settings.pacedRequests > 0) {
      log(`\nmeasuring at concurrency 1, ${settings.pauseMs} ms idle after each response:`);
      pacedRuns = await pass(targets.slice(0, 4), 1, settings.pacedRequests, { warmup: 50, pauseMs: settings.pauseMs });
    }

    let streamRuns: PathRun[] = [];
    let streamCursor: ConversationCursor | undefined;
    if (settings.stream) {
      streamCursor = conversationCursor(workload, shorts.map((p) => p.id), true, `${prefix}-new-stream`);
      const streamTargets: Target[] = [
        { ...targets[0]!, next: () => workload.direct(true), stream: true },
        { ...targets[1]!, next: () => workload.direct(true), stream: true },
        { ...targets[2]!, next: streamCursor.next, stream: true },
      ];
      log('\nmeasuring stream: true:');
      streamRuns = [...(await pass(streamTargets, 1, Math.ceil(settings.requestsC1 / 2))), ...(await pass(streamTargets, n, Math.ceil(settings.requests / 2)))];
    }

    const profileRuns = [...c1, ...cn].filter((run) => run.target.child === contextd);
    await Promise.all(children.map((child) => child.stop()));
    children.length = 0;

    // ---- report ----
    // Figures are computed per pass: 0 is concurrency 1, 1 concurrency N, 2 the paced pass.
    const passes = [c1, cn, pacedRuns];
    const columns = [0, 1];
    const runOf = (name: string, column: number): PathRun | undefined => passes[column]?.find((run) => run.target.name === name);
    const rowOf = new Map<PathRun, PathRow>([...c1, ...cn, ...pacedRuns, ...streamRuns].map((run) => [run, run.row()]));
    const row = (name: string, column: number): PathRow | undefined => {
      const run = runOf(name, column);
      return run === undefined ? undefined : rowOf.get(run);
    };
    for (const r of [...rowOf.values()].filter((r) => r.path === names.direct || r.path === names.floor || r.path === names.plainFloor)) {
      const every = settings.newEvery;
      r.promptMessages = every > 0 ? ((settings.shortTurns * 2 + 2) * (every - 1) + 2) / every : settings.shortTurns * 2 + 2;
      r.promptTokens = workload.directMeanPromptTokens;
    }

    // A figure for the whole pass, and the same figure for each round, whose range is the spread.
    type Field = 'p50Ms' | 'requestsPerSecond' | 'sustainedRequestsPerSecond' | 'proxyCpuMsPerRequest' | 'upstreamCpuMsPerRequest';
    type Figure = (get: (name: string, field: Field) => number) => number;
    const value = (figure: Figure, c: number): number => figure((name, field) => row(name, c)?.[field] ?? Number.NaN);
    const spread = (figure: Figure, c: number): { min: number; median: number; max: number } => {
      const perRound = Array.from({ length: settings.rounds }, (_, r) =>
        figure((name, field) => {
          const slice = runOf(name, c)?.slices[r];
          return slice === undefined ? Number.NaN : (slice[field] ?? Number.NaN);
        }),
      ).filter(Number.isFinite);
      const { p50 } = quantiles(perRound);
      return { min: Math.min(...perRound), median: p50, max: Math.max(...perRound) };
    };
    const p50 = (name: string): Figure => (get) => get(name, 'p50Ms');
    const added = (name: string): Figure => (get) => get(name, 'p50Ms') - get(names.direct, 'p50Ms');
    const over = (a: Figure, b: Figure): Figure => (get) => a(get) / b(get);
    const field = (name: string, f: Field): Figure => (get) => get(name, f);
    // Throughput counts the time the flusher needed after each slice (see Target.settle): what can be sustained.
    const rps = (name: string): Figure => field(name, 'sustainedRequestsPerSecond');
    const cpu = (name: string): Figure => field(name, 'proxyCpuMsPerRequest');
    const upstreamCpu = (name: string): Figure => field(name, 'upstreamCpuMsPerRequest');
    const figures: { name: string; figure: Figure; format: 'ms' | 'ratio'; target?: { limit: number; kind: 'at most' | 'at least'; judgedAtColumn: number } }[] = [
      { name: 'floor added p50 (floor − direct), ms', figure: added(names.floor), format: 'ms' },
      { name: 'contextd short added p50 (short − direct), ms', figure: added(names.short), format: 'ms' },
      { name: 'contextd long added p50 (long − direct), ms', figure: added(names.long), format: 'ms' },
      { name: '**short added / floor added**', figure: over(added(names.short), added(names.floor)), format: 'ratio', target: { limit: 2, kind: 'at most', judgedAtColumn: 0 } },
      { name: '**long added / floor added**', figure: over(added(names.long), added(names.floor)), format: 'ratio', target: { limit: 2, kind: 'at most', judgedAtColumn: 0 } },
      { name: '**long p50 / short p50**', figure: over(p50(names.long), p50(names.short)), format: 'ratio', target: { limit: 1.1, kind: 'at most', judgedAtColumn: 0 } },
      { name: 'long added / short added', figure: over(added(names.long), added(names.short)), format: 'ratio' },
      { name: '**short req/s / floor req/s**', figure: over(rps(names.short), rps(names.floor)), format: 'ratio', target: { limit: 0.5, kind: 'at least', judgedAtColumn: 1 } },
      { name: '**long req/s / floor req/s**', figure: over(rps(names.long), rps(names.floor)), format: 'ratio', target: { limit: 0.5, kind: 'at least', judgedAtColumn: 1 } },
      { name: 'floor req/s / direct req/s', figure: over(rps(names.floor), rps(names.direct)), format: 'ratio' },
      { name: 'CPU per request: short / floor', figure: over(cpu(names.short), cpu(names.floor)), format: 'ratio' },
      { name: 'CPU per request: long / floor', figure: over(cpu(names.long), cpu(names.floor)), format: 'ratio' },
      { name: 'upstream CPU per request: short / direct', figure: over(upstreamCpu(names.short), upstreamCpu(names.direct)), format: 'ratio' },
      { name: 'upstream CPU per request: long / direct', figure: over(upstreamCpu(names.long), upstreamCpu(names.direct)), format: 'ratio' },
    ];
    if (store.settle !== undefined) {
      const repliesOnly = (name: string): Figure => field(name, 'requestsPerSecond');
      figures.push(
        { name: 'short req/s, replies only (flushing left out) / floor req/s', figure: over(repliesOnly(names.short), rps(names.floor)), format: 'ratio' },
        { name: 'long req/s, replies only (flushing left out) / floor req/s', figure: over(repliesOnly(names.long), rps(names.floor)), format: 'ratio' },
      );
    }
    if (plainFloor !== undefined) {
      figures.push(
        { name: 'floor done plainly: added p50, ms', figure: added(names.plainFloor), format: 'ms' },
        { name: 'floor done plainly / floor: added p50', figure: over(added(names.plainFloor), added(names.floor)), format: 'ratio' },
        { name: 'floor done plainly / floor: CPU per request', figure: over(cpu(names.plainFloor), cpu(names.floor)), format: 'ratio' },
      );
    }
    if (variant !== undefined) {
      const label = variant.label;
      figures.push(
        { name: `${label}: short added p50, ms`, figure: added(names.variantShort), format: 'ms' },
        { name: `${label}: long added p50, ms`, figure: added(names.variantLong), format: 'ms' },
        { name: `${label}: short added / floor added`, figure: over(added(names.variantShort), added(names.floor)), format: 'ratio' },
        { name: `${label}: long added / floor added`, figure: over(added(names.variantLong), added(names.floor)), format: 'ratio' },
        { name: `${label}: long p50 / short p50`, figure: over(p50(names.variantLong), p50(names.variantShort)), format: 'ratio' },
        { name: `${label}: short req/s / floor req/s`, figure: over(rps(names.variantShort), rps(names.floor)), format: 'ratio' },
        { name: `${label}: long req/s / floor req/s`, figure: over(rps(names.variantLong), rps(names.floor)), format: 'ratio' },
        { name: `${label}: CPU per request, short / floor`, figure: over(cpu(names.variantShort), cpu(names.floor)), format: 'ratio' },
        { name: `short added p50: ${store.shortTitle} − ${label}, ms`, figure: (get) => get(names.short, 'p50Ms') - get(names.variantShort, 'p50Ms'), format: 'ms' },
        { name: `long added p50: ${store.shortTitle} − ${label}, ms`, figure: (get) => get(names.long, 'p50Ms') - get(names.variantLong, 'p50Ms'), format: 'ms' },
      );
    }
    if (quiet !== undefined) {
      figures.push(
        { name: 'short at LOG_LEVEL=warn (no request log line): added p50, ms', figure: added(names.quiet), format: 'ms' },
        { name: 'short at warn: added / floor added', figure: over(added(names.quiet), added(names.floor)), format: 'ratio' },
        { name: `request log line: ${settings.logLevel} p50 − warn p50, ms`, figure: (get) => get(names.short, 'p50Ms') - get(names.quiet, 'p50Ms'), format: 'ms' },
        { name: `request log line: ${settings.logLevel} CPU − warn CPU per request, ms`, figure: (get) => get(names.short, 'proxyCpuMsPerRequest') - get(names.quiet, 'proxyCpuMsPerRequest'), format: 'ms' },
        { name: 'short at warn: req/s / floor req/s', figure: over(rps(names.quiet), rps(names.floor)), format: 'ratio' },
      );
    }
    const lines: RatioLine[] = figures.map((f) => ({
      name: f.name,
      format: f.format,
      values: columns.map((c) => value(f.figure, c)),
      spreads: columns.map((c) => spread(f.figure, c)),
      ...(f.target === undefined ? {} : { target: f.target }),
    }));

    const shortEnd = settings.shortTurns + Math.round((shortCursor.issued() + (streamCursor?.issued() ?? 0)) / shorts.length);
    // (issued() counts the new conversations' first turns too: "about".)
    const longEnd = settings.longTurns + Math.round(longCursor.issued() / longs.length);
    const markdown: string[] = [];
    const emit = (text: string): void => {
      markdown.push(text);
    };
    emit(
      `${cpus().length} CPUs, node ${process.version}, load average ${loadAtStart.toFixed(2)} at start and ${(loadavg()[0] ?? 0).toFixed(2)} at the end. ` +
        `Fake upstream, floor proxy and contextd each in their own process, load generated by the parent; paths measured in ${settings.rounds} interleaved rounds ` +
        `(${settings.warmup} warm-up requests per path, then ${settings.requestsC1} at concurrency 1 and ${settings.requests} at concurrency ${n}). ` +
        `The fake upstream answers every request with ${settings.upstream.replyTokens ?? DEFAULT_REPLY_TOKENS} tokens of prose (streams: one token per SSE event, ` +
        `${(settings.upstream.eventsPerWrite ?? 1) === 1 ? 'each event a write of its own' : `${settings.upstream.eventsPerWrite} events per write`}). ` +
        `contextd on ${store.title} at LOG_LEVEL=${settings.logLevel}${settings.logLevel === 'info' ? " (its default: a log line per request)" : ' (flattering: no request log line)'}${quiet === undefined ? '' : ', one extra path at warn'}, ` +
        `rolling summaries ${settings.summaries ? 'on' : 'off (summary.enabled: false)'}${store.storage === undefined ? '' : ', store timeouts as configured below'}. ` +
        `Each measured contextd request appends a turn to one of a fixed set of conversations, each owned by one worker: ` +
        `${shorts.length} short ones (${settings.shortTurns} turns at start, about ${shortEnd} at the end) and ${longs.length} long ones ` +
        `(${settings.longTurns} turns at start, about ${longEnd} at the end, of which ${store.keeps})` +
        (settings.newEvery > 0 ? `; every ${settings.newEvery}th request starts a new conversation instead (its first turn), and every ${settings.newEvery}th direct or floor request sends no history. ` : '. ') +
        (seedDirectly
          ? 'Their starting history was written into the stores directly, as contextd stores it (--seed-directly; not measured). '
          : 'Their starting history was sent through contextd (not measured), first turns first. ') +
        (variant === undefined
          ? ''
          : `In the same rounds, short and long paths on a second contextd with ${variant.label} (same servers, a database of its own, conversations created alike). `) +
        (store.settle === undefined
          ? ''
          : `After each slice of ${store.title}'s paths the bench waits until the flusher has moved every turn to MongoDB, so that work is charged to that slice, not the next path's; ` +
            `req/s counts that wait (what can be sustained), "replies only" leaves it out. `) +
        `"upstream msgs/tokens" is what the upstream was sent (contextd's window, or the client's own history); in brackets, the same figure computed per round: lowest–highest and median.\n`,
    );
    emit(latencyTable([...c1, ...cn].map((run) => rowOf.get(run)!)));
    emit('');
    emit(ratioTable(['concurrency 1', `concurrency ${n}`], lines));
    const judged = lines.filter((line) => line.target !== undefined);
    const verdicts: TargetVerdict[] = judged.map((line) => {
      const target = line.target!;
      const judgedValue = line.values[target.judgedAtColumn];
      return { name: line.name.replace(/\*/g, ''), value: judgedValue, limit: target.limit, kind: target.kind, verdict: verdict(judgedValue, target) };
    });
    emit(`\n**Targets** (latency at concurrency 1, throughput at concurrency ${n}): ${verdicts.map((v) => `${v.name}: ${v.verdict}`).join('; ')}`);
    if (pacedRuns.length > 0) {
      // The latency figures only, without targets: this pass explains the concurrency-1 figures, it does not replace them.
      const pacedLines: RatioLine[] = figures.slice(0, 7).map((f) => ({ name: f.name.replace(/\*/g, ''), format: f.format, values: [value(f.figure, 2)], spreads: [spread(f.figure, 2)] }));
      emit('');
      emit(
        `Paced, concurrency 1: ${settings.pacedRequests} requests per path, each response followed by ${settings.pauseMs} ms of idle, so the previous turn's ` +
          `background work (its store writes, the flush to MongoDB) is done before the next request arrives. Request path alone; compare with concurrency 1 above.\n`,
      );
      emit(latencyTable(pacedRuns.map((run) => ({ ...rowOf.get(run)!, path: `${run.target.name}, ${settings.pauseMs} ms apart` }))));
      emit('');
      emit(ratioTable([`concurrency 1, ${settings.pauseMs} ms apart`], pacedLines));
    }
    if (serviceLoads.length > 0) {
      emit('');
      if (variant !== undefined) {
        emit(
          `Per contextd request: ${services.map((service) => `${service.name} ${service.servesVariant ? `over every contextd's requests (${variant.label} included)` : `over ${store.shortTitle}' requests`}`).join(', ')}; ` +
            `redis commands over every contextd's requests, the others over ${store.shortTitle}'.\n`,
        );
      }
      emit(
        [
          `| concurrency | contextd requests measured | ${services.map((service) => `${service.name} CPU ms per contextd request`).join(' | ')} | store commands per contextd request (µs: the server's own time) | at the end of the pass |`,
          `| ---: | ---: | ${services.map(() => '---:').join(' | ')} | --- | --- |`,
          ...serviceLoads.map(
            (load) => `| ${load.concurrency} | ${load.contextdRequests}${variant === undefined ? '' : ` + ${load.variantRequests} (${variant.label})`} | ${load.cpuMsPerRequest.map((v) => (Number.isFinite(v) ? v.toFixed(3) : '–')).join(' | ')} | ${load.commands} | ${load.note} |`,
          ),
        ].join('\n'),
      );
    }
    if (streamRuns.length > 0) {
      emit('');
      emit(streamingTable(streamRuns.map((run) => rowOf.get(run)!), (c) => streamRuns.map((run) => rowOf.get(run)!).find((r) => r.path === names.direct && r.concurrency === c)));
    }
    if (infoLog !== undefined) {
      const [a, u, d] = [quantiles(infoLog.addedMs), quantiles(infoLog.upstreamMs), quantiles(infoLog.durationMs)];
      emit(
        `\ncontextd's own request log (the info contextd, measured concurrency-1 requests only, ${infoLog.addedMs.length} of them): ` +
          `addedMs (request in → sent upstream) p50 ${a.p50} / p99 ${a.p99}; upstreamMs (sent → upstream response head) p50 ${u.p50} / p99 ${u.p99}; ` +
          `durationMs (whole request, relay and reply tee included) p50 ${d.p50} / p99 ${d.p99}.`,
      );
    }

    const profile: string[] = [];
    if (settings.profile) {
      const file = readdirSync(profileDir).find((name) => name.endsWith('.cpuprofile'));
      if (file === undefined) throw new Error(`no .cpuprofile in ${profileDir}`);
      const pct = (share: number): string => `${(share * 100).toFixed(1)}%`;
      const phases = {
        short: profileRuns.filter((run) => run.target.name === names.short).flatMap((run) => run.windows),
        long: profileRuns.filter((run) => run.target.name === names.long).flatMap((run) => run.windows),
      };
      // Kept beside the profile, so that it can be summarised again (or opened in DevTools) for those windows.
      writeFileSync(join(profileDir, 'measured-windows.json'), JSON.stringify(phases));
      for (const [label, windows] of Object.entries(phases)) {
        const summary = summarizeProfile(join(profileDir, file), windows);
        profile.push(`\n## contextd CPU profile on ${store.title}, ${label} path, measured slices only (${summary.sampledMs.toFixed(0)} ms of busy CPU; figures above taken with the profiler on)\n`);
        profile.push('by stage (inclusive, overlapping):\n' + summary.byStage.map((entry) => `  ${pct(entry.share).padStart(6)}  ${entry.label}`).join('\n'));
        profile.push('\nby area:\n' + summary.byArea.map((entry) => `  ${pct(entry.share).padStart(6)}  ${entry.area}`).join('\n'));
        profile.push('\nself time:\n' + summary.bySelf.map((entry) => `  ${pct(entry.share).padStart(6)}  ${entry.frame}`).join('\n'));
        profile.push('\ninclusive time:\n' + summary.byInclusive.map((entry) => `  ${pct(entry.share).padStart(6)}  ${entry.frame}`).join('\n'));
      }
    }
    return { markdown, verdicts, profile, profileDir: settings.profile ? runDir : undefined };
  } finally {
    await Promise.all(children.map((child) => child.stop()));
    if (!settings.profile) await rm(runDir, { recursive: true, force: true });
  }
}
