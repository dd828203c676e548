// Redis as a conversation store: the only store ('standalone') or the hot tier
// in front of MongoDB ('cache'). Works unchanged on a Redis Cluster.
//
// Layout. Per conversation, three keys sharing one hash tag, so that a
// conversation's keys and its Lua scripts live on one Cluster slot:
//   <prefix>{<tenant>:<conversation>}:meta   HASH  lastSeq, lastCum (running token total through lastSeq),
//                                                  flushedSeq (cache mode: highest seq MongoDB has),
//                                                  summary (JSON), coversSeq (the summary's, for the scripts),
//                                                  inc (this incarnation's id, set when meta is created)
//   <prefix>{<tenant>:<conversation>}:msgs   LIST  one entry per message, oldest first, seqs ascending:
//                                                  `<seq>:<tokens>:<cumTokens>:<json of the rest>`
//   <prefix>{<tenant>:<conversation>}:turns  HASH  recent turn keys → `<firstSeq>:<count>`: always the
//                                                  last 64, up to 128 (cut back to 64 once it holds 128)
// and one global key:
//   <prefix>dirty                            ZSET  cache mode: conversations with messages above flushedSeq;
//                                                  member = the hash tag's text, score = lease deadline (ms),
//                                                  due when score <= now; on standalone Redis the append
//                                                  and markFlushed scripts update it themselves, on a
//                                                  Cluster (another slot) a second command does
// Redis holds a conversation exactly when its meta key exists. In the tag,
// '%', '{' and '}' are percent-escaped in both ids and ':' in the tenant, so
// the first ':' separates the two, no pair of ids can spell another's keys,
// and no id can close the tag early. Real ids need no escaping (tenants never
// contain ':'), so keys read `contextd:{t.acme:chat-42}:msgs`.
//
// TTL: every key of a conversation gets the TTL on each append, load,
// listMessages and summary. The scripts set it on all three keys at once, so
// meta's PTTL stands for them all, and a script skips the three PEXPIREs when
// meta's shows a refresh within the last 1% of the TTL (a key the script just
// created gets it regardless). In cache mode a conversation with unflushed
// messages has no TTL instead, until markFlushed catches up: a MongoDB outage
// longer than the TTL must not lose acknowledged turns.
//
// Local window cache. Decoding the window's entries was 11% of CPU on the
// request path, and a long conversation's window is mostly the same entries
// request after request. Within one incarnation (meta's `inc`, see
// redis-scripts.ts) the entry at a seq never changes, so the store keeps, per
// conversation, the decoded messages of its last window (seqs from..through)
// and the summary, and tells LOAD what it has: LOAD then leaves out the entries
// of that range, naming the part of the window they fill, and sends the summary
// as a marker. The next window replaces the cached one, and an append this
// store made extends it, so a conversation costs at most one window; least
// recently used conversations go beyond localCacheMaxEntries. Nothing needs
// invalidating: another process's appends, trims and summaries, a delete and a
// recreation all show in inc and in the range LOAD names.
//
// Fast loads. A load that finds the conversation's window cached first tries
// without the LOAD script: its fixed cost (EVALSHA dispatch, Lua, ~10 inner
// commands, the reply) was ~0.06 ms over a bare PING round trip, on a path
// that pays for every 0.01 ms. Four plain reads go out together, one round trip:
//   LRANGE msgs -4 -1 · LLEN msgs · HMGET meta lastSeq inc coversSeq · HSTRLEN meta summary
// and the store computes the window itself, as LOAD's walk does (newest first:
// seq > coversSeq, at most maxMessages, while the newer ones' tokens add up to
// at most maxTokens; where seqs are contiguous that is LOAD's cumTokens
// arithmetic too, by the invariant in redis-scripts.ts), over the cached
// entries and the new ones at the tail. The cached seqs are the list's entries
// from..through (the list only grows at the tail and loses its head), so LLEN
// tells how many of them the list still holds. Load minus PING (p50, one
// client on this machine) went from ~0.036 ms (5 turns) and ~0.056 ms (500
// turns) to ~0.012 ms for both. The fast load answers only when the reads
// settle the window; otherwise LOAD runs as before, a second round trip:
//   - meta is gone: a miss, as LOAD's {0}; the cached window is empty: LOAD at once;
//   - inc is missing or another, or the summary's coversSeq or byte length is not the cached one's;
//   - the entry at `through` is not among the tail read, or no longer carries
//     throughTag (LOAD's failover check): more than 3 new entries, a trim, a lost write;
//   - the walk used up the cached entries with the list holding older ones it
//     might take (unless the summary ends it there: cache mode, whose covered
//     but unflushed messages stay in the list, and oldest cached seq <= coversSeq + 1);
//   - the TTL may be due for a refresh (below), or a call of this store changed
//     the window while the reads were out.
// The four reads are not one atomic step on standalone Redis (they run in the
// order sent, but another client's write can land between two); their order
// makes up for it. An append after the tail read changes lastSeq, read after
// it, so the newest entry read must be lastSeq's; a summary changes coversSeq;
// a head trim alone (markFlushed) changes only LLEN, which then describes the
// list just before or just after it, both with the same tail. (A MULTI
// would do as well, but ioredis's pipeline object costs ~0.025 ms of client CPU,
// most of what the fast load saves.) On a Cluster a redirected command can run
// after the ones sent behind it, so there the four reads go in a MULTI.
//
// Tracked loads. With CLIENT TRACKING on the store's connection (the
// `tracking` option, standalone Redis; see redis-tracking.ts), Redis tells the
// store when another client changes, expires or deletes a conversation's meta
// or msgs after the store has read them. A window a fast load settled while
// tracking was on, with no invalidation of the conversation arriving while its
// reads were out, is then *tracked*: the next load walks it from memory with
// no round trip at all, exactly as the fast load would walk it with nothing
// new at the tail (the list's length is kept with it for that). The store's
// own appends and markFlushed keep it tracked: both scripts return the new list
// length and end by reading both keys again (a write, one's own included, stops
// Redis tracking a key for every client). A LOAD (which says the length too)
// tracks the window it leaves when no invalidation at all arrived while it was
// out. Anything else the store writes itself (a summary, a warm) untracks it,
// as does an invalidation, a reconnection of either connection (a new epoch),
// and a TTL refresh falling due; the next load is a fast load again, which
// tracks it anew. The flusher reads on a connection of its own but advances
// flushedSeq through this store (main.ts), so a flush untracks nothing. What
// tracking gives up: a write by another instance is seen once its
// invalidation message has arrived, not when Redis ran it, so a load that
// lands within that flight time (microseconds on a LAN) answers with the state
// just before it, as a load sent a moment earlier would have. The same rule
// (ttl/100 since the last touch) holds for tracked loads as for fast loads.
//
// A fast load refreshes no TTL. It runs only while this store sent a script
// that ends with touch (LOAD, APPEND) to the conversation less than ttl/100
// ago: meta then still has at least 98% of the TTL (touch leaves over 99%), or,
// in cache mode with unflushed messages, no TTL, which a fast load cannot give
// it. Beyond that, LOAD runs and refreshes (or PERSISTs) as before.

