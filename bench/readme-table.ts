// The top-level README's table (`npm run bench -- --readme`): issue 16's
// headline targets for chat completions on the short path, one column per
// store measured, each cell its figures at concurrency 1 and at the high one.
// The full verdict table, every row, stays in the run's output and bench/README.md.

import type { TargetVerdict } from './report.js';

export interface StoreVerdict {
  /** 'embedded' or 'Redis + MongoDB', as run.ts names them. */
  store: string;
  verdict: TargetVerdict;
}

/** A row: the verdict's figure (its name before ", concurrency N") at the concurrencies given (`high` for the run's high one). */
const ROWS: readonly { label: (high: number) => string; figure: string; at: readonly ('1' | 'high')[] }[] = [
  { label: () => 'added latency p50', figure: 'short added / floor added', at: ['1', 'high'] },
  { label: (high) => `req/s (c=${high}, flushing included)`, figure: 'short req/s / floor req/s', at: ['high'] },
  { label: () => 'CPU per request', figure: 'CPU per request: short / floor', at: ['1', 'high'] },
  { label: () => 'streamed first byte, added', figure: 'stream: short added / floor added, first byte p50', at: ['1', 'high'] },
  { label: () => 'streamed CPU per request', figure: 'stream: CPU per request, short / floor', at: ['1', 'high'] },
  { label: () => 'long (500 turns) ÷ short p50 (c=1)', figure: 'long p50 / short p50', at: ['1'] },
];

/**
 * The README's markdown table: `stores` in column order, each with the label
 * its header carries (the MongoDB server for Redis + MongoDB); a passing figure
 * is bold, one not measured is "–".
 */
export function readmeTable(verdicts: readonly StoreVerdict[], stores: readonly { store: string; label?: string }[], high: number, stamp: string): string {
  const find = (store: string, figure: string, concurrency: number): TargetVerdict | undefined =>
    verdicts.find((v) => v.store === store && v.verdict.name === `${figure}, concurrency ${concurrency}`)?.verdict;
  const cell = (verdict: TargetVerdict | undefined): string => {
    if (verdict?.value === undefined || !Number.isFinite(verdict.value)) return '–';
    const text = verdict.value.toFixed(2);
    return verdict.verdict === 'PASS' ? `**${text}**` : text;
  };
  const header = stores.map(({ store, label }) => `${store}${label === undefined ? '' : ` (${label})`}, c=1 · c=${high}`);
  const lines = [`| chat completions, ratio to the floor | ${header.join(' | ')} | target |`, `| --- |${' ---: |'.repeat(stores.length)} ---: |`];
  for (const row of ROWS) {
    const concurrencies = row.at.map((at) => (at === '1' ? 1 : high));
    const cells = stores.map(({ store }) => concurrencies.map((c) => cell(find(store, row.figure, c))).join(' · '));
    const any = stores.flatMap(({ store }) => concurrencies.map((c) => find(store, row.figure, c))).find((v) => v !== undefined);
    const target = any === undefined ? '–' : `${any.kind === 'at most' ? '≤' : '≥'} ${any.limit}`;
    lines.push(`| ${row.label(high)} | ${cells.join(' | ')} | ${target} |`);
  }
  return [stamp, '', ...lines].join('\n');
}
