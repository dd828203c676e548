// The side-by-side table's figures, on the main API's paths: what contextd
// adds against what the floor adds, long history against short, throughput
// and CPU against the floor's, and the extras measured on request; with the
// targets the issue sets (latency judged at concurrency 1, throughput at N).
// Also how the tables name each path.

import { PATH_PREFIXES, type Api } from './apis.js';
import { added, field, minus, over, type Figure, type FigureLine } from './figures.js';

export interface PathNames {
  direct: string;
  floor: string;
  short: string;
  long: string;
  plainFloor: string;
  quiet: string;
  variantShort: string;
  variantLong: string;
}

export function pathNames(api: Api, turns: { short: number; long: number }, variantLabel = ''): PathNames {
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
}

/** How many of the figures are latency alone (what the paced pass shows). */
export const LATENCY_FIGURES = 7;

export function mainFigures(names: PathNames, options: MainFigureOptions): FigureLine[] {
  const p50 = (path: string): Figure => field(path, 'p50Ms');
  const addedP50 = (path: string): Figure => added(path, names.direct);
  // Throughput counts the time the flusher needed after each slice (see Target.settle): what can be sustained.
  const rps = (path: string): Figure => field(path, 'sustainedRequestsPerSecond');
  const cpu = (path: string): Figure => field(path, 'proxyCpuMsPerRequest');
  const upstreamCpu = (path: string): Figure => field(path, 'upstreamCpuMsPerRequest');
  const latencyTarget = { limit: 2, kind: 'at most', judgedAtColumn: 0 } as const;
  const throughputTarget = { limit: 0.5, kind: 'at least', judgedAtColumn: 1 } as const;
  const figures: FigureLine[] = [
    { name: 'floor added p50 (floor − direct), ms', figure: addedP50(names.floor), format: 'ms' },
    { name: 'contextd short added p50 (short − direct), ms', figure: addedP50(names.short), format: 'ms' },
    { name: 'contextd long added p50 (long − direct), ms', figure: addedP50(names.long), format: 'ms' },
    { name: '**short added / floor added**', figure: over(addedP50(names.short), addedP50(names.floor)), format: 'ratio', target: latencyTarget },
    { name: '**long added / floor added**', figure: over(addedP50(names.long), addedP50(names.floor)), format: 'ratio', target: latencyTarget },
    { name: '**long p50 / short p50**', figure: over(p50(names.long), p50(names.short)), format: 'ratio', target: { limit: 1.1, kind: 'at most', judgedAtColumn: 0 } },
    { name: 'long added / short added', figure: over(addedP50(names.long), addedP50(names.short)), format: 'ratio' },
    { name: '**short req/s / floor req/s**', figure: over(rps(names.short), rps(names.floor)), format: 'ratio', target: throughputTarget },
    { name: '**long req/s / floor req/s**', figure: over(rps(names.long), rps(names.floor)), format: 'ratio', target: throughputTarget },
    { name: 'floor req/s / direct req/s', figure: over(rps(names.floor), rps(names.direct)), format: 'ratio' },
    { name: 'CPU per request: short / floor', figure: over(cpu(names.short), cpu(names.floor)), format: 'ratio' },
    { name: 'CPU per request: long / floor', figure: over(cpu(names.long), cpu(names.floor)), format: 'ratio' },
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
  return figures;
}
