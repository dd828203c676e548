// bench/prefix-cache.ts's figures and tables: per conversation, what a prefix
// cache could serve of its prompts and how much history they held; sliding and
// chunked side by side, with chunked's ratio to sliding (STYLE.md §10).

import type { PrefixChange, PrefixRecord } from './prefix-cache-upstream.js';

/** One turn as the client and the upstream saw it. */
export interface TurnObservation {
  record: PrefixRecord;
  /** contextd's headers on the reply. */
  historyMessages: number;
  contextTokens: number;
  summaryUsed: boolean;
  /** x-contextd-prefix-stable: 'yes', 'no', or undefined when contextd did not send it. */
  prefixStable: string | undefined;
}

export interface ConversationFigures {
  requests: number;
  /** Of the prompt tokens of requests 2..N, the share a prefix cache could serve. */
  cacheableShare: number;
  /** The 1-based turn of the first request whose prompt was not the previous one plus new messages (undefined: none). */
  firstChangeTurn: number | undefined;
  /** The same share from that turn on: once history no longer fits. */
  cacheableShareFromFirstChange: number;
  /** Requests 2..N with any cache hit. */
  hitShare: number;
  meanHistoryMessages: number;
  meanPromptTokens: number;
  /** What the model is sent that a prefix cache could not serve: the tokens billed at the full input price. */
  meanUncachedTokens: number;
  /** Requests 2..N by where their prompt first differed from the previous one. */
  changes: Record<Exclude<PrefixChange, 'first request'>, number>;
  /** Requests whose body besides the messages differed from the previous one's. */
  otherBodyChanges: number;
  /** x-contextd-prefix-stable: no, requests 2..N (undefined: the header was never sent). */
  prefixStableNo: number | undefined;
  /** Requests 2..N whose x-contextd-prefix-stable disagrees with what the upstream saw (yes: the prompt only appended). */
  prefixStableDisagreements: number | undefined;
  summaryUsed: number;
  /** The upstream's prompt_tokens less contextd's x-contextd-context-tokens: largest difference either way. */
  maxCountDifference: number;
}

const share = (part: number, whole: number): number => (whole === 0 ? Number.NaN : part / whole);

function cacheShare(turns: readonly TurnObservation[]): number {
  let cacheable = 0;
  let prompt = 0;
  for (const turn of turns) {
    cacheable += turn.record.cacheableTokens;
    prompt += turn.record.promptTokens;
  }
  return share(cacheable, prompt);
}

/** Figures of one conversation's turns, in order; the first turn (nothing to share a prefix with) is left out of every share and mean. */
export function conversationFigures(turns: readonly TurnObservation[]): ConversationFigures {
  const later = turns.slice(1);
  const firstChange = later.findIndex((turn) => turn.record.change !== 'appended');
  const changes = { appended: 0, instructions: 0, summary: 0, 'window start': 0 };
  for (const turn of later) if (turn.record.change !== 'first request') changes[turn.record.change] += 1;
  const withHeader = later.filter((turn) => turn.prefixStable !== undefined);
  const mean = (value: (turn: TurnObservation) => number): number => share(later.reduce((sum, turn) => sum + value(turn), 0), later.length);
  return {
    requests: turns.length,
    cacheableShare: cacheShare(later),
    firstChangeTurn: firstChange < 0 ? undefined : firstChange + 2,
    cacheableShareFromFirstChange: firstChange < 0 ? Number.NaN : cacheShare(later.slice(firstChange)),
    hitShare: share(later.filter((turn) => turn.record.cacheableTokens > 0).length, later.length),
    meanHistoryMessages: mean((turn) => turn.historyMessages),
    meanPromptTokens: mean((turn) => turn.record.promptTokens),
    meanUncachedTokens: mean((turn) => turn.record.promptTokens - turn.record.cacheableTokens),
    changes,
    otherBodyChanges: later.filter((turn) => turn.record.isOtherBodyChanged).length,
    prefixStableNo: withHeader.length === 0 ? undefined : withHeader.filter((turn) => turn.prefixStable === 'no').length,
    prefixStableDisagreements:
      withHeader.length === 0 ? undefined : withHeader.filter((turn) => (turn.prefixStable === 'yes') !== (turn.record.change === 'appended')).length,
    summaryUsed: later.filter((turn) => turn.summaryUsed).length,
    maxCountDifference: Math.max(0, ...turns.map((turn) => Math.abs(turn.record.promptTokens - turn.contextTokens))),
  };
}