import { randomBytes } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import type { Socket } from 'node:net';
import type { Cluster, Redis } from 'ioredis';
import type {
  AppendOptions,
  AppendResult,
  ChatMessage,
  ConversationKey,
  ConversationId,
  ConversationSnapshot,
  NewMessage,
  StoredMessage,
  Summary,
  TenantId,
} from '../domain.js';
import { ColdConversationError, StoreUnavailableError } from '../errors.js';
import type { ConversationStore, LoadLimits, LockLease } from './conversation-store.js';
import { deepFreeze } from '../freeze.js';
import { REDIS_SCRIPTS, type RedisScriptName } from './redis-scripts.js';
import type { RedisTracking } from './redis-tracking.js';

export interface RedisStoreOptions {
  /** An ioredis client (Redis or Cluster) created by main.ts; the store never creates connections itself. */
  client: Redis | Cluster;
  /** Per-conversation keys expire after this, refreshed on every load and append. */
  ttlMs: number;
  /** Cap per conversation (newest kept); in cache mode unflushed messages are never trimmed. */
  maxCachedMessages: number;
  /**
   * 'standalone': Redis is the only store (seqs start at 1 for an unknown conversation; the cap trims freely).
   * 'cache': Redis in front of MongoDB: an append to a conversation Redis does not hold is refused with
   * ColdConversationError (the caller seeds it with warm() and retries), messages above flushedSeq are never
   * trimmed, and appends mark the conversation dirty for the flusher.
   */
  mode: 'standalone' | 'cache';
  /** Default 'contextd:'. Must not contain '{' or '}' (the hash tag is the conversation's). */
  keyPrefix?: string;
  /**
   * A turn was stored but could not be marked dirty (cache mode); the append
   * still succeeds, because the turn is in Redis, and sweepDirty finds it later.
   */
  onDirtyMarkFailed?: (key: ConversationKey, error: unknown) => void;
  /**
   * Decoded messages kept in this process across all conversations, so that a
   * load fetches and decodes only what is new (default 20,000; 0 turns the local
   * cache off). Least recently used conversations are dropped beyond it.
   */
  localCacheMaxEntries?: number;
  /** Monotonic clock (ms) that tells when a load must refresh the TTL; performance.now by default, injectable for tests. */
  now?: () => number;
  /**
   * CLIENT TRACKING on `client` (standalone Redis only; see redis-tracking.ts):
   * loads of a window Redis has not invalidated are answered from memory.
   */
  tracking?: RedisTracking;
  /** Each load, by how it was answered: from a tracked window, by the fast reads, or by the LOAD script. */
  onLoad?: (path: RedisLoadPath) => void;
}

export type RedisLoadPath = 'tracked' | 'fast' | 'script';

const DEFAULT_LOCAL_CACHE_MAX_ENTRIES = 20_000;

/**
 * How many of the newest entries a fast load reads: the entry at the cached
 * window's `through` and up to 3 newer ones, enough for a turn another instance
 * stored (a user message and the reply, or a tool call and its result) while
 * costing little when this store appended the turn itself.
 */
export const FAST_LOAD_TAIL_ENTRIES = 4;

/** What a list entry's JSON holds: the StoredMessage fields the entry's prefix does not. */
interface EntryBody {
  message: ChatMessage;
  digest: string;
  createdAtMs: number;
  turnKey?: string;
}

type ScriptArg = string | number;
type ScriptCommands = Record<RedisScriptName, (...args: ScriptArg[]) => Promise<unknown>>;

/** What this store has decoded of one incarnation of a conversation: its last window and summary. */
interface CachedWindow {
  inc: string;
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
  /** The store's invalidation clock when Redis last invalidated the conversation (0 for never). */
  invalidatedAt: number;
}

/** The fast load's four reads, in the order Redis runs them. */
type TailReads = [tail: string[], length: number, meta: (string | null)[], summaryBytes: number];

const SWEEP_SCAN_COUNT = 500;

/** The keys a window is read from, as they end: an invalidation of either untracks the window. */
const WINDOW_KEY_SUFFIXES = ['}:meta', '}:msgs'] as const;

