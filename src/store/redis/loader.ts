// How RedisStore answers a load, cheapest first: from a *tracked* window (CLIENT
// TRACKING vouches that no other client changed the conversation since a read
// validated it) with no round trip; by the fast load's plain reads
// (fast-load.ts); by LOAD (lua-reads.ts), which leaves out what the decoded
// window (window-cache.ts) holds already.
//
// The store's own appends and markFlushed keep a window tracked (both scripts
// return the new list length and end by reading both keys again, since a write,
// one's own included, stops Redis tracking a key for every client). A LOAD
// tracks the window it leaves when no invalidation at all arrived while it was
// out. Anything else the store writes itself (a summary, a warm) untracks it,
// as does an invalidation, a new tracking epoch and a TTL refresh falling due.
// A write by another instance is seen once its invalidation message has
// arrived, not when Redis ran it: a load within that flight time answers with
// the state just before it, as a load sent a moment earlier would have.

import type { Cluster, Redis } from 'ioredis';
import type { ConversationKey, ConversationSnapshot, StoredMessage, Summary } from '../../domain.js';
import { windowLimit } from '../../context/window-cut.js';
import type { LoadLimits } from '../conversation-store.js';
import type { TickCork } from './cork.js';
import { decodeEntry } from './entry-codec.js';
import { entriesAfterWindow, readTail, walkWindow } from './fast-load.js';
import { conversationKeys, hashTag, type ConversationKeys } from './keys.js';
import type { ScriptCommands } from './scripts.js';
import type { RedisTracking } from './tracking.js';
import { heldMessages, type CachedWindow, type WindowCache } from './window-cache.js';

export type RedisLoadPath = 'tracked' | 'fast' | 'script';

export interface LoaderOptions {
  client: Redis | Cluster;
  scripts: ScriptCommands;
  prefix: string;
  ttlMs: number;
  mode: 'standalone' | 'cache';
  /** The store's window cache, which the loads read and move. */
  windows: WindowCache;
  cork: TickCork;
  tracking: RedisTracking | undefined;
  /** Monotonic clock (ms). */
  now: () => number;
  /** A new incarnation id for LOAD to give meta an older contextd wrote. */
  newInc: () => string;
  onLoad: (path: RedisLoadPath) => void;
}

/** The load path, for RedisStore (which checks that it is open). */
export class RedisLoader {
  readonly #client: Redis | Cluster;
  readonly #scripts: ScriptCommands;
  readonly #prefix: string;
  readonly #ttlMs: number;
  readonly #mode: 'standalone' | 'cache';
  readonly #modeArg: 's' | 'c';
  readonly #windows: WindowCache;
  readonly #cork: TickCork;
  readonly #tracking: RedisTracking | undefined;
  readonly #now: () => number;
  /** A load later than this after the last touch this store saw runs LOAD, which refreshes the TTL. */
  readonly #touchFreshMs: number;
  readonly #newInc: () => string;
  readonly #onLoad: (path: RedisLoadPath) => void;

  constructor(options: LoaderOptions) {
    this.#client = options.client;
    this.#scripts = options.scripts;
    this.#prefix = options.prefix;
    this.#ttlMs = options.ttlMs;
    this.#mode = options.mode;
    this.#modeArg = options.mode === 'cache' ? 'c' : 's';
    this.#windows = options.windows;
    this.#cork = options.cork;
    this.#tracking = options.tracking;
    this.#now = options.now;
    this.#touchFreshMs = options.ttlMs / 100;
    this.#newInc = options.newInc;
    this.#onLoad = options.onLoad;
  }

