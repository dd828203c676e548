// The side-by-side pass on one store: direct, floor proxy, contextd with a
// short and a long stored history (and, on the embedded store, contextd at
// LOG_LEVEL=info and the stream: true passes), measured in interleaved rounds
// at concurrency 1 and N, reported as ratios against the direct path and the
// floor of the same run.

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
import { cpuTimeMs, startContextd, startFloorProxy, startUpstream, type Child, type ContextdChild } from './processes.js';
import { latencyTable, quantiles, ratioTable, streamingTable, verdict, type PathRow, type RatioLine } from './report.js';
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
  info: boolean;
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

/** Each plan's turns sent through contextd, one conversation per worker at a time, its turns in order. */
async function createConversations(contextd: Child, workload: Workload, plans: readonly ConversationPlan[]): Promise<void> {
  const pool = openPool(contextd.url, SETUP_CONCURRENCY);
  let next = 0;
  const worker = async (): Promise<void> => {
    for (let plan = plans[next++]; plan !== undefined; plan = plans[next++]) {
      for (const turn of plan.turns()) await sendSetupTurn(pool, workload.setupTurn(plan.id, turn), turn.assistant);
    }
  };
  await Promise.all(Array.from({ length: SETUP_CONCURRENCY }, () => worker()));
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

/** Conversations dealt out so that each belongs to one worker: turns of one conversation never race. */
function conversationCursor(workload: Workload, ids: readonly string[], stream: boolean): ConversationCursor {
  const positions = new Map<string, number>();
  let issued = 0;
  return {
    issued: () => issued,
    next: (worker, concurrency) => {
      if (ids.length < concurrency) throw new Error(`${ids.length} conversations cannot serve ${concurrency} workers`);
      const key = `${concurrency}:${worker}`;
      const position = positions.get(key) ?? 0;
      positions.set(key, position + 1);
      issued += 1;
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
    const upstream = await startUpstream();
    children.push(upstream);
    const floor = await startFloorProxy(upstream.url);
    children.push(floor);
    const profileDir = join(runDir, 'profile');
    const storage = { summaries: settings.summaries, ...(store.storage === undefined ? {} : { storage: store.storage }) };
    const contextd: ContextdChild = await startContextd({
      upstreamUrl: upstream.baseUrl,
      logLevel: 'warn',
      logPath: join(runDir, 'contextd-warn.log'),
      nodeArgs: settings.profile ? ['--cpu-prof', `--cpu-prof-dir=${profileDir}`] : [],
      ...storage,
    });
    children.push(contextd);
    const infoLogPath = join(runDir, 'contextd-info.log');
    const variant = store.variant;
    const variantContextd =
      variant === undefined
        ? undefined
        : await startContextd({ upstreamUrl: upstream.baseUrl, logLevel: 'warn', logPath: join(runDir, 'contextd-variant.log'), summaries: settings.summaries, storage: variant.storage });
    if (variantContextd !== undefined) children.push(variantContextd);
    const verbose = settings.info ? await startContextd({ upstreamUrl: upstream.baseUrl, logLevel: 'info', logPath: infoLogPath, ...storage }) : undefined;
    if (verbose !== undefined) children.push(verbose);

    const prefix = `bench${Date.now().toString(36)}`;
    const shorts = shortPlans(settings, workload, prefix);
    const longs = longPlans(settings, workload, prefix);
    const infoShorts = shortPlans(settings, workload, `${prefix}i`);
    const prepare = async (target: Child, plans: readonly ConversationPlan[]): Promise<number> => {
      const startedAt = performance.now();
      await (store.seed === undefined ? createConversations(target, workload, plans) : store.seed(plans));
      return (performance.now() - startedAt) / 1000;
    };
    const shortSetupS = await prepare(contextd, shorts);
    const longSetupS = await prepare(contextd, longs);
    if (verbose !== undefined) await prepare(verbose, infoShorts);
    const variantShorts = shortPlans(settings, workload, `${prefix}v`);
    const variantLongs = longPlans(settings, workload, `${prefix}v`);
    if (variant !== undefined) await variant.seed([...variantShorts, ...variantLongs]);
    const longStored = await storedMessageCount(contextd, longs[0]!.id);
    log(
      `set-up (not measured${store.seed === undefined ? ', turns sent through contextd' : ', seeded into the stores directly'}): ${shorts.length} short conversations of ${settings.shortTurns} turns in ${shortSetupS.toFixed(1)} s, ` +
        `${longs.length} long conversations of ${settings.longTurns} turns in ${longSetupS.toFixed(1)} s (${longStored} messages stored in the first).`,
    );

    const settle = store.settle === undefined ? {} : { settle: store.settle };
    const shortCursor = conversationCursor(workload, shorts.map((p) => p.id), false);
    const longCursor = conversationCursor(workload, longs.map((p) => p.id), false);
    const infoCursor = conversationCursor(workload, infoShorts.map((p) => p.id), false);
    const names = {
      direct: 'direct',
      floor: 'floor (undici pass-through)',
      short: `contextd short (${settings.shortTurns} turns)`,
      long: `contextd long (${settings.longTurns} turns)`,
      info: 'contextd short, LOG_LEVEL=info',
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
      const shortNext = conversationCursor(workload, variantShorts.map((p) => p.id), false).next;
      const longNext = conversationCursor(workload, variantLongs.map((p) => p.id), false).next;
      targets.push(
        { name: names.variantShort, child: variantContextd, proxy: variantContextd, next: shortNext, isContextd: true, stream: false },
        { name: names.variantLong, child: variantContextd, proxy: variantContextd, next: longNext, isContextd: true, stream: false },
      );
    }
    if (verbose !== undefined) targets.push({ name: names.info, child: verbose, proxy: verbose, next: infoCursor.next, isContextd: true, stream: false });

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

    log(`\nmeasuring on ${store.title} (contextd at LOG_LEVEL=warn: no per-request log line${verbose === undefined ? '' : ', except the path marked info'}):`);
    // A request's log line is written just after its response: wait a moment before taking the file's size.
    let measuredFromByte = 0;
    const c1 = await pass(targets, 1, settings.requestsC1, {
      afterWarmup: async () => {
        await delay(200);
        if (verbose !== undefined) measuredFromByte = statSync(infoLogPath).size;
      },
    });
    await delay(200);
    const infoLog = verbose === undefined ? undefined : requestLogLines(infoLogPath, measuredFromByte, statSync(infoLogPath).size);
    const cn = await pass(targets, n, settings.requests);

    let pacedRuns: PathRun[] = [];
    if (settings.pacedRequests > 0) {
      log(`\nmeasuring at concurrency 1, ${settings.pauseMs} ms idle after each response:`);
      pacedRuns = await pass(targets.slice(0, 4), 1, settings.pacedRequests, { warmup: 50, pauseMs: settings.pauseMs });
    }

    let streamRuns: PathRun[] = [];
    let streamCursor: ConversationCursor | undefined;
    if (settings.stream) {
      streamCursor = conversationCursor(workload, shorts.map((p) => p.id), true);
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
    for (const r of [...rowOf.values()].filter((r) => r.path === names.direct || r.path === names.floor)) {
      r.promptMessages = settings.shortTurns * 2 + 2;
      r.promptTokens = workload.directPromptTokens;
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
    const rps = (name: string): Figure => field(name, 'requestsPerSecond');
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
      const sustained = (name: string): Figure => field(name, 'sustainedRequestsPerSecond');
      figures.push(
        { name: 'short req/s, flushing included / floor req/s', figure: over(sustained(names.short), rps(names.floor)), format: 'ratio' },
        { name: 'long req/s, flushing included / floor req/s', figure: over(sustained(names.long), rps(names.floor)), format: 'ratio' },
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
    if (verbose !== undefined) {
      figures.push(
        { name: 'short at LOG_LEVEL=info: added p50, ms', figure: added(names.info), format: 'ms' },
        { name: 'short at info: added / floor added', figure: over(added(names.info), added(names.floor)), format: 'ratio' },
        { name: 'request log line: info p50 − warn p50, ms', figure: (get) => get(names.info, 'p50Ms') - get(names.short, 'p50Ms'), format: 'ms' },
        { name: 'request log line: info CPU − warn CPU per request, ms', figure: (get) => get(names.info, 'proxyCpuMsPerRequest') - get(names.short, 'proxyCpuMsPerRequest'), format: 'ms' },
        { name: 'short at info: req/s / floor req/s', figure: over(rps(names.info), rps(names.floor)), format: 'ratio' },
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
    const longEnd = settings.longTurns + Math.round(longCursor.issued() / longs.length);
    const markdown: string[] = [];
    const emit = (text: string): void => {
      markdown.push(text);
    };
    emit(
      `${cpus().length} CPUs, node ${process.version}, load average ${loadAtStart.toFixed(2)} at start and ${(loadavg()[0] ?? 0).toFixed(2)} at the end. ` +
        `Fake upstream, floor proxy and contextd each in their own process, load generated by the parent; paths measured in ${settings.rounds} interleaved rounds ` +
        `(${settings.warmup} warm-up requests per path, then ${settings.requestsC1} at concurrency 1 and ${settings.requests} at concurrency ${n}). ` +
        `contextd on ${store.title} at LOG_LEVEL=warn (per-request info logging off)${verbose === undefined ? '' : ' unless marked info'}, ` +
        `rolling summaries ${settings.summaries ? 'on (their upstream calls get "ok" from the fake upstream)' : 'off (summary.enabled: false)'}. ` +
        `Each measured contextd request appends a turn to one of a fixed set of conversations, each owned by one worker: ` +
        `${shorts.length} short ones (${settings.shortTurns} turns at start, about ${shortEnd} at the end) and ${longs.length} long ones ` +
        `(${settings.longTurns} turns at start, about ${longEnd} at the end, of which ${store.keeps}). ` +
        (store.seed === undefined ? '' : 'Their starting history was written into the stores directly, as contextd stores it (not measured). ') +
        (variant === undefined
          ? ''
          : `In the same rounds, short and long paths on a second contextd with ${variant.label} (same servers, a database of its own, conversations seeded alike). `) +
        (store.settle === undefined
          ? ''
          : `After each slice of ${store.title}'s paths the bench waits until the flusher has moved every turn to MongoDB, so that work is charged to that slice, not the next path's; ` +
            `req/s leaves the wait out, "flushing included" counts it. `) +
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
