// `npm run bench`: contextd's added latency, side by side with the upstream called
// directly and with a bare pass-through proxy (the floor), as ratios; first on
// the embedded store, then on Redis + MongoDB (real servers), where cold reads
// of a short and a very long conversation are measured too.
//
//   npm run bench -- [--help] [--stores all|embedded|redis-mongodb] [--apis chat,responses] [--requests 6000] [--profile] ...
//   npm run bench -- --quick      a smoke run: embedded store, few requests, one round
//
// Processes: the fake upstream, the floor proxy, each contextd, redis-server and
// the MongoDB server run in their own processes; this process only generates
// load. Everything is on loopback. The flags and their defaults: run-options.ts.
// Last, three questions of their own, each in its own process: summary-latency.ts,
// prefix-cache.ts (issue 15: what a provider's prompt cache could serve) and
// idle-cost.ts (what contextd costs with no request at all).

import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { readFileSync, writeFileSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import { performance } from 'node:perf_hooks';
import { fileURLToPath } from 'node:url';
import { coldReads, type ColdReadResult } from './cold-reads.js';
import type { ConversationPlan } from './conversations.js';
import { sideBySide, type SideBySideResult, type StoreUnderTest } from './side-by-side.js';
import { readmeTable } from './readme-table.js';
import { quantiles, type TargetVerdict } from './report.js';
import { cold, embedded, every, FERRETDB_NEW_SHARE, flags, historyTokens, mongodbServer, redisMongo, storeModes, USAGE } from './run-options.js';
import { MAX_CACHED_MESSAGES, contextdStoreCounts, redisCommandCounts, startBackingStores, storedMessages, type BackingStores, type StorePair } from './stores.js';
import { BUDGET_TOKENS, MODEL, Workload } from './workload.js';

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

/** contextd on Redis alone (database 3), in the same rounds as the two tiers: which part of their cost is MongoDB's flushing. */
function redisAloneVariant(workload: Workload, stores: BackingStores): NonNullable<StoreUnderTest['variant']> {
  const alone = stores.redisAlone(3);
  return {
    label: 'Redis alone',
    storage: alone.storage,
    seed: async (plans) => {
      for (const plan of plans) await alone.seed(plan.id, storedMessages(workload.counter, plan.turns()));
    },
  };
}

const ROUND_TRIPS = 2_000;

/**
 * Redis round trips from the bench's own ioredis client, contextd not running:
 * PING, and contextd's load script on a short and a long conversation, alternating.
 */
async function redisRoundTrips(workload: Workload, stores: BackingStores, pair: StorePair): Promise<string> {
  const ids = { short: 'roundtrip-short', long: 'roundtrip-long' };
  await pair.seed(ids.short, storedMessages(workload.counter, workload.bigTurns(30_001)), { warm: true });
  // Short exchanges to the end, as the long conversations are once the measured turns have filled their windows.
  const smallTurns = Array.from({ length: 500 }, (_, t) => workload.smallTurn(30_000_000 + t));
  await pair.seed(ids.long, storedMessages(workload.counter, smallTurns), { warm: true });
  const limits = { maxMessages: Math.ceil(BUDGET_TOKENS / 4) + 1, maxTokens: BUDGET_TOKENS };
  const times = { ping: [] as number[], short: [] as number[], long: [] as number[] };
  const windows = { short: 0, long: 0 };
  for (let i = 0; i < ROUND_TRIPS; i++) {
    let at = performance.now();
    await stores.redis.ping();
    times.ping.push(performance.now() - at);
    for (const which of ['short', 'long'] as const) {
      at = performance.now();
      windows[which] = (await pair.loadHot(ids[which], limits)).length;
      times[which].push(performance.now() - at);
    }
  }
  const q = (values: number[]): string => {
    const { p50, p99 } = quantiles(values);
    return `p50 ${p50.toFixed(3)} / p99 ${p99.toFixed(3)} ms`;
  };
  return (
    `Redis round trips from the bench's own ioredis client, contextd stopped (${ROUND_TRIPS} each, alternating): PING ${q(times.ping)}; ` +
    `contextd's load script (RedisStore.load, budget ${BUDGET_TOKENS} tokens) on a ${workload.options.bigTurns}-turn conversation (${windows.short} messages returned) ${q(times.short)}, ` +
    `on a 500-turn one of short exchanges (${windows.long} messages returned) ${q(times.long)}.`
  );
}

/** With --seed-directly: the same documents contextd would store, written into the pair's stores, 8 conversations at a time. */
function seedInto(pair: StorePair, workload: Workload): (plans: readonly ConversationPlan[]) => Promise<void> {
  return async (plans) => {
    let next = 0;
    const worker = async (): Promise<void> => {
      for (let plan = plans[next++]; plan !== undefined; plan = plans[next++]) await pair.seed(plan.id, storedMessages(workload.counter, plan.turns()), { warm: true });
    };
    await Promise.all(Array.from({ length: 8 }, () => worker()));
  };
}

/** Redis + MongoDB: the side-by-side pass, then the cold reads, on one pair of servers. */
async function onRedisMongo(workload: Workload, stores: BackingStores): Promise<{ sideBySide: SideBySideResult; roundTrips: string; cold: ColdReadResult | undefined }> {
  const pair = await stores.pair('bench', 0);
  // --baseline: the other build's contextd on a MongoDB database and a Redis database of its own (a shared one would mix the two flushers' work).
  const baselinePair = redisMongo.baseline === undefined ? undefined : await stores.pair('baseline', 4);
  // Beside it, this build in the same role (side-by-side.ts), on databases of its own too.
  const twinPair = redisMongo.baseline === undefined ? undefined : await stores.pair('twin', 5);
  const newShare = flags['redis-new-share'] ?? (stores.mongo.scansCollections ? FERRETDB_NEW_SHARE : '0.05');
  if (flags['redis-new-share'] === undefined && stores.mongo.scansCollections) {
    log(`${stores.mongo.label} reads its whole collection for every query, so a new conversation's first read costs a scan of every message stored: new conversations on Redis + MongoDB: a share of ${newShare} (--redis-new-share to change).`);
  }
  const settings = { ...redisMongo, newEvery: every('redis-new-share', newShare) };
  const twoTierWorkload = new Workload({ ...workload.options, newEvery: settings.newEvery });
  const result = await sideBySide(
    settings,
    {
      title: `Redis + MongoDB (redis-server, ${stores.mongo.label})`,
      shortTitle: 'two tiers',
      storage: pair.storage,
      keeps: `Redis keeps the newest ${MAX_CACHED_MESSAGES} messages, MongoDB all`,
      seed: seedInto(pair, workload),
      services: [
        { name: 'redis-server', cpuTimeMs: stores.redisCpuTimeMs, servesVariant: true },
        ...stores.mongo.processes.map((program) => ({ name: program.name, cpuTimeMs: program.cpuTimeMs, servesVariant: false })),
      ],
      ...(flags['no-redis-alone'] ? {} : { variant: redisAloneVariant(workload, stores) }),
      ...(baselinePair === undefined ? {} : { baseline: { storage: baselinePair.storage, seed: seedInto(baselinePair, workload), settle: () => baselinePair.waitFlushed() } }),
      ...(twinPair === undefined ? {} : { twin: { storage: twinPair.storage, seed: seedInto(twinPair, workload), settle: () => twinPair.waitFlushed() } }),
      afterPass: async () => `${await pair.dirtyCount()} conversations awaiting the flusher`,
      // The flusher lags at concurrency N; without this its work would land in the next path's slice.
      settle: () => pair.waitFlushed(),
      commandCounts: async (contextd) => {
        const counts = new Map<string, number>();
        for (const [name, count] of await redisCommandCounts(stores.redis)) counts.set(`redis ${name}`, count);
        for (const [name, count] of await contextdStoreCounts(contextd)) counts.set(name, count);
        return counts;
      },
    },
    twoTierWorkload,
  );
  const roundTrips = await redisRoundTrips(workload, stores, pair);
  log(roundTrips);
  return { sideBySide: result, roundTrips, cold: flags['no-cold'] ? undefined : await coldReads(cold, stores, workload) };
}

async function main(): Promise<void> {
  if (flags.help) {
    log(USAGE);
    return;
  }
  const modes = storeModes();
  const startedAt = performance.now();
  const workload = new Workload({ historyTokens, bigTurns: embedded.shortTurns, newEvery: embedded.newEvery });
  const n = embedded.concurrency;
  log(`contextd bench — ${cpus().length} CPUs (${cpus()[0]?.model ?? '?'}), node ${process.version}, loopback only, load average ${(loadavg()[0] ?? 0).toFixed(2)}`);
  log(
    `model ${MODEL}, budget ${BUDGET_TOKENS} tokens (default route); direct/floor clients send system + ${embedded.shortTurns * 2} history messages ` +
      `(${workload.directHistoryTokens} tokens) + the new message = ${workload.directPromptTokens} prompt tokens; the fake upstream answers ${embedded.upstream.replyTokens} tokens of prose; ` +
      `contextd at LOG_LEVEL=${embedded.logLevel}${embedded.logLevel === 'warn' ? ' (flattering: no request log line)' : ''}.`,
  );
  log(`stores: ${modes.join(', ')}; APIs: ${embedded.apis.map((api, i) => (i === 0 ? `${api} (main)` : api)).join(', ')}; per path: ${embedded.warmup} warm-up requests, then (embedded) ${embedded.requestsC1} at concurrency 1 and ${embedded.requests} at concurrency ${n}, ` +
    `(Redis + MongoDB) ${redisMongo.requestsC1} and ${redisMongo.requests}; one keep-alive connection per worker, ${embedded.rounds} interleaved rounds.`);
  if (embedded.baseline !== undefined) {
    const { dir, label, thisLabel } = embedded.baseline;
    log(`baseline: the contextd built at ${dir} (${label}), its short path measured beside this build's (${thisLabel}).`);
  }

  const sections: string[] = [];
  const verdicts: { store: string; verdict: TargetVerdict }[] = [];
  /** The stores measured, in order, with the label the README's column gives each (the MongoDB server's). */
  const measured: { store: string; label?: string }[] = [];
  const profiles: string[] = [];
  const profileDirs: string[] = [];
  const keep = (store: string, result: SideBySideResult): void => {
    verdicts.push(...result.verdicts.map((verdict) => ({ store, verdict })));
    profiles.push(...result.profile);
    if (result.profileDir !== undefined) profileDirs.push(result.profileDir);
  };

  if (modes.includes('embedded')) {
    log('\n# contextd on the embedded store');
    const result = await sideBySide(embedded, { title: 'the embedded store', shortTitle: 'embedded', keeps: 'the embedded store keeps the newest 1000 messages' }, workload);
    keep('embedded', result);
    measured.push({ store: 'embedded' });
    sections.push('### Embedded store', '', ...result.markdown);
  }

  if (modes.includes('redis-mongodb')) {
    log('\n# contextd on Redis + MongoDB');
    let stores: BackingStores | undefined;
    try {
      stores = await startBackingStores({ mongoTimeout: flags['mongodb-timeout'], mongodbServer });
    } catch (error) {
      // Benchmarks report, they do not gate: say why and go on with what ran.
      const reason = error instanceof Error ? error.message : String(error);
      log(`Redis + MongoDB skipped: ${reason.split('\n')[0]}`);
      sections.push('', '### Redis + MongoDB', '', `Not measured: ${reason.split('\n')[0]}`);
    }
    if (stores !== undefined) {
      try {
        log(`MongoDB: ${stores.mongo.label}`);
        const result = await onRedisMongo(workload, stores).catch((error: unknown) => {
          // Reported with what did run (the embedded store's tables), not instead of it.
          const reason = error instanceof Error ? error.message : String(error);
          log(`Redis + MongoDB stopped: ${reason}`);
          sections.push('', '### Redis + MongoDB', '', `Stopped: ${reason.split('\n')[0]}`);
          return undefined;
        });
        if (result !== undefined) {
          keep('Redis + MongoDB', result.sideBySide);
          measured.push({ store: 'Redis + MongoDB', label: stores.mongo.label });
          sections.push('', `### Redis + MongoDB (MongoDB: ${stores.mongo.label})`, '', ...result.sideBySide.markdown, '', result.roundTrips);
          if (result.cold !== undefined) {
            verdicts.push(...result.cold.verdicts.map((verdict) => ({ store: 'Redis + MongoDB', verdict })));
            sections.push('', '#### Cold reads (Redis empty for the conversation)', '', ...result.cold.markdown);
          }
        }
      } finally {
        await stores.stop();
      }
    }
  }

  const summary = [
    '| store | target | value | limit | verdict |',
    '| --- | --- | ---: | ---: | --- |',
    ...verdicts.map(({ store, verdict: v }) => `| ${store} | ${v.name} | ${v.value === undefined || !Number.isFinite(v.value) ? '–' : v.value.toFixed(3)} | ${v.kind === 'at most' ? '≤' : '≥'} ${v.limit} | **${v.verdict}** |`),
  ].join('\n');
  const stamp =
    `Measured ${new Date().toISOString().slice(0, 10)} with \`npm run bench\` (${cpus().length} CPUs, node ${process.version}). ` +
    `Issue 16's targets: each row names the concurrency it was judged at (added latency, first byte and CPU against the floor's at 1 and ${n}, ` +
    `throughput at ${n}, long against short and cold reads at 1).`;
  const block = [stamp, '', summary, '', ...sections].join('\n');
  log('\n## Results (markdown, for README.md between the bench markers)\n');
  log(README_START);
  log(block);
  log(README_END);
  if (flags.readme) {
    // The README carries the headline figures only; every verdict and table belongs in bench/README.md.
    const readmeStamp = `Chat completions, short path, measured ${new Date().toISOString().slice(0, 10)} with \`npm run bench\` (${cpus().length} CPUs, node ${process.version}); bold: the target is met.`;
    writeReadme(readmeTable(verdicts, measured, n, readmeStamp));
    log(`\nREADME.md: the headline targets written between ${README_START} and ${README_END}`);
  }
  for (const line of profiles) log(line);
  log(`\nbench finished in ${((performance.now() - startedAt) / 1000).toFixed(0)} s`);
  for (const dir of profileDirs) log(`profile kept in ${dir}`);
}

/**
 * A bench of its own question (summary-latency.ts, prefix-cache.ts, idle-cost.ts), in a
 * process of its own, after the rest. (summary-latency used to be the npm
 * script's second command, which got the script's arguments instead of this
 * one: `npm run bench -- --stores embedded` ran every store.)
 */
async function runScript(script: string, args: readonly string[] = []): Promise<void> {
  const child = spawn(process.execPath, [fileURLToPath(new URL(script, import.meta.url)), ...args], { stdio: 'inherit' });
  const [code] = (await once(child, 'exit')) as [number | null];
  if (code !== 0) throw new Error(`${script} exited with ${String(code)}`);
}

const mongodbServerArgs = flags['mongodb-server'] === undefined ? [] : ['--mongodb-server', flags['mongodb-server']];

main()
  .then(() => (flags.help || flags['no-summary-latency'] ? undefined : runScript('./summary-latency.js')))
  // On the stores this run measured; its own defaults otherwise (node dist/bench/prefix-cache.js --help).
  .then(() => (flags.help || flags['no-prefix-cache'] ? undefined : runScript('./prefix-cache.js', ['--stores', flags.stores!, ...mongodbServerArgs])))
  .then(() => (flags.help || flags['no-idle-cost'] ? undefined : runScript('./idle-cost.js', ['--stores', flags.stores!, ...mongodbServerArgs, ...(flags.baseline === undefined ? [] : ['--baseline', flags.baseline])])))
  .catch((error: unknown) => {
    console.error(error);
    process.exitCode = 1;
  });
