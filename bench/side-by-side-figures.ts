// The side-by-side table's figures, on the main API's paths: what contextd
// adds against what the floor adds, long history against short, throughput
// and CPU against the floor's, and the extras measured on request; the
// streaming pass's time to first byte and CPU against the floor's; with the
// targets issue 16 sets; and, with --baseline, this build against another's
// (no targets: they show a change's effect). Also how the tables name each path.

import { PATH_PREFIXES, type Api } from './apis.js';
import { added, field, minus, over, type Figure, type FigureLine } from './figures.js';
import type { RatioTarget } from './report.js';

export interface PathNames {
  direct: string;
  floor: string;
  short: string;
  long: string;
  plainFloor: string;
  quiet: string;
  variantShort: string;
  variantLong: string;
  /** The --baseline build's contextd, short path. */
  baselineShort: string;
  /**
   * With --baseline, a second contextd of this build in the baseline's role
   * (the short path only, conversations of its own): the two compare alike.
   */
  twinShort: string;
}

/** `labels`: the variant's (e.g. "Redis alone") and the baseline build's (e.g. its short git revision), when they ran. */
export function pathNames(api: Api, turns: { short: number; long: number }, labels: { variant?: string; baseline?: string } = {}): PathNames {
  const variantLabel = labels.variant ?? '';
  const prefix = PATH_PREFIXES[api];
  return {
    direct: `${prefix}direct`,
    floor: `${prefix}floor (undici pass-through)`,
    short: `${prefix}contextd short (${turns.short} turns)`,
    long: `${prefix}contextd long (${turns.long} turns)`,
    plainFloor: `${prefix}floor done plainly (undici.request + pipe)`,
    quiet: `${prefix}contextd short, LOG_LEVEL=warn`,
    variantShort: `${prefix}contextd short, ${variantLabel}`,
    variantLong: `${prefix}contextd long, ${variantLabel}`,
    baselineShort: `${prefix}contextd short (baseline ${labels.baseline ?? ''})`,
    twinShort: `${prefix}contextd short (this build, as the baseline runs)`,
  };
}

export interface MainFigureOptions {
  /** The store has a flusher whose time counts in throughput: also show req/s without it. */
  settles: boolean;
  plainFloor: boolean;
  /** The variant's label (e.g. "Redis alone") and the store's short title, when a variant ran. */
  variant?: { label: string; storeShortTitle: string };
  /** The main contextd's log level, when a warn variant ran beside it. */
  quietBeside?: string;
  /** A --baseline build's contextd ran beside this one. */
  baseline: boolean;
}

/**
 * Issue 16's targets, every ratio from one run. Columns: 0 is concurrency 1,
 * 1 concurrency N. What contextd adds (latency, first byte, CPU) is judged at
 * both; throughput where there is contention, long against short where
 * latency is pure.
 */
export const TARGETS = {
  /** (path p50 − direct p50) ÷ (floor p50 − direct p50), short and long. */
  addedOverFloor: { limit: 1.5, kind: 'at most', judgedAtColumns: [0, 1] },
  /** req/s (flushing included) ÷ the floor's. */
  throughputOverFloor: { limit: 0.6, kind: 'at least', judgedAtColumns: [1] },
  longOverShort: { limit: 1.05, kind: 'at most', judgedAtColumns: [0] },
  /** stream: true, (first byte p50 − direct's) ÷ the floor's. */
  firstByteOverFloor: { limit: 1.5, kind: 'at most', judgedAtColumns: [0, 1] },
  /** The proxy process's CPU ms per request ÷ the floor proxy's, streaming and not. */
  cpuOverFloor: { limit: 2, kind: 'at most', judgedAtColumns: [0, 1] },
} as const satisfies Record<string, RatioTarget>;

/** How many of the figures are latency alone (what the paced pass shows). */
export const LATENCY_FIGURES = 7;

