// Cold reads on Redis + MongoDB: a request for a conversation that Redis does
// not hold, so contextd loads the window from MongoDB (and warms Redis in the
// background). Is a 10,000-message conversation as cheap to read cold as a
// 10-message one? Both are seeded into MongoDB with the same newest turns, so
// their windows are alike and only the length of the history differs; each
// measured read is preceded by deleting the conversation's Redis keys.

import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { request } from 'undici';
import type { StoredMessage } from '../src/domain.js';
import { startContextd, startUpstream, type Child, type ContextdChild, type UpstreamOptions } from './processes.js';
import { serverCpuTimeMs } from './mongodb-server.js';
import { quantiles, verdict, type TargetVerdict } from './report.js';
import { storedMessages, waitSettled, type BackingStores, type StorePair } from './stores.js';
import { BUDGET_TOKENS, CHAT_PATH, type Turn, type Workload } from './workload.js';

export interface ColdReadSettings {
  /** Measured cold reads per case. */
  reads: number;
  /** Unmeasured rounds first (connections, JIT, FerretDB's caches). */
  warmupReads: number;
  /** Messages in the long conversation. */
  longMessages: number;
  summaries: boolean;
  /** contextd's LOG_LEVEL (info, its default, unless asked). */
  logLevel: 'info' | 'warn';
  upstream: UpstreamOptions;
}

export interface ColdReadResult {
  markdown: string[];
  verdicts: TargetVerdict[];
}

/** Tokens of each older message of the long conversation. */
const FILLER_MESSAGE_TOKENS = 40;
const DIRECT_LOADS = 5;
const log = (text: string): void => console.log(text);

interface ColdCase {
  label: string;
  holds: string;
  contextd: ContextdChild;
  pair: StorePair;
  conversation: string;
  timesMs: number[];
  findsPerRead: number[];
  getMoresPerRead: number[];
  docsPerRead: number[];
  backgroundFindsPerRead: number[];
  windowMessages: number[];
  windowTokens: number[];
  mongoCpuMs: number[];
  directLoadMs: number[];
  directLoadDocs: number;
  /** Measured reads answered other than `miss` (e.g. `partial`: MongoDB missed the cold-read deadline), by cache header. */
  notMiss: Map<string, number>;
}

async function scrape(contextd: Child): Promise<{ finds: number; getMores: number; docs: number }> {
  const res = await request(`${contextd.url}/metrics`);
  const text = await res.body.text();
  const sum = (prefix: string): number =>
    text
      .split('\n')
      .filter((line) => line.startsWith(prefix))
      .reduce((total, line) => total + Number(line.slice(line.lastIndexOf(' ') + 1)), 0);
  return {
    finds: sum('contextd_mongodb_commands_total{command="find"}'),
    getMores: sum('contextd_mongodb_commands_total{command="getMore"}'),
    docs: sum('contextd_mongodb_documents_read_total'),
  };
}