  /** See RedisStore.load. */
  async load(key: ConversationKey, limits: LoadLimits): Promise<ConversationSnapshot> {
    const tag = hashTag(key);
    const cached = this.#windows.get(tag);
    if (cached !== undefined && cached.throughTag !== '' && this.#now() - cached.touchedAtMs < this.#touchFreshMs) {
      if (this.#windows.isTracked(cached, this.#tracking?.activeEpoch)) {
        const tracked = this.#walkWindow(tag, cached, [], cached.listLength, cached.summary?.coversSeq ?? 0, cached.through, limits);
        if (tracked !== undefined) {
          this.#onLoad('tracked');
          return tracked;
        }
      }
      const fast = await this.#loadFast(tag, cached, limits);
      if (fast !== undefined) {
        this.#onLoad('fast');
        return fast;
      }
    }
    this.#onLoad('script');
    const snapshot = await this.#loadKnowing(tag, limits, this.#windows.get(tag));
    if (snapshot !== undefined) return snapshot;
    // Redis named a seq or summary the cached window lacks, which the invariants
    // rule out; rather than fail the request, forget the window and ask for everything.
    this.#windows.forget(tag);
    const retried = await this.#loadKnowing(tag, limits, undefined);
    if (retried === undefined) throw new Error('RedisStore.load: Redis referred to cached entries although none were offered');
    return retried;
  }

  /**
   * The load without the script, from the cached window `known` and four plain
   * reads (fast-load.ts); undefined when those cannot settle it.
   */
  async #loadFast(tag: string, known: CachedWindow, limits: LoadLimits): Promise<ConversationSnapshot | undefined> {
    // What the window holds now: a call of this store that changes it while the reads are out sends the load to LOAD.
    const { inc, from, through, throughTag, summary, summaryBytes } = known;
    const epochAtSend = this.#tracking?.activeEpoch;
    const clockAtSend = this.#windows.invalidationClock;
    const [meta, msgs] = this.#keysOf(tag);
    const [tail, listLength, [lastSeqText = null, incText = null, coversSeqText = null], summaryBytesNow] = await readTail(this.#client, meta, msgs, this.#cork);
    if (lastSeqText === null) {
      this.#windows.forget(tag);
      return { summary: undefined, messages: [], lastSeq: 0, cache: 'miss' };
    }
    const isUnchanged = this.#windows.get(tag) === known && known.from === from && known.through === through && known.summary === summary;
    if (!isUnchanged || incText !== inc) return undefined;
    const coversSeq = Number(coversSeqText ?? 0);
    const isSameSummary = summary === undefined ? summaryBytesNow === 0 : summaryBytesNow === summaryBytes && coversSeq === summary.coversSeq;
    if (!isSameSummary) return undefined;

    const lastSeq = Number(lastSeqText);
    const fresh = entriesAfterWindow(tail, lastSeq, { through, throughTag });
    if (fresh === undefined) return undefined;
    const snapshot = this.#walkWindow(tag, known, fresh, listLength, coversSeq, lastSeq, limits);
    if (snapshot === undefined) return undefined;

    // Tracked from now on if tracking was on throughout and no invalidation of this conversation came while the reads were out.
    const window = this.#windows.get(tag);
    const isTracked = epochAtSend !== undefined && this.#tracking?.activeEpoch === epochAtSend && known.invalidatedAt <= clockAtSend;
    if (window !== undefined && window.through === lastSeq) {
      window.listLength = listLength;
      window.validEpoch = isTracked ? epochAtSend : -1;
    }
    return snapshot;
  }

