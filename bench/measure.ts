// Measuring paths side by side. The machine is shared (two cores, and whatever
// else runs on it), so paths are not measured one after the other: each pass is
// cut into rounds, and every round measures a slice of every path, in a rotating
// order. A burst of outside load then lands on all paths alike, and the rounds'
// own ratios show how much the result moves.

import { performance } from 'node:perf_hooks';
import { setTimeout as delay } from 'node:timers/promises';
import { request, type Dispatcher, type Pool } from 'undici';
import type { Window } from './cpu-profile.js';
import { openPool, runLoad } from './load.js';
import { cpuTimeMs, type Child, type UpstreamChild } from './processes.js';
import { summarize, type PathRow } from './report.js';
import type { Api } from './apis.js';
import type { RequestSpec } from './workload.js';

export interface Target {
  name: string;
  child: Child;
  /** The next request of a worker, given the worker and the number of workers. */
  next: (worker: number, concurrency: number) => RequestSpec;
  isContextd: boolean;
  /** The API its requests speak: contextd's metrics are read for it. */
  api: Api;
  stream: boolean;
  /** Whose CPU time is this path's overhead (the proxy's); none for the direct path. */
  proxy?: Child;
  /**
   * Resolves once the proxy's background work for this slice is done (e.g.
   * every turn flushed to MongoDB): its CPU then counts in this slice, not the
   * next path's, and its time in the sustained req/s (not in the plain req/s).
   */
  settle?: () => Promise<void>;
}

export interface Slice {
  p50Ms: number;
  p99Ms: number;
  firstByteP50Ms: number;
  requestsPerSecond: number;
  /** With the time waited for `settle` counted in. */
  sustainedRequestsPerSecond: number;
  proxyCpuMsPerRequest?: number;
  upstreamCpuMsPerRequest: number;
}

interface MetricSnapshot {
  addedSumS: number;
  addedCount: number;
}

/** contextd's own contextd_added_latency_seconds (memory requests of one API), from GET /metrics. */
async function scrapeAddedLatency(contextd: Child, api: Api): Promise<MetricSnapshot> {
  const res = await request(`${contextd.url}/metrics`);
  const text = await res.body.text();
  const value = (name: string): number => {
    const line = text.split('\n').find((l) => l.startsWith(`${name}{`) && l.includes('kind="memory"') && l.includes(`api="${api}"`));
    return line === undefined ? 0 : Number(line.slice(line.lastIndexOf(' ') + 1));
  };
  return { addedSumS: value('contextd_added_latency_seconds_sum'), addedCount: value('contextd_added_latency_seconds_count') };
}

const monotonicUs = (): number => Number(process.hrtime.bigint() / 1000n);
const gc = (globalThis as { gc?: () => void }).gc;

/** One path at one concurrency: its connections, and everything measured on it so far. */
export class PathRun {
  readonly slices: Slice[] = [];
  /** When its slices ran, on the monotonic clock V8's profiler stamps samples with. */
  readonly windows: Window[] = [];
  #totalMs: number[] = [];
  #firstByteMs: number[] = [];
  #wallMs = 0;
  /** Of which waiting for `settle`. */
  settleMs = 0;
  #windowMessages = 0;
  #windowTokens = 0;
  #upstreamBytes = 0;
  #upstreamRequests = 0;
  #addedSumS = 0;
  #addedCount = 0;
  #proxyCpuMs = 0;
  #upstreamCpuMs = 0;

  private constructor(
    readonly target: Target,
    readonly concurrency: number,
    readonly pool: Pool,
    readonly pauseMs: number,
  ) {}

