// Redis as a conversation store: the only store ('standalone') or the hot tier
// in front of MongoDB ('cache'); works unchanged on a Redis Cluster. This file
// holds the store operations; the rest of the folder holds the key layout
// (keys.ts), the list entries (entry-codec.ts), the Lua (scripts.ts, which
// registers lua-*.ts), how a load is answered (loader.ts), the decoded-window
// cache (window-cache.ts), the fast load (fast-load.ts) and corking (cork.ts),
// CLIENT TRACKING (tracking.ts), the dirty set the flusher reads
// (flush-source.ts), the summary lock (summary-lock.ts) and cache warming
// (warm.ts). The layout and its guarantees: docs/storage.md.

import { randomBytes } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import type { Cluster, Redis } from 'ioredis';
import type { AppendOptions, AppendResult, ConversationKey, ConversationSnapshot, NewMessage, StoredMessage, Summary } from '../../domain.js';
import { ColdConversationError, StoreUnavailableError } from '../../errors.js';
import type { ConversationStore, DemoteOutcome, EraseReceipt, HotErasure, LoadLimits, LockLease, MergedTurnKey, RebaseOutcome, Unflushed, WarmState } from '../conversation-store.js';
import { TickCork } from './cork.js';
import { decodeEntry, encodeTurn } from './entry-codec.js';
import { RedisFlushSource } from './flush-source.js';
import { conversationKeys, DEFAULT_KEY_PREFIX, hashTag, isCluster, tagBase, windowKeyTag, type ConversationKeys } from './keys.js';
import { RedisLoader, type RedisLoadPath } from './loader.js';
import { clampCount, defineScripts, RECENT_TURN_KEY_LIMIT, type ScriptCommands } from './scripts.js';
import { acquireSummaryLock } from './summary-lock.js';
import type { RedisTracking } from './tracking.js';
import { warmArgs } from './warm.js';
import { WindowCache } from './window-cache.js';

export type { RedisLoadPath } from './loader.js';

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
   * ColdConversationError (the caller seeds it with warm() and retries, or takes it unmerged with
   * appendUnmerged), messages above flushedSeq are never trimmed, and appends mark the conversation dirty
   * for the flusher.
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
   * CLIENT TRACKING on `client` (standalone Redis only; see tracking.ts):
   * loads of a window Redis has not invalidated are answered from memory.
   */
  tracking?: RedisTracking;
  /** Each load, by how it was answered: from a tracked window, by the fast reads, or by the LOAD script. */
  onLoad?: (path: RedisLoadPath) => void;
}

const DEFAULT_LOCAL_CACHE_MAX_ENTRIES = 20_000;