export function mainFigures(names: PathNames, options: MainFigureOptions): FigureLine[] {
  const p50 = (path: string): Figure => field(path, 'p50Ms');
  const addedP50 = (path: string): Figure => added(path, names.direct);
  // Throughput counts the time the flusher needed after each slice (see Target.settle): what can be sustained.
  const rps = (path: string): Figure => field(path, 'sustainedRequestsPerSecond');
  const cpu = (path: string): Figure => field(path, 'proxyCpuMsPerRequest');
  const upstreamCpu = (path: string): Figure => field(path, 'upstreamCpuMsPerRequest');
  const figures: FigureLine[] = [
    { name: 'floor added p50 (floor − direct), ms', figure: addedP50(names.floor), format: 'ms' },
    { name: 'contextd short added p50 (short − direct), ms', figure: addedP50(names.short), format: 'ms' },
    { name: 'contextd long added p50 (long − direct), ms', figure: addedP50(names.long), format: 'ms' },
    { name: '**short added / floor added**', figure: over(addedP50(names.short), addedP50(names.floor)), format: 'ratio', target: TARGETS.addedOverFloor },
    { name: '**long added / floor added**', figure: over(addedP50(names.long), addedP50(names.floor)), format: 'ratio', target: TARGETS.addedOverFloor },
    { name: '**long p50 / short p50**', figure: over(p50(names.long), p50(names.short)), format: 'ratio', target: TARGETS.longOverShort },
    { name: 'long added / short added', figure: over(addedP50(names.long), addedP50(names.short)), format: 'ratio' },
    { name: '**short req/s / floor req/s**', figure: over(rps(names.short), rps(names.floor)), format: 'ratio', target: TARGETS.throughputOverFloor },
    { name: '**long req/s / floor req/s**', figure: over(rps(names.long), rps(names.floor)), format: 'ratio', target: TARGETS.throughputOverFloor },
    { name: 'floor req/s / direct req/s', figure: over(rps(names.floor), rps(names.direct)), format: 'ratio' },
    { name: '**CPU per request: short / floor**', figure: over(cpu(names.short), cpu(names.floor)), format: 'ratio', target: TARGETS.cpuOverFloor },
    { name: '**CPU per request: long / floor**', figure: over(cpu(names.long), cpu(names.floor)), format: 'ratio', target: TARGETS.cpuOverFloor },
    { name: 'upstream CPU per request: short / direct', figure: over(upstreamCpu(names.short), upstreamCpu(names.direct)), format: 'ratio' },
    { name: 'upstream CPU per request: long / direct', figure: over(upstreamCpu(names.long), upstreamCpu(names.direct)), format: 'ratio' },
  ];
  if (options.settles) {
    const repliesOnly = (path: string): Figure => field(path, 'requestsPerSecond');
    figures.push(
      { name: 'short req/s, replies only (flushing left out) / floor req/s', figure: over(repliesOnly(names.short), rps(names.floor)), format: 'ratio' },
      { name: 'long req/s, replies only (flushing left out) / floor req/s', figure: over(repliesOnly(names.long), rps(names.floor)), format: 'ratio' },
    );
  }
  if (options.plainFloor) {
    figures.push(
      { name: 'floor done plainly: added p50, ms', figure: addedP50(names.plainFloor), format: 'ms' },
      { name: 'floor done plainly / floor: added p50', figure: over(addedP50(names.plainFloor), addedP50(names.floor)), format: 'ratio' },
      { name: 'floor done plainly / floor: CPU per request', figure: over(cpu(names.plainFloor), cpu(names.floor)), format: 'ratio' },
    );
  }
  if (options.variant !== undefined) {
    const { label, storeShortTitle } = options.variant;
    figures.push(
      { name: `${label}: short added p50, ms`, figure: addedP50(names.variantShort), format: 'ms' },
      { name: `${label}: long added p50, ms`, figure: addedP50(names.variantLong), format: 'ms' },
      { name: `${label}: short added / floor added`, figure: over(addedP50(names.variantShort), addedP50(names.floor)), format: 'ratio' },
      { name: `${label}: long added / floor added`, figure: over(addedP50(names.variantLong), addedP50(names.floor)), format: 'ratio' },
      { name: `${label}: long p50 / short p50`, figure: over(p50(names.variantLong), p50(names.variantShort)), format: 'ratio' },
      { name: `${label}: short req/s / floor req/s`, figure: over(rps(names.variantShort), rps(names.floor)), format: 'ratio' },
      { name: `${label}: long req/s / floor req/s`, figure: over(rps(names.variantLong), rps(names.floor)), format: 'ratio' },
      { name: `${label}: CPU per request, short / floor`, figure: over(cpu(names.variantShort), cpu(names.floor)), format: 'ratio' },
      { name: `short added p50: ${storeShortTitle} − ${label}, ms`, figure: minus(p50(names.short), p50(names.variantShort)), format: 'ms' },
      { name: `long added p50: ${storeShortTitle} − ${label}, ms`, figure: minus(p50(names.long), p50(names.variantLong)), format: 'ms' },
    );
  }
  if (options.quietBeside !== undefined) {
    const level = options.quietBeside;
    figures.push(
      { name: 'short at LOG_LEVEL=warn (no request log line): added p50, ms', figure: addedP50(names.quiet), format: 'ms' },
      { name: 'short at warn: added / floor added', figure: over(addedP50(names.quiet), addedP50(names.floor)), format: 'ratio' },
      { name: `request log line: ${level} p50 − warn p50, ms`, figure: minus(p50(names.short), p50(names.quiet)), format: 'ms' },
      { name: `request log line: ${level} CPU − warn CPU per request, ms`, figure: minus(cpu(names.short), cpu(names.quiet)), format: 'ms' },
      { name: 'short at warn: req/s / floor req/s', figure: over(rps(names.quiet), rps(names.floor)), format: 'ratio' },
    );
  }
  if (options.baseline) {
    // This build's twin against the baseline, both in the same role (the short path alone,
    // conversations of their own), over the same direct path: what this build's changes did.
    // The main contextd serves every path, so its short path is no fair match for either.
    figures.push(
      { name: 'baseline short added p50 (baseline − direct), ms', figure: addedP50(names.baselineShort), format: 'ms' },
      { name: 'this build as the baseline runs: short added p50, ms', figure: addedP50(names.twinShort), format: 'ms' },
      { name: 'short added: this build / baseline', figure: over(addedP50(names.twinShort), addedP50(names.baselineShort)), format: 'ratio' },
      { name: 'CPU per request: this build / baseline', figure: over(cpu(names.twinShort), cpu(names.baselineShort)), format: 'ratio' },
      { name: 'req/s: this build / baseline', figure: over(rps(names.twinShort), rps(names.baselineShort)), format: 'ratio' },
      { name: 'CPU per request: main contextd / this build as the baseline runs (one build, two roles)', figure: over(cpu(names.short), cpu(names.twinShort)), format: 'ratio' },
    );
  }
  return figures;
}

