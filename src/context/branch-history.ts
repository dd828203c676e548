// Where a turn stands in a conversation, for previous_response_id emulation
// (docs/responses.md): the newest turn is continued; an older one starts a
// branch, a new conversation holding the history up to and including it. Pure.
//
// A turn is its first message, which carries the turn key (every stored turn
// has one), and the messages after it up to the next message with a key.

import type { StoredMessage, Summary } from '../domain.js';

/** Where the turn is among `messages` (oldest first): the newest turn, an older one, or not among them. */
export function turnPlace(messages: readonly StoredMessage[], turnKey: string): 'newest' | 'older' | 'absent' {
  for (let i = messages.length - 1; i >= 0; i--) {
    const key = messages[i]!.turnKey;
    if (key === undefined) continue;
    if (key === turnKey) return 'newest';
    // A later turn comes first from the end: the turn is older, if it is here at all.
    return messages.slice(0, i).some((m) => m.turnKey === turnKey) ? 'older' : 'absent';
  }
  return 'absent';
}

/** The messages up to the end of the turn, and whether that turn is the newest; undefined when the turn is not among them. */
export function historyThroughTurn(messages: readonly StoredMessage[], turnKey: string): { messages: StoredMessage[]; isNewest: boolean } | undefined {
  const start = messages.findIndex((m) => m.turnKey === turnKey);
  if (start < 0) return undefined;
  let end = start + 1;
  while (end < messages.length && messages[end]!.turnKey === undefined) end++;
  return { messages: messages.slice(0, end), isNewest: end === messages.length };
}

/**
 * The summary a branch holding `copied` (renumbered from 1) can keep: the same
 * text covering the copied messages it covered. None when it covers anything
 * after the branch point, or none of the copy (a store that drops what a
 * summary covers holds none of it, and a summary must cover a stored message).
 */
export function branchSummary(summary: Summary | undefined, copied: readonly StoredMessage[]): Summary | undefined {
  if (summary === undefined) return undefined;
  const lastCopied = copied.at(-1)?.seq ?? 0;
  if (summary.coversSeq > lastCopied) return undefined;
  const coversSeq = copied.filter((m) => m.seq <= summary.coversSeq).length;
  return coversSeq === 0 ? undefined : { ...summary, coversSeq };
}
