import type { ChatMessage } from '../domain.js';
import { countMessageYielding } from './count-message-yielding.js';
import type { TokenCounter } from './count-tokens.js';

/**
 * Counts of messages that come back on every request — the pinned system
 * prompt above all — so the request path tokenizes them once, not every turn.
 * Keyed by encoding, image rule and the message's digest; bounded, least recently used out.
 */
export class TokenCountCache {
  readonly #counts = new Map<string, number>();
  readonly #maxEntries: number;

  constructor(maxEntries: number) {
    this.#maxEntries = maxEntries;
  }

  async count(counter: TokenCounter, message: ChatMessage, digest: string): Promise<number> {
    const key = `${counter.encoding}:${counter.imageRule.id}:${digest}`;
    const cached = this.#counts.get(key);
    if (cached !== undefined) {
      // Map keeps insertion order: re-inserting marks it most recently used.
      this.#counts.delete(key);
      this.#counts.set(key, cached);
      return cached;
    }
    const tokens = await countMessageYielding(counter, message);
    this.#counts.set(key, tokens);
    if (this.#counts.size > this.#maxEntries) this.#counts.delete(this.#counts.keys().next().value!);
    return tokens;
  }

  get size(): number {
    return this.#counts.size;
  }
}