/** The stream: true passes' figures, on the main API's short path (the streaming passes have no long one); `baseline`: a --baseline build ran too. */
export function streamFigures(names: PathNames, { baseline }: { baseline: boolean }): FigureLine[] {
  const addedFirstByte = (path: string): Figure => added(path, names.direct, 'firstByteP50Ms');
  const cpu = (path: string): Figure => field(path, 'proxyCpuMsPerRequest');
  const baselineFigures: FigureLine[] = [
    { name: 'stream: baseline short added first byte p50 (baseline − direct), ms', figure: addedFirstByte(names.baselineShort), format: 'ms' },
    { name: 'stream: first byte added: this build / baseline', figure: over(addedFirstByte(names.twinShort), addedFirstByte(names.baselineShort)), format: 'ratio' },
    { name: 'stream: CPU per request: this build / baseline', figure: over(cpu(names.twinShort), cpu(names.baselineShort)), format: 'ratio' },
  ];
  return [
    { name: 'stream: floor added first byte p50 (floor − direct), ms', figure: addedFirstByte(names.floor), format: 'ms' },
    { name: 'stream: contextd short added first byte p50 (short − direct), ms', figure: addedFirstByte(names.short), format: 'ms' },
    { name: '**stream: short added / floor added, first byte p50**', figure: over(addedFirstByte(names.short), addedFirstByte(names.floor)), format: 'ratio', target: TARGETS.firstByteOverFloor },
    { name: '**stream: CPU per request, short / floor**', figure: over(cpu(names.short), cpu(names.floor)), format: 'ratio', target: TARGETS.cpuOverFloor },
    ...(baseline ? baselineFigures : []),
  ];
}
