import { describe, expect, test } from 'vitest';
import type { Ledger, TurnRecord } from '../../../bench/load-client.js';
import { REPLY_POOL_SIZE, replyIndex } from '../../../bench/replies.js';
import { checkLines, checkStore, type RedisOutage } from '../../../bench/store-check.js';
import type { StoredDocument } from '../../../bench/stores.js';

const CONVERSATION = 'fault-c0-0';
const REPLIES = Array.from({ length: REPLY_POOL_SIZE }, (_, i) => `reply ${i}`);
/** The one Redis outage of these cases. */
const OUTAGE: RedisOutage = { startMs: 10_000, endMs: 11_000 };

/** An acknowledged turn sent at `sentAtMs` and answered 100 ms later. */
function turn(n: number, sentAtMs: number): TurnRecord {
  return { user: `question ${n}`, outcome: 'acked', stream: false, sentAtMs, answeredAtMs: sentAtMs + 100 };
}

/** MongoDB's documents for the conversation, its turns (by index into `turns`) in `storedOrder`, each with its own whole reply. */
function stored(turns: readonly TurnRecord[], storedOrder: readonly number[]): StoredDocument[] {
  return storedOrder.flatMap((k, position) => {
    const user = turns[k]!.user;
    return [
      { conversation: CONVERSATION, seq: 2 * position + 1, role: 'user', messageJson: JSON.stringify({ role: 'user', content: user }) },
      { conversation: CONVERSATION, seq: 2 * position + 2, role: 'assistant', messageJson: JSON.stringify({ role: 'assistant', content: REPLIES[replyIndex(user)] }) },
    ];
  });
}

function check(turns: TurnRecord[], storedOrder: readonly number[], redisOutages: readonly RedisOutage[] = [OUTAGE]) {
  const ledger: Ledger = new Map([[CONVERSATION, turns]]);
  return checkStore(ledger, stored(turns, storedOrder), REPLIES, undefined, redisOutages);
}

/** Every check other than the order one passes, so a case fails or passes on its order alone. */
function expectOtherChecksPass(result: ReturnType<typeof checkStore>, turns: number): void {
  expect(result).toMatchObject({ acknowledged: turns, storedTurns: turns, lost: [], duplicated: [], unacknowledgedStored: [], partial: [], seqProblems: [], unexpected: [] });
}

describe('checkStore: turns stored in the order sent', () => {
  test('an in-order conversation passes, across an outage too', () => {
    const turns = [turn(1, 9_000), turn(2, 9_500), turn(3, 10_200), turn(4, 10_600)];
    const result = check(turns, [0, 1, 2, 3]);
    expectOtherChecksPass(result, 4);
    expect(result.outOfOrder).toEqual([]);
    expect(result.heldAcrossRedisOutage).toEqual([]);
    expect(checkLines(result)).toContain('PASS  turns stored in the order sent');
  });

  test('a turn answered before Redis went away, stored after the turns sent after that, is held: counted apart, not out of order', () => {
    // Turn 2 answered at 9,600, before the outage at 10,000; turns 3 and 4 were made while Redis was away.
    const turns = [turn(1, 9_000), turn(2, 9_500), turn(3, 10_200), turn(4, 10_600), turn(5, 12_000)];
    const result = check(turns, [0, 2, 3, 1, 4]);
    expectOtherChecksPass(result, 5);
    expect(result.outOfOrder).toEqual([]);
    expect(result.heldAcrossRedisOutage).toEqual([`${CONVERSATION} turn 2 (answered 400 ms before Redis went away) stored after 2 turns made meanwhile`]);
    const lines = checkLines(result);
    expect(lines).toContain('PASS  turns stored in the order sent');
    expect(lines.find((line) => line.startsWith('(not out of order: 1 turns Redis held unflushed when it went away'))).toBeDefined();
  });

  test('the same inversion with no outage between the two turns is out of order', () => {
    const turns = [turn(1, 9_000), turn(2, 9_500), turn(3, 10_200), turn(4, 10_600), turn(5, 12_000)];
    const outages: RedisOutage[][] = [[], [{ startMs: 5_000, endMs: 6_000 }], [{ startMs: 13_000, endMs: 14_000 }]];
    for (const redisOutages of outages) {
      const result = check(turns, [0, 2, 3, 1, 4], redisOutages);
      expectOtherChecksPass(result, 5);
      expect(result.outOfOrder).toEqual([`${CONVERSATION}: turn 2 stored after turn 4`]);
      expect(result.heldAcrossRedisOutage).toEqual([]);
      expect(checkLines(result)).toContain(`FAIL  turns stored in the order sent: 1 — ${CONVERSATION}: turn 2 stored after turn 4`);
    }
  });

  test('an inversion whose later turn was written well before the outage began is out of order', () => {
    // Turn 3 was answered at 9,300, more than a write's lag before the outage: Redis was still there when contextd wrote it.
    const turns = [turn(1, 8_800), turn(2, 9_000), turn(3, 9_200), turn(4, 10_600), turn(5, 12_000)];
    const result = check(turns, [0, 2, 3, 1, 4]);
    expectOtherChecksPass(result, 5);
    expect(result.outOfOrder).toEqual([`${CONVERSATION}: turn 2 stored after turn 4`]);
    expect(result.heldAcrossRedisOutage).toEqual([]);
  });

  test('an inversion whose later turn was answered after Redis had been back for a while is out of order', () => {
    const turns = [turn(1, 9_000), turn(2, 9_500), turn(3, 10_200), turn(4, 14_000), turn(5, 15_000)];
    const result = check(turns, [0, 2, 3, 1, 4]);
    expect(result.outOfOrder).toEqual([`${CONVERSATION}: turn 2 stored after turn 4`]);
  });

  test('a turn answered after the outage began is out of order even when stored after turns made during it', () => {
    const turns = [turn(1, 9_000), turn(2, 9_950), turn(3, 10_200), turn(4, 10_600)];
    const result = check(turns, [0, 2, 3, 1]);
    expect(result.outOfOrder).toEqual([`${CONVERSATION}: turn 2 stored after turn 4`]);
    expect(result.heldAcrossRedisOutage).toEqual([]);
  });

  test('every inverted turn is classified, and a conversation with real problems is reported once', () => {
    // Turns 2 and 3 held across the outage; turn 6 stored before turn 5, with no outage between them.
    const turns = [turn(1, 9_000), turn(2, 9_300), turn(3, 9_600), turn(4, 10_200), turn(5, 11_000), turn(6, 11_500), turn(7, 12_000), turn(8, 12_500)];
    const result = check(turns, [0, 3, 1, 2, 5, 4, 7, 6]);
    expectOtherChecksPass(result, 8);
    expect(result.heldAcrossRedisOutage).toHaveLength(2);
    expect(result.outOfOrder).toEqual([`${CONVERSATION}: turn 5 stored after turn 6 (+1 more stored out of order)`]);
  });
});
