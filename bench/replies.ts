// The fake upstream's replies: a fixed pool of prose, and which one a request
// gets (a hash of its last user message). The load bench checks every stored
// assistant message against the reply its user message was given.

import { prose } from './prose.js';

/** Distinct replies in the pool. */
export const REPLY_POOL_SIZE = 32;
/** Default reply size: a few hundred tokens, as a chat model's answers are. */
export const DEFAULT_REPLY_TOKENS = 300;

/** The pool, the same in every process for the same size. */
export function replyTexts(tokens = DEFAULT_REPLY_TOKENS): string[] {
  // About 4.4 characters per o200k_base token in this prose; prose() stops at a whole sentence past its minimum.
  return Array.from({ length: REPLY_POOL_SIZE }, (_, i) => prose(900_001 + i, Math.max(1, Math.round(tokens * 4.4) - 40)));
}

/** FNV-1a of the user message: the index of its reply in the pool. */
export function replyIndex(userText: string): number {
  let hash = 0x811c9dc5;
  for (let i = 0; i < userText.length; i++) {
    hash ^= userText.charCodeAt(i);
    hash = Math.imul(hash, 0x01000193);
  }
  return (hash >>> 0) % REPLY_POOL_SIZE;
}
