import type { ConversationKey, Summary } from '../domain.js';
import { conversationKeyString } from '../domain.js';

/** What a prompt's prefix is made of, besides the kept history: the summary sent, and the client's pinned part. */
export interface SentPrefix {
  summary: Summary | undefined;
  /** The instructions (their digests) and the fixed tokens (tools, output format, tool_choice, by their count). */
  pinned: string;
}

/** What differs from the prefix this process last sent the conversation. */
export interface PrefixChange {
  summary: boolean;
  pinned: boolean;
}

/**
 * The prefix this process last sent for each conversation, so that
 * x-contextd-prefix-stable can tell a summary written since the previous
 * request (a new prefix) from the one that request had, and see instructions
 * or tools the client changed. A summary is dated by when its job read the
 * history, which can be before the previous turn was stored, so the stored
 * times alone cannot tell. Bounded: the least recently sent conversations are
 * forgotten first; a conversation this process has not seen (another instance
 * served it) falls back to those times, and a changed pinned part goes unseen.
 */
export class SentPrefixes {
  readonly #max: number;
  readonly #sent = new Map<string, { summary: string; pinned: string }>();

  constructor(max: number) {
    this.#max = max;
  }

  /** Records what this request sends; what changed since this process sent the conversation last (undefined: not known here). */
  record(key: ConversationKey, prefix: SentPrefix): PrefixChange | undefined {
    const id = conversationKeyString(key);
    const change = this.peek(key, prefix);
    this.#sent.delete(id);
    this.#sent.set(id, { summary: identityOf(prefix.summary), pinned: prefix.pinned });
    if (this.#sent.size > this.#max) this.#sent.delete(this.#sent.keys().next().value!);
    return change;
  }

  /** What record() would answer, recording nothing: for a dry run, whose headers must be the real request's. */
  peek(key: ConversationKey, prefix: SentPrefix): PrefixChange | undefined {
    const before = this.#sent.get(conversationKeyString(key));
    return before === undefined ? undefined : { summary: before.summary !== identityOf(prefix.summary), pinned: before.pinned !== prefix.pinned };
  }
}

const identityOf = (summary: Summary | undefined): string => (summary === undefined ? '' : `${summary.coversSeq}:${summary.createdAtMs}:${summary.tokens}`);