export class RedisStore implements ConversationStore {
  readonly #client: Redis | Cluster;
  readonly #scripts: ScriptCommands;
  readonly #ttlMs: number;
  readonly #cap: number;
  readonly #mode: 'standalone' | 'cache';
  readonly #modeArg: 's' | 'c';
  readonly #prefix: string;
  readonly #dirtyKey: string;
  /** Cache mode on standalone Redis: the scripts keep the dirty set themselves (on a Cluster it lives in another slot). */
  readonly #marksInScripts: boolean;
  readonly #onDirtyMarkFailed: RedisStoreOptions['onDirtyMarkFailed'];
  readonly #localCacheMaxEntries: number;
  readonly #now: () => number;
  /** A load later than this after the last touch this store saw runs LOAD, which refreshes the TTL. */
  readonly #touchFreshMs: number;
  /** Map order is recency of use: the first entry is the least recently used. Keyed by the hash tag's text. */
  readonly #windows = new Map<string, CachedWindow>();
  #windowEntries = 0;
  /** New incarnation ids: random per store, then a counter, so no two calls anywhere pass the same one. */
  readonly #incPrefix = `${randomBytes(9).toString('base64url')}.`;
  #incCount = 0;
  #decodedEntries = 0;
  #fastLoads = 0;
  #trackedLoads = 0;
  readonly #tracking: RedisTracking | undefined;
  #stopInvalidations: (() => void) | undefined;
  readonly #onLoad: (path: RedisLoadPath) => void;
  /** Counts invalidations that reached a cached window: a fast load validates only if none came while it was out. */
  #invalidationClock = 0;
  #isCorked = false;
  #isClosed = false;

  constructor(options: RedisStoreOptions) {
    for (const field of ['ttlMs', 'maxCachedMessages'] as const) {
      const value = options[field];
      if (!Number.isSafeInteger(value) || value <= 0) {
        throw new RangeError(`RedisStore option ${field} must be a positive integer, got ${String(value)}`);
      }
    }
    const localCacheMaxEntries = options.localCacheMaxEntries ?? DEFAULT_LOCAL_CACHE_MAX_ENTRIES;
    if (!Number.isSafeInteger(localCacheMaxEntries) || localCacheMaxEntries < 0) {
      throw new RangeError(`RedisStore option localCacheMaxEntries must be a non-negative integer, got ${String(localCacheMaxEntries)}`);
    }
    const prefix = options.keyPrefix ?? 'contextd:';
    if (/[{}]/.test(prefix)) throw new RangeError(`RedisStore keyPrefix must not contain '{' or '}', got ${prefix}`);
    this.#client = options.client;
    this.#ttlMs = options.ttlMs;
    this.#cap = options.maxCachedMessages;
    this.#mode = options.mode;
    this.#modeArg = options.mode === 'cache' ? 'c' : 's';
    this.#prefix = prefix;
    this.#dirtyKey = `${prefix}dirty`;
    this.#marksInScripts = options.mode === 'cache' && !isCluster(options.client);
    this.#onDirtyMarkFailed = options.onDirtyMarkFailed;
    this.#localCacheMaxEntries = localCacheMaxEntries;
    this.#now = options.now ?? (() => performance.now());
    this.#touchFreshMs = options.ttlMs / 100;
    this.#onLoad = options.onLoad ?? (() => undefined);
    if (options.tracking !== undefined) {
      if (options.tracking.client !== options.client) throw new RangeError('RedisStore: tracking must be on the store\'s own client');
      this.#tracking = options.tracking;
      this.#stopInvalidations = options.tracking.onInvalidate((keys) => this.#invalidate(keys));
    }
    // Defining a command again (another store on the same client) replaces it with the same script.
    for (const [name, definition] of Object.entries(REDIS_SCRIPTS)) this.#client.defineCommand(name, definition);
    this.#scripts = this.#client as unknown as ScriptCommands;
  }

  /**
   * Entries JSON-parsed by this store since it was created: those loads,
   * listings and unflushed() received, and the copies of its own appends that
   * join the local cache. What the local cache saves shows here.
   */
  get decodedEntries(): number {
    return this.#decodedEntries;
  }

  /** Loads answered by plain reads alone, without the LOAD script (see the top of this file). */
  get fastLoads(): number {
    return this.#fastLoads;
  }

  /** Loads answered from a tracked window, without asking Redis (see the top of this file). */
  get trackedLoads(): number {
    return this.#trackedLoads;
  }

  /**
   * `hit` when Redis holds the conversation, else `miss` with no messages. One
   * round trip; in Redis O(log n) plus the entries this store has not decoded
   * yet, which alone are sent and decoded (O(window) when the newest messages
   * have gaps, see redis-scripts.ts). With the conversation's window cached,
   * usually plain reads of O(1) entries instead of the script, and two round
   * trips when they cannot settle it. With the local cache on, messages are
   * fresh objects over deep-frozen contents, shared with later loads (as the
   * embedded store's).
   */
  async load(key: ConversationKey, limits: LoadLimits): Promise<ConversationSnapshot> {
    this.#requireOpen();
    const tag = dirtyMember(key);
    const cached = this.#windows.get(tag);
    if (cached !== undefined && cached.throughTag !== '' && this.#now() - cached.touchedAtMs < this.#touchFreshMs) {
      if (this.#isTracked(cached)) {
        const tracked = this.#walkWindow(tag, cached, [], cached.listLength, cached.summary?.coversSeq ?? 0, cached.through, limits);
        if (tracked !== undefined) {
          this.#trackedLoads++;
          this.#onLoad('tracked');
          return tracked;
        }
      }
      const fast = await this.#loadFast(tag, cached, limits);
      if (fast !== undefined) {
        this.#fastLoads++;
        this.#onLoad('fast');
        return fast;
      }
    }
    this.#onLoad('script');
    const snapshot = await this.#loadKnowing(tag, limits, this.#windows.get(tag));
    if (snapshot !== undefined) return snapshot;
    // Redis named a seq or summary the cached window lacks, which the invariants
    // rule out; rather than fail the request, forget the window and ask for everything.
    this.#forget(tag);
    const retried = await this.#loadKnowing(tag, limits, undefined);
    if (retried === undefined) throw new Error('RedisStore.load: Redis referred to cached entries although none were offered');
    return retried;
  }

