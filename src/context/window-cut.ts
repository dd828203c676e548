// The window-cut rule: which of a conversation's stored messages a load
// returns. Every store asks this one walker, each over its own data (the
// embedded store's array, MongoDB's cursor, the Redis fast load's entries, the
// two-tier merge). The Lua LOAD script (src/store/redis/lua-reads.ts) cannot
// call it and mirrors it; test/store/window-cut.property.test.ts holds the two
// equal against a real Redis.

/** A load's limits (store/conversation-store.ts's LoadLimits); any numbers, read through windowLimit. */
export interface WindowLimits {
  readonly maxMessages: number;
  readonly maxTokens: number;
}

/** What the rule reads of a message: StoredMessage, a store's own entry, or a Redis entry's figures. */
export interface WindowCandidate {
  readonly seq: number;
  readonly tokens: number;
}

/**
 * A limit as the rule reads it: a whole number from 0 to MAX_SAFE_INTEGER
 * (fractions round down, NaN and negatives are 0, Infinity is
 * MAX_SAFE_INTEGER), so that Lua's doubles count it exactly. RedisStore sends
 * the LOAD script its limits through this.
 */
export function windowLimit(value: number): number {
  if (Number.isNaN(value)) return 0;
  return Math.max(0, Math.min(Math.floor(value), Number.MAX_SAFE_INTEGER));
}

/**
 * The rule. Walk the stored messages newest first; a message belongs to the window while
 *   - its seq is above coversSeq (the summary stands for the rest; 0 without one),
 *   - fewer than maxMessages messages have been taken, and
 *   - the tokens of the messages taken before it (the newer ones) add up to at most maxTokens,
 * so the message that crosses the budget comes too (the caller can tell the
 * window is full), and under a zero budget the newest message still comes.
 * The first message that does not belong ends the window: walking older,
 * seqs only fall and the counts only grow (tokens are never negative).
 *
 * One object per load and no allocation per message: loads are the hot path.
 */
export class WindowWalk {
  readonly maxMessages: number;
  readonly maxTokens: number;
  readonly coversSeq: number;
  #taken = 0;
  #usedTokens = 0;

  constructor(limits: WindowLimits, coversSeq: number) {
    this.maxMessages = windowLimit(limits.maxMessages);
    this.maxTokens = windowLimit(limits.maxTokens);
    this.coversSeq = coversSeq;
  }

  /**
   * Whether `message`, the next older one, belongs to the window; if it does, it
   * is counted as taken. LOAD's `takes` (store/redis/lua-reads.ts) is this in Lua.
   */
  takes(message: WindowCandidate): boolean {
    if (message.seq <= this.coversSeq || this.#taken >= this.maxMessages || this.#usedTokens > this.maxTokens) return false;
    this.#taken++;
    this.#usedTokens += message.tokens;
    return true;
  }

  /** No further message can belong, whatever its seq: the message limit is reached or the budget crossed. */
  get isFull(): boolean {
    return this.#taken >= this.maxMessages || this.#usedTokens > this.maxTokens;
  }

  /** Messages taken so far. */
  get taken(): number {
    return this.#taken;
  }

  /** Their tokens. */
  get usedTokens(): number {
    return this.#usedTokens;
  }
}

/** Starts the walk of one load: `coversSeq` is the summary's coverage (0 for none). */
export function startWindowWalk(limits: WindowLimits, coversSeq: number): WindowWalk {
  return new WindowWalk(limits, coversSeq);
}
