import type { ConversationKey, Summary } from '../domain.js';
import { conversationKeyString } from '../domain.js';

/**
 * Which summary this process last sent for each conversation, so that
 * x-contextd-prefix-stable can tell a summary written since the previous
 * request (a new prefix) from the one that request had. A summary is dated by
 * when its job read the history, which can be before the previous turn was
 * stored, so the stored times alone cannot tell. Bounded: the least recently
 * sent conversations are forgotten first; a conversation this process has not
 * seen (another instance served it) falls back to those times.
 */
export class SentSummaries {
  readonly #max: number;
  readonly #sent = new Map<string, string>();

  constructor(max: number) {
    this.#max = max;
  }

  /** Records what this request sends; whether that differs from what this process sent the conversation last (undefined: not known here). */
  record(key: ConversationKey, summary: Summary | undefined): boolean | undefined {
    const id = conversationKeyString(key);
    const changed = this.peek(key, summary);
    this.#sent.delete(id);
    this.#sent.set(id, identityOf(summary));
    if (this.#sent.size > this.#max) this.#sent.delete(this.#sent.keys().next().value!);
    return changed;
  }

  /** What record() would answer, recording nothing: for a dry run, whose headers must be the real request's. */
  peek(key: ConversationKey, summary: Summary | undefined): boolean | undefined {
    const before = this.#sent.get(conversationKeyString(key));
    return before === undefined ? undefined : before !== identityOf(summary);
  }
}

const identityOf = (summary: Summary | undefined): string => (summary === undefined ? '' : `${summary.coversSeq}:${summary.createdAtMs}:${summary.tokens}`);
