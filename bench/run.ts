// `npm run bench`: contextd's added latency, side by side with the upstream called
// directly and with a bare pass-through proxy (the floor), as ratios.
//
//   npm run bench -- [--help] [--requests 6000] [--requests-c1 3000] [--rounds 6] [--profile] ...
//
// Processes: the fake upstream, the floor proxy and each contextd run in their own
// child process; this process only generates load. Everything is on loopback.

import { readFileSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { mkdtemp, rm } from 'node:fs/promises';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { setTimeout as delay } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { request, type Pool } from 'undici';
import { summarizeProfile } from './cpu-profile.js';
import { openPool } from './load.js';
import { interleave, PathRun, type Target } from './measure.js';
import { startContextd, startFloorProxy, startUpstream, type Child, type ContextdChild, type UpstreamChild } from './processes.js';
import { latencyTable, quantiles, ratioTable, streamingTable, verdict, type PathRow, type RatioLine } from './report.js';
import { API_KEY, BUDGET_TOKENS, MODEL, Workload, type RequestSpec, type Turn } from './workload.js';

const USAGE = `npm run bench -- [options]
  --concurrency N            workers (one connection each) of the loaded pass (default 8)
  --requests N               measured requests per path at that concurrency (default 6000)
  --requests-c1 N            measured requests per path at concurrency 1 (default 3000)
  --rounds N                 slices each pass is cut into, paths interleaved (default 20)
  --warmup N                 unmeasured requests per path before each pass (default 500)
  --short-conversations N    conversations of the short path (default 512)
  --short-turns N            turns stored in each short conversation (default 5)
  --long-conversations N     conversations of the long path (default 8)
  --long-turns N             turns stored in each long conversation (default 500)
  --history-tokens N         history the direct and floor clients send (default 2700)
  --no-stream                skip the stream: true passes (they send half as many requests)
  --no-info                  skip the contextd at LOG_LEVEL=info
  --profile                  run the LOG_LEVEL=warn contextd under --cpu-prof and print where its CPU went
  --readme                   also write the results into README.md, between <!-- bench:start --> and <!-- bench:end -->`;

const { values: flags } = parseArgs({
  options: {
    concurrency: { type: 'string', default: '8' },
    requests: { type: 'string', default: '6000' },
    'requests-c1': { type: 'string', default: '3000' },
    rounds: { type: 'string', default: '20' },
    warmup: { type: 'string', default: '500' },
    'short-conversations': { type: 'string', default: '512' },
    'short-turns': { type: 'string', default: '5' },
    'long-conversations': { type: 'string', default: '8' },
    'long-turns': { type: 'string', default: '500' },
    'history-tokens': { type: 'string', default: '2700' },
    'no-stream': { type: 'boolean', default: false },
    'no-info': { type: 'boolean', default: false },
    profile: { type: 'boolean', default: false },
    readme: { type: 'boolean', default: false },
    help: { type: 'boolean', default: false },
  },
});

function positive(name: keyof typeof flags): number {
  const value = Number(flags[name]);
  if (!Number.isSafeInteger(value) || value <= 0) throw new Error(`--${name} must be a positive integer, got ${String(flags[name])}`);
  return value;
}

const settings = {
  concurrency: positive('concurrency'),
  requests: positive('requests'),
  requestsC1: positive('requests-c1'),
  rounds: positive('rounds'),
  warmup: positive('warmup'),
  shortConversations: positive('short-conversations'),
  shortTurns: positive('short-turns'),
  longConversations: positive('long-conversations'),
  longTurns: positive('long-turns'),
  historyTokens: positive('history-tokens'),
  stream: !flags['no-stream'],
  info: !flags['no-info'],
  profile: flags.profile,
  readme: flags.readme,
};

const SETUP_CONCURRENCY = 8;
const README_PATH = fileURLToPath(new URL('../../README.md', import.meta.url));
const README_START = '<!-- bench:start -->';
const README_END = '<!-- bench:end -->';

/** Replaces what README.md holds between its bench markers. */
function writeReadme(block: string): void {
  const text = readFileSync(README_PATH, 'utf8');
  const start = text.indexOf(README_START);
  const end = text.indexOf(README_END);
  if (start < 0 || end < start) throw new Error(`README.md has no ${README_START} … ${README_END} block`);
  writeFileSync(README_PATH, `${text.slice(0, start + README_START.length)}\n${block}\n${text.slice(end)}`);
}
const log = (text: string): void => console.log(text);

// ---- set-up: conversations stored through contextd itself (not measured) ----

interface ConversationPlan {
  id: string;
  turns: () => Turn[];
}

async function sendSetupTurn(pool: Pool, spec: RequestSpec, expected: string): Promise<void> {
  const res = await pool.request({ path: spec.path, method: 'POST', headers: spec.headers, body: spec.body });
  const text = await res.body.text();
  if (res.statusCode !== 200 || !text.includes(JSON.stringify(expected).slice(1, 40))) {
    throw new Error(`set-up turn failed: ${res.statusCode} ${text.slice(0, 300)}`);
  }
}

async function createConversations(contextd: Child, workload: Workload, plans: readonly ConversationPlan[]): Promise<void> {
  const pool = openPool(contextd.url, SETUP_CONCURRENCY);
  let next = 0;
  // One conversation per worker at a time, its turns in order.
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

function shortPlans(workload: Workload, prefix: string): ConversationPlan[] {
  return Array.from({ length: settings.shortConversations }, (_, n) => ({
    id: `${prefix}-short-${n}`,
    turns: () => workload.bigTurns(n + 1).slice(0, settings.shortTurns),
  }));
}

function longPlans(workload: Workload, prefix: string): ConversationPlan[] {
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

/** Every path at one concurrency: warm each, then interleaved rounds. */
async function pass(targets: readonly Target[], concurrency: number, requests: number, upstream: UpstreamChild, afterWarmup?: () => Promise<void>): Promise<PathRun[]> {
  const runs: PathRun[] = [];
  for (const target of targets) runs.push(await PathRun.open(target, concurrency, settings.warmup));
  await afterWarmup?.();
  await interleave(runs, requests, settings.rounds, upstream);
  await Promise.all(runs.map((run) => run.close()));
  for (const run of runs) {
    const row = run.row();
    log(`  ${run.target.name.padEnd(30)} c=${concurrency}  p50 ${row.p50Ms.toFixed(3)} ms  p99 ${row.p99Ms.toFixed(3)} ms  ${row.requestsPerSecond.toFixed(0)} req/s`);
  }
  return runs;
}

// ---- the run ----

async function main(): Promise<void> {
  if (flags.help) {
    log(USAGE);
    return;
  }
  const startedAt = performance.now();
  const loadAtStart = loadavg()[0] ?? 0;
  const runDir = await mkdtemp(join(tmpdir(), 'contextd-bench-run-'));
  const children: Child[] = [];
  try {
    const workload = new Workload({ historyTokens: settings.historyTokens, bigTurns: settings.shortTurns });
    const n = settings.concurrency;
    log(`contextd bench — ${cpus().length} CPUs (${cpus()[0]?.model ?? '?'}), node ${process.version}, loopback only, load average ${loadAtStart.toFixed(2)}`);
    log(
      `model ${MODEL}, budget ${BUDGET_TOKENS} tokens (default route); direct/floor clients send system + ${settings.shortTurns * 2} history messages ` +
        `(${workload.directHistoryTokens} tokens) + the new message = ${workload.directPromptTokens} prompt tokens; the fake upstream answers "ok".`,
    );
    log(
      `per path: ${settings.warmup} warm-up requests, then ${settings.requestsC1} at concurrency 1 and ${settings.requests} at concurrency ${n} ` +
        `(one keep-alive connection per worker), in ${settings.rounds} interleaved rounds.`,
    );

    const upstream = await startUpstream();
    children.push(upstream);
    const floor = await startFloorProxy(upstream.url);
    children.push(floor);
    const profileDir = join(runDir, 'profile');
    const contextd: ContextdChild = await startContextd({
      upstreamUrl: upstream.baseUrl,
      logLevel: 'warn',
      logPath: join(runDir, 'contextd-warn.log'),
      nodeArgs: settings.profile ? ['--cpu-prof', `--cpu-prof-dir=${profileDir}`] : [],
    });
    children.push(contextd);
    const infoLogPath = join(runDir, 'contextd-info.log');
    const verbose = settings.info ? await startContextd({ upstreamUrl: upstream.baseUrl, logLevel: 'info', logPath: infoLogPath }) : undefined;
    if (verbose !== undefined) children.push(verbose);

    const prefix = `bench${Date.now().toString(36)}`;
    let setupAt = performance.now();
    const shorts = shortPlans(workload, prefix);
    const longs = longPlans(workload, prefix);
    await createConversations(contextd, workload, shorts);
    const shortSetupS = (performance.now() - setupAt) / 1000;
    setupAt = performance.now();
    await createConversations(contextd, workload, longs);
    const longSetupS = (performance.now() - setupAt) / 1000;
    const infoShorts = shortPlans(workload, `${prefix}i`);
    if (verbose !== undefined) await createConversations(verbose, workload, infoShorts);
    const longStored = await storedMessageCount(contextd, longs[0]!.id);
    log(
      `set-up (not measured): ${shorts.length} short conversations of ${settings.shortTurns} turns in ${shortSetupS.toFixed(1)} s, ` +
        `${longs.length} long conversations of ${settings.longTurns} turns in ${longSetupS.toFixed(1)} s (${longStored} messages stored in the first).`,
    );

    const shortCursor = conversationCursor(workload, shorts.map((p) => p.id), false);
    const longCursor = conversationCursor(workload, longs.map((p) => p.id), false);
    const infoCursor = conversationCursor(workload, infoShorts.map((p) => p.id), false);
    const names = {
      direct: 'direct',
      floor: 'floor (undici pass-through)',
      short: `contextd short (${settings.shortTurns} turns)`,
      long: `contextd long (${settings.longTurns} turns)`,
      info: 'contextd short, LOG_LEVEL=info',
    };
    const targets: Target[] = [
      { name: names.direct, child: upstream, next: () => workload.direct(false), isContextd: false, stream: false },
      { name: names.floor, child: floor, proxy: floor, next: () => workload.direct(false), isContextd: false, stream: false },
      { name: names.short, child: contextd, proxy: contextd, next: shortCursor.next, isContextd: true, stream: false },
      { name: names.long, child: contextd, proxy: contextd, next: longCursor.next, isContextd: true, stream: false },
    ];
    if (verbose !== undefined) targets.push({ name: names.info, child: verbose, proxy: verbose, next: infoCursor.next, isContextd: true, stream: false });

    log('\nmeasuring (contextd at LOG_LEVEL=warn: no per-request log line, except the path marked info):');
    // A request's log line is written just after its response: wait a moment before taking the file's size.
    let measuredFromByte = 0;
    const c1 = await pass(targets, 1, settings.requestsC1, upstream, async () => {
      await delay(200);
      if (verbose !== undefined) measuredFromByte = statSync(infoLogPath).size;
    });
    await delay(200);
    const infoLog = verbose === undefined ? undefined : requestLogLines(infoLogPath, measuredFromByte, statSync(infoLogPath).size);
    const cn = await pass(targets, n, settings.requests, upstream);

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
      streamRuns = [
        ...(await pass(streamTargets, 1, Math.ceil(settings.requestsC1 / 2), upstream)),
        ...(await pass(streamTargets, n, Math.ceil(settings.requests / 2), upstream)),
      ];
    }

    const profileRuns = [...c1, ...cn].filter((run) => run.target.child === contextd);
    await Promise.all(children.map((child) => child.stop()));
    children.length = 0;

    // ---- report ----
    const columns = [1, n];
    const runOf = (name: string, c: number): PathRun | undefined => (c === 1 ? c1 : cn).find((run) => run.target.name === name);
    const rowOf = new Map<PathRun, PathRow>([...c1, ...cn, ...streamRuns].map((run) => [run, run.row()]));
    const row = (name: string, c: number): PathRow | undefined => {
      const run = runOf(name, c);
      return run === undefined ? undefined : rowOf.get(run);
    };
    for (const r of [...rowOf.values()].filter((r) => r.path === names.direct || r.path === names.floor)) {
      r.promptMessages = settings.shortTurns * 2 + 2;
      r.promptTokens = workload.directPromptTokens;
    }

    // A figure for the whole pass, and the same figure for each round, whose range is the spread.
    type Field = 'p50Ms' | 'requestsPerSecond' | 'proxyCpuMsPerRequest' | 'upstreamCpuMsPerRequest';
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
    const results: string[] = [];
    const emit = (text: string): void => {
      results.push(text);
    };
    emit(
      `${cpus().length} CPUs, node ${process.version}, load average ${loadAtStart.toFixed(2)} at start and ${(loadavg()[0] ?? 0).toFixed(2)} at the end. ` +
        `Fake upstream, floor proxy and contextd each in their own process, load generated by the parent; paths measured in ${settings.rounds} interleaved rounds. ` +
        `contextd on the embedded store at LOG_LEVEL=warn (per-request info logging off) unless marked info. ` +
        `Each measured contextd request appends a turn to one of a fixed set of conversations, each owned by one worker: ` +
        `${shorts.length} short ones (${settings.shortTurns} turns at start, about ${shortEnd} at the end) and ${longs.length} long ones ` +
        `(${settings.longTurns} turns at start, about ${longEnd} at the end, of which the embedded store keeps the newest 1000 messages). ` +
        `"upstream msgs/tokens" is what the upstream was sent (contextd's window, or the client's own history); in brackets, the same figure computed per round: lowest–highest and median.\n`,
    );
    emit(latencyTable([...c1, ...cn].map((run) => rowOf.get(run)!)));
    emit('');
    emit(ratioTable(['concurrency 1', `concurrency ${n}`], lines));
    const judged = lines.filter((line) => line.target !== undefined);
    const verdicts = judged.map((line) => `${line.name.replace(/\*/g, '')}: ${verdict(line.values[line.target!.judgedAtColumn], line.target!)}`);
    emit(`\n**Targets** (latency at concurrency 1, throughput at concurrency ${n}): ${verdicts.join('; ')}`);
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

    log('\n## Results\n');
    log(results.join('\n'));
    if (settings.readme) {
      const stamp = `Measured ${new Date().toISOString().slice(0, 10)} with \`npm run bench\` (${settings.requestsC1} requests per path at concurrency 1, ${settings.requests} at concurrency ${n}).`;
      writeReadme([stamp, '', ...results].join('\n'));
      log(`\nREADME.md: figures written between ${README_START} and ${README_END}`);
    }

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
        log(`\n## contextd CPU profile, ${label} path, measured slices only (${summary.sampledMs.toFixed(0)} ms of busy CPU; figures above taken with the profiler on)\n`);
        log('by area:\n' + summary.byArea.map((entry) => `  ${pct(entry.share).padStart(6)}  ${entry.area}`).join('\n'));
        log('\nself time:\n' + summary.bySelf.map((entry) => `  ${pct(entry.share).padStart(6)}  ${entry.frame}`).join('\n'));
        log('\ninclusive time:\n' + summary.byInclusive.map((entry) => `  ${pct(entry.share).padStart(6)}  ${entry.frame}`).join('\n'));
      }
    }
    log(`\nbench finished in ${((performance.now() - startedAt) / 1000).toFixed(0)} s`);
  } finally {
    await Promise.all(children.map((child) => child.stop()));
    if (settings.profile) log(`profile kept in ${runDir}`);
    else await rm(runDir, { recursive: true, force: true });
  }
}

main().catch((error: unknown) => {
  console.error(error);
  process.exitCode = 1;
});
