// Moves turns from Redis to MongoDB. Redis keeps every message above a
// conversation's flushedSeq (the cap never trims them) and lists such
// conversations in a dirty set; any instance's flusher claims a due
// conversation with a lease, upserts its unflushed messages into MongoDB keyed
// on (tenant, conversation, seq) — idempotent, so a crash mid-flush only means
// the next claimer writes the same documents again — then advances flushedSeq.
// A round carries every due conversation it claims (up to a batch that adapts
// to MongoDB's speed, flush-batch.ts, at most batchSize) in one
// MongoDB insert, and a turn waits flushDelayMs before its round starts, so
// that under load many turns share a round instead of each paying its own.
// Rounds that find nothing come further apart, up to maxIdleDelayMs: an idle
// instance's own turns come with a notify, so the idle rounds only look for
// what another instance left (a crash, a lease run out), which can wait seconds.
// An unmerged conversation (Redis took it while MongoDB could not tell its
// state; its seqs are provisional) is not upserted but merged: its turns are
// appended after what MongoDB holds and Redis is rebased (store/outage-merge.ts).

import type { ConversationKey, StoredMessage, Summary } from '../domain.js';
import { conversationKeyString } from '../domain.js';
import type { FlushSource, FlushTarget, Unflushed, UnmergedMerge } from '../store/conversation-store.js';
import { StoreTimeoutError } from '../errors.js';
import { callTier, type StoreHealth } from '../store/store-health.js';
import { FlushBatch } from './flush-batch.js';

export interface OutboxFlusherOptions {
  redis: FlushSource;
  /**
   * Where flushedSeq is advanced, when not on `redis`: the store that serves
   * loads, so that a conversation it holds stays tracked (its own writes bring
   * it no invalidation, see store/redis/tracking.ts) while the reads of a round go on
   * the flusher's own connection.
   */
  marker?: Pick<FlushSource, 'markFlushed'>;
  mongo: FlushTarget;
  /** Merges unmerged conversations (store/outage-merge.ts). */
  merge: UnmergedMerge;
  health: StoreHealth;
  redisTimeoutMs: number;
  mongoTimeoutMs: number;
  /** Pause after a round that found work, or failed, before the next. */
  idleDelayMs: number;
  /** The pause doubles after each round that finds nothing, up to this (bench/idle-cost.ts: four idle rounds a second were most of an idle instance's CPU). */
  maxIdleDelayMs: number;
  /** How long after a notify the round starts (turns arriving meanwhile join it). */
  flushDelayMs: number;
  /** How long a claimed conversation belongs to this instance before another may take it. */
  leaseMs: number;
  /** Most conversations a round claims (fewer while MongoDB times rounds out). */
  batchSize: number;
  /** The round's batch changed size (MongoDB timed a round out, or caught up again). */
  onBatchSize?: (size: number) => void;
  /** How often conversations missing from the dirty set are looked for (also once at start). */
  sweepIntervalMs: number;
  onFlushed: (key: ConversationKey, seqs: readonly number[], result: { inserted: number; alreadyStored: number }) => void;
  /** Same seq, different message in MongoDB: both are kept, the Redis one under a new seq. */
  onConflict: (key: ConversationKey, messages: readonly StoredMessage[]) => void;
  onError: (operation: string, error: unknown) => void;
  now?: () => number;
}

/** Conversations whose handed-over summary the flusher remembers. */
const SUMMARY_MEMORY = 10_000;

export class OutboxFlusher {
  readonly #o: OutboxFlusherOptions;
  readonly #now: () => number;
  #timer: NodeJS.Timeout | undefined;
  #running: Promise<void> | undefined;
  #isStopped = false;
  #nextSweepAtMs = 0;
  #pendingNotify = false;
  /** The pause before the next round when nothing calls for one sooner. */
  #idleDelayMs: number;
  /** When the scheduled round starts (ms since epoch, this.#now()). */
  #scheduledAtMs = Number.POSITIVE_INFINITY;
  /** Conversation → the summary coverage MongoDB is known to hold (bounded; forgetting one costs one hand-over). */
  readonly #summaryInMongo = new Map<string, number>();
  readonly #batch: FlushBatch;

  constructor(options: OutboxFlusherOptions) {
    this.#o = options;
    this.#now = options.now ?? Date.now;
    this.#batch = new FlushBatch(options.batchSize);
    this.#idleDelayMs = options.idleDelayMs;
  }

  start(): void {
    this.#schedule(0);
  }