export interface PolicyColumn {
  figures: ConversationFigures;
  /** contextd_window_evictions_total{route} at the end (undefined: contextd does not export it). */
  evictionsMetric: number | undefined;
  /** contextd_summaries_total{route,outcome="stored"} at the end. */
  summariesStored: number;
}

export const TARGET_SHARE = 0.7;

const percent = (value: number): string => (Number.isFinite(value) ? `${(value * 100).toFixed(1)} %` : '–');
const count = (value: number | undefined): string => (value === undefined ? '–' : String(value));
const ratio = (a: number, b: number): string => (Number.isFinite(a / b) && b !== 0 ? (a / b).toFixed(2) : '–');

/** Sliding and chunked side by side, with chunked ÷ sliding where a ratio means something; then the target line. */
export function policyTable(sliding: PolicyColumn, chunked: PolicyColumn): string[] {
  const s = sliding.figures;
  const c = chunked.figures;
  const row = (name: string, a: string, b: string, r = ''): string => `| ${name} | ${a} | ${b} | ${r} |`;
  const changes = (f: ConversationFigures): string => `${f.changes['window start']} / ${f.changes.summary} / ${f.changes.instructions}`;
  const verdict = c.cacheableShare >= TARGET_SHARE ? 'PASS' : 'FAIL';
  return [
    '|  | sliding | chunked | chunked ÷ sliding |',
    '| --- | ---: | ---: | ---: |',
    row(`**prompt tokens a prefix cache could serve** (requests 2–${c.requests})`, percent(s.cacheableShare), `${percent(c.cacheableShare)} **${verdict}**`, ratio(c.cacheableShare, s.cacheableShare)),
    row(
      `the same from the first eviction on (turn ${s.firstChangeTurn ?? '–'} / ${c.firstChangeTurn ?? '–'})`,
      percent(s.cacheableShareFromFirstChange),
      percent(c.cacheableShareFromFirstChange),
      ratio(c.cacheableShareFromFirstChange, s.cacheableShareFromFirstChange),
    ),
    row('requests with a cache hit', percent(s.hitShare), percent(c.hitShare), ratio(c.hitShare, s.hitShare)),
    row('mean history messages sent (x-contextd-history-messages)', s.meanHistoryMessages.toFixed(1), c.meanHistoryMessages.toFixed(1), ratio(c.meanHistoryMessages, s.meanHistoryMessages)),
    row('mean prompt tokens', s.meanPromptTokens.toFixed(0), c.meanPromptTokens.toFixed(0), ratio(c.meanPromptTokens, s.meanPromptTokens)),
    row('mean prompt tokens a cache could not serve (full input price)', s.meanUncachedTokens.toFixed(0), c.meanUncachedTokens.toFixed(0), ratio(c.meanUncachedTokens, s.meanUncachedTokens)),
    row('prompts that changed, not only appended: at the window start / the summary / the instructions', changes(s), changes(c)),
    row('x-contextd-prefix-stable: no', count(s.prefixStableNo), count(c.prefixStableNo)),
    row('contextd_window_evictions_total{route}', count(sliding.evictionsMetric), count(chunked.evictionsMetric)),
    row('x-contextd-prefix-stable disagreeing with the upstream', count(s.prefixStableDisagreements), count(c.prefixStableDisagreements)),
    row('requests sent the summary / summaries stored', `${s.summaryUsed} / ${sliding.summariesStored}`, `${c.summaryUsed} / ${chunked.summariesStored}`),
    row('requests whose other body fields changed', String(s.otherBodyChanges), String(c.otherBodyChanges)),
    row("prompt tokens: the upstream's count − contextd's x-contextd-context-tokens, largest", String(s.maxCountDifference), String(c.maxCountDifference)),
  ];
}