  /** fast-load.ts's walk, then the cached window moved to its result. */
  #walkWindow(
    tag: string,
    known: CachedWindow,
    freshEntries: readonly string[],
    listLength: number,
    coversSeq: number,
    lastSeq: number,
    limits: LoadLimits,
  ): ConversationSnapshot | undefined {
    const walked = walkWindow(known, freshEntries, listLength, coversSeq, limits, this.#mode);
    if (walked === undefined) return undefined;
    const { inc, summary, summaryBytes } = known;
    const fresh = walked.freshEntries.map(decodeEntry);
    let messages: StoredMessage[];
    if (walked.held.length > 0) {
      messages = [...walked.held, ...fresh];
      this.#windows.slide(tag, known, messages[0]!.seq, fresh, summary, summaryBytes, known.touchedAtMs);
    } else {
      messages = fresh;
      this.#windows.remember(tag, inc, known.isPartial, lastSeq, messages, summary, summaryBytes, known.touchedAtMs);
    }
    return { summary: summary === undefined ? undefined : { ...summary }, messages, lastSeq, cache: known.isPartial ? 'partial' : 'hit' };
  }

  /** One LOAD offering `known`; undefined when the reply refers to something `known` does not hold. */
  async #loadKnowing(tag: string, limits: LoadLimits, known: CachedWindow | undefined): Promise<ConversationSnapshot | undefined> {
    const sentAtMs = this.#now();
    const epochAtSend = this.#tracking?.activeEpoch;
    const clockAtSend = this.#windows.invalidationClock;
    const reply = (await this.#scripts.contextdLoad(
      ...this.#keysOf(tag),
      this.#modeArg,
      this.#ttlMs,
      // As the window rule reads them (context/window-cut.ts), which LOAD mirrors.
      windowLimit(limits.maxMessages),
      windowLimit(limits.maxTokens),
      this.#newInc(),
      known?.inc ?? '',
      known?.from ?? 1,
      known?.through ?? 0,
      known?.throughTag ?? '',
      known?.summary?.coversSeq ?? '',
      known?.summaryBytes ?? 0,
    )) as unknown[];
    if (reply[0] === 0) {
      this.#windows.forget(tag);
      return { summary: undefined, messages: [], lastSeq: 0, cache: 'miss' };
    }
    const [holds, lastSeqReply, inc, summarySlot, heldFromReply, heldThroughReply, heldCountReply, listLength, ...entries] = reply;
    const lastSeq = Number(lastSeqReply);
    // 2: unmerged (lua-turns.ts, APPEND): Redis took the conversation while MongoDB could not tell its history.
    const isPartial = holds === 2;
    const cache = isPartial ? 'partial' : 'hit';

    let summary: Summary | undefined;
    let summaryBytes = 0;
    if (summarySlot === 0) {
      if (known?.summary === undefined) return undefined;
      summary = known.summary;
      summaryBytes = known.summaryBytes;
    } else if (typeof summarySlot === 'string') {
      summary = JSON.parse(summarySlot) as Summary;
      summaryBytes = Buffer.byteLength(summarySlot);
    }

    // Oldest first: what Redis sent from before the held range, the held range, what it sent from after.
    const fetched = (entries as string[]).map(decodeEntry);
    let messages = fetched;
    const heldCount = Number(heldCountReply);
    if (heldCount > 0) {
      const heldThrough = Number(heldThroughReply);
      const held = heldMessages(known, Number(heldFromReply), heldThrough, heldCount);
      if (held === undefined) return undefined;
      const newer = fetched.findIndex((message) => message.seq > heldThrough);
      const split = newer < 0 ? fetched.length : newer;
      messages = [...fetched.slice(0, split), ...held, ...fetched.slice(split)];
    }

    if (this.#windows.maxEntries === 0 || typeof inc !== 'string') return { summary, messages, lastSeq, cache };
    const isSlide = known !== undefined && known.inc === inc && this.#windows.get(tag) === known && heldCount > 0 && Number(heldThroughReply) === known.through;
    if (isSlide && fetched.every((message) => message.seq > known.through)) {
      this.#windows.slide(tag, known, Number(heldFromReply), fetched, summary, summaryBytes, sentAtMs);
    } else {
      this.#windows.remember(tag, inc, isPartial, lastSeq, messages, summary, summaryBytes, sentAtMs);
    }
    // Tracked from now on if tracking was on throughout and no invalidation at all
    // came while LOAD was out (with no window cached, none would have been noted).
    const window = this.#windows.get(tag);
    if (window !== undefined) {
      const isTracked = epochAtSend !== undefined && this.#tracking?.activeEpoch === epochAtSend && this.#windows.invalidationClock === clockAtSend;
      window.listLength = Number(listLength);
      window.validEpoch = isTracked && window.through === lastSeq ? epochAtSend : -1;
    }
    // The messages are the cached, deep-frozen ones: shared, as the embedded store's are.
    return { summary: summary === undefined ? undefined : { ...summary }, messages, lastSeq, cache };
  }


  #keysOf(tag: string): ConversationKeys {
    return conversationKeys(this.#prefix, tag);
  }
}