  /** A turn was just written to Redis: flush it within flushDelayMs rather than at the next idle tick. */
  notify(): void {
    if (this.#isStopped) return;
    if (this.#running !== undefined) {
      this.#pendingNotify = true;
      return;
    }
    if (this.#scheduledAtMs <= this.#now() + this.#o.flushDelayMs) return;
    this.#schedule(this.#o.flushDelayMs);
  }

  /** Resolves when the round in flight, if any, has ended (an erasure waits for it so the round cannot write after it). */
  async idle(): Promise<void> {
    await this.#running;
  }

  /** Stops the loop after flushing what is due, within `deadlineMs`. */
  async stop(deadlineMs: number): Promise<void> {
    this.#isStopped = true;
    clearTimeout(this.#timer);
    await this.#running;
    const giveUpAt = this.#now() + deadlineMs;
    while (this.#now() < giveUpAt) {
      const flushed = await this.#round().catch(() => -1);
      if (flushed <= 0) break;
    }
  }

  #schedule(delayMs: number): void {
    if (this.#isStopped) return;
    clearTimeout(this.#timer);
    this.#scheduledAtMs = this.#now() + delayMs;
    this.#timer = setTimeout(() => {
      this.#scheduledAtMs = Number.POSITIVE_INFINITY;
      const batchSize = this.#batch.size;
      this.#running = this.#round()
        .then((flushed) => {
          this.#running = undefined;
          // A full round may have left more due; turns that came meanwhile wait their delay.
          const again = flushed >= batchSize ? 0 : this.#pendingNotify ? this.#o.flushDelayMs : undefined;
          this.#pendingNotify = false;
          this.#idleDelayMs = flushed > 0 ? this.#o.idleDelayMs : Math.min(2 * this.#idleDelayMs, this.#o.maxIdleDelayMs);
          this.#schedule(again ?? this.#idleDelayMs);
        })
        .catch((error: unknown) => {
          this.#running = undefined;
          this.#o.onError('flush', error);
          this.#idleDelayMs = this.#o.idleDelayMs;
          this.#schedule(this.#o.idleDelayMs);
        });
    }, delayMs);
  }

  /** One pass: claim due conversations and flush them. Resolves with the number of conversations flushed. */
  async #round(): Promise<number> {
    const { health, redis, mongo } = this.#o;
    if (!health.isUsable('redis') || !health.isUsable('mongodb')) return 0;
    // A MongoDB seen failing is asked first: a round that claims and then cannot
    // write would hold its claims for the lease, and after a crash of this
    // instance no other could take them over until the lease ran out.
    if (!health.isUp('mongodb') && !(await this.#mongo('ping', () => mongo.ping()).then(() => true, () => false))) return 0;
    if (this.#now() >= this.#nextSweepAtMs) {
      this.#nextSweepAtMs = this.#now() + this.#o.sweepIntervalMs;
      await this.#redis('sweepDirty', () => redis.sweepDirty());
    }
    const keys = await this.#redis('claimDirty', () => redis.claimDirty(this.#batch.size, this.#o.leaseMs, this.#now()));
    if (keys.length === 0) return 0;
    // The claims' unflushed messages, all requested at once; a claim that could
    // not be read is handed back and the others go on.
    const read = await Promise.all(
      keys.map((key) =>
        this.#redis('unflushed', () => redis.unflushed(key)).then(
          (unflushed) => ({ key, ...unflushed }),
          async () => {
            await this.#handBack(key, 0);
            return undefined;
          },
        ),
      ),
    );
    const claims = read.filter((claim) => claim !== undefined);
    const unmerged = claims.filter(isUnmerged);
    const flushable = claims.filter((claim) => !isUnmerged(claim));
    const pending = flushable.filter((claim) => claim.messages.length > 0);
    let results;
    try {
      results = await this.#mongo('upsertAllocatedMany', () => mongo.upsertAllocatedMany(pending));
    } catch (error) {
      // MongoDB failed: hand every claim back where it was (due again at once).
      if (error instanceof StoreTimeoutError) this.#shrinkBatch();
      await Promise.all(claims.map((claim) => this.#handBack(claim.key, claim.flushedSeq)));
      throw error;
    }
    // A claim whose seqs MongoDB gives to other messages has a history that went
    // apart from MongoDB's: what came before the first conflict is in, the rest
    // is merged as an unmerged conversation's turns are (rejoin).
    const diverged = new Map<(typeof claims)[number], number>();
    for (const [index, claim] of pending.entries()) {
      const result = results[index] ?? { inserted: 0, alreadyStored: 0, conflicts: [] };
      const firstConflictSeq = result.conflicts[0]?.seq;
      if (firstConflictSeq !== undefined) {
        this.#o.onConflict(claim.key, result.conflicts);
        diverged.set(claim, firstConflictSeq - 1);
      }
      const stored = claim.messages.filter((message) => firstConflictSeq === undefined || message.seq < firstConflictSeq);
      if (stored.length > 0) this.#o.onFlushed(claim.key, stored.map((m) => m.seq), result);
    }
    // Merges never reject: each one that fails is handed back and reported on its own.
    const merging = Promise.all([...unmerged.map((claim) => this.#merge(claim)), ...[...diverged].map(([claim, throughSeq]) => this.#rejoin(claim.key, throughSeq))]);
    try {
      await Promise.all(flushable.filter((claim) => !diverged.has(claim)).map((claim) => this.#markFlushed(claim)));
    } finally {
      await merging;
    }
    const failedMerges = (await merging).filter((isMerged) => !isMerged).length;
    if (failedMerges === 0) this.#growBatch(keys.length);
    return claims.length - failedMerges;
  }

  #growBatch(claimed: number): void {
    const before = this.#batch.size;
    this.#batch.took(claimed);
    if (this.#batch.size !== before) this.#o.onBatchSize?.(this.#batch.size);
  }

  /**
   * A conversation whose history went apart from MongoDB's (turns reached
   * MongoDB directly while Redis did not answer, and Redis came back with
   * turns it had not flushed): what MongoDB holds through `throughSeq` is
   * marked flushed, the rest of Redis's copy becomes unmerged and is merged
   * at once, its turns appended after MongoDB's history by turn key (a turn
   * that also reached MongoDB directly is recognised) and Redis rebased on
   * MongoDB, so that later requests see the turns made while Redis was away.
   */
  async #rejoin(key: ConversationKey, throughSeq: number): Promise<boolean> {
    const source = this.#o.redis;
    try {
      await this.#redis('markFlushed', () => (this.#o.marker ?? source).markFlushed(key, throughSeq));
      await this.#redis('demote', () => source.demote(key));
      const unflushed = await this.#redis('unflushed', () => source.unflushed(key));
      if (!isUnmerged(unflushed)) {
        // Gone meanwhile (erased): markFlushed settles its dirty entry.
        await this.#handBack(key, 0);
        return true;
      }
      return await this.#merge({ key, ...unflushed });
    } catch (error) {
      await this.#handBack(key, 0);
      this.#o.onError('merge', error);
      return false;
    }
  }

  /**
   * Merges an unmerged conversation (false when it failed); a merge that fails
   * is handed back, and when it runs again its turns already in MongoDB dedupe by key.
   */
  async #merge(claim: Unflushed & { key: ConversationKey; unmergedIncarnation: string }): Promise<boolean> {
    try {
      const result = await this.#o.merge.merge(claim.key, claim);
      if (result === undefined) {
        // Gone, or merged by another instance: markFlushed settles its dirty entry.
        await this.#handBack(claim.key, 0);
        return true;
      }
      this.#o.onFlushed(claim.key, result.seqs, result);
      await this.#redis('markFlushed', () => (this.#o.marker ?? this.#o.redis).markFlushed(claim.key, result.throughSeq));
      return true;
    } catch (error) {
      // A merge MongoDB did not take in time makes rounds smaller too: they run the merges they claim at once.
      if (error instanceof StoreTimeoutError) this.#shrinkBatch();
      await this.#handBack(claim.key, 0);
      this.#o.onError('merge', error);
      return false;
    }
  }

  #shrinkBatch(): void {
    const before = this.#batch.size;
    this.#batch.timedOut();
    if (this.#batch.size !== before) this.#o.onBatchSize?.(this.#batch.size);
  }

  /** Advances the claim's flushedSeq and hands over a summary MongoDB may lack. */
  async #markFlushed(claim: { key: ConversationKey; flushedSeq: number; messages: readonly StoredMessage[]; summary: Summary | undefined }): Promise<void> {
    const nowFlushedSeq = claim.messages.at(-1)?.seq ?? claim.flushedSeq;
    await this.#redis('markFlushed', () => (this.#o.marker ?? this.#o.redis).markFlushed(claim.key, nowFlushedSeq));
    // A summary written while MongoDB lacked the messages it covers was refused
    // there: hand it over now that they are in, once per coverage per instance
    // (and only with messages flushed, so a claim racing an erasure writes nothing).
    const { summary } = claim;
    if (claim.messages.length === 0 || summary === undefined || summary.coversSeq > nowFlushedSeq) return;
    const id = conversationKeyString(claim.key);
    if (this.#summaryInMongo.get(id) === summary.coversSeq) return;
    await this.#mongo('replaceSummary', () => this.#o.mongo.replaceSummary(claim.key, summary));
    this.#summaryInMongo.delete(id);
    this.#summaryInMongo.set(id, summary.coversSeq);
    if (this.#summaryInMongo.size > SUMMARY_MEMORY) this.#summaryInMongo.delete(this.#summaryInMongo.keys().next().value!);
  }

  /** Gives a claim back unchanged (flushedSeq as read, or 0: as it is), due again at once. */
  async #handBack(key: ConversationKey, flushedSeq: number): Promise<void> {
    await this.#redis('markFlushed', () => (this.#o.marker ?? this.#o.redis).markFlushed(key, flushedSeq)).catch(() => undefined);
  }

  #redis<T>(operation: string, call: () => Promise<T>): Promise<T> {
    return callTier(this.#o.health, 'redis', operation, this.#o.redisTimeoutMs, call);
  }

  #mongo<T>(operation: string, call: () => Promise<T>): Promise<T> {
    return callTier(this.#o.health, 'mongodb', operation, this.#o.mongoTimeoutMs, call, { background: true });
  }
}

function isUnmerged<T extends Unflushed>(claim: T): claim is T & { unmergedIncarnation: string } {
  return claim.unmergedIncarnation !== undefined;
}
