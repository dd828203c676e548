import { afterEach, beforeEach, expect, test, vi } from 'vitest';
import type { OutboxFlusher } from '../../../src/background/outbox-flusher.js';
import type { ConversationKey } from '../../../src/domain.js';
import type { FlushSource, FlushTarget } from '../../../src/store/conversation-store.js';
import { StoreHealth } from '../../../src/store/store-health.js';
import { testFlusher } from '../../support/tiered-stack.js';

// The pace of the flusher's own rounds, on fake time: what it claims is scripted
// (the Redis and MongoDB side of a round have tests of their own, test/store/).

const notUsed = (): never => {
  throw new Error('not used by these rounds');
};

const key = (conversation: string): ConversationKey => ({ tenant: 't', conversation }) as ConversationKey;

interface Scripted {
  flusher: OutboxFlusher;
  /** The fake time of each claim, i.e. each round. */
  claimedAt: number[];
  /** What the next claims find, in order; a claim with none left finds nothing. */
  due: ConversationKey[][];
}

function scriptedFlusher(): Scripted {
  const claimedAt: number[] = [];
  const due: ConversationKey[][] = [];
  const redis: FlushSource = {
    claimDirty: async () => {
      claimedAt.push(Date.now());
      return due.shift() ?? [];
    },
    unflushed: async () => ({ flushedSeq: 0, messages: [], summary: undefined }),
    markFlushed: async () => undefined,
    sweepDirty: async () => 0,
    rebase: notUsed,
    demote: notUsed,
    load: notUsed,
  };
  const mongo: FlushTarget = {
    upsertAllocated: notUsed,
    upsertAllocatedMany: async (batches) => batches.map(() => ({ inserted: 0, alreadyStored: 0, conflicts: [] })),
    append: notUsed,
    appendTurns: notUsed,
    replaceSummary: notUsed,
    load: notUsed,
    conversationState: notUsed,
    ping: async () => undefined,
  };
  // The tests' flusher, at production's pace (open-stores.ts).
  const flusher = testFlusher({
    redis,
    mongo,
    health: new StoreHealth({ tiers: ['redis', 'mongodb'], probeIntervalMs: 1_000 }),
    idleDelayMs: 250,
    maxIdleDelayMs: 2_000,
    flushDelayMs: 100,
  });
  return { flusher, claimedAt, due };
}

const gaps = (times: readonly number[]): number[] => times.slice(1).map((time, i) => time - times[i]!);

beforeEach(() => {
  vi.useFakeTimers();
});
afterEach(() => {
  vi.useRealTimers();
});

test('rounds that find nothing come further apart, doubling up to maxIdleDelayMs', async () => {
  const { flusher, claimedAt } = scriptedFlusher();
  const startedAt = Date.now();
  flusher.start();
  await vi.advanceTimersByTimeAsync(12_000);
  await flusher.stop(0);
  expect(claimedAt[0]).toBe(startedAt);
  expect(gaps(claimedAt)).toEqual([500, 1_000, 2_000, 2_000, 2_000, 2_000, 2_000]);
});

test('a notify brings a round within flushDelayMs, and a round that found work brings the pace back to idleDelayMs', async () => {
  const { flusher, claimedAt, due } = scriptedFlusher();
  flusher.start();
  await vi.advanceTimersByTimeAsync(5_000); // backed off to 2 s by now: rounds at 0, 500, 1500, 3500
  expect(gaps(claimedAt)).toEqual([500, 1_000, 2_000]);
  const notifiedAt = Date.now();
  due.push([key('a')]);
  flusher.notify();
  await vi.advanceTimersByTimeAsync(2_000);
  await flusher.stop(0);
  const afterNotify = claimedAt.filter((time) => time >= notifiedAt);
  expect(afterNotify[0]).toBe(notifiedAt + 100);
  // It found the conversation: the next rounds are 250 ms away again, then back off.
  expect(gaps(afterNotify)).toEqual([250, 500, 1_000]);
});
