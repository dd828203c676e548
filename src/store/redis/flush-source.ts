// The outbox's source side (cache mode): the dirty set `<prefix>dirty` of
// conversations with messages above flushedSeq, and the reads and writes the
// flusher makes through RedisStore. Member = the hash tag's text, score = a
// lease deadline (ms), due when score <= now. On standalone Redis the append
// and markFlushed scripts update the set themselves (`marksInScripts`); on a
// Cluster it lives in another slot, so a second command does, and sweepDirty
// finds the conversations whose mark was lost between the two.

import type { Cluster, Redis } from 'ioredis';
import type { ConversationKey, Summary } from '../../domain.js';
import type { Unflushed } from '../conversation-store.js';
import type { TickCork } from './cork.js';
import { decodeEntry } from './entry-codec.js';
import { conversationKeys, dirtySetKey, hashTag, isCluster, metaKeyPattern, metaKeyTag, parseHashTag } from './keys.js';
import { clampCount, type ScriptCommands } from './scripts.js';
import type { WindowCache } from './window-cache.js';

const SWEEP_SCAN_COUNT = 500;

export interface FlushSourceOptions {
  client: Redis | Cluster;
  scripts: ScriptCommands;
  prefix: string;
  ttlMs: number;
  cap: number;
  /** Standalone Redis: the scripts keep the dirty set themselves. */
  marksInScripts: boolean;
  /** The store's window cache: markFlushed's trim changes the list's length. */
  windows: WindowCache;
  cork: TickCork;
  onDirtyMarkFailed: ((key: ConversationKey, error: unknown) => void) | undefined;
}

/** The dirty set and the flusher's calls, for RedisStore (which checks that it is open and in cache mode). */
export class RedisFlushSource {
  readonly #client: Redis | Cluster;
  readonly #scripts: ScriptCommands;
  readonly #prefix: string;
  readonly #dirtyKey: string;
  readonly #ttlMs: number;
  readonly #cap: number;
  readonly #marksInScripts: boolean;
  readonly #windows: WindowCache;
  readonly #cork: TickCork;
  readonly #onDirtyMarkFailed: FlushSourceOptions['onDirtyMarkFailed'];

  constructor(options: FlushSourceOptions) {
    this.#client = options.client;
    this.#scripts = options.scripts;
    this.#prefix = options.prefix;
    this.#dirtyKey = dirtySetKey(options.prefix);
    this.#ttlMs = options.ttlMs;
    this.#cap = options.cap;
    this.#marksInScripts = options.marksInScripts;
    this.#windows = options.windows;
    this.#cork = options.cork;
    this.#onDirtyMarkFailed = options.onDirtyMarkFailed;
  }

  /** The dirty set's key, which APPEND takes as KEYS[4] when marksInScripts. */
  get dirtyKey(): string {
    return this.#dirtyKey;
  }

  /** After an append the script could not mark (on a Cluster): a failure is reported, never thrown, since the turn is stored. */
  async markDirty(key: ConversationKey): Promise<void> {
    try {
      // NX: a conversation already dirty keeps its score, so a lease held by a flusher is not cut short.
      await this.#client.zadd(this.#dirtyKey, 'NX', Date.now(), hashTag(key));
    } catch (error) {
      this.#onDirtyMarkFailed?.(key, error);
    }
  }

  /** Due for the flusher at once, unless a flusher holds its lease or it is due already. */
  async markDue(key: ConversationKey): Promise<void> {
    await this.#client.zadd(this.#dirtyKey, 'NX', 0, hashTag(key));
  }

  async forget(key: ConversationKey): Promise<void> {
    await this.#client.zrem(this.#dirtyKey, hashTag(key));
  }

  /** See RedisStore.claimDirty. */
  async claimDirty(limit: number, leaseMs: number, nowMs: number): Promise<ConversationKey[]> {
    const count = clampCount(limit);
    if (count === 0) return [];
    const members = (await this.#scripts.contextdClaimDirty(this.#dirtyKey, count, nowMs, nowMs + leaseMs)) as string[];
    const keys: ConversationKey[] = [];
    for (const member of members) {
      const key = parseHashTag(member);
      // Nothing RedisStore writes; dropped so that it cannot be claimed forever.
      if (key === undefined) await this.#client.zrem(this.#dirtyKey, member);
      else keys.push(key);
    }
    return keys;
  }

  /** See RedisStore.unflushed. */
  async unflushed(key: ConversationKey): Promise<Unflushed> {
    const [flushedSeq, summaryJson, unmergedInc, ...newestFirst] = (await this.#scripts.contextdUnflushed(...conversationKeys(this.#prefix, hashTag(key)))) as [
      number,
      string | null,
      string | null,
      ...string[],
    ];
    const unflushed: Unflushed = {
      flushedSeq: Number(flushedSeq),
      messages: newestFirst.map(decodeEntry).reverse(),
      summary: typeof summaryJson === 'string' ? (JSON.parse(summaryJson) as Summary) : undefined,
    };
    if (typeof unmergedInc === 'string') unflushed.unmergedIncarnation = unmergedInc;
    return unflushed;
  }

  /** See RedisStore.markFlushed. */
  async markFlushed(key: ConversationKey, seq: number): Promise<void> {
    const tag = hashTag(key);
    const keys = conversationKeys(this.#prefix, tag);
    const target = Number.isFinite(seq) ? seq : 0;
    this.#cork.corkForTick();
    const [outcome, listLength] = (
      this.#marksInScripts
        ? await this.#scripts.contextdMarkFlushedMarking(...keys, this.#dirtyKey, this.#ttlMs, this.#cap, target, tag)
        : await this.#scripts.contextdMarkFlushed(...keys, this.#ttlMs, this.#cap, target, tag)
    ) as [number, number?];
    // Only the list's length matters to the cached window (the cap's trim drops
    // from the head); this store's own writes bring no invalidation (NOLOOP).
    const window = this.#windows.get(tag);
    if (window !== undefined) {
      if (listLength === undefined) this.#windows.forget(tag);
      else window.listLength = Number(listLength);
    }
    if (this.#marksInScripts) return;
    if (outcome === 0) {
      await this.#client.zadd(this.#dirtyKey, 0, tag);
      return;
    }
    await this.#client.zrem(this.#dirtyKey, tag);
    if (outcome === -1) return;
    // The dirty set lives in another slot, so the script could not remove the
    // entry itself: an append that landed between the script and the ZREM found
    // the entry still there (its ZADD NX did nothing). Look again.
    const [lastSeq, flushedSeq] = await this.#client.hmget(keys[0], 'lastSeq', 'flushedSeq');
    if (Number(lastSeq ?? 0) > Number(flushedSeq ?? 0)) await this.#client.zadd(this.#dirtyKey, 'NX', 0, tag);
  }

  /** See RedisStore.sweepDirty. */
  async sweepDirty(): Promise<number> {
    const client = this.#client;
    const nodes = isCluster(client) ? client.nodes('master') : [client];
    const pattern = metaKeyPattern(this.#prefix);
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
    const tag = metaKeyTag(this.#prefix, metaKey);
    if (parseHashTag(tag) === undefined) return 0;
    const [lastSeq, flushedSeq] = await this.#client.hmget(metaKey, 'lastSeq', 'flushedSeq');
    if (Number(lastSeq ?? 0) <= Number(flushedSeq ?? 0)) return 0;
    return this.#client.zadd(this.#dirtyKey, 'NX', 0, tag);
  }
}