  /**
   * The load without the script, from the cached window `known` and four plain
   * reads (see the top of this file); undefined when those cannot settle it.
   */
  async #loadFast(tag: string, known: CachedWindow, limits: LoadLimits): Promise<ConversationSnapshot | undefined> {
    // What the window holds now: a call of this store that changes it while the reads are out sends the load to LOAD.
    const { inc, from, through, throughTag, summary, summaryBytes } = known;
    const epochAtSend = this.#tracking?.activeEpoch;
    const clockAtSend = this.#invalidationClock;
    const [tail, listLength, [lastSeqText = null, incText = null, coversSeqText = null], summaryBytesNow] = await this.#readTail(tag);
    if (lastSeqText === null) {
      this.#forget(tag);
      return { summary: undefined, messages: [], lastSeq: 0, cache: 'miss' };
    }
    const isUnchanged = this.#windows.get(tag) === known && known.from === from && known.through === through && known.summary === summary;
    if (!isUnchanged || incText !== inc) return undefined;
    const coversSeq = Number(coversSeqText ?? 0);
    const isSameSummary = summary === undefined ? summaryBytesNow === 0 : summaryBytesNow === summaryBytes && coversSeq === summary.coversSeq;
    if (!isSameSummary) return undefined;

    // The tail read must show lastSeq (the order of the reads, see above) and, at `through`, the entry cached for it.
    const lastSeq = Number(lastSeqText);
    if (tail.length === 0 || seqOf(tail[tail.length - 1]!) !== lastSeq) return undefined;
    let throughAt = tail.length - 1;
    while (throughAt >= 0 && seqOf(tail[throughAt]!) > through) throughAt--;
    const throughEntry = tail[throughAt];
    if (throughEntry === undefined || seqOf(throughEntry) !== through || !throughEntry.includes(throughTag)) return undefined;
    const snapshot = this.#walkWindow(tag, known, tail.slice(throughAt + 1), listLength, coversSeq, lastSeq, limits);
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

