import type { ConversationKey, ConversationSnapshot } from '../domain.js';
import type { LoadLimits } from '../store/conversation-store.js';

/** Where windows are read from: the store, with this instance's unstored turns (ReadYourWrites). */
export interface WindowSource {
  load(key: ConversationKey, limits: LoadLimits): Promise<ConversationSnapshot>;
}

/** More results than one assistant message has calls: a second read that finds the call. */
const MAX_PARALLEL_CALLS = 128;

/** The stored window a route with this budget can use: everything after the summary that can fit it. */
export async function loadWindow(source: WindowSource, key: ConversationKey, budgetTokens: number): Promise<ConversationSnapshot> {
  // Every message costs at least 4 tokens (3 of overhead and its role), so no more can ever fit.
  const loaded = await source.load(key, { maxTokens: budgetTokens, maxMessages: Math.ceil(budgetTokens / 4) + 1 });
  // A tool exchange larger than the budget came back without its call: read on
  // to the call, whose unanswered ids the new turn may have to answer.
  if (loaded.messages.length > 0 && loaded.messages.every((m) => m.message.role === 'tool')) {
    return source.load(key, { maxTokens: Number.MAX_SAFE_INTEGER, maxMessages: loaded.messages.length + MAX_PARALLEL_CALLS });
  }
  return loaded;
}