  /** Opens the path's connections and warms it (and the process behind it) up; `pauseMs` idles after each measured response. */
  static async open(target: Target, concurrency: number, warmupRequests: number, pauseMs = 0): Promise<PathRun> {
    const pool = openPool(target.child.url, concurrency);
    const run = new PathRun(target, concurrency, pool, pauseMs);
    await runLoad({ pool, concurrency, requests: warmupRequests, next: run.#next, stream: target.stream });
    return run;
  }

  readonly #next = (worker: number): RequestSpec => this.target.next(worker, this.concurrency);

  async measureSlice(requests: number, upstream: UpstreamChild): Promise<void> {
    gc?.();
    await delay(10); // let the previous slice's stragglers (log lines, stored turns) settle
    const onHeaders = this.target.isContextd
      ? (headers: Dispatcher.ResponseData['headers']): void => {
          this.#windowMessages += Number(headers['x-contextd-history-messages'] ?? 0);
          this.#windowTokens += Number(headers['x-contextd-context-tokens'] ?? 0);
        }
      : undefined;
    const metricsBefore = this.target.isContextd ? await scrapeAddedLatency(this.target.child, this.target.api) : undefined;
    const upstreamBefore = await upstream.stats();
    const proxyCpuBefore = cpuTimeMs(this.target.proxy?.process.pid);
    const upstreamCpuBefore = cpuTimeMs(upstream.process.pid);
    const startUs = monotonicUs();
    const loaded = await runLoad({ pool: this.pool, concurrency: this.concurrency, requests, next: this.#next, stream: this.target.stream, onHeaders, pauseMs: this.pauseMs });
    const settleStartedAt = performance.now();
    await this.target.settle?.();
    const settleMs = this.target.settle === undefined ? 0 : performance.now() - settleStartedAt;
    this.settleMs += settleMs;
    const endUs = monotonicUs();
    // The proxy may still be storing the last turn: that CPU belongs to this slice too.
    await delay(10);
    const proxyCpuAfter = cpuTimeMs(this.target.proxy?.process.pid);
    const upstreamCpuAfter = cpuTimeMs(upstream.process.pid);
    const proxyCpuMs = proxyCpuBefore === undefined || proxyCpuAfter === undefined ? undefined : proxyCpuAfter - proxyCpuBefore;
    const upstreamCpuMs = upstreamCpuBefore === undefined || upstreamCpuAfter === undefined ? Number.NaN : upstreamCpuAfter - upstreamCpuBefore;
    this.#proxyCpuMs += proxyCpuMs ?? 0;
    this.#upstreamCpuMs += upstreamCpuMs;
    const upstreamAfter = await upstream.stats();
    if (metricsBefore !== undefined) {
      const metricsAfter = await scrapeAddedLatency(this.target.child, this.target.api);
      this.#addedSumS += metricsAfter.addedSumS - metricsBefore.addedSumS;
      this.#addedCount += metricsAfter.addedCount - metricsBefore.addedCount;
    }
    this.#upstreamBytes += upstreamAfter.bodyBytes - upstreamBefore.bodyBytes;
    this.#upstreamRequests += upstreamAfter.modelRequests - upstreamBefore.modelRequests;
    this.windows.push({ startUs, endUs });
    this.#totalMs.push(...loaded.totalMs);
    this.#firstByteMs.push(...loaded.firstByteMs);
    this.#wallMs += loaded.wallMs;
    const slice = summarize(this.target.name, loaded);
    this.slices.push({
      p50Ms: slice.p50Ms,
      p99Ms: slice.p99Ms,
      firstByteP50Ms: slice.firstByteP50Ms,
      requestsPerSecond: slice.requestsPerSecond,
      sustainedRequestsPerSecond: (requests / (loaded.wallMs + settleMs)) * 1000,
      upstreamCpuMsPerRequest: upstreamCpuMs / requests,
      ...(proxyCpuMs === undefined ? {} : { proxyCpuMsPerRequest: proxyCpuMs / requests }),
    });
  }

  row(): PathRow {
    const requests = this.#totalMs.length;
    const row = summarize(this.target.name, {
      requests,
      concurrency: this.concurrency,
      totalMs: Float64Array.from(this.#totalMs),
      firstByteMs: Float64Array.from(this.#firstByteMs),
      wallMs: this.#wallMs,
    });
    row.upstreamBodyBytes = this.#upstreamBytes / this.#upstreamRequests;
    row.sustainedRequestsPerSecond = (requests / (this.#wallMs + this.settleMs)) * 1000;
    row.upstreamCpuMsPerRequest = this.#upstreamCpuMs / requests;
    if (this.target.proxy !== undefined) row.proxyCpuMsPerRequest = this.#proxyCpuMs / requests;
    if (this.target.isContextd) {
      // The window's history messages, plus the system message and the new one.
      row.promptMessages = this.#windowMessages / requests + 2;
      row.promptTokens = this.#windowTokens / requests;
      row.contextdAddedMeanMs = (this.#addedSumS / this.#addedCount) * 1000;
    }
    return row;
  }

  close(): Promise<void> {
    return this.pool.close();
  }
}

/**
 * Measures `requests` per path in `rounds` rounds; round r starts with path r
 * (mod the number of paths), so no path always follows the same neighbour.
 */
export async function interleave(runs: readonly PathRun[], requests: number, rounds: number, upstream: UpstreamChild): Promise<void> {
  const perSlice = Math.ceil(requests / rounds);
  for (let round = 0; round < rounds; round++) {
    for (let i = 0; i < runs.length; i++) await runs[(round + i) % runs.length]!.measureSlice(perSlice, upstream);
  }
}
