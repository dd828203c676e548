import { randomUUID } from 'node:crypto';
import type { ResponseLinkBook } from '../background/response-link-book.js';
import { branchSummary, historyThroughTurn, turnPlace } from '../context/branch-history.js';
import type { ConversationId, ConversationKey, ConversationSnapshot, StoredMessage, TenantId } from '../domain.js';
import { PreviousResponseConflictError, PreviousResponseNotFoundError } from '../errors.js';
import type { ConversationStore } from '../store/conversation-store.js';
import { loadWindow, type WindowSource } from './load-window.js';

export interface PreviousResponseDeps {
  links: Pick<ResponseLinkBook, 'find'>;
  windows: WindowSource;
  /** Where a branch is read from and written to. */
  store: Pick<ConversationStore, 'listMessages' | 'append' | 'replaceSummary'>;
}

/** The conversation a previous_response_id continues: its window, and the conversation it branched from, if it did. */
export interface ContinuedConversation {
  key: ConversationKey;
  snapshot: ConversationSnapshot;
  branchedFrom?: ConversationId;
}

/** Messages per listMessages page when a whole conversation is read for a branch. */
const PAGE = 1_000;

/**
 * previous_response_id on an emulating route (docs/responses.md): the newest
 * response continues its conversation; an older one (regenerate, branch)
 * starts a new conversation holding the history up to and including it.
 */
export async function continueFromResponse(
  deps: PreviousResponseDeps,
  request: { tenant: TenantId; responseId: string; headerConversation: ConversationId | undefined; conversationHeader: string; budgetTokens: number },
): Promise<ContinuedConversation> {
  const { tenant, responseId } = request;
  const link = await deps.links.find(tenant, responseId);
  if (link === undefined) throw new PreviousResponseNotFoundError(responseId);
  if (request.headerConversation !== undefined && request.headerConversation !== link.conversation) {
    throw new PreviousResponseConflictError(responseId, request.conversationHeader);
  }
  const key: ConversationKey = { tenant, conversation: link.conversation };
  const snapshot = await loadWindow(deps.windows, key, request.budgetTokens);
  if (turnPlace(snapshot.messages, link.turnKey) === 'newest') return { key, snapshot };

  // Older than the window shows, or a window that does not show it: read the whole conversation.
  const through = historyThroughTurn(await wholeConversation(deps.store, key, snapshot), link.turnKey);
  // The conversation no longer holds the turn (deleted, expired, or folded into a summary and dropped).
  if (through === undefined) throw new PreviousResponseNotFoundError(responseId);
  if (through.isNewest) return { key, snapshot };

  const branch: ConversationKey = { tenant, conversation: randomUUID() as ConversationId };
  // One append: a branch holds all of its history or none of it.
  await deps.store.append(
    branch,
    through.messages.map(({ message, tokens, digest }) => ({ message, tokens, digest })),
    { turnKey: `branch:${responseId}` },
  );
  const summary = branchSummary(snapshot.summary, through.messages);
  if (summary !== undefined) await deps.store.replaceSummary(branch, summary);
  return { key: branch, snapshot: await loadWindow(deps.windows, branch, request.budgetTokens), branchedFrom: link.conversation };
}

/** Every message the store holds of the conversation, and this instance's turns not yet stored (from the snapshot). */
async function wholeConversation(store: PreviousResponseDeps['store'], key: ConversationKey, snapshot: ConversationSnapshot): Promise<StoredMessage[]> {
  const messages: StoredMessage[] = [];
  for (let afterSeq = 0; ; ) {
    const page = await store.listMessages(key, { afterSeq, limit: PAGE });
    messages.push(...page);
    if (page.length < PAGE) break;
    afterSeq = page.at(-1)!.seq;
  }
  const lastListed = messages.at(-1)?.seq ?? 0;
  return [...messages, ...snapshot.messages.filter((m) => m.seq > lastListed)];
}