  /**
   * LOAD's walk over the cached window `known` and `freshEntries`, the list's
   * entries after `through` (through lastSeq; none for a tracked window), with
   * the list `listLength` long. Moves the cached window to the result;
   * undefined when the list may hold older entries the window needs.
   */
  #walkWindow(
    tag: string,
    known: CachedWindow,
    freshEntries: readonly string[],
    listLength: number,
    coversSeq: number,
    lastSeq: number,
    limits: LoadLimits,
  ): ConversationSnapshot | undefined {
    const { inc, through, summary, summaryBytes } = known;
    // Only the seq and tokens of the new entries until the window is settled; the JSON of those it takes after.
    const freshFigures = freshEntries.map(figuresOf);
    // bySeq's insertion order is ascending seqs, `through` last. The list still holds the newest `inList` of them.
    const held = [...known.bySeq.values()];
    const inList = Math.min(held.length, listLength - freshEntries.length);
    if (inList <= 0 || held.at(-1)?.seq !== through) return undefined;

    // LOAD's walk, newest first, over the new entries and then the cached ones.
    const maxMessages = clampCount(limits.maxMessages);
    const maxTokens = clampCount(limits.maxTokens);
    const freshCount = freshEntries.length;
    const reachable = freshCount + inList;
    const newest = (index: number): { seq: number; tokens: number } =>
      index < freshCount ? freshFigures[freshCount - 1 - index]! : held[held.length - 1 - (index - freshCount)]!;
    let taken = 0;
    let usedTokens = 0;
    let isEnded = false;
    for (; taken < reachable; taken++) {
      const message = newest(taken);
      if (taken >= maxMessages || usedTokens > maxTokens || message.seq <= coversSeq) {
        isEnded = true;
        break;
      }
      usedTokens += message.tokens;
    }
    if (!isEnded && reachable < listLength && taken < maxMessages && usedTokens <= maxTokens) {
      // The list holds older entries than any cached one; only covered ones (cache mode keeps the unflushed) end the window there.
      const isCoveredNext = this.#mode === 'cache' && newest(reachable - 1).seq <= coversSeq + 1;
      if (!isCoveredNext) return undefined;
    }

    const fresh = freshEntries.slice(Math.max(0, freshCount - taken)).map(decodeEntry);
    this.#decodedEntries += fresh.length;
    const takenHeld = taken - freshCount;
    let messages: StoredMessage[];
    if (takenHeld > 0) {
      messages = [...held.slice(held.length - takenHeld), ...fresh];
      this.#slideWindow(tag, known, messages[0]!.seq, fresh, summary, summaryBytes, known.touchedAtMs);
    } else {
      messages = fresh;
      this.#rememberWindow(tag, inc, lastSeq, messages, summary, summaryBytes, known.touchedAtMs);
    }
    return { summary: summary === undefined ? undefined : { ...summary }, messages, lastSeq, cache: 'hit' };
  }

  /** The fast load's reads; plain commands sent together on standalone Redis, a MULTI on a Cluster. */
  async #readTail(tag: string): Promise<TailReads> {
    const [meta, msgs] = this.#keysOf(tag);
    const client = this.#client;
    if (!isCluster(client)) {
      // Corked, the four commands leave in one write: each write is a syscall,
      // which costs more CPU here than the four commands cost Redis.
      this.#corkForTick();
      return Promise.all([
        client.lrange(msgs, -FAST_LOAD_TAIL_ENTRIES, -1),
        client.llen(msgs),
        client.hmget(meta, 'lastSeq', 'inc', 'coversSeq'),
        client.hstrlen(meta, 'summary'),
      ]);
    }
    const results = await client.multi().lrange(msgs, -FAST_LOAD_TAIL_ENTRIES, -1).llen(msgs).hmget(meta, 'lastSeq', 'inc', 'coversSeq').hstrlen(meta, 'summary').exec();
    if (results === null) throw new Error('RedisStore.load: the MULTI was discarded');
    for (const [error] of results) if (error !== null) throw error;
    return results.map(([, value]) => value) as TailReads;
  }

  /** One LOAD offering `known`; undefined when the reply refers to something `known` does not hold. */
  async #loadKnowing(tag: string, limits: LoadLimits, known: CachedWindow | undefined): Promise<ConversationSnapshot | undefined> {
    const sentAtMs = this.#now();
    const epochAtSend = this.#tracking?.activeEpoch;
    const clockAtSend = this.#invalidationClock;
    const reply = (await this.#scripts.contextdLoad(
      ...this.#keysOf(tag),
      this.#modeArg,
      this.#ttlMs,
      clampCount(limits.maxMessages),
      clampCount(limits.maxTokens),
      this.#newInc(),
      known?.inc ?? '',
      known?.from ?? 1,
      known?.through ?? 0,
      known?.throughTag ?? '',
      known?.summary?.coversSeq ?? '',
      known?.summaryBytes ?? 0,
    )) as unknown[];
    if (reply[0] === 0) {
      this.#forget(tag);
      return { summary: undefined, messages: [], lastSeq: 0, cache: 'miss' };
    }
    const [, lastSeqReply, inc, summarySlot, heldFromReply, heldThroughReply, heldCountReply, listLength, ...entries] = reply;
    const lastSeq = Number(lastSeqReply);

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
    this.#decodedEntries += fetched.length;
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

    if (this.#localCacheMaxEntries === 0 || typeof inc !== 'string') return { summary, messages, lastSeq, cache: 'hit' };
    const isSlide = known !== undefined && known.inc === inc && this.#windows.get(tag) === known && heldCount > 0 && Number(heldThroughReply) === known.through;
    if (isSlide && fetched.every((message) => message.seq > known.through)) {
      this.#slideWindow(tag, known, Number(heldFromReply), fetched, summary, summaryBytes, sentAtMs);
    } else {
      this.#rememberWindow(tag, inc, lastSeq, messages, summary, summaryBytes, sentAtMs);
    }
    // Tracked from now on if tracking was on throughout and no invalidation at all
    // came while LOAD was out (with no window cached, none would have been noted).
    const window = this.#windows.get(tag);
    if (window !== undefined) {
      const isTracked = epochAtSend !== undefined && this.#tracking?.activeEpoch === epochAtSend && this.#invalidationClock === clockAtSend;
      window.listLength = Number(listLength);
      window.validEpoch = isTracked && window.through === lastSeq ? epochAtSend : -1;
    }
    // The messages are the cached, deep-frozen ones: shared, as the embedded store's are.
    return { summary: summary === undefined ? undefined : { ...summary }, messages, lastSeq, cache: 'hit' };
  }

  /**
   * Only what Redis holds: messages trimmed by the cap or covered by a summary
   * are not listed (in cache mode MongoDB has them).
   */
  async listMessages(key: ConversationKey, page: { afterSeq: number; limit: number }): Promise<StoredMessage[]> {
    this.#requireOpen();
    const limit = clampCount(page.limit);
    if (limit === 0) return [];
    const afterSeq = Number.isFinite(page.afterSeq) ? Math.floor(page.afterSeq) : 0;
    const entries = (await this.#scripts.contextdList(...this.#keys(key), this.#modeArg, this.#ttlMs, afterSeq, limit)) as string[];
    this.#decodedEntries += entries.length;
    return entries.map(decodeEntry);
  }

  async append(key: ConversationKey, messages: readonly NewMessage[], options?: AppendOptions): Promise<AppendResult> {
    this.#requireOpen();
    if (messages.length === 0) return { seqs: [], duplicate: false };
    const turnKey = options?.turnKey;
    const createdAtMs = Date.now();
    // Encoded before Redis is touched: a message JSON cannot encode changes nothing.
    const perMessage: string[] = [];
    messages.forEach((incoming, index) => {
      requireCount('tokens', incoming.tokens);
      const body: EntryBody = {
        message: incoming.message,
        digest: incoming.digest,
        createdAtMs,
        ...(index === 0 && turnKey !== undefined ? { turnKey } : {}),
      };
      perMessage.push(String(incoming.tokens), JSON.stringify(body));
    });

    const member = dirtyMember(key);
    const script = this.#marksInScripts ? 'contextdAppendMarking' : 'contextdAppend';
    const sentAtMs = this.#now();
    const [outcome, firstSeq, count, inc, lastCum, listLength] = (await this.#scripts[script](
      ...this.#keys(key),
      ...(this.#marksInScripts ? [this.#dirtyKey] : []),
      this.#modeArg,
      this.#ttlMs,
      this.#cap,
      turnKey === undefined ? '0' : '1',
      turnKey ?? '',
      this.#newInc(),
      Date.now(),
      member,
      ...perMessage,
    )) as [string, number, number, string?, number?, number?];
    if (outcome === 'cold') throw new ColdConversationError(key);
    // Either way APPEND ended with touch, as LOAD does: fast loads may go on.
    const window = this.#windows.get(member);
    if (window !== undefined) window.touchedAtMs = Math.max(window.touchedAtMs, sentAtMs);
    const seqs = Array.from({ length: count }, (_, index) => firstSeq + index);
    if (outcome === 'duplicate') return { seqs, duplicate: true };
    if (inc !== undefined && lastCum !== undefined && !this.#extendWindow(member, inc, firstSeq, lastCum, perMessage, Number(listLength ?? -1))) {
      this.#untrack(member);
    }
    if (this.#mode === 'cache' && !this.#marksInScripts) await this.#markDirty(key);
    return { seqs, duplicate: false };
  }

  /**
   * Ignored (false) when Redis does not hold the conversation, when the summary
   * covers no more than the stored one, or covers seqs never given. The covered
   * messages are dropped (in cache mode only those MongoDB already has).
   */
  async replaceSummary(key: ConversationKey, summary: Summary): Promise<boolean> {
    this.#requireOpen();
    if (!Number.isFinite(summary.coversSeq)) return false;
    const stored = await this.#scripts.contextdReplaceSummary(
      ...this.#keys(key),
      this.#modeArg,
      this.#ttlMs,
      summary.coversSeq,
      JSON.stringify(summary),
    );
    // This store's own writes bring no invalidation (NOLOOP); the next load looks again.
    this.#untrack(dirtyMember(key));
    return stored === 1;
  }

  /** Erases every key of the conversation (and its dirty entry): a later append starts again at seq 1. */
  async delete(key: ConversationKey): Promise<void> {
    this.#requireOpen();
    this.#forget(dirtyMember(key));
    await this.#client.del(...this.#keys(key));
    if (this.#mode === 'cache') await this.#client.zrem(this.#dirtyKey, dirtyMember(key));
  }

  async ping(): Promise<void> {
    this.#requireOpen();
    await this.#client.ping();
  }

  /** Later calls reject with StoreUnavailableError. The client is main.ts's to quit. */
  async close(): Promise<void> {
    this.#isClosed = true;
    this.#stopInvalidations?.();
  }

  /**
   * Cache mode: makes a conversation Redis does not hold known, from MongoDB's
   * state (flushedSeq = lastSeq). A no-op if Redis already holds it, so a racing
   * append is never clobbered. Messages the summary covers, and all but the
   * newest maxCachedMessages, are not kept.
   */
  async warm(
    key: ConversationKey,
    state: { lastSeq: number; lastCum: number; summary: Summary | undefined; messages: readonly StoredMessage[] },
  ): Promise<void> {
    this.#requireCache('warm');
    requireCount('lastSeq', state.lastSeq);
    requireCount('lastCum', state.lastCum);
    const coversSeq = state.summary?.coversSeq ?? 0;
    const kept = state.messages.filter((m) => m.seq > coversSeq && m.seq <= state.lastSeq).slice(-this.#cap);
    // Running totals the messages do not carry are derived back from lastCum.
    const cums: number[] = [];
    let runningCum = state.lastCum;
    for (let index = kept.length - 1; index >= 0; index--) {
      const stored = kept[index]!;
      cums[index] = stored.cumTokens ?? runningCum;
      runningCum = cums[index]! - stored.tokens;
    }
    const entries = kept.map((stored, index) => encodeEntry(stored, cums[index]!));
    await this.#scripts.contextdWarm(
      ...this.#keys(key),
      this.#ttlMs,
      state.lastSeq,
      state.lastCum,
      state.summary === undefined ? '' : JSON.stringify(state.summary),
      coversSeq,
      this.#newInc(),
      ...entries,
    );
    this.#untrack(dirtyMember(key));
  }

  /**
   * Cache mode, for the flusher: claims up to `limit` dirty conversations whose
   * lease is due (score <= nowMs) and sets their lease to nowMs + leaseMs in the
   * same script, so two instances never hold one conversation at once.
   */
  async claimDirty(limit: number, leaseMs: number, nowMs: number): Promise<ConversationKey[]> {
    this.#requireCache('claimDirty');
    const count = clampCount(limit);
    if (count === 0) return [];
    const members = (await this.#scripts.contextdClaimDirty(this.#dirtyKey, count, nowMs, nowMs + leaseMs)) as string[];
    const keys: ConversationKey[] = [];
    for (const member of members) {
      const key = parseTag(member);
      // Nothing RedisStore writes; dropped so that it cannot be claimed forever.
      if (key === undefined) await this.#client.zrem(this.#dirtyKey, member);
      else keys.push(key);
    }
    return keys;
  }

  /**
   * Cache mode: the messages above flushedSeq, oldest first, with cumTokens, and
   * the summary Redis holds, read together; O(unflushed).
   */
  async unflushed(key: ConversationKey): Promise<{ flushedSeq: number; messages: StoredMessage[]; summary: Summary | undefined }> {
    this.#requireCache('unflushed');
    const [flushedSeq, summaryJson, ...newestFirst] = (await this.#scripts.contextdUnflushed(...this.#keys(key))) as [
      number,
      string | null,
      ...string[],
    ];
    this.#decodedEntries += newestFirst.length;
    return {
      flushedSeq: Number(flushedSeq),
      messages: newestFirst.map(decodeEntry).reverse(),
      summary: typeof summaryJson === 'string' ? (JSON.parse(summaryJson) as Summary) : undefined,
    };
  }

  /**
   * Cache mode: advances flushedSeq to max(flushedSeq, seq) (never past
   * lastSeq) and applies the cap trimming held back for unflushed messages.
   * Caught up: leaves the dirty set and gets its TTL back; otherwise stays
   * dirty, due now (which is also how a flusher hands back a claim).
   */
  async markFlushed(key: ConversationKey, seq: number): Promise<void> {
    this.#requireCache('markFlushed');
    const keys = this.#keys(key);
    const member = dirtyMember(key);
    const target = Number.isFinite(seq) ? seq : 0;
    this.#corkForTick();
    const [outcome, listLength] = (
      this.#marksInScripts
        ? await this.#scripts.contextdMarkFlushedMarking(...keys, this.#dirtyKey, this.#ttlMs, this.#cap, target, member)
        : await this.#scripts.contextdMarkFlushed(...keys, this.#ttlMs, this.#cap, target, member)
    ) as [number, number?];
    // Only the list's length matters to the cached window (the cap's trim drops
    // from the head); this store's own writes bring no invalidation (NOLOOP).
    const window = this.#windows.get(member);
    if (window !== undefined) {
      if (listLength === undefined) this.#forget(member);
      else window.listLength = Number(listLength);
    }
    if (this.#marksInScripts) return;
    if (outcome === 0) {
      await this.#client.zadd(this.#dirtyKey, 0, member);
      return;
    }
    await this.#client.zrem(this.#dirtyKey, member);
    if (outcome === -1) return;
    // The dirty set lives in another slot, so the script could not remove the
    // entry itself: an append that landed between the script and the ZREM found
    // the entry still there (its ZADD NX did nothing). Look again.
    const [lastSeq, flushedSeq] = await this.#client.hmget(keys[0], 'lastSeq', 'flushedSeq');
    if (Number(lastSeq ?? 0) > Number(flushedSeq ?? 0)) await this.#client.zadd(this.#dirtyKey, 'NX', 0, member);
  }

  /**
   * Cache mode: puts back into the dirty set every conversation with
   * lastSeq > flushedSeq that is missing from it (an instance died between an
   * append and its ZADD, or the ZADD failed). SCANs the meta keys of every
   * master of a Cluster. Returns how many were added.
   */
  async sweepDirty(): Promise<number> {
    this.#requireCache('sweepDirty');
    const client = this.#client;
    const nodes = isCluster(client) ? client.nodes('master') : [client];
    const pattern = `${escapeGlob(this.#prefix)}{*}:meta`;
    let added = 0;
    for (const node of nodes) {
      let cursor = '0';
      do {
        const [next, metaKeys] = await node.scan(cursor, 'MATCH', pattern, 'COUNT', SWEEP_SCAN_COUNT);
        cursor = next;
        const counts = await Promise.all(metaKeys.map((metaKey) => this.#redirtyIfBehind(metaKey)));
        added += counts.reduce((sum, count) => sum + count, 0);
      } while (cursor !== '0');
    }
    return added;
  }

  async #redirtyIfBehind(metaKey: string): Promise<number> {
    const tag = metaKey.slice(this.#prefix.length + 1, -'}:meta'.length);
    if (parseTag(tag) === undefined) return 0;
    const [lastSeq, flushedSeq] = await this.#client.hmget(metaKey, 'lastSeq', 'flushedSeq');
    if (Number(lastSeq ?? 0) <= Number(flushedSeq ?? 0)) return 0;
    return this.#client.zadd(this.#dirtyKey, 'NX', 0, tag);
  }

  async #markDirty(key: ConversationKey): Promise<void> {
    try {
      // NX: a conversation already dirty keeps its score, so a lease held by a flusher is not cut short.
      await this.#client.zadd(this.#dirtyKey, 'NX', Date.now(), dirtyMember(key));
    } catch (error) {
      this.#onDirtyMarkFailed?.(key, error);
    }
  }

  /**
   * The summary lock: `SET …:lock <token> NX PX ttl`, the token from an INCR
   * (`…:fence`) so every holder has a larger one than the last; released only
   * by its holder (compare-and-delete). Both keys share the conversation's slot.
   */
  async acquireSummaryLock(key: ConversationKey, ttlMs: number): Promise<LockLease | undefined> {
    this.#requireOpen();
    const base = `${this.#prefix}{${dirtyMember(key)}}`;
    const lockKey = `${base}:lock`;
    const token = await this.#client.incr(`${base}:fence`);
    const acquired = await this.#client.set(lockKey, String(token), 'PX', ttlMs, 'NX');
    if (acquired !== 'OK') return undefined;
    const client = this.#client;
    return {
      token,
      isHeld: async () => (await client.get(lockKey)) === String(token),
      release: async () => {
        await client.eval("if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0", 1, lockKey, String(token));
      },
    };
  }

  /**
   * Makes `messages` (oldest first, one LOAD's window) the conversation's cached
   * window; the messages are frozen in place. An empty window still keeps the
   * summary, as the empty range lastSeq+1..lastSeq that this store's next append extends.
   */
  #rememberWindow(
    tag: string,
    inc: string,
    lastSeq: number,
    messages: StoredMessage[],
    summary: Summary | undefined,
    summaryBytes: number,
    touchedAtMs: number,
  ): void {
    const bySeq = new Map<number, StoredMessage>();
    for (const message of messages) bySeq.set(message.seq, deepFreeze(message));
    const newest = messages.at(-1);
    this.#cacheWindow(tag, {
      inc,
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
  #slideWindow(
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
    this.#windowEntries += newer.length - removed;
    this.#cacheWindow(tag, window);
  }

  /**
   * After this store's append (seqs firstSeq.., the last with running total
   * lastCum): if the cached window of that incarnation ends just before it,
   * the appended messages join it, so the next load need not fetch them. They
   * are decoded from the very JSON sent to Redis, so they equal what a load
   * would decode. In place: a load still in flight looks up only seqs it offered.
   */
  #extendWindow(tag: string, inc: string, firstSeq: number, lastCum: number, perMessage: readonly string[], listLength: number): boolean {
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
    this.#decodedEntries += count;
    if (newest === undefined) return false;
    window.through = newest.seq;
    window.throughTag = entryTag(newest);
    window.listLength = listLength;
    this.#windowEntries += count;
    this.#cacheWindow(tag, window);
    return listLength >= 0;
  }

  /** Stores `window` as the most recently used; then drops least recently used ones beyond the bound. */
  #cacheWindow(tag: string, window: CachedWindow): void {
    const previous = this.#windows.get(tag);
    if (previous !== undefined) {
      this.#windows.delete(tag);
      this.#windowEntries -= previous.bySeq.size;
    }
    // A window larger than the whole bound would only push every other conversation out, then itself.
    if (window.bySeq.size > this.#localCacheMaxEntries) return;
    this.#windows.set(tag, window);
    this.#windowEntries += window.bySeq.size;
    for (const [oldestTag, oldest] of this.#windows) {
      if (this.#windowEntries <= this.#localCacheMaxEntries) break;
      this.#windows.delete(oldestTag);
      this.#windowEntries -= oldest.bySeq.size;
    }
  }

  /**
   * Calls made in this tick leave in one write (the fast load's four reads; a
   * flush round's marks of all its conversations): each write is a syscall,
   * dearer here than the commands.
   */
  #corkForTick(): void {
    if (this.#isCorked || isCluster(this.#client)) return;
    const socket: Pick<Socket, 'cork' | 'uncork'> | undefined = this.#client.stream;
    if (socket === undefined) return;
    this.#isCorked = true;
    socket.cork();
    process.nextTick(() => {
      this.#isCorked = false;
      socket.uncork();
    });
  }

  /** Whether a load may walk `window` without asking Redis: validated in the current tracking epoch, not invalidated since. */
  #isTracked(window: CachedWindow): boolean {
    return window.validEpoch >= 0 && window.validEpoch === this.#tracking?.activeEpoch && window.listLength >= 0;
  }

  #untrack(tag: string): void {
    const window = this.#windows.get(tag);
    if (window !== undefined) window.validEpoch = -1;
  }

  /** Redis says these keys changed (null: all of them). Only a conversation's meta and msgs matter to its window. */
  #invalidate(keys: readonly string[] | null): void {
    const clock = ++this.#invalidationClock;
    if (keys === null) {
      for (const window of this.#windows.values()) {
        window.validEpoch = -1;
        window.invalidatedAt = clock;
      }
      return;
    }
    for (const key of keys) {
      const suffix = WINDOW_KEY_SUFFIXES.find((each) => key.endsWith(each));
      if (suffix === undefined || !key.startsWith(`${this.#prefix}{`)) continue;
      const window = this.#windows.get(key.slice(this.#prefix.length + 1, -suffix.length));
      if (window === undefined) continue;
      window.validEpoch = -1;
      window.invalidatedAt = clock;
    }
  }

  #forget(tag: string): void {
    const window = this.#windows.get(tag);
    if (window === undefined) return;
    this.#windows.delete(tag);
    this.#windowEntries -= window.bySeq.size;
  }

  #newInc(): string {
    return `${this.#incPrefix}${(this.#incCount++).toString(36)}`;
  }

  #keys(key: ConversationKey): [meta: string, msgs: string, turns: string] {
    return this.#keysOf(dirtyMember(key));
  }

  #keysOf(tag: string): [meta: string, msgs: string, turns: string] {
    const base = `${this.#prefix}{${tag}}`;
    return [`${base}:meta`, `${base}:msgs`, `${base}:turns`];
  }

  #requireOpen(): void {
    if (this.#isClosed) throw new StoreUnavailableError(new Error('the Redis store is closed'));
  }

  #requireCache(operation: string): void {
    this.#requireOpen();
    if (this.#mode !== 'cache') throw new Error(`RedisStore.${operation} is for cache mode; this store is standalone`);
  }
}

