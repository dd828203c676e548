// Moves turns from Redis to MongoDB. Redis keeps every message above a
// conversation's flushedSeq (the cap never trims them) and lists such
// conversations in a dirty set; any instance's flusher claims a due
// conversation with a lease, upserts its unflushed messages into MongoDB keyed
// on (tenant, conversation, seq) — idempotent, so a crash mid-flush only means
// the next claimer writes the same documents again — then advances flushedSeq.

import type { ConversationKey, StoredMessage } from '../domain.js';
import type { FlushSource, FlushTarget } from '../store/conversation-store.js';
import { callTier, type StoreHealth } from '../store/store-health.js';

export interface OutboxFlusherOptions {
  redis: FlushSource;
  mongo: FlushTarget;
  health: StoreHealth;
  redisTimeoutMs: number;
  mongoTimeoutMs: number;
  /** Pause between rounds when there was nothing to do, or a tier was down. */
  idleDelayMs: number;
  /** How long a claimed conversation belongs to this instance before another may take it. */
  leaseMs: number;
  batchSize: number;
  /** How often conversations missing from the dirty set are looked for (also once at start). */
  sweepIntervalMs: number;
  onFlushed: (key: ConversationKey, seqs: readonly number[], result: { inserted: number; alreadyStored: number }) => void;
  /** Same seq, different message in MongoDB: both are kept, the Redis one under a new seq. */
  onConflict: (key: ConversationKey, messages: readonly StoredMessage[]) => void;
  onError: (operation: string, error: unknown) => void;
  now?: () => number;
}

export class OutboxFlusher {
  readonly #o: OutboxFlusherOptions;
  readonly #now: () => number;
  #timer: NodeJS.Timeout | undefined;
  #running: Promise<void> | undefined;
  #isStopped = false;
  #nextSweepAtMs = 0;
  #pendingNotify = false;

  constructor(options: OutboxFlusherOptions) {
    this.#o = options;
    this.#now = options.now ?? Date.now;
  }

  start(): void {
    this.#schedule(0);
  }

  /** A turn was just written to Redis: flush soon rather than at the next idle tick. */
  notify(): void {
    if (this.#isStopped) return;
    if (this.#running !== undefined) {
      this.#pendingNotify = true;
      return;
    }
    this.#schedule(0);
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
    this.#timer = setTimeout(() => {
      this.#running = this.#round()
        .then((flushed) => {
          this.#running = undefined;
          const again = flushed > 0 || this.#pendingNotify;
          this.#pendingNotify = false;
          this.#schedule(again ? 0 : this.#o.idleDelayMs);
        })
        .catch((error: unknown) => {
          this.#running = undefined;
          this.#o.onError('flush', error);
          this.#schedule(this.#o.idleDelayMs);
        });
    }, delayMs);
  }

  /** One pass: claim due conversations and flush them. Resolves with the number of conversations flushed. */
  async #round(): Promise<number> {
    const { health, redis, mongo } = this.#o;
    if (!health.isUsable('redis') || !health.isUsable('mongodb')) return 0;
    if (this.#now() >= this.#nextSweepAtMs) {
      this.#nextSweepAtMs = this.#now() + this.#o.sweepIntervalMs;
      await this.#redis('sweepDirty', () => redis.sweepDirty());
    }
    const keys = await this.#redis('claimDirty', () => redis.claimDirty(this.#o.batchSize, this.#o.leaseMs, this.#now()));
    let flushed = 0;
    for (const [i, key] of keys.entries()) {
      const { flushedSeq, messages } = await this.#redis('unflushed', () => redis.unflushed(key));
      try {
        if (messages.length > 0) {
          const result = await this.#mongo('upsertAllocated', () => mongo.upsertAllocated(key, messages));
          if (result.conflicts.length > 0) {
            this.#o.onConflict(key, result.conflicts);
            await this.#mongo('append', () => mongo.append(key, result.conflicts.map(({ message, tokens, digest }) => ({ message, tokens, digest }))));
          }
          this.#o.onFlushed(key, messages.map((m) => m.seq), result);
        }
      } catch (error) {
        // MongoDB failed: hand back this and the remaining claims (marking them
        // flushed up to where they were makes them due again at once).
        for (const unclaimed of keys.slice(i)) {
          await this.#redis('markFlushed', () => redis.markFlushed(unclaimed, unclaimed === key ? flushedSeq : 0)).catch(() => undefined);
        }
        throw error;
      }
      const nowFlushedSeq = messages.at(-1)?.seq ?? flushedSeq;
      await this.#redis('markFlushed', () => redis.markFlushed(key, nowFlushedSeq));
      // A summary written while MongoDB lacked the messages it covers was refused
      // there: hand it over now that they are in (a no-op when MongoDB has it).
      if (messages.length > 0) {
        const { summary } = await this.#redis('load', () => redis.load(key, { maxMessages: 0, maxTokens: 0 }));
        if (summary !== undefined && summary.coversSeq <= nowFlushedSeq) await this.#mongo('replaceSummary', () => mongo.replaceSummary(key, summary));
      }
      flushed++;
    }
    return flushed;
  }

  #redis<T>(operation: string, call: () => Promise<T>): Promise<T> {
    return callTier(this.#o.health, 'redis', operation, this.#o.redisTimeoutMs, call);
  }

  #mongo<T>(operation: string, call: () => Promise<T>): Promise<T> {
    return callTier(this.#o.health, 'mongodb', operation, this.#o.mongoTimeoutMs, call);
  }
}
