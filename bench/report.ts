// Turns timings into the tables the run prints: per path, then the ratios the
// issue sets targets for. Absolute milliseconds describe this machine only; the
// ratios against the direct path and the floor measured in the same run are the result.

import type { LoadResult } from './load.js';

export interface PathRow {
  path: string;
  concurrency: number;
  requests: number;
  p50Ms: number;
  p90Ms: number;
  p99Ms: number;
  requestsPerSecond: number;
  /** Counting the time waited after slices for the proxy's background work (see Target.settle). */
  sustainedRequestsPerSecond?: number;
  firstByteP50Ms: number;
  firstByteP99Ms: number;
  /** Mean messages and tokens the upstream was sent (contextd's window, or what the client sent). */
  promptMessages?: number;
  promptTokens?: number;
  /** Mean request body bytes the upstream received. */
  upstreamBodyBytes?: number;
  /** contextd's own contextd_added_latency_seconds (before the upstream call), mean over the phase. */
  contextdAddedMeanMs?: number;
  /** CPU time the proxy process (floor or contextd) used per request, from /proc. */
  proxyCpuMsPerRequest?: number;
  /** CPU time the fake upstream used per request: the same on every path when the comparison is fair. */
  upstreamCpuMsPerRequest?: number;
}

function percentile(sorted: Float64Array, q: number): number {
  if (sorted.length === 0) return Number.NaN;
  const rank = Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1));
  return sorted[rank] ?? Number.NaN;
}

export function summarize(path: string, result: LoadResult): PathRow {
  const total = Float64Array.from(result.totalMs).sort();
  const firstByte = Float64Array.from(result.firstByteMs).sort();
  return {
    path,
    concurrency: result.concurrency,
    requests: result.requests,
    p50Ms: percentile(total, 0.5),
    p90Ms: percentile(total, 0.9),
    p99Ms: percentile(total, 0.99),
    requestsPerSecond: (result.requests / result.wallMs) * 1000,
    firstByteP50Ms: percentile(firstByte, 0.5),
    firstByteP99Ms: percentile(firstByte, 0.99),
  };
}

export function quantiles(values: readonly number[]): { p50: number; p90: number; p99: number } {
  const sorted = Float64Array.from(values).sort();
  return { p50: percentile(sorted, 0.5), p90: percentile(sorted, 0.9), p99: percentile(sorted, 0.99) };
}

const ms = (value: number | undefined): string => (value === undefined || Number.isNaN(value) ? '–' : value.toFixed(3));
const num = (value: number | undefined, digits = 0): string => (value === undefined || Number.isNaN(value) ? '–' : value.toFixed(digits));

function table(header: readonly string[], rows: readonly (readonly string[])[]): string {
  const line = (cells: readonly string[]): string => `| ${cells.join(' | ')} |`;
  return [line(header), line(header.map((cell, i) => (i === 0 ? '---' : '---:'))), ...rows.map(line)].join('\n');
}

export function latencyTable(rows: readonly PathRow[]): string {
  return table(
    ['path', 'conc.', 'requests', 'p50 ms', 'p90 ms', 'p99 ms', 'req/s (flushing included)', 'req/s, replies only', 'proxy CPU ms/req', 'upstream CPU ms/req', 'upstream msgs', 'upstream tokens', 'upstream bytes', 'contextd pre-upstream mean ms'],
    rows.map((row) => [
      row.path,
      String(row.concurrency),
      String(row.requests),
      ms(row.p50Ms),
      ms(row.p90Ms),
      ms(row.p99Ms),
      num(row.sustainedRequestsPerSecond ?? row.requestsPerSecond),
      num(row.requestsPerSecond),
      ms(row.proxyCpuMsPerRequest),
      ms(row.upstreamCpuMsPerRequest),
      num(row.promptMessages, 1),
      num(row.promptTokens),
      num(row.upstreamBodyBytes),
      ms(row.contextdAddedMeanMs),
    ]),
  );
}

/** `directOf`: the direct path a row's first byte is compared with (its API's, at its concurrency). */
export function streamingTable(rows: readonly PathRow[], directOf: (row: PathRow) => PathRow | undefined): string {
  return table(
    ['path (stream: true)', 'conc.', 'requests', 'first byte p50 ms', 'first byte p99 ms', 'added first byte p50 ms', 'total p50 ms', 'total p99 ms', 'req/s', 'proxy CPU ms/req'],
    rows.map((row) => [
      row.path,
      String(row.concurrency),
      String(row.requests),
      ms(row.firstByteP50Ms),
      ms(row.firstByteP99Ms),
      ms(row.firstByteP50Ms - (directOf(row)?.firstByteP50Ms ?? Number.NaN)),
      ms(row.p50Ms),
      ms(row.p99Ms),
      num(row.requestsPerSecond),
      ms(row.proxyCpuMsPerRequest),
    ]),
  );
}

/** A limit on a figure, judged in each of the named columns of its table (e.g. concurrency 1 and N), each with a verdict of its own. */
export interface RatioTarget {
  limit: number;
  kind: 'at most' | 'at least';
  judgedAtColumns: readonly number[];
}

export interface RatioLine {
  name: string;
  values: readonly (number | undefined)[];
  /** The same figure per round, per column: lowest, median, highest. */
  spreads?: readonly { min: number; median: number; max: number }[];
  format: 'ms' | 'ratio';
  target?: RatioTarget;
}

/** One judged value: the targets table has a row per target and column judged. */
export interface TargetVerdict {
  /** The figure, and where it was judged (e.g. "short added / floor added, concurrency 8"). */
  name: string;
  value: number | undefined;
  limit: number;
  kind: 'at most' | 'at least';
  verdict: 'PASS' | 'FAIL' | 'n/a';
}

export function verdict(value: number | undefined, target: { limit: number; kind: 'at most' | 'at least' }): 'PASS' | 'FAIL' | 'n/a' {
  if (value === undefined || !Number.isFinite(value)) return 'n/a';
  return (target.kind === 'at most' ? value <= target.limit : value >= target.limit) ? 'PASS' : 'FAIL';
}

const stripBold = (name: string): string => name.replace(/\*/g, '');

/** The verdicts of a ratio table's judged lines, one per judged column, in the table's order. */
export function targetVerdicts(columns: readonly string[], lines: readonly RatioLine[]): TargetVerdict[] {
  return lines.flatMap((line) => {
    const target = line.target;
    if (target === undefined) return [];
    return target.judgedAtColumns.map((column) => {
      const value = line.values[column];
      return { name: `${stripBold(line.name)}, ${columns[column] ?? `column ${column}`}`, value, limit: target.limit, kind: target.kind, verdict: verdict(value, target) };
    });
  });
}

export function ratioTable(columns: readonly string[], lines: readonly RatioLine[]): string {
  return table(
    ['', ...columns, 'target'],
    lines.map((line) => [
      line.name,
      ...line.values.map((value, column) => {
        const format = (v: number | undefined): string => (line.format === 'ms' ? ms(v) : v === undefined || !Number.isFinite(v) ? '–' : v.toFixed(2));
        const spread = line.spreads?.[column];
        const text = format(value) + (spread === undefined || !Number.isFinite(spread.min) ? '' : ` (${format(spread.min)}–${format(spread.max)}, med ${format(spread.median)})`);
        return line.target?.judgedAtColumns.includes(column) === true ? `${text} **${verdict(value, line.target)}**` : text;
      }),
      line.target === undefined
        ? ''
        : `${line.target.kind === 'at most' ? '≤' : '≥'} ${line.target.limit} (${line.target.judgedAtColumns.map((column) => columns[column]).join(' and ')})`,
    ]),
  );
}
