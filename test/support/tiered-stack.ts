// Building blocks of the two-tier store tests: a TieredStore and an
// OutboxFlusher with the tests' deadlines and timings, and a message.
import { OutboxFlusher, type OutboxFlusherOptions } from '../../src/background/outbox-flusher.js';
import type { NewMessage } from '../../src/domain.js';
import { OutageMerge } from '../../src/store/outage-merge.js';
import { TieredStore, type TieredStoreOptions } from '../../src/store/tiered-store.js';

/** A TieredStore with the tests' deadlines; `options` names the tiers and anything else that differs. */
export function tieredStore(options: Pick<TieredStoreOptions, 'redis' | 'mongo' | 'health'> & Partial<TieredStoreOptions>): TieredStore {
  return new TieredStore({
    redisTimeoutMs: 2_000,
    mongoTimeoutMs: 5_000,
    // FerretDB's reads are slow on a busy machine: tests of the cold-read deadline set their own.
    coldReadTimeoutMs: 5_000,
    maxCachedMessages: 200,
    onFlushNeeded: () => undefined,
    onBackgroundError: () => undefined,
    ...options,
  });
}

/** An OutboxFlusher with the tests' timings (no flush delay). */
export function testFlusher(options: Pick<OutboxFlusherOptions, 'redis' | 'mongo' | 'health'> & Partial<OutboxFlusherOptions>): OutboxFlusher {
  return new OutboxFlusher({
    merge: new OutageMerge({ hot: options.redis, durable: options.mongo, health: options.health, redisTimeoutMs: 2_000, mongoTimeoutMs: 5_000, maxCachedMessages: 200 }),
    redisTimeoutMs: 2_000,
    mongoTimeoutMs: 5_000,
    idleDelayMs: 50,
    flushDelayMs: 0,
    leaseMs: 5_000,
    batchSize: 16,
    sweepIntervalMs: 60_000,
    onFlushed: () => undefined,
    onConflict: () => undefined,
    onError: () => undefined,
    ...options,
  });
}

export function message(content: string): NewMessage {
  return { message: { role: 'user', content }, tokens: 5, digest: `${content}-digest` };
}

/** A question and its answer, as one turn. */
export const turn = (name: string): NewMessage[] => [message(name), message(`${name} answer`)];
