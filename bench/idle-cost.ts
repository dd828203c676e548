// What does contextd cost while nothing happens? A sidecar runs beside every
// agent pod, most of them idle most of the time, so its CPU with no request
// at all is paid many times over. Measured, with the floor proxy beside it:
// CPU per second (all threads, /proc/<pid>/task/*/schedstat) and wake-ups per
// second (voluntary context switches, /proc/<pid>/task/*/status), after each
// process has served a few requests and then settled (start-up compilation
// and the first GCs are not idling).
//
// With --baseline DIR (a build, scripts/bench-baseline.sh), that build's
// contextd idles beside this one's in the same span, on each store.
//
//   npm run build && node dist/bench/idle-cost.js [--stores embedded|redis-mongodb|all] [--mongodb-server pg|sqlite|mongod] [--baseline DIR] [--settle-ms N] [--span-ms N]
//
// `npm run bench` runs it last (unless --no-idle-cost), on the stores and with the baseline it measured.

import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { parseArgs } from 'node:util';
import { request } from 'undici';
import { baselineBuild, type BaselineBuild } from './baseline-build.js';
import { cpuTimeMs, startContextd, startFloorProxy, startUpstream, sumOverThreads, type Child } from './processes.js';
import { parseMongodbServer } from './mongodb-server.js';
import { startBackingStores, type BackingStores } from './stores.js';
import { Workload } from './workload.js';

const { values: flags } = parseArgs({
  options: {
    stores: { type: 'string', default: 'all' },
    'settle-ms': { type: 'string', default: '20000' },
    'span-ms': { type: 'string', default: '10000' },
    'mongodb-server': { type: 'string' },
    baseline: { type: 'string' },
  },
});
const SETTLE_MS = Number(flags['settle-ms']);
const SPAN_MS = Number(flags['span-ms']);
/** Requests each proxy serves before it is left alone, so what is measured is idling, not a cold start. */
const WARM_REQUESTS = 20;

/** Voluntary context switches of every thread of `pid`: each is the thread going to sleep, so one per wake-up. */
function wakeUps(pid: number): number {
  return sumOverThreads(pid, 'status', (text) => Number(/voluntary_ctxt_switches:\s+(\d+)/.exec(text)?.[1] ?? 0));
}

interface Sample {
  cpuMs: number;
  /** Of which the main thread's (the event loop's): the rest is V8's and libuv's helper threads. */
  mainCpuMs: number;
  wakeUps: number;
}

function sample(pid: number): Sample {
  const mainNs = Number(readFileSync(`/proc/${pid}/task/${pid}/schedstat`, 'utf8').split(' ')[0]);
  return { cpuMs: cpuTimeMs(pid) ?? Number.NaN, mainCpuMs: mainNs / 1e6, wakeUps: wakeUps(pid) };
}

async function warm(child: Child, workload: Workload, withMemory: boolean): Promise<void> {
  for (let i = 0; i < WARM_REQUESTS; i++) {
    const spec = withMemory ? workload.withMemory(`idle-${i % 4}`, false) : workload.direct(false);
    const res = await request(`${child.url}${spec.path}`, { method: 'POST', headers: spec.headers, body: spec.body });
    await res.body.dump();
    if (res.statusCode !== 200) throw new Error(`warm-up request answered ${res.statusCode}`);
  }
}

const workload = new Workload({ historyTokens: 2700, bigTurns: 5 });
const baseline: BaselineBuild | undefined = flags.baseline === undefined ? undefined : baselineBuild(flags.baseline);
/** This build, and the baseline's beside it when there is one. */
const builds = [undefined, ...(baseline === undefined ? [] : [baseline])];
/** The contextds' logs, removed at the end. */
const logDir = mkdtempSync(join(tmpdir(), 'contextd-idle-'));
const upstream = await startUpstream();
const children: { name: string; child: Child; withMemory: boolean }[] = [];
let stores: BackingStores | undefined;

/** One contextd per build on a store; `storageOf(i)` is the i-th build's `storage:` section (none: the embedded store). */
async function addContextd(storeName: string, storageOf: (index: number) => Record<string, unknown> | undefined): Promise<void> {
  for (const [index, build] of builds.entries()) {
    const storage = storageOf(index);
    const label = build?.label ?? baseline?.thisLabel;
    children.push({
      name: label === undefined ? `contextd, ${storeName}` : `contextd ${label}, ${storeName}`,
      withMemory: true,
      child: await startContextd({
        upstreamUrl: upstream.baseUrl,
        logLevel: 'info',
        logPath: join(logDir, `contextd-${children.length}.log`),
        ...(storage === undefined ? {} : { storage }),
        ...(build === undefined ? {} : { build }),
      }),
    });
  }
}

try {
  children.push({ name: 'floor (undici pass-through)', child: await startFloorProxy(upstream.url), withMemory: false });
  if (flags.stores === 'all' || flags.stores === 'embedded') await addContextd('embedded store', () => undefined);
  if (flags.stores === 'all' || flags.stores === 'redis-mongodb') {
    const backing = await startBackingStores({ mongodbServer: parseMongodbServer(flags['mongodb-server']) });
    stores = backing;
    // A MongoDB database and a Redis database for each build: two flushers on one would move each other's turns.
    const pairs = await Promise.all(builds.map((_, index) => backing.pair(`idle${index}`, index + 1)));
    await addContextd(`Redis + MongoDB (${backing.mongo.label.replace(/ \(.*/, '')})`, (index) => pairs[index]!.storage);
  }
  for (const { child, withMemory } of children) await warm(child, workload, withMemory);
  await delay(SETTLE_MS);
  const before = children.map(({ child }) => sample(child.process.pid!));
  await delay(SPAN_MS);
  const after = children.map(({ child }) => sample(child.process.pid!));
  const perSecond = (value: number): string => ((value * 1000) / SPAN_MS).toFixed(1);
  console.log(`Idle cost, measured over ${SPAN_MS / 1000} s after ${WARM_REQUESTS} requests and ${SETTLE_MS / 1000} s of settling (all threads):\n`);
  console.log('| process | CPU ms per second | of which the main thread | wake-ups per second |\n| --- | ---: | ---: | ---: |');
  children.forEach(({ name }, i) => {
    const [b, a] = [before[i]!, after[i]!];
    console.log(`| ${name} | ${perSecond(a.cpuMs - b.cpuMs)} | ${perSecond(a.mainCpuMs - b.mainCpuMs)} | ${perSecond(a.wakeUps - b.wakeUps)} |`);
  });
} finally {
  await Promise.allSettled(children.map(({ child }) => child.stop()));
  await upstream.stop();
  await stores?.stop();
  rmSync(logDir, { recursive: true, force: true });
}
