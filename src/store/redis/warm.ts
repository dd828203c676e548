// Cache warming (cache mode): what WARM seeds a conversation Redis does not
// hold with, from MongoDB's state (flushedSeq = lastSeq). Messages the summary
// covers, and all but the newest maxCachedMessages, are not kept.

import type { WarmState } from '../conversation-store.js';
import { encodeEntry, requireCount } from './entry-codec.js';
import type { ScriptArg } from './scripts.js';

/** WARM's ARGV after ttlMs: lastSeq, lastCum, summaryJson, coversSeq, newInc, then the entries oldest first. */
export function warmArgs(state: WarmState, cap: number, newInc: () => string): ScriptArg[] {
  requireCount('lastSeq', state.lastSeq);
  requireCount('lastCum', state.lastCum);
  const coversSeq = state.summary?.coversSeq ?? 0;
  const kept = state.messages.filter((m) => m.seq > coversSeq && m.seq <= state.lastSeq).slice(-cap);
  // Running totals the messages do not carry are derived back from lastCum.
  const cums: number[] = [];
  let runningCum = state.lastCum;
  for (let index = kept.length - 1; index >= 0; index--) {
    const stored = kept[index]!;
    cums[index] = stored.cumTokens ?? runningCum;
    runningCum = cums[index]! - stored.tokens;
  }
  const entries = kept.map((stored, index) => encodeEntry(stored, cums[index]!));
  return [state.lastSeq, state.lastCum, state.summary === undefined ? '' : JSON.stringify(state.summary), coversSeq, newInc(), ...entries];
}
