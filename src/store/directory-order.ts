// The order every ConversationDirectory lists in, and its cursor. Newest
// activity first, ties broken by conversation id (ascending), so the order is
// total and a page ends at one point of it: the cursor names that point, the
// last entry's (activity time, conversation id), and the next page starts
// strictly after it. A conversation appended to between two pages moves to the
// front, so a walk over the pages may miss it or show it twice; no other
// entry is lost or repeated.

import { InvalidRequestError } from '../errors.js';
import type { ConversationEntry, ConversationPage } from './conversation-directory.js';

/** Where a page ended: the last entry's activity time and id. */
export interface DirectoryPosition {
  activityMs: number;
  conversation: string;
}

/** Longest conversation id any store holds (conversation-identity.ts). */
const MAX_ID_CHARS = 128;

/** The opaque text of a position: base64url of JSON `[activityMs, conversation]`. */
export function encodeCursor(entry: Ordered): string {
  return Buffer.from(JSON.stringify([entry.lastActivityMs, entry.conversation])).toString('base64url');
}

/** A cursor encodeCursor wrote, or a 400 `invalid_value` on `after`. */
export function decodeCursor(after: string): DirectoryPosition {
  let parsed: unknown;
  try {
    parsed = JSON.parse(Buffer.from(after, 'base64url').toString('utf8'));
  } catch {
    parsed = undefined;
  }
  if (Array.isArray(parsed) && parsed.length === 2) {
    const [activityMs, conversation] = parsed as unknown[];
    if (Number.isSafeInteger(activityMs) && typeof conversation === 'string' && conversation.length <= MAX_ID_CHARS) {
      return { activityMs: activityMs as number, conversation };
    }
  }
  throw new InvalidRequestError('Query parameter after must be the next_after of an earlier page.', 'after', 'invalid_value');
}

/** What the order looks at. */
interface Ordered {
  lastActivityMs: number;
  conversation: string;
}

/** Listing order: newest activity first, then by id. */
export function byActivity(a: Ordered, b: Ordered): number {
  if (a.lastActivityMs !== b.lastActivityMs) return b.lastActivityMs - a.lastActivityMs;
  return a.conversation < b.conversation ? -1 : a.conversation > b.conversation ? 1 : 0;
}

/** True when the entry sorts strictly after the position (belongs to the next page). */
export function isAfter(entry: Ordered, position: DirectoryPosition): boolean {
  return byActivity({ lastActivityMs: position.activityMs, conversation: position.conversation }, entry) < 0;
}

/**
 * A page of entries the caller holds in full (the embedded store's, a Redis
 * scan's): sorted, cut after the cursor, at most `limit`. `next` is set only
 * when entries remain.
 */
export function pageOf(entries: readonly ConversationEntry[], page: { limit: number; after: string | undefined }): ConversationPage {
  const position = page.after === undefined ? undefined : decodeCursor(page.after);
  const remaining = (position === undefined ? [...entries] : entries.filter((entry) => isAfter(entry, position))).sort(byActivity);
  return pageFrom(remaining, page.limit);
}

/** The first `limit` of entries already in listing order and after the cursor (a query may fetch limit + 1 to tell whether more remain). */
export function pageFrom(ordered: readonly ConversationEntry[], limit: number): ConversationPage {
  const conversations = ordered.slice(0, Math.max(0, limit));
  const last = conversations.at(-1);
  return { conversations, next: ordered.length > conversations.length && last !== undefined ? encodeCursor(last) : undefined };
}
