// What the hot tier is seeded with from the durable tier: its newest messages
// and where it stands (lastSeq, the running total, the summary). Read for a
// warm after a miss (tiered-store.ts) and for the rebase that ends an unmerged
// conversation (outage-merge.ts), so that both seed Redis alike.

import type { ConversationKey, ConversationSnapshot } from '../domain.js';
import type { DurableTier, WarmState } from './conversation-store.js';

/** Runs one durable-tier call under its deadline (callTier), named for the health report. */
export type DurableCall = <T>(operation: string, call: () => Promise<T>) => Promise<T>;

/**
 * One query (none when a cold read already made it, `cold`): the summary,
 * lastSeq and the newest `maxMessages`, the newest carrying the running total.
 * A second, for the head, only when the newest turn is still being inserted
 * (lastSeq is then past the newest message).
 */
export async function readWarmState(
  durable: Pick<DurableTier, 'load' | 'conversationState'>,
  key: ConversationKey,
  maxMessages: number,
  call: DurableCall,
  cold?: ConversationSnapshot,
): Promise<WarmState> {
  const snapshot = cold ?? (await call('load', () => durable.load(key, { maxMessages, maxTokens: Number.MAX_SAFE_INTEGER })));
  const newest = snapshot.messages.at(-1);
  const isSettled = snapshot.lastSeq === 0 || (newest?.seq === snapshot.lastSeq && newest.cumTokens !== undefined);
  const state = isSettled
    ? { lastSeq: snapshot.lastSeq, lastCum: newest?.cumTokens ?? 0, summary: snapshot.summary }
    : await call('conversationState', () => durable.conversationState(key));
  return { ...state, messages: snapshot.messages };
}