export class RedisStore implements ConversationStore {
  readonly #client: Redis | Cluster;
  readonly #scripts: ScriptCommands;
  readonly #ttlMs: number;
  readonly #cap: number;
  readonly #mode: 'standalone' | 'cache';
  readonly #modeArg: 's' | 'c';
  readonly #prefix: string;
  /** Cache mode on standalone Redis: the scripts keep the dirty set themselves (on a Cluster it lives in another slot). */
  readonly #marksInScripts: boolean;
  readonly #now: () => number;
  readonly #windows: WindowCache;
  readonly #cork: TickCork;
  readonly #loader: RedisLoader;
  readonly #flushSource: RedisFlushSource;
  /** New incarnation ids: random per store, then a counter, so no two calls anywhere pass the same one. */
  readonly #incPrefix = `${randomBytes(9).toString('base64url')}.`;
  #incCount = 0;
  #stopInvalidations: (() => void) | undefined;
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
    const prefix = options.keyPrefix ?? DEFAULT_KEY_PREFIX;
    if (/[{}]/.test(prefix)) throw new RangeError(`RedisStore keyPrefix must not contain '{' or '}', got ${prefix}`);
    this.#client = options.client;
    this.#ttlMs = options.ttlMs;
    this.#cap = options.maxCachedMessages;
    this.#mode = options.mode;
    this.#modeArg = options.mode === 'cache' ? 'c' : 's';
    this.#prefix = prefix;
    this.#marksInScripts = options.mode === 'cache' && !isCluster(options.client);
    this.#windows = new WindowCache(localCacheMaxEntries);
    this.#cork = new TickCork(options.client);
    this.#now = options.now ?? (() => performance.now());
    if (options.tracking !== undefined) {
      if (options.tracking.client !== options.client) throw new RangeError('RedisStore: tracking must be on the store\'s own client');
      this.#stopInvalidations = options.tracking.onInvalidate((keys) => this.#invalidate(keys));
    }
    this.#scripts = defineScripts(this.#client);
    this.#loader = new RedisLoader({
      client: this.#client,
      scripts: this.#scripts,
      prefix,
      ttlMs: this.#ttlMs,
      mode: this.#mode,
      windows: this.#windows,
      cork: this.#cork,
      tracking: options.tracking,
      now: this.#now,
      newInc: () => this.#newInc(),
      onLoad: options.onLoad ?? (() => undefined),
    });
    this.#flushSource = new RedisFlushSource({
      client: this.#client,
      scripts: this.#scripts,
      prefix,
      ttlMs: this.#ttlMs,
      cap: this.#cap,
      marksInScripts: this.#marksInScripts,
      windows: this.#windows,
      cork: this.#cork,
      onDirtyMarkFailed: options.onDirtyMarkFailed,
    });
  }

  /**
   * `hit` when Redis holds the conversation (`partial` when it holds it unmerged), else `miss` with no messages. One
   * round trip; in Redis O(log n) plus the entries this store has not decoded
   * yet, which alone are sent and decoded (O(window) when the newest messages
   * have gaps, see scripts.ts). With the conversation's window cached,
   * usually plain reads of O(1) entries instead of the script, and two round
   * trips when they cannot settle it. With the local cache on, messages are
   * fresh objects over deep-frozen contents, shared with later loads (as the
   * embedded store's). How a load is answered: loader.ts.
   */
  async load(key: ConversationKey, limits: LoadLimits): Promise<ConversationSnapshot> {
    this.#requireOpen();
    return this.#loader.load(key, limits);
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
    return entries.map(decodeEntry);
  }

  async append(key: ConversationKey, messages: readonly NewMessage[], options?: AppendOptions): Promise<AppendResult> {
    return this.#append(key, messages, options, 'refuse');
  }

  /**
   * Cache mode: append, but a conversation Redis does not hold is taken
   * unmerged (lua-turns.ts, APPEND) instead of refused with ColdConversationError:
   * its seqs are provisional from 1 and its loads answer `partial`, until the
   * flusher has merged it into MongoDB and rebased it (docs/storage.md).
   */
  async appendUnmerged(key: ConversationKey, messages: readonly NewMessage[], options?: AppendOptions): Promise<AppendResult> {
    this.#requireCache('appendUnmerged');
    return this.#append(key, messages, options, 'unmerged');
  }

  async #append(key: ConversationKey, messages: readonly NewMessage[], options: AppendOptions | undefined, ifCold: 'refuse' | 'unmerged'): Promise<AppendResult> {
    this.#requireOpen();
    if (messages.length === 0) return { seqs: [], duplicate: false };
    const turnKey = options?.turnKey;
    // Encoded before Redis is touched: a message JSON cannot encode changes nothing.
    const nowMs = Date.now();
    const perMessage = encodeTurn(messages, nowMs, turnKey);

    const tag = hashTag(key);
    const script = this.#marksInScripts ? 'contextdAppendMarking' : 'contextdAppend';
    const sentAtMs = this.#now();
    const [outcome, firstSeq, count, inc, lastCum, listLength] = (await this.#scripts[script](
      ...this.#keys(key),
      ...(this.#marksInScripts ? [this.#flushSource.dirtyKey] : []),
      this.#modeArg,
      this.#ttlMs,
      this.#cap,
      turnKey === undefined ? '0' : '1',
      turnKey ?? '',
      this.#newInc(),
      // The dirty mark's score, and meta's activeAt: the turn's createdAtMs.
      nowMs,
      tag,
      ifCold === 'unmerged' ? 'u' : 'r',
      ...perMessage,
    )) as [string, number, number, string?, number?, number?];
    if (outcome === 'cold') throw new ColdConversationError(key);
    // Either way APPEND ended with touch, as LOAD does: fast loads may go on.
    const window = this.#windows.get(tag);
    if (window !== undefined) window.touchedAtMs = Math.max(window.touchedAtMs, sentAtMs);
    const seqs = Array.from({ length: count }, (_, index) => firstSeq + index);
    if (outcome === 'duplicate') return { seqs, duplicate: true };
    if (inc !== undefined && lastCum !== undefined) {
      const staysTracked = this.#windows.extend(tag, inc, firstSeq, lastCum, perMessage, Number(listLength ?? -1));
      if (!staysTracked) this.#windows.untrack(tag);
    }
    if (this.#mode === 'cache' && !this.#marksInScripts) await this.#flushSource.markDirty(key);
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
    this.#windows.untrack(hashTag(key));
    return stored === 1;
  }

  /**
   * Takes the entries at `seqs` out of the list in one script (lua-erase.ts,
   * ERASE), with a summary covering any of them; the conversation gets a new
   * incarnation, so no process's decoded window serves them again. An
   * unmerged conversation (cache mode) is left as it is: its seqs are
   * provisional (`isUnmerged`).
   */
  async eraseMessages(key: ConversationKey, seqs: readonly number[]): Promise<HotErasure> {
    this.#requireOpen();
    const ascending = [...new Set(seqs)].filter((seq) => Number.isSafeInteger(seq) && seq > 0).sort((a, b) => a - b);
    if (ascending.length === 0) return { tiers: { redis: { messages: 0, summaryDropped: false } }, positions: [], isUnmerged: false };
    const tag = hashTag(key);
    const [outcome, removed = 0, dropped = 0, ...positions] = (await this.#scripts.contextdErase(
      ...this.#keys(key),
      this.#modeArg,
      this.#ttlMs,
      this.#newInc(),
      ...ascending,
    )) as [number, number?, number?, ...string[]];
    // This store's own writes bring no invalidation (NOLOOP): a load in flight must not track what it read before.
    this.#windows.invalidate([tag]);
    this.#windows.forget(tag);
    const erasedAt = [];
    for (let index = 0; index + 1 < positions.length; index += 2) erasedAt.push({ seq: Number(positions[index]), cumTokens: Number(positions[index + 1]) });
    return { tiers: { redis: { messages: Number(removed), summaryDropped: dropped === 1 } }, positions: erasedAt, isUnmerged: outcome === -1 };
  }

  /** Erases every key of the conversation (and its dirty entry): a later append starts again at seq 1. */
  async delete(key: ConversationKey): Promise<EraseReceipt> {
    this.#requireOpen();
    const tag = hashTag(key);
    this.#windows.forget(tag);
    const [meta, msgs] = this.#keys(key);
    // One MULTI (the keys share a slot): what was held, then gone.
    const results = await this.#client.multi().llen(msgs).hexists(meta, 'summary').del(...this.#keys(key)).exec();
    if (results === null) throw new Error('RedisStore.delete: the MULTI was discarded');
    for (const [error] of results) if (error !== null) throw error;
    this.#windows.forget(tag);
    if (this.#mode === 'cache') await this.#flushSource.forget(key);
    return { tiers: { redis: { messages: Number(results[0]?.[1] ?? 0), summaryDropped: results[1]?.[1] === 1 } } };
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
  async warm(key: ConversationKey, state: WarmState): Promise<void> {
    this.#requireCache('warm');
    const args = warmArgs(state, this.#cap, () => this.#newInc());
    await this.#scripts.contextdWarm(...this.#keys(key), this.#ttlMs, ...args);
    this.#windows.untrack(hashTag(key));
  }

  /**
   * Cache mode, for the flusher: replaces an unmerged conversation by
   * MongoDB's state once its turns are there (lua-outbox.ts, REBASE), if it is
   * still the incarnation `expected` names and holds nothing newer. The new
   * incarnation makes every process's decoded window of it stale.
   */
  async rebase(key: ConversationKey, expected: { incarnation: string; lastSeq: number }, state: WarmState, turnKeys: readonly MergedTurnKey[]): Promise<RebaseOutcome> {
    this.#requireCache('rebase');
    const recent = turnKeys.slice(-RECENT_TURN_KEY_LIMIT);
    const outcome = await this.#scripts.contextdRebase(
      ...this.#keys(key),
      this.#ttlMs,
      expected.incarnation,
      expected.lastSeq,
      recent.length,
      ...recent.flatMap(({ turnKey, firstSeq, count }) => [turnKey, `${firstSeq}:${count}`]),
      ...warmArgs(state, this.#cap, () => this.#newInc()),
    );
    this.#windows.forget(hashTag(key));
    return outcome === 1 ? 'rebased' : outcome === -1 ? 'moved' : 'gone';
  }

  /**
   * Cache mode (scripts: lua-outbox.ts, DEMOTE): a copy whose history went apart
   * from MongoDB's is dropped when everything in it is flushed, else made
   * unmerged under a new incarnation and due for the flusher at once.
   */
  async demote(key: ConversationKey): Promise<DemoteOutcome> {
    this.#requireCache('demote');
    const outcome = await this.#scripts.contextdDemote(...this.#keys(key), this.#newInc());
    this.#windows.forget(hashTag(key));
    if (outcome === 0) return 'gone';
    if (outcome === 1) return 'dropped';
    await this.#flushSource.markDue(key);
    return 'demoted';
  }

  /**
   * Cache mode, for the flusher: claims up to `limit` dirty conversations whose
   * lease is due (score <= nowMs) and sets their lease to nowMs + leaseMs in the
   * same script, so two instances never hold one conversation at once.
   */
  async claimDirty(limit: number, leaseMs: number, nowMs: number): Promise<ConversationKey[]> {
    this.#requireCache('claimDirty');
    return this.#flushSource.claimDirty(limit, leaseMs, nowMs);
  }

  /**
   * Cache mode: the messages above flushedSeq, oldest first, with cumTokens, and
   * the summary Redis holds, read together; O(unflushed).
   */
  async unflushed(key: ConversationKey): Promise<Unflushed> {
    this.#requireCache('unflushed');
    return this.#flushSource.unflushed(key);
  }

  /**
   * Cache mode: advances flushedSeq to max(flushedSeq, seq) (never past
   * lastSeq) and applies the cap trimming held back for unflushed messages.
   * Caught up: leaves the dirty set and gets its TTL back; otherwise stays
   * dirty, due now (which is also how a flusher hands back a claim).
   */
  async markFlushed(key: ConversationKey, seq: number): Promise<void> {
    this.#requireCache('markFlushed');
    await this.#flushSource.markFlushed(key, seq);
  }

  /**
   * Cache mode: puts back into the dirty set every conversation with
   * lastSeq > flushedSeq that is missing from it (an instance died between an
   * append and its ZADD, or the ZADD failed). SCANs the meta keys of every
   * master of a Cluster. Returns how many were added.
   */
  async sweepDirty(): Promise<number> {
    this.#requireCache('sweepDirty');
    return this.#flushSource.sweepDirty();
  }

  /** The conversation's summary lock (summary-lock.ts). */
  async acquireSummaryLock(key: ConversationKey, ttlMs: number): Promise<LockLease | undefined> {
    this.#requireOpen();
    return acquireSummaryLock(this.#client, tagBase(this.#prefix, hashTag(key)), ttlMs);
  }

  /** Redis says these keys changed (null: all of them). Only a conversation's meta and msgs matter to its window. */
  #invalidate(keys: readonly string[] | null): void {
    this.#windows.invalidate(keys === null ? null : keys.map((key) => windowKeyTag(this.#prefix, key)));
  }

  #newInc(): string {
    return `${this.#incPrefix}${(this.#incCount++).toString(36)}`;
  }

  #keys(key: ConversationKey): ConversationKeys {
    return conversationKeys(this.#prefix, hashTag(key));
  }

  #requireOpen(): void {
    if (this.#isClosed) throw new StoreUnavailableError(new Error('the Redis store is closed'));
  }

  #requireCache(operation: string): void {
    this.#requireOpen();
    if (this.#mode !== 'cache') throw new Error(`RedisStore.${operation} is for cache mode; this store is standalone`);
  }
}
