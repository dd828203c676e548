// A figure of the report, a difference or ratio of paths' measurements, over
// passes measured in the same rounds: computed once from each pass's whole
// rows, and again per round from its slices, whose lowest, median and highest
// are the spread the tables print in brackets.

import type { PathRun } from './measure.js';
import { quantiles, type PathRow, type RatioLine } from './report.js';

/** What a figure can read of a path: fields both a whole row and a round's slice have. */
export type Field = 'p50Ms' | 'p99Ms' | 'firstByteP50Ms' | 'requestsPerSecond' | 'sustainedRequestsPerSecond' | 'proxyCpuMsPerRequest' | 'upstreamCpuMsPerRequest';
export type Figure = (get: (path: string, field: Field) => number) => number;

export interface FigureLine {
  name: string;
  figure: Figure;
  format: RatioLine['format'];
  target?: NonNullable<RatioLine['target']>;
}

export function field(path: string, name: Field): Figure {
  return (get) => get(path, name);
}

/** What `path` adds to `baseline` (e.g. floor − direct). */
export function added(path: string, baseline: string, name: Field = 'p50Ms'): Figure {
  return (get) => get(path, name) - get(baseline, name);
}

export function minus(a: Figure, b: Figure): Figure {
  return (get) => a(get) - b(get);
}

export function over(a: Figure, b: Figure): Figure {
  return (get) => a(get) / b(get);
}

/** Figures over passes; column `c` of a table is `passes[c]`. */
export class PassFigures {
  constructor(
    private readonly passes: readonly (readonly PathRun[])[],
    private readonly rowOf: (run: PathRun) => PathRow,
    private readonly rounds: number,
  ) {}

  #run(path: string, column: number): PathRun | undefined {
    return this.passes[column]?.find((run) => run.target.name === path);
  }

  /** The path's whole-pass row in that column. */
  row(path: string, column: number): PathRow | undefined {
    const run = this.#run(path, column);
    return run === undefined ? undefined : this.rowOf(run);
  }

  value(figure: Figure, column: number): number {
    return figure((path, name) => this.row(path, column)?.[name] ?? Number.NaN);
  }

  spread(figure: Figure, column: number): { min: number; median: number; max: number } {
    const perRound = Array.from({ length: this.rounds }, (_, round) =>
      figure((path, name) => {
        const slice = this.#run(path, column)?.slices[round];
        return slice === undefined ? Number.NaN : (slice[name] ?? Number.NaN);
      }),
    ).filter(Number.isFinite);
    const { p50 } = quantiles(perRound);
    return { min: Math.min(...perRound), median: p50, max: Math.max(...perRound) };
  }

  /** Table lines: each figure in each of `columns` (with its spread over rounds, when there were rounds). */
  lines(figures: readonly FigureLine[], columns: readonly number[]): RatioLine[] {
    return figures.map((f) => ({
      name: f.name,
      format: f.format,
      values: columns.map((c) => this.value(f.figure, c)),
      ...(this.rounds > 1 ? { spreads: columns.map((c) => this.spread(f.figure, c)) } : {}),
      ...(f.target === undefined ? {} : { target: f.target }),
    }));
  }
}
