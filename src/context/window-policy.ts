// Where the window starts under a route's window policy (docs/request-path.md,
// "Window policy"). Pure.
//
// `sliding` leaves it to the assembly's newest-first walk: the most recent
// history that fits, so the window's first message moves on nearly every turn.
// `chunked` keeps the prompt's prefix (instructions, summary, kept history)
// the same from turn to turn, so a provider's prompt cache can serve it: the
// window starts at the first turn at or after a threshold that moves only in
// steps of (1 - low_watermark) x the window, once the history no longer fits.
//
// The threshold is a function of the conversation's running token total
// (StoredMessage.cumTokens, which every store keeps), not of anything this
// process remembers: every instance, and a restarted one, starts the window
// at the same message, with no state of its own to store.

import type { StoredMessage } from '../domain.js';
import { hasToolCalls } from './tool-sequence.js';

/** How many turns like the last one ahead of a step its summary is asked for. */
const STEP_LEAD_TURNS = 4;

export interface ChunkedStart {
  /** Index into the history where the window starts (history.length: none of it). */
  start: number;
  /** Whether the window starts where it did for the conversation's previous request (the prefix can be the same). */
  isSameAsBefore: boolean;
  /**
   * Where the next step will start the window, once the next few turns are
   * likely to reach it (else undefined): a summary folding what comes before
   * it can be written ahead, so that the summary changes at the step too.
   */
  nextStart?: number;
}

/**
 * The chunked window's start in `history` (the stored messages after the
 * summary, oldest first) for a request whose new turn costs `turnTokens`,
 * within `windowTokens` for history and turn together. `pinnedFrom` is where
 * the history the turn cannot go without starts (the tool_calls message its
 * tool results answer; history.length when none): the window never starts
 * after it. Undefined when the history carries no running totals to place it
 * by (then the window slides).
 */
export function chunkedStart(history: readonly StoredMessage[], turnTokens: number, windowTokens: number, lowWatermark: number, pinnedFrom = history.length): ChunkedStart | undefined {
  if (history.length === 0) return { start: 0, isSameAsBefore: true };
  const ends = runningTotals(history);
  if (ends === undefined) return undefined;
  const step = Math.max(1, Math.floor((1 - lowWatermark) * windowTokens));
  const end = ends.at(-1)! + turnTokens;
  const threshold = thresholdFor(end, windowTokens, step);
  // The conversation's previous request ended before the reply that closes the history.
  const last = history.at(-1)!;
  const previousEnd = last.message.role === 'assistant' ? ends.at(-1)! - last.tokens : ends.at(-1)!;
  const stepStart = firstTurnFrom(history, ends, threshold);
  // A tool loop longer than the window: it starts at the call the turn answers, a start that moves every turn.
  const start = Math.min(stepStart, pinnedFrom);
  const isSameAsBefore = stepStart <= pinnedFrom && firstTurnFrom(history, ends, thresholdFor(previousEnd, windowTokens, step)) === start;
  // A turn grows the history by about this turn and the last reply; do four more like it reach the step?
  // Four, not one: a job offered a turn ahead lands after the step when turns come back to back, and the
  // summary then changes the prefix a request after the window did; the step comes with the summary instead.
  const growth = turnTokens + (last.message.role === 'assistant' ? last.tokens : 0);
  const stepIsNear = end + STEP_LEAD_TURNS * growth > threshold + windowTokens;
  return stepIsNear ? { start, isSameAsBefore, nextStart: firstTurnFrom(history, ends, threshold + step) } : { start, isSameAsBefore };
}

/** The first whole turn whose running total before it is at least `threshold` (history.length: none). */
function firstTurnFrom(history: readonly StoredMessage[], ends: readonly number[], threshold: number): number {
  for (let i = 0; i < history.length; i++) {
    if (ends[i]! - history[i]!.tokens >= threshold && startsTurn(history, i)) return i;
  }
  return history.length;
}

/** The smallest multiple of `step` that leaves at most `windowTokens` between it and `end`. */
function thresholdFor(end: number, windowTokens: number, step: number): number {
  return end <= windowTokens ? 0 : Math.ceil((end - windowTokens) / step) * step;
}

/** Each message's running total; those not yet stored (no cumTokens) continue from the one before. */
function runningTotals(history: readonly StoredMessage[]): number[] | undefined {
  if (history[0]!.cumTokens === undefined) return undefined;
  const ends: number[] = [];
  let total = 0;
  for (const m of history) {
    total = m.cumTokens ?? total + m.tokens;
    ends.push(total);
  }
  return ends;
}

/**
 * Whole turns: a turn's first message carries its key, and a tool result never
 * starts a window. A turn that opens with tool results (an agent's tool loop)
 * can only be left whole with the turn before it, so its tool_calls message,
 * which starts a unit the assembly keeps whole, is a start too: without it a
 * loop longer than the window would have no start at all.
 */
function startsTurn(history: readonly StoredMessage[], i: number): boolean {
  const m = history[i]!;
  if (m.message.role === 'tool') return false;
  return m.turnKey !== undefined || m.message.role === 'user' || hasToolCalls(m.message);
}
