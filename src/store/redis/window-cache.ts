// The decoded-window cache: per conversation, the decoded messages of the last
// window this store loaded (seqs from..through) and the summary, so that LOAD
// and the fast load send and decode only what is new. Within one incarnation
// (meta's `inc`, see scripts.ts) the entry at a seq never changes, and another
// process's appends, trims and summaries, a delete and a recreation all show in
// inc and in the range LOAD names, so nothing needs invalidating for
// correctness. A conversation costs at most one window; least recently used
// conversations go beyond the bound. It also keeps, per window, whether CLIENT
// TRACKING vouches for it (tracking.ts): a tracked window is walked from memory.

import type { StoredMessage, Summary } from '../../domain.js';
import { deepFreeze } from '../../freeze.js';
import { decodeEntry, entryTag } from './entry-codec.js';

/** What this store has decoded of one incarnation of a conversation: its last window and summary. */
export interface CachedWindow {
  inc: string;
  /** The incarnation is unmerged (lua-turns.ts, APPEND; lua-outbox.ts, DEMOTE): loads of it answer `partial`. Fixed for an incarnation. */
  isPartial: boolean;
  /** The cached seqs are exactly from..through (none when from > through). */
  from: number;
  through: number;
  /** Deep-frozen; each deep-equals what decodeEntry gives for Redis's entry at that seq. */
  bySeq: Map<number, StoredMessage>;
  /** The entry text LOAD checks at `through` before trusting the range ('' when the range is empty). */
  throughTag: string;
  /** Frozen; undefined when Redis held none. */
  summary: Summary | undefined;
  /** Byte length of the summary's JSON in Redis, which LOAD compares along with coversSeq. */
  summaryBytes: number;
  /** When (the store's clock) it last sent a script that touched the conversation's TTL: fast loads run within ttl/100 of it. */
  touchedAtMs: number;
  /** The list's length when the window was last validated or extended by this store's append; -1 when unknown. */
  listLength: number;
  /** The tracking epoch in which a read (fast load or LOAD) validated the window (tracked while it is the current one); -1 for none. */
  validEpoch: number;
  /** The cache's invalidation clock when Redis last invalidated the conversation (0 for never). */
  invalidatedAt: number;
}

export class WindowCache {
  /** Map order is recency of use: the first entry is the least recently used. Keyed by the hash tag's text. */
  readonly #windows = new Map<string, CachedWindow>();
  #entries = 0;
  readonly #maxEntries: number;
  /** Counts invalidations that reached a cached window: a read validates only if none came while it was out. */
  #invalidationClock = 0;

  constructor(maxEntries: number) {
    this.#maxEntries = maxEntries;
  }

  /** 0 turns the cache off. */
  get maxEntries(): number {
    return this.#maxEntries;
  }

  get invalidationClock(): number {
    return this.#invalidationClock;
  }

  get(tag: string): CachedWindow | undefined {
    return this.#windows.get(tag);
  }

