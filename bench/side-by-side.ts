// The side-by-side pass on one store: direct, floor proxy, contextd with a
// short and a long stored history (and the stream: true passes, and on
// request a contextd at LOG_LEVEL=warn, the plain undici.request floor and
// another build's contextd, --baseline),
// measured in interleaved rounds at concurrency 1 and N, reported as ratios
// against the direct path and the floor of the same run. Every path speaks
// the main API; each other API (--apis: chat completions, the Responses API)
// adds its own direct, floor and short paths to the same rounds, so its
// ratios come from the same minutes as the main API's. This file starts the
// processes, creates the conversations and measures; side-by-side-report.ts
// writes the tables.

import { mkdtemp, rm } from 'node:fs/promises';
import { readFileSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { setTimeout as delay } from 'node:timers/promises';
import type { Api } from './apis.js';
import type { BaselineBuild } from './baseline-build.js';
import { conversationCursor, createConversations, longPlans, shortPlans, storedMessageCount, type ConversationCursor, type ConversationPlan } from './conversations.js';
import { summarizeProfile } from './cpu-profile.js';
import { interleave, PathRun, type Target } from './measure.js';
import { startContextd, startFloorProxy, startUpstream, type Child, type ContextdChild, type UpstreamOptions } from './processes.js';
import { ResponsesWorkload } from './responses-workload.js';
import type { TargetVerdict } from './report.js';
import { pathNames, type PathNames } from './side-by-side-figures.js';
import { sideBySideMarkdown, type RequestLogTimes } from './side-by-side-report.js';
import type { ApiClient, Workload } from './workload.js';

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
  /**
   * The APIs measured, the main one first: it gets every path (long, variants,
   * paced); the others get direct, floor and short, in the same rounds.
   */
  apis: readonly Api[];
  /**
   * Another build of contextd (--baseline), run on the same config: its short
   * path in the same rounds, streaming too, so this build's changes read as
   * ratios from one run.
   */
  baseline?: BaselineBuild;
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
  services?: readonly { name: string; cpuTimeMs: () => number | undefined; servesVariant: boolean }[];
  /**
   * A second contextd on other storage (e.g. Redis alone), with short and long
   * paths of its own measured in the same rounds: what the difference costs.
   */
  variant?: { label: string; storage: Record<string, unknown>; seed: (plans: readonly ConversationPlan[]) => Promise<void> };
  /**
   * Where the --baseline build's contextd keeps its conversations when the
   * store is not the embedded one: the same kind of storage, on the same
   * servers, but databases of its own (sharing the main contextd's would mix
   * their conversations and their flushers), with its own seeding and settling.
   * Every service in `services` serves it too.
   */
  baseline?: { storage: Record<string, unknown>; seed: (plans: readonly ConversationPlan[]) => Promise<void>; settle: () => Promise<void> };
  /** The same for this build's contextd in the baseline's role (see PathNames.twinShort). */
  twin?: { storage: Record<string, unknown>; seed: (plans: readonly ConversationPlan[]) => Promise<void>; settle: () => Promise<void> };
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

export interface SideBySideResult {
  /** Markdown: description, tables, targets. */
  markdown: string[];
  verdicts: TargetVerdict[];
  /** Console lines: the CPU profile summary, when --profile. */
  profile: string[];
  profileDir: string | undefined;
}

const log = (text: string): void => console.log(text);

/** contextd's own per-request log lines (info level) between two byte offsets of its log file, by API. */
function requestLogLines(path: string, fromByte: number, toByte: number): Map<Api, RequestLogTimes> {
  const text = readFileSync(path).subarray(fromByte, toByte).toString('utf8');
  const byApi = new Map<Api, RequestLogTimes>();
  for (const line of text.split('\n')) {
    if (!line.startsWith('{')) continue;
    const entry = JSON.parse(line) as { msg?: string; kind?: string; api?: Api; addedMs?: number; upstreamMs?: number; durationMs?: number };
    if (entry.msg !== 'request' || entry.kind !== 'memory' || entry.api === undefined) continue;
    let out = byApi.get(entry.api);
    if (out === undefined) byApi.set(entry.api, (out = { addedMs: [], upstreamMs: [], durationMs: [] }));
    if (typeof entry.addedMs === 'number') out.addedMs.push(entry.addedMs);
    if (typeof entry.upstreamMs === 'number') out.upstreamMs.push(entry.upstreamMs);
    if (typeof entry.durationMs === 'number') out.durationMs.push(entry.durationMs);
  }
  return byApi;
}

export interface ServiceLoad {
  concurrency: number;
  contextdRequests: number;
  variantRequests: number;
  /** The --baseline build's contextd's and this build's twin's; the services served them too. */
  baselineRequests: number;
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

/** The CPU profile of the main contextd, summarised over the measured slices of each named path. */
function profileLines(profileDir: string, storeTitle: string, phases: Record<string, PathRun[]>): string[] {
  const file = readdirSync(profileDir).find((name) => name.endsWith('.cpuprofile'));
  if (file === undefined) throw new Error(`no .cpuprofile in ${profileDir}`);
  const pct = (share: number): string => `${(share * 100).toFixed(1)}%`;
  const windows = Object.fromEntries(Object.entries(phases).map(([label, runs]) => [label, runs.flatMap((run) => run.windows)]));
  // Kept beside the profile, so that it can be summarised again (or opened in DevTools) for those windows.
  writeFileSync(join(profileDir, 'measured-windows.json'), JSON.stringify(windows));
  const lines: string[] = [];
  for (const [label, measured] of Object.entries(windows)) {
    const summary = summarizeProfile(join(profileDir, file), measured);
    lines.push(`\n## contextd CPU profile on ${storeTitle}, ${label} path, measured slices only (${summary.sampledMs.toFixed(0)} ms of busy CPU; figures above taken with the profiler on)\n`);
    lines.push('by stage (inclusive, overlapping):\n' + summary.byStage.map((entry) => `  ${pct(entry.share).padStart(6)}  ${entry.label}`).join('\n'));
    lines.push('\nby area:\n' + summary.byArea.map((entry) => `  ${pct(entry.share).padStart(6)}  ${entry.area}`).join('\n'));
    lines.push('\nself time:\n' + summary.bySelf.map((entry) => `  ${pct(entry.share).padStart(6)}  ${entry.frame}`).join('\n'));
    lines.push('\ninclusive time:\n' + summary.byInclusive.map((entry) => `  ${pct(entry.share).padStart(6)}  ${entry.frame}`).join('\n'));
  }
  return lines;
}

export async function sideBySide(settings: SideBySideSettings, store: StoreUnderTest, workload: Workload): Promise<SideBySideResult> {
  const loadAtStart = loadavg()[0] ?? 0;
  const runDir = await mkdtemp(join(tmpdir(), 'contextd-bench-run-'));
  const children: Child[] = [];
  const n = settings.concurrency;
  const services = store.services ?? [];
  const [mainApi, ...otherApis] = settings.apis;
  if (mainApi === undefined) throw new Error('no API to measure');
  const clients: Record<Api, ApiClient> = { chat: workload, responses: new ResponsesWorkload(workload) };
  const client = clients[mainApi];
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
    const baseline = settings.baseline;
    /**
     * With --baseline, a contextd in the baseline's role: `build`'s (the baseline's) or this
     * build's twin, on storage of its own (none needed on the embedded store).
     */
    const inBaselineRole = async (role: 'baseline' | 'twin', build: BaselineBuild | undefined): Promise<ContextdChild | undefined> => {
      if (baseline === undefined) return undefined;
      const own = store[role];
      if (store.storage !== undefined && own === undefined) throw new Error(`--baseline on ${store.title}: the store gave the ${role} no storage of its own`);
      const started = await startContextd({
        upstreamUrl: upstream.baseUrl,
        logLevel: settings.logLevel,
        logPath: join(runDir, `contextd-${role}.log`),
        summaries: settings.summaries,
        ...(build === undefined ? {} : { build }),
        ...(own === undefined ? {} : { storage: own.storage }),
      });
      children.push(started);
      return started;
    };
    const baselineContextd = await inBaselineRole('baseline', baseline);
    // This build in the baseline's role: only the short path, on conversations of its own, so the two compare alike.
    const twinContextd = await inBaselineRole('twin', undefined);

    const prefix = `bench${Date.now().toString(36)}`;
    const shortSize = { conversations: settings.shortConversations, turns: settings.shortTurns };
    const longSize = { conversations: settings.longConversations, turns: settings.longTurns };
    const shorts = shortPlans(workload, shortSize, prefix);
    const longs = longPlans(workload, longSize, settings.shortTurns, prefix);
    const quietShorts = shortPlans(workload, shortSize, `${prefix}w`);
    // Each other API's short path has conversations of its own, created on that API.
    const otherShorts = new Map(otherApis.map((api) => [api, shortPlans(workload, shortSize, `${prefix}-${api}`)]));
    const seedDirectly = settings.seedDirectly && store.seed !== undefined;
    const prepare = async (target: Child, plans: readonly ConversationPlan[], seed: ((plans: readonly ConversationPlan[]) => Promise<void>) | undefined, on = client): Promise<number> => {
      const startedAt = performance.now();
      await (seedDirectly && seed !== undefined ? seed(plans) : createConversations(target, on, plans));
      return (performance.now() - startedAt) / 1000;
    };
    const shortSetupS = await prepare(contextd, shorts, store.seed);
    const longSetupS = await prepare(contextd, longs, store.seed);
    const otherSetupS = new Map<Api, number>();
    for (const [api, plans] of otherShorts) otherSetupS.set(api, await prepare(contextd, plans, store.seed, clients[api]));
    if (quiet !== undefined) await prepare(quiet, quietShorts, store.seed);
    const variantShorts = shortPlans(workload, shortSize, `${prefix}v`);
    const variantLongs = longPlans(workload, longSize, settings.shortTurns, `${prefix}v`);
    if (variant !== undefined && variantContextd !== undefined) await prepare(variantContextd, [...variantShorts, ...variantLongs], variant.seed);
    const baselineShorts = shortPlans(workload, shortSize, `${prefix}b`);
    const baselineSetupS = baselineContextd === undefined ? undefined : await prepare(baselineContextd, baselineShorts, store.baseline?.seed);
    const twinShorts = shortPlans(workload, shortSize, `${prefix}t`);
    if (twinContextd !== undefined) await prepare(twinContextd, twinShorts, store.twin?.seed);
    // What set-up left to the flusher is done before anything is measured.
    await Promise.all([store.settle?.(), store.baseline?.settle(), store.twin?.settle()]).catch((error: unknown) => {
      throw new Error(`after set-up: ${error instanceof Error ? error.message : String(error)} (on FerretDB on SQLite with contextd's 3 s MongoDB timeout the flusher falls behind when many conversations start at once: fewer --redis-short-conversations, or --mongodb-timeout 10s)`);
    });
    const longStored = await storedMessageCount(contextd, longs[0]!.id);
    log(
      `set-up (not measured${seedDirectly ? ', seeded into the stores directly (--seed-directly)' : ', turns sent through contextd'}): ${shorts.length} short conversations of ${settings.shortTurns} turns in ${shortSetupS.toFixed(1)} s, ` +
        `${longs.length} long conversations of ${settings.longTurns} turns in ${longSetupS.toFixed(1)} s (${longStored} messages stored in the first)` +
        [...otherSetupS].map(([api, seconds]) => `, ${otherShorts.get(api)!.length} short conversations on ${api} in ${seconds.toFixed(1)} s`).join('') +
        (baselineSetupS === undefined ? '' : `, ${baselineShorts.length} short conversations on the baseline (${baseline!.label}) in ${baselineSetupS.toFixed(1)} s, as many on this build's twin`) +
        '.',
    );

    const settle = store.settle === undefined ? {} : { settle: store.settle };
    const turns = { short: settings.shortTurns, long: settings.longTurns };
    const namesOf = (api: Api): PathNames => pathNames(api, turns, { variant: variant?.label, baseline: baseline?.label });
    const names = namesOf(mainApi);
    /** An API's direct, floor and short contextd paths; `ids`: the short path's conversations. */
    const basicPaths = (api: Api, ids: readonly string[], stream: boolean, newPrefix: string): { targets: Target[]; cursor: ConversationCursor } => {
      const apiClient = clients[api];
      const apiNames = namesOf(api);
      const cursor = conversationCursor(apiClient, ids, stream, newPrefix);
      const direct = (): ReturnType<ApiClient['direct']> => apiClient.direct(stream);
      return {
        cursor,
        targets: [
          { name: apiNames.direct, child: upstream, api, next: direct, isContextd: false, stream },
          { name: apiNames.floor, child: floor, proxy: floor, api, next: direct, isContextd: false, stream },
          { name: apiNames.short, child: contextd, proxy: contextd, api, next: cursor.next, isContextd: true, stream, ...settle },
        ],
      };
    };
    const shortIdsOf = (api: Api): string[] => (api === mainApi ? shorts : otherShorts.get(api)!).map((plan) => plan.id);
    const main = basicPaths(mainApi, shortIdsOf(mainApi), false, `${prefix}-new-s`);
    const longCursor = conversationCursor(client, longs.map((p) => p.id), false, `${prefix}-new-l`);
    // The main API's four first: the paced pass takes them.
    const targets: Target[] = [...main.targets, { name: names.long, child: contextd, proxy: contextd, api: mainApi, next: longCursor.next, isContextd: true, stream: false, ...settle }];
    for (const api of otherApis) targets.push(...basicPaths(api, shortIdsOf(api), false, `${prefix}-${api}-new-s`).targets);
    if (variantContextd !== undefined) {
      const shortNext = conversationCursor(client, variantShorts.map((p) => p.id), false, `${prefix}v-new-s`).next;
      const longNext = conversationCursor(client, variantLongs.map((p) => p.id), false, `${prefix}v-new-l`).next;
      targets.push(
        { name: names.variantShort, child: variantContextd, proxy: variantContextd, api: mainApi, next: shortNext, isContextd: true, stream: false },
        { name: names.variantLong, child: variantContextd, proxy: variantContextd, api: mainApi, next: longNext, isContextd: true, stream: false },
      );
    }
    if (quiet !== undefined) {
      const quietNext = conversationCursor(client, quietShorts.map((p) => p.id), false, `${prefix}w-new-s`).next;
      targets.push({ name: names.quiet, child: quiet, proxy: quiet, api: mainApi, next: quietNext, isContextd: true, stream: false, ...settle });
    }
    /**
     * The baseline build's short path and this build's twin's, each on conversations of its own
     * created alike; settled as the main contextd's is, on their own databases.
     */
    const baselineTarget = (stream: boolean, newPrefix: string): Target[] => {
      if (baselineContextd === undefined || twinContextd === undefined) return [];
      const baselineNext = conversationCursor(client, baselineShorts.map((p) => p.id), stream, newPrefix).next;
      const twinNext = conversationCursor(client, twinShorts.map((p) => p.id), stream, `${newPrefix}-t`).next;
      const baselineSettle = store.baseline === undefined ? {} : { settle: store.baseline.settle };
      const twinSettle = store.twin === undefined ? {} : { settle: store.twin.settle };
      return [
        { name: names.baselineShort, child: baselineContextd, proxy: baselineContextd, api: mainApi, next: baselineNext, isContextd: true, stream, ...baselineSettle },
        { name: names.twinShort, child: twinContextd, proxy: twinContextd, api: mainApi, next: twinNext, isContextd: true, stream, ...twinSettle },
      ];
    };
    targets.push(...baselineTarget(false, `${prefix}b-new-s`));
    if (plainFloor !== undefined) targets.push({ name: names.plainFloor, child: plainFloor, proxy: plainFloor, api: mainApi, next: () => client.direct(false), isContextd: false, stream: false });

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
      const cpuBefore = services.map((service) => service.cpuTimeMs());
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
        // The baseline and this build's twin: both on the services, beside the main contextd.
        const baselineRequests = requestsOf(baselineContextd) + requestsOf(twinContextd);
        const cpuAfter = services.map((service) => service.cpuTimeMs());
        const commandsAfter = await store.commandCounts?.(contextd);
        const commands =
          commandsBefore === undefined || commandsAfter === undefined
            ? ''
            : commandsPerRequest(commandsBefore, commandsAfter, (name) => contextdRequests + (name.startsWith('redis ') ? variantRequests + baselineRequests : 0));
        const cpuMsPerRequest = services.map(
          (service, i) => ((cpuAfter[i] ?? Number.NaN) - (cpuBefore[i] ?? Number.NaN)) / (contextdRequests + baselineRequests + (service.servesVariant ? variantRequests : 0)),
        );
        const settledMs = runs.reduce((sum, run) => sum + run.settleMs, 0);
        const note = `${(await store.afterPass?.()) ?? ''}${settledMs > 0 ? `; ${settledMs.toFixed(0)} ms waited in all for it after slices (counted in "flushing included")` : ''}`;
        serviceLoads.push({ concurrency, contextdRequests, variantRequests, baselineRequests, cpuMsPerRequest, commands, note });
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
    const requestLogs = settings.logLevel === 'info' ? requestLogLines(logPath, measuredFromByte, statSync(logPath).size) : new Map<Api, RequestLogTimes>();
    const cn = await pass(targets, n, settings.requests);

    let paced: PathRun[] = [];
    if (settings.pacedRequests > 0) {
      log(`\nmeasuring at concurrency 1, ${settings.pauseMs} ms idle after each response:`);
      paced = await pass(targets.slice(0, 4), 1, settings.pacedRequests, { warmup: 50, pauseMs: settings.pauseMs });
    }

    let streamC1: PathRun[] = [];
    let streamCn: PathRun[] = [];
    let mainStreamCursor: ConversationCursor | undefined;
    if (settings.stream) {
      const streamPaths = settings.apis.map((api) => basicPaths(api, shortIdsOf(api), true, `${prefix}-${api}-new-stream`));
      mainStreamCursor = streamPaths[0]!.cursor;
      const streamTargets = [...streamPaths.flatMap((paths) => paths.targets), ...baselineTarget(true, `${prefix}b-new-stream`)];
      log('\nmeasuring stream: true:');
      streamC1 = await pass(streamTargets, 1, Math.ceil(settings.requestsC1 / 2));
      streamCn = await pass(streamTargets, n, Math.ceil(settings.requests / 2));
    }

    await Promise.all(children.map((child) => child.stop()));
    children.length = 0;

    // (issued() counts the new conversations' first turns too: "about".)
    const shortEnd = settings.shortTurns + Math.round((main.cursor.issued() + (mainStreamCursor?.issued() ?? 0)) / shorts.length);
    const longEnd = settings.longTurns + Math.round(longCursor.issued() / longs.length);
    const { markdown, verdicts } = sideBySideMarkdown({
      settings,
      store,
      loadAtStart,
      namesOf,
      passes: { c1, cn, paced, streamC1, streamCn },
      conversations: { shorts: shorts.length, shortEnd, longs: longs.length, longEnd, seedDirectly },
      extras: {
        quiet: quiet !== undefined,
        plainFloor: plainFloor !== undefined,
        ...(variant === undefined ? {} : { variantLabel: variant.label }),
        ...(baseline === undefined ? {} : { baseline }),
      },
      serviceLoads,
      requestLogs,
      directPrompt: { tokens: workload.directMeanPromptTokens },
    });

    const ofContextd = (name: string): PathRun[] => [...c1, ...cn].filter((run) => run.target.child === contextd && run.target.name === name);
    const phases: Record<string, PathRun[]> = { short: ofContextd(names.short), long: ofContextd(names.long) };
    for (const api of otherApis) phases[`${api} short`] = ofContextd(namesOf(api).short);
    const profile = settings.profile ? profileLines(profileDir, store.title, phases) : [];
    return { markdown, verdicts, profile, profileDir: settings.profile ? runDir : undefined };
  } finally {
    await Promise.all(children.map((child) => child.stop()));
    if (!settings.profile) await rm(runDir, { recursive: true, force: true });
  }
}