export async function coldReads(settings: ColdReadSettings, stores: BackingStores, workload: Workload): Promise<ColdReadResult> {
  const runDir = await mkdtemp(join(tmpdir(), 'contextd-bench-cold-'));
  const children: Child[] = [];
  try {
    const prefix = `cold${Date.now().toString(36)}`;
    // The newest five turns are the size of the side-by-side's short conversations: both windows start budget-full and alike.
    const newest = workload.bigTurns(20_001).slice(0, 5);
    const fillerTurns = Math.max(0, Math.floor((settings.longMessages - newest.length * 2) / 2));
    const filler: Turn[] = Array.from({ length: fillerTurns }, (_, t) => ({
      user: workload.text(9_000_001 + 2 * t, FILLER_MESSAGE_TOKENS),
      assistant: workload.text(9_000_002 + 2 * t, FILLER_MESSAGE_TOKENS),
    }));
    const shortMessages = storedMessages(workload.counter, newest);
    const longMessages: StoredMessage[] = storedMessages(workload.counter, [...filler, ...newest]);
    // Redis databases 1 and 2: the side-by-side pass ran on 0.
    const shared = await stores.pair('cold', 1);
    const alone = await stores.pair('cold_alone', 2);
    const ids = { short: `${prefix}-10`, long: `${prefix}-${longMessages.length}`, alone: `${prefix}-10-alone` };
    let startedAt = performance.now();
    await shared.seed(ids.long, longMessages, { warm: false });
    await shared.seed(ids.short, shortMessages, { warm: false });
    await alone.seed(ids.alone, shortMessages, { warm: false });
    log(
      `\ncold reads: seeded MongoDB in ${((performance.now() - startedAt) / 1000).toFixed(1)} s (not measured): ${longMessages.length} messages ` +
        `(${filler.length * 2} of ${FILLER_MESSAGE_TOKENS} tokens, then ${newest.length * 2} of ≈${workload.messageTokens}) and ${shortMessages.length} messages (the same newest ${newest.length * 2}) in one database, ` +
        `the ${shortMessages.length} again alone in another.`,
    );

    const upstream = await startUpstream(settings.upstream);
    children.push(upstream);
    const start = async (pair: StorePair, name: string): Promise<ContextdChild> => {
      const child = await startContextd({ upstreamUrl: upstream.baseUrl, logLevel: settings.logLevel, logPath: join(runDir, `${name}.log`), storage: pair.storage, summaries: settings.summaries });
      children.push(child);
      return child;
    };
    const [sharedContextd, aloneContextd] = [await start(shared, 'contextd-shared'), await start(alone, 'contextd-alone')];
    const makeCase = (label: string, holds: string, contextd: ContextdChild, pair: StorePair, conversation: string): ColdCase => ({
      label,
      holds,
      contextd,
      pair,
      conversation,
      timesMs: [],
      findsPerRead: [],
      getMoresPerRead: [],
      docsPerRead: [],
      backgroundFindsPerRead: [],
      windowMessages: [],
      windowTokens: [],
      mongoCpuMs: [],
      directLoadMs: [],
      directLoadDocs: 0,
      notMiss: new Map(),
    });
    const bigHolds = `${(longMessages.length + shortMessages.length).toLocaleString('en-US')} messages (both conversations)`;
    const cases = [
      makeCase(`${shortMessages.length} messages`, bigHolds, sharedContextd, shared, ids.short),
      makeCase(`${longMessages.length.toLocaleString('en-US')} messages`, bigHolds, sharedContextd, shared, ids.long),
      makeCase(`${shortMessages.length} messages, database of its own`, `${shortMessages.length} messages`, aloneContextd, alone, ids.alone),
    ];
    const [short, long, lone] = cases as [ColdCase, ColdCase, ColdCase];

    // MongoDB's part alone: the same MongoStore.load contextd runs on a miss, from the bench's own client.
    for (const c of cases) {
      for (let i = 0; i < DIRECT_LOADS; i++) {
        const at = performance.now();
        c.directLoadDocs = (await c.pair.loadDirect(c.conversation, { maxMessages: 1_000, maxTokens: BUDGET_TOKENS })).length;
        c.directLoadMs.push(performance.now() - at);
      }
    }

    const readOnce = async (c: ColdCase, isMeasured: boolean): Promise<void> => {
      const spec = workload.withMemory(c.conversation, false);
      const before = await scrape(c.contextd);
      const cpuBefore = serverCpuTimeMs(stores.mongo);
      const at = performance.now();
      const res = await request(`${c.contextd.url}${CHAT_PATH}`, { method: 'POST', headers: spec.headers, body: spec.body });
      const text = await res.body.text();
      const tookMs = performance.now() - at;
      const cpuAfter = serverCpuTimeMs(stores.mongo);
      const after = await scrape(c.contextd);
      if (res.statusCode !== 200 || !text.includes('"finish_reason":"stop"')) throw new Error(`cold read of ${c.conversation}: ${res.statusCode} ${text.slice(0, 300)}`);
      // Not a miss (e.g. partial: MongoDB did not answer within contextd's cold-read deadline): counted and shown, the read still timed.
      const cache = String(res.headers['x-contextd-cache']);
      if (cache !== 'miss' && isMeasured) c.notMiss.set(cache, (c.notMiss.get(cache) ?? 0) + 1);
      // contextd warms Redis from what it read and flushes the new turn; only then is the conversation evicted again.
      await waitSettled(c.pair, c.conversation);
      const settled = await scrape(c.contextd);
      await c.pair.evict(c.conversation);
      if (!isMeasured) return;
      c.timesMs.push(tookMs);
      c.findsPerRead.push(after.finds - before.finds);
      c.getMoresPerRead.push(after.getMores - before.getMores);
      c.docsPerRead.push(after.docs - before.docs);
      c.backgroundFindsPerRead.push(settled.finds - after.finds);
      c.windowMessages.push(Number(res.headers['x-contextd-history-messages'] ?? Number.NaN));
      c.windowTokens.push(Number(res.headers['x-contextd-context-tokens'] ?? Number.NaN));
      c.mongoCpuMs.push((cpuAfter ?? Number.NaN) - (cpuBefore ?? Number.NaN));
    };

    startedAt = performance.now();
    const rounds = settings.warmupReads + settings.reads;
    for (let round = 0; round < rounds; round++) {
      // Rotating order: no case always runs right after another's background work.
      for (let i = 0; i < cases.length; i++) await readOnce(cases[(round + i) % cases.length]!, round >= settings.warmupReads);
    }
    log(`cold reads: ${rounds} rounds of ${cases.length} in ${((performance.now() - startedAt) / 1000).toFixed(1)} s`);
    await Promise.all(children.map((child) => child.stop()));
    children.length = 0;

    // ---- report ----
    const ms = (v: number): string => (Number.isFinite(v) ? v.toFixed(1) : '–');
    const mean = (values: readonly number[]): number => values.reduce((sum, v) => sum + v, 0) / values.length;
    const range = (values: readonly number[]): string => {
      const lo = Math.min(...values);
      const hi = Math.max(...values);
      return lo === hi ? String(lo) : `${lo}–${hi}`;
    };
    const rows = cases.map((c) => {
      const q = quantiles(c.timesMs);
      return `| ${c.label} | ${c.holds} | ${c.timesMs.length} | ${ms(q.p50)} | ${ms(q.p90)} | ${ms(q.p99)} | ${range(c.findsPerRead)} + ${range(c.getMoresPerRead)} | ${mean(c.docsPerRead).toFixed(1)} (${range(c.docsPerRead)}) | ${range(c.backgroundFindsPerRead)} | ${mean(c.windowMessages).toFixed(1)} | ${mean(c.windowTokens).toFixed(0)} | ${ms(quantiles(c.mongoCpuMs).p50)} | ${ms(quantiles(c.directLoadMs).p50)} (${c.directLoadDocs} msgs) |`;
    });
    // The same ratio per round (reads of one round ran back to back), for its spread.
    const perRound = (a: ColdCase, b: ColdCase): string => {
      const ratios = a.timesMs.map((t, i) => t / (b.timesMs[i] ?? Number.NaN)).filter(Number.isFinite);
      const { p50 } = quantiles(ratios);
      return `${Math.min(...ratios).toFixed(2)}–${Math.max(...ratios).toFixed(2)}, med ${p50.toFixed(2)}`;
    };
    const p50 = (c: ColdCase): number => quantiles(c.timesMs).p50;
    // Issue 16: reading 10,000 messages cold costs at most 1.2 × reading 10 (same database, concurrency 1).
    const target = { limit: 1.2, kind: 'at most' as const };
    const longOverShort = p50(long) / p50(short);
    const longOverLone = p50(long) / p50(lone);
    const markdown = [
      `Cold reads: each measured request is for a conversation whose Redis keys were just deleted (after contextd had warmed them and flushed the previous turn), ` +
        `so contextd reads the window from MongoDB (${stores.mongo.label}) and warms Redis in the background. Concurrency 1, ${settings.warmupReads} unmeasured rounds, then ${settings.reads} rounds; ` +
        `each round reads every case once, in rotating order. The ${longMessages.length.toLocaleString('en-US')}-message conversation's newest ${newest.length * 2} messages are the ${shortMessages.length}-message one's, ` +
        `so both windows start alike (each read appends a turn to both, so both grow by ${settings.warmupReads * 2 + settings.reads * 2} messages over the run). ` +
        `Queries and documents read: contextd's contextd_mongodb_commands_total{command="find"} (and "getMore", the same query's further batches) and contextd_mongodb_documents_read_total, scraped just before the request and just after its reply ` +
        `("background finds": from the reply until Redis is warm and the turn flushed). "MongoDB server CPU": ${stores.mongo.processes.length === 0 ? 'not read (not our server)' : `the ${stores.mongo.processes.map((p) => p.name).join(' and ')} processes${stores.mongo.kind === 'pg' ? " (PostgreSQL's backends included)" : ''}`}, request to reply. ` +
        `"MongoStore.load alone": the same load from the bench's own client, no contextd (median of ${DIRECT_LOADS}).` +
        (cases.some((c) => c.notMiss.size > 0)
          ? ` **Not every read was a miss**: ${cases.filter((c) => c.notMiss.size > 0).map((c) => `${c.label}: ${[...c.notMiss].map(([cache, n]) => `${n} × ${cache}`).join(', ')}`).join('; ')} (x-contextd-cache; partial: MongoDB missed contextd's cold-read deadline, so the time is that deadline's, not MongoDB's).`
          : '') +
        '\n',
      '| cold read (Redis empty for it) | MongoDB database holds | reads | p50 ms | p90 ms | p99 ms (of so few: the slowest) | finds + getMores per read | documents read per read: mean (range) | background finds per read | window msgs | window tokens | MongoDB server CPU ms per read (p50) | MongoStore.load alone, ms |',
      '| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |',
      ...rows,
      '',
      '|  | value (per round: lowest–highest, median) | target |',
      '| --- | ---: | ---: |',
      `| **cold ${long.label} p50 / cold ${short.label} p50** (same database) | ${longOverShort.toFixed(2)} (${perRound(long, short)}) **${verdict(longOverShort, target)}** | ≤ ${target.limit} |`,
      `| cold ${long.label} p50 / cold ${lone.label} p50 | ${longOverLone.toFixed(2)} (${perRound(long, lone)}) |  |`,
      `| cold ${short.label} p50 / cold ${lone.label} p50 (same conversation, bigger database) | ${(p50(short) / p50(lone)).toFixed(2)} (${perRound(short, lone)}) |  |`,
    ];
    return {
      markdown,
      verdicts: [{ name: `cold ${long.label} / cold ${short.label} p50 (same database), concurrency 1`, value: longOverShort, ...target, verdict: verdict(longOverShort, target) }],
    };
  } finally {
    await Promise.all(children.map((child) => child.stop()));
    await rm(runDir, { recursive: true, force: true });
  }
}
