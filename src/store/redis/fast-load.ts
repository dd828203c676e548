// The fast load: a load whose window is cached tries four plain reads in one
// round trip instead of the LOAD script (whose fixed cost, EVALSHA dispatch,
// Lua and its inner commands, is most of a load's):
//   LRANGE msgs -4 -1 · LLEN msgs · HMGET meta lastSeq inc coversSeq · HSTRLEN meta summary
// and walks the window itself by the rule LOAD mirrors (context/window-cut.ts),
// over the cached entries and the new ones at the tail. The cached seqs are the
// list's entries from..through (the list only grows at the tail and loses its
// head), so LLEN tells how many of them the list still holds. It answers only
// when the reads settle the window; the store runs LOAD otherwise:
//   - meta is gone: a miss, as LOAD's {0};
//   - inc is missing or another, or the summary's coversSeq or byte length is not the cached one's;
//   - the entry at `through` is not among the tail read, or no longer carries
//     throughTag (LOAD's failover check): more than 3 new entries, a trim, a lost write;
//   - the walk used up the cached entries with the list holding older ones it
//     might take (unless the summary ends it there: cache mode, whose covered
//     but unflushed messages stay in the list, and oldest cached seq <= coversSeq + 1).
// A fast load refreshes no TTL, so the store tries it only within ttl/100 of a
// script of its own that touched the conversation (LOAD, APPEND): meta then
// still has at least 98% of the TTL or, in cache mode with unflushed messages,
// none, which a fast load cannot give it.
//
// The same walk answers a tracked load (tracking.ts), with no reads at all.

import type { Cluster, Redis } from 'ioredis';
import type { StoredMessage } from '../../domain.js';
import { startWindowWalk, type WindowCandidate } from '../../context/window-cut.js';
import type { LoadLimits } from '../conversation-store.js';
import type { TickCork } from './cork.js';
import { figuresOf, seqOf } from './entry-codec.js';
import { isCluster } from './keys.js';
import type { CachedWindow } from './window-cache.js';

/**
 * How many of the newest entries a fast load reads: the entry at the cached
 * window's `through` and up to 3 newer ones, enough for a turn another instance
 * stored (a user message and the reply, or a tool call and its result) while
 * costing little when this store appended the turn itself.
 */
const FAST_LOAD_TAIL_ENTRIES = 4;

/** The fast load's four reads, in the order Redis runs them. */
export type TailReads = [tail: string[], length: number, meta: (string | null)[], summaryBytes: number];

/**
 * The fast load's reads; plain commands sent together on standalone Redis, a
 * MULTI on a Cluster.
 *
 * The plain commands are not one atomic step (they run in the order sent, but
 * another client's write can land between two); their order makes up for it.
 * An append after the tail read changes lastSeq, read after it, so the newest
 * entry read must be lastSeq's; a summary changes coversSeq; a head trim alone
 * (markFlushed) changes only LLEN, which then describes the list just before or
 * just after it, both with the same tail. A MULTI would do as well, but
 * ioredis's pipeline object costs about as much client CPU as the fast load
 * saves. On a Cluster a redirected command can run after the ones sent behind
 * it, so there the reads go in a MULTI.
 */
export async function readTail(client: Redis | Cluster, meta: string, msgs: string, cork: TickCork): Promise<TailReads> {
  if (!isCluster(client)) {
    cork.corkForTick();
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

/**
 * The tail read's entries after the cached window's `through`; undefined unless
 * the tail shows lastSeq (the order of the reads, see readTail) and, at
 * `through`, the entry cached for it.
 */
export function entriesAfterWindow(tail: readonly string[], lastSeq: number, known: Pick<CachedWindow, 'through' | 'throughTag'>): string[] | undefined {
  if (tail.length === 0 || seqOf(tail[tail.length - 1]!) !== lastSeq) return undefined;
  let throughAt = tail.length - 1;
  while (throughAt >= 0 && seqOf(tail[throughAt]!) > known.through) throughAt--;
  const throughEntry = tail[throughAt];
  if (throughEntry === undefined || seqOf(throughEntry) !== known.through || !throughEntry.includes(known.throughTag)) return undefined;
  return tail.slice(throughAt + 1);
}

/** What the walk takes: the newest cached messages, oldest first, then the fresh entries after them. */
export interface WalkedWindow {
  held: StoredMessage[];
  freshEntries: readonly string[];
}

/**
 * LOAD's walk over the cached window `known` and `freshEntries`, the list's
 * entries after `through` (through lastSeq; none for a tracked window), with
 * the list `listLength` long; undefined when the list may hold older entries
 * the window needs.
 */
export function walkWindow(
  known: CachedWindow,
  freshEntries: readonly string[],
  listLength: number,
  coversSeq: number,
  limits: LoadLimits,
  mode: 'standalone' | 'cache',
): WalkedWindow | undefined {
  // Only the seq and tokens of the new entries until the window is settled; the JSON of those it takes after.
  const freshFigures = freshEntries.map(figuresOf);
  // bySeq's insertion order is ascending seqs, `through` last. The list still holds the newest `inList` of them.
  const held = [...known.bySeq.values()];
  const inList = Math.min(held.length, listLength - freshEntries.length);
  if (inList <= 0 || held.at(-1)?.seq !== known.through) return undefined;

  // The window rule (context/window-cut.ts, which LOAD mirrors), newest first, over the new entries and then the cached ones.
  const walk = startWindowWalk(limits, coversSeq);
  const freshCount = freshEntries.length;
  const reachable = freshCount + inList;
  const newest = (index: number): WindowCandidate =>
    index < freshCount ? freshFigures[freshCount - 1 - index]! : held[held.length - 1 - (index - freshCount)]!;
  let isEnded = false;
  for (let index = 0; index < reachable && !isEnded; index++) isEnded = !walk.takes(newest(index));
  if (!isEnded && reachable < listLength && !walk.isFull) {
    // The list holds older entries than any cached one; only covered ones (cache mode keeps the unflushed) end the window there.
    const isCoveredNext = mode === 'cache' && newest(reachable - 1).seq <= coversSeq + 1;
    if (!isCoveredNext) return undefined;
  }
  const taken = walk.taken;
  const takenHeld = taken - freshCount;
  return {
    held: takenHeld > 0 ? held.slice(held.length - takenHeld) : [],
    freshEntries: freshEntries.slice(Math.max(0, freshCount - taken)),
  };
}
