// Redis as a conversation store: the only store ('standalone') or the hot tier
// in front of MongoDB ('cache'). Works unchanged on a Redis Cluster.
//
// Layout. Per conversation, three keys sharing one hash tag, so that a
// conversation's keys and its Lua scripts live on one Cluster slot:
//   <prefix>{<tenant>:<conversation>}:meta   HASH  lastSeq, lastCum (running token total through lastSeq),
//                                                  flushedSeq (cache mode: highest seq MongoDB has),
//                                                  summary (JSON), coversSeq (the summary's, for the scripts)
//   <prefix>{<tenant>:<conversation>}:msgs   LIST  one entry per message, oldest first, seqs ascending:
//                                                  `<seq>:<tokens>:<cumTokens>:<json of the rest>`
//   <prefix>{<tenant>:<conversation>}:turns  HASH  the last 64 turn keys → `<firstSeq>:<count>`
// and one global key:
//   <prefix>dirty                            ZSET  cache mode: conversations with messages above flushedSeq;
//                                                  member = the hash tag's text, score = lease deadline (ms),
//                                                  due when score <= now
// Redis holds a conversation exactly when its meta key exists. In the tag,
// '%', '{' and '}' are percent-escaped in both ids and ':' in the tenant, so
// the first ':' separates the two, no pair of ids can spell another's keys,
// and no id can close the tag early. Real ids need no escaping (tenants never
// contain ':'), so keys read `contextd:{t.acme:chat-42}:msgs`.
//
// TTL: every key of a conversation gets the TTL on each append, load,
// listMessages and summary. In cache mode a conversation with unflushed
// messages has no TTL instead, until markFlushed catches up: a MongoDB outage
// longer than the TTL must not lose acknowledged turns.

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
import { StoreUnavailableError } from '../errors.js';
import type { ConversationStore, LoadLimits, LockLease } from './conversation-store.js';
import { REDIS_SCRIPTS, type RedisScriptName } from './redis-scripts.js';

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
}

/** Cache mode: Redis does not hold the conversation; seed it from MongoDB with warm() and append again. */
export class ColdConversationError extends Error {
  constructor(key: ConversationKey) {
    super(`Redis does not hold conversation ${key.conversation} of tenant ${key.tenant}`);
    this.name = 'ColdConversationError';
  }
}

/** What a list entry's JSON holds: the StoredMessage fields the entry's prefix does not. */
interface EntryBody {
  message: ChatMessage;
  digest: string;
  createdAtMs: number;
  turnKey?: string;
}

type ScriptArg = string | number;
type ScriptCommands = Record<RedisScriptName, (...args: ScriptArg[]) => Promise<unknown>>;

const SWEEP_SCAN_COUNT = 500;

export class RedisStore implements ConversationStore {
  readonly #client: Redis | Cluster;
  readonly #scripts: ScriptCommands;
  readonly #ttlMs: number;
  readonly #cap: number;
  readonly #mode: 'standalone' | 'cache';
  readonly #modeArg: 's' | 'c';
  readonly #prefix: string;
  readonly #dirtyKey: string;
  readonly #onDirtyMarkFailed: RedisStoreOptions['onDirtyMarkFailed'];
  #isClosed = false;

  constructor(options: RedisStoreOptions) {
    for (const field of ['ttlMs', 'maxCachedMessages'] as const) {
      const value = options[field];
      if (!Number.isSafeInteger(value) || value <= 0) {
        throw new RangeError(`RedisStore option ${field} must be a positive integer, got ${String(value)}`);
      }
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
    this.#onDirtyMarkFailed = options.onDirtyMarkFailed;
    // Defining a command again (another store on the same client) replaces it with the same script.
    for (const [name, definition] of Object.entries(REDIS_SCRIPTS)) this.#client.defineCommand(name, definition);
    this.#scripts = this.#client as unknown as ScriptCommands;
  }

  /** `hit` when Redis holds the conversation, else `miss` with no messages. One round trip, O(window). */
  async load(key: ConversationKey, limits: LoadLimits): Promise<ConversationSnapshot> {
    this.#requireOpen();
    const reply = (await this.#scripts.contextdLoad(
      ...this.#keys(key),
      this.#modeArg,
      this.#ttlMs,
      clampCount(limits.maxMessages),
      clampCount(limits.maxTokens),
    )) as unknown[];
    if (reply[0] === 0) return { summary: undefined, messages: [], lastSeq: 0, cache: 'miss' };
    const [, lastSeq, summaryJson, ...newestFirst] = reply;
    return {
      summary: typeof summaryJson === 'string' ? (JSON.parse(summaryJson) as Summary) : undefined,
      messages: (newestFirst as string[]).map(decodeEntry).reverse(),
      lastSeq: Number(lastSeq),
      cache: 'hit',
    };
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

    const [outcome, firstSeq, count] = (await this.#scripts.contextdAppend(
      ...this.#keys(key),
      this.#modeArg,
      this.#ttlMs,
      this.#cap,
      turnKey === undefined ? '0' : '1',
      turnKey ?? '',
      ...perMessage,
    )) as [string, number, number];
    if (outcome === 'cold') throw new ColdConversationError(key);
    const seqs = Array.from({ length: count }, (_, index) => firstSeq + index);
    if (outcome === 'duplicate') return { seqs, duplicate: true };
    if (this.#mode === 'cache') await this.#markDirty(key);
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
    return stored === 1;
  }

  /** Erases every key of the conversation (and its dirty entry): a later append starts again at seq 1. */
  async delete(key: ConversationKey): Promise<void> {
    this.#requireOpen();
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
      ...entries,
    );
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

  /** Cache mode: the messages above flushedSeq, oldest first, with cumTokens; O(unflushed). */
  async unflushed(key: ConversationKey): Promise<{ flushedSeq: number; messages: StoredMessage[] }> {
    this.#requireCache('unflushed');
    const [flushedSeq, ...newestFirst] = (await this.#scripts.contextdUnflushed(...this.#keys(key))) as [number, ...string[]];
    return { flushedSeq: Number(flushedSeq), messages: newestFirst.map(decodeEntry).reverse() };
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
    const outcome = await this.#scripts.contextdMarkFlushed(...keys, this.#ttlMs, this.#cap, Number.isFinite(seq) ? seq : 0);
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

  #keys(key: ConversationKey): [meta: string, msgs: string, turns: string] {
    const base = `${this.#prefix}{${dirtyMember(key)}}`;
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