/** The hash tag's text, also the conversation's member of the dirty set. */
function dirtyMember(key: ConversationKey): string {
  return `${escapeId(key.tenant, /[%{}:]/g)}:${escapeId(key.conversation, /[%{}]/g)}`;
}

function parseTag(tag: string): ConversationKey | undefined {
  const colon = tag.indexOf(':');
  if (colon <= 0 || /[{}]/.test(tag)) return undefined;
  try {
    return {
      tenant: decodeURIComponent(tag.slice(0, colon)) as TenantId,
      conversation: decodeURIComponent(tag.slice(colon + 1)) as ConversationId,
    };
  } catch {
    return undefined;
  }
}

function escapeId(id: string, special: RegExp): string {
  return id.replace(special, (char) => `%${char.charCodeAt(0).toString(16).toUpperCase()}`);
}

function escapeGlob(text: string): string {
  return text.replace(/[*?[\]\\]/g, (char) => `\\${char}`);
}

function isCluster(client: Redis | Cluster): client is Cluster {
  return (client as { isCluster?: boolean }).isCluster === true;
}

function encodeEntry(stored: StoredMessage, cumTokens: number): string {
  requireCount('seq', stored.seq);
  requireCount('tokens', stored.tokens);
  requireCount('cumTokens', cumTokens);
  const body: EntryBody = {
    message: stored.message,
    digest: stored.digest,
    createdAtMs: stored.createdAtMs,
    ...(stored.turnKey !== undefined ? { turnKey: stored.turnKey } : {}),
  };
  return `${stored.seq}:${stored.tokens}:${cumTokens}:${JSON.stringify(body)}`;
}