/** One store's columns by route, or why it was not measured. */
export interface StoreRun {
  label: string;
  columns?: ReadonlyMap<string, PolicyColumn>;
  reason?: string;
}

/** Every turn of a conversation, one line each (--trace). */
export function trace(name: string, observations: readonly TurnObservation[]): void {
  console.log(`\n${name}: turn, history messages sent, prompt tokens, common prefix, cacheable, what changed, x-contextd-prefix-stable, summary sent`);
  observations.forEach((o, i) =>
    console.log(
      `${name} ${i + 1} ${o.historyMessages} ${o.record.promptTokens} ${o.record.commonPrefixTokens} ${o.record.cacheableTokens} ${o.record.change.replace(' ', '-')} ${o.prefixStable ?? '-'} ${o.summaryUsed ? 'summary' : '-'}`,
    ),
  );
}

/** The workload, for the report's opening paragraph. */
export interface Setup {
  userTokens: { min: number; max: number };
  turns: number;
  budgetTokens: number;
  lowWatermark: number;
  systemTokens: number;
  replyTokens: number;
}

export function report(runs: readonly StoreRun[], setup: Setup): void {
  console.log(`\n## Prompt-cache friendliness: sliding against chunked eviction (issue 15)\n`);
  console.log(
    `One contextd per store, one ${setup.turns}-turn conversation per route, max_context_tokens ${setup.budgetTokens}, chunked low_watermark ${setup.lowWatermark}; ` +
      `the client sends a ${setup.systemTokens}-token system prompt and the new user message (${setup.userTokens.min}–${setup.userTokens.max} tokens, seeded) with x-conversation-id; ` +
      `the upstream answers ${setup.replyTokens}-token replies. Cacheable: per request, the longest common prefix in tokens with the previous request of the conversation ` +
      `(o200k_base, message by message), 0 below 1,024 tokens, else 1,024 + whole steps of 128 (OpenAI's rule). Shares are of all prompt tokens of requests 2–${setup.turns}.`,
  );
  const pct = (value: number): string => `${Math.round(value * 100)}%`;
  const headline: string[] = [];
  for (const run of runs) {
    if (run.columns === undefined) {
      console.log(`\n### ${run.label}\n\nNot measured: ${run.reason ?? 'unknown'}`);
      continue;
    }
    const column = (route: string): PolicyColumn => run.columns!.get(route)!;
    for (const [title, sliding, chunked] of [
      ['rolling summaries off', 'sliding', 'chunked'],
      ['rolling summaries on (trigger_tokens 1500; the upstream writes a new ~120-token summary on each call)', 'sliding-summaries', 'chunked-summaries'],
    ] as const) {
      console.log(`\n### ${run.label}, ${title}\n`);
      console.log(policyTable(column(sliding), column(chunked)).join('\n'));
    }
    const off = { sliding: column('sliding').figures.cacheableShare, chunked: column('chunked').figures.cacheableShare };
    const on = { sliding: column('sliding-summaries').figures.cacheableShare, chunked: column('chunked-summaries').figures.cacheableShare };
    console.log(
      `\n**Target** (issue 15), ${run.label}: chunked ≥ ${pct(TARGET_SHARE)} of prompt tokens cacheable: summaries off ${pct(off.chunked)} **${off.chunked >= TARGET_SHARE ? 'PASS' : 'FAIL'}**, ` +
        `summaries on ${pct(on.chunked)} **${on.chunked >= TARGET_SHARE ? 'PASS' : 'FAIL'}**`,
    );
    if (headline.length === 0) {
      headline.push(
        `chunked: ${pct(off.chunked)} of prompt tokens cacheable, sliding: ${pct(off.sliding)} (${setup.turns} turns, ${setup.budgetTokens}-token budget, ${run.label})`,
        `with rolling summaries: chunked ${pct(on.chunked)}, sliding ${pct(on.sliding)}`,
      );
    }
  }
  if (headline.length > 0) console.log(`\nHeadline (for the top-level README):\n\n${headline.join('\n')}`);
}