  /**
   * Makes `messages` (oldest first, one LOAD's window) the conversation's cached
   * window; the messages are frozen in place. An empty window still keeps the
   * summary, as the empty range lastSeq+1..lastSeq that this store's next append extends.
   */
  remember(
    tag: string,
    inc: string,
    isPartial: boolean,
    lastSeq: number,
    messages: StoredMessage[],
    summary: Summary | undefined,
    summaryBytes: number,
    touchedAtMs: number,
  ): void {
    const bySeq = new Map<number, StoredMessage>();
    for (const message of messages) bySeq.set(message.seq, deepFreeze(message));
    const newest = messages.at(-1);
    this.#store(tag, {
      inc,
      isPartial,
      from: messages[0]?.seq ?? lastSeq + 1,
      through: newest?.seq ?? lastSeq,
      bySeq,
      throughTag: newest === undefined ? '' : entryTag(newest),
      summary: summary === undefined ? undefined : deepFreeze(summary),
      summaryBytes,
      touchedAtMs,
      listLength: -1,
      validEpoch: -1,
      invalidatedAt: 0,
    });
  }

  /**
   * The common load: Redis sent only entries newer than the cached window and
   * the window now starts at `from`. The cached window moves in place (older
   * entries out, the new ones in) instead of being rebuilt.
   */
  slide(
    tag: string,
    window: CachedWindow,
    from: number,
    newer: readonly StoredMessage[],
    summary: Summary | undefined,
    summaryBytes: number,
    touchedAtMs: number,
  ): void {
    let removed = 0;
    // bySeq's insertion order is ascending seqs.
    for (const seq of window.bySeq.keys()) {
      if (seq >= from) break;
      window.bySeq.delete(seq);
      removed++;
    }
    for (const message of newer) window.bySeq.set(message.seq, deepFreeze(message));
    const newest = newer.at(-1);
    window.from = from;
    if (newest !== undefined) {
      window.through = newest.seq;
      window.throughTag = entryTag(newest);
    }
    window.summary = summary === undefined ? undefined : deepFreeze(summary);
    window.summaryBytes = summaryBytes;
    window.touchedAtMs = Math.max(window.touchedAtMs, touchedAtMs);
    this.#entries += newer.length - removed;
    this.#store(tag, window);
  }

  /**
   * After this store's append (seqs firstSeq.., the last with running total
   * lastCum, `perMessage` as APPEND took it): if the cached window of that
   * incarnation ends just before it, the appended messages join it, so the next
   * load need not fetch them. They are decoded from the very JSON sent to Redis,
   * so they equal what a load would decode. In place: a load still in flight
   * looks up only seqs it offered. Returns whether the window may stay tracked
   * (it was extended and the list's length is known).
   */
  extend(
    tag: string,
    inc: string,
    firstSeq: number,
    lastCum: number,
    perMessage: readonly string[],
    listLength: number,
  ): boolean {
    const window = this.#windows.get(tag);
    if (window === undefined || window.inc !== inc || window.through + 1 !== firstSeq) return false;
    const count = perMessage.length / 2;
    let cumTokens = lastCum;
    for (let index = 0; index < count; index++) cumTokens -= Number(perMessage[2 * index]);
    let newest: StoredMessage | undefined;
    for (let index = 0; index < count; index++) {
      const tokens = perMessage[2 * index]!;
      cumTokens += Number(tokens);
      newest = deepFreeze(decodeEntry(`${firstSeq + index}:${tokens}:${cumTokens}:${perMessage[2 * index + 1]!}`));
      window.bySeq.set(newest.seq, newest);
    }
    if (newest === undefined) return false;
    window.through = newest.seq;
    window.throughTag = entryTag(newest);
    window.listLength = listLength;
    this.#entries += count;
    this.#store(tag, window);
    return listLength >= 0;
  }

  forget(tag: string): void {
    const window = this.#windows.get(tag);
    if (window === undefined) return;
    this.#windows.delete(tag);
    this.#entries -= window.bySeq.size;
  }

  /** Whether a load may walk `window` without asking Redis: validated in the current tracking epoch, not invalidated since. */
  isTracked(window: CachedWindow, activeEpoch: number | undefined): boolean {
    return window.validEpoch >= 0 && window.validEpoch === activeEpoch && window.listLength >= 0;
  }

  untrack(tag: string): void {
    const window = this.#windows.get(tag);
    if (window !== undefined) window.validEpoch = -1;
  }

  /** Redis says the windows of these hash tags changed (null: all of them). */
  invalidate(tags: readonly (string | undefined)[] | null): void {
    const clock = ++this.#invalidationClock;
    const windows = tags === null ? [...this.#windows.values()] : tags.map((tag) => (tag === undefined ? undefined : this.#windows.get(tag)));
    for (const window of windows) {
      if (window === undefined) continue;
      window.validEpoch = -1;
      window.invalidatedAt = clock;
    }
  }

  /** Stores `window` as the most recently used; then drops least recently used ones beyond the bound. */
  #store(tag: string, window: CachedWindow): void {
    const previous = this.#windows.get(tag);
    if (previous !== undefined) {
      this.#windows.delete(tag);
      this.#entries -= previous.bySeq.size;
    }
    // A window larger than the whole bound would only push every other conversation out, then itself.
    if (window.bySeq.size > this.#maxEntries) return;
    this.#windows.set(tag, window);
    this.#entries += window.bySeq.size;
    for (const [oldestTag, oldest] of this.#windows) {
      if (this.#entries <= this.#maxEntries) break;
      this.#windows.delete(oldestTag);
      this.#entries -= oldest.bySeq.size;
    }
  }
}

/**
 * The cached messages with seqs in [from, through], which LOAD says are
 * `count` and are all the cached window has there; undefined when the cache
 * does not hold exactly that many.
 */
export function heldMessages(known: CachedWindow | undefined, from: number, through: number, count: number): StoredMessage[] | undefined {
  if (known === undefined || from < known.from || through > known.through) return undefined;
  const held: StoredMessage[] = [];
  if (through - from + 1 === count) {
    for (let seq = from; seq <= through; seq++) {
      const message = known.bySeq.get(seq);
      if (message === undefined) return undefined;
      held.push(message);
    }
    return held;
  }
  // A list with gaps (seeded from MongoDB): the cached window has the same gaps.
  // bySeq's insertion order is ascending seqs (a window oldest first, then appends after it).
  for (const [seq, message] of known.bySeq) if (seq >= from && seq <= through) held.push(message);
  return held.length === count ? held : undefined;
}