/**
 * What LOAD looks for in its entry at a cached window's `through`: the digest and
 * createdAtMs, spelled as in the entry's JSON (EntryBody's order, JSON.stringify's
 * numbers). A different message stored under that seq carries another pair.
 */
function entryTag(stored: StoredMessage): string {
  return `"digest":${JSON.stringify(stored.digest)},"createdAtMs":${JSON.stringify(stored.createdAtMs)}`;
}

/**
 * The cached messages with seqs in [from, through], which LOAD says are
 * `count` and are all the cached window has there; undefined when the cache
 * does not hold exactly that many.
 */
function heldMessages(known: CachedWindow | undefined, from: number, through: number, count: number): StoredMessage[] | undefined {
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

function seqOf(entry: string): number {
  return Number(entry.slice(0, entry.indexOf(':')));
}

/** An entry's seq and tokens, read from its prefix without decoding the JSON. */
function figuresOf(entry: string): { seq: number; tokens: number } {
  const afterSeq = entry.indexOf(':');
  return { seq: Number(entry.slice(0, afterSeq)), tokens: Number(entry.slice(afterSeq + 1, entry.indexOf(':', afterSeq + 1))) };
}

function decodeEntry(entry: string): StoredMessage {
  const afterSeq = entry.indexOf(':');
  const afterTokens = entry.indexOf(':', afterSeq + 1);
  const afterCum = entry.indexOf(':', afterTokens + 1);
  const body = JSON.parse(entry.slice(afterCum + 1)) as EntryBody;
  return {
    message: body.message,
    tokens: Number(entry.slice(afterSeq + 1, afterTokens)),
    digest: body.digest,
    seq: Number(entry.slice(0, afterSeq)),
    createdAtMs: body.createdAtMs,
    ...(body.turnKey !== undefined ? { turnKey: body.turnKey } : {}),
    cumTokens: Number(entry.slice(afterTokens + 1, afterCum)),
  };
}

/** The scripts read these figures as digits: only non-negative integers fit. */
function requireCount(name: string, value: number): void {
  if (!Number.isSafeInteger(value) || value < 0) {
    throw new RangeError(`RedisStore: ${name} must be a non-negative integer, got ${String(value)}`);
  }
}

/** A limit as a script argument: a non-negative integer no larger than a double counts exactly. */
function clampCount(value: number): number {
  if (Number.isNaN(value)) return 0;
  return Math.max(0, Math.min(Math.floor(value), Number.MAX_SAFE_INTEGER));
}
