import { hash } from 'node:crypto';
import { jsonText } from './json-text.js';

/**
 * Counts of tool sets that come back on every request — an agent sends the same
 * definitions each turn — so each distinct set is tokenized once, not every turn
 * (bench/tool-count-memo.ts: 20 tools, see bench/README.md). Each request parses
 * its body anew, so the key is the set's JSON text, hashed to keep entries small.
 * Bounded, least recently used out.
 */
export class ToolCountMemo {
  readonly #counts = new Map<string, number>();
  readonly #maxEntries: number;

  constructor(maxEntries: number) {
    this.#maxEntries = maxEntries;
  }

  /** `countUncounted(tools)`, or what it gave for the same set before. */
  count(tools: unknown, countUncounted: (tools: unknown) => number): number {
    if (!Array.isArray(tools) || tools.length === 0) return countUncounted(tools); // nothing worth keeping
    const key = hash('sha256', jsonText(tools), 'base64');
    const cached = this.#counts.get(key);
    if (cached !== undefined) {
      // Map keeps insertion order: re-inserting marks it most recently used.
      this.#counts.delete(key);
      this.#counts.set(key, cached);
      return cached;
    }
    const tokens = countUncounted(tools);
    this.#counts.set(key, tokens);
    if (this.#counts.size > this.#maxEntries) this.#counts.delete(this.#counts.keys().next().value!);
    return tokens;
  }

  get size(): number {
    return this.#counts.size;
  }
}
