// The window-cut rule every store loads by (src/context/window-cut.ts). That the
// Lua LOAD script picks the same window is test/store/window-cut.property.test.ts's job.
import { describe, expect, test } from 'vitest';
import { startWindowWalk, windowLimit, type WindowLimits } from '../../../src/context/window-cut.js';
import { WINDOW_CASES } from '../../support/window-cases.js';

/** Seqs 1..n with these tokens, oldest first. */
const conversation = (...tokens: number[]): { seq: number; tokens: number }[] => tokens.map((t, i) => ({ seq: i + 1, tokens: t }));

/** The seqs the walk takes, oldest first, walking `messages` newest first until it refuses one. */
function windowOf(messages: readonly { seq: number; tokens: number }[], limits: WindowLimits, coversSeq = 0): number[] {
  const walk = startWindowWalk(limits, coversSeq);
  let first = messages.length;
  while (first > 0 && walk.takes(messages[first - 1]!)) first--;
  return messages.slice(first).map((m) => m.seq);
}

const FOUR = conversation(10, 20, 30, 40);

describe('the window rule', () => {
  test.each(WINDOW_CASES)('takes the newest messages within the limits ($why)', ({ limits, seqs }) => {
    expect(windowOf(FOUR, limits)).toEqual(seqs);
  });

  test.each([
    { coversSeq: 0, seqs: [1, 2, 3, 4], why: 'no summary' },
    { coversSeq: 2, seqs: [3, 4], why: 'the summary stands for 1 and 2' },
    { coversSeq: 4, seqs: [], why: 'the summary covers everything' },
    { coversSeq: 9, seqs: [], why: 'coverage past the newest seq' },
  ])('stops at the summary ($why)', ({ coversSeq, seqs }) => {
    expect(windowOf(FOUR, { maxMessages: 100, maxTokens: 1_000 }, coversSeq)).toEqual(seqs);
  });

  test('the summary, the message cap and the budget together: the tightest wins', () => {
    const ten = conversation(5, 5, 5, 5, 5, 5, 5, 5, 5, 5);
    expect(windowOf(ten, { maxMessages: 6, maxTokens: 1_000 }, 3)).toEqual([5, 6, 7, 8, 9, 10]);
    expect(windowOf(ten, { maxMessages: 9, maxTokens: 1_000 }, 3)).toEqual([4, 5, 6, 7, 8, 9, 10]);
    expect(windowOf(ten, { maxMessages: 9, maxTokens: 10 }, 3)).toEqual([8, 9, 10]);
  });

  test('messages of zero tokens cost nothing but still count against maxMessages', () => {
    const zeros = conversation(50, 0, 0, 0);
    expect(windowOf(zeros, { maxMessages: 100, maxTokens: 0 })).toEqual([1, 2, 3, 4]);
    expect(windowOf(zeros, { maxMessages: 3, maxTokens: 0 })).toEqual([2, 3, 4]);
  });

  test('one message larger than the whole budget still comes, and ends the window', () => {
    expect(windowOf(conversation(1, 1, 1_000_000), { maxMessages: 100, maxTokens: 10 })).toEqual([3]);
    expect(windowOf(conversation(1, 1_000_000, 1), { maxMessages: 100, maxTokens: 10 })).toEqual([2, 3]);
  });

  test('the walk ends at the first message that does not belong, whatever comes after it', () => {
    const walk = startWindowWalk({ maxMessages: 100, maxTokens: 1_000 }, 2);
    expect(walk.takes({ seq: 3, tokens: 1 })).toBe(true);
    expect(walk.takes({ seq: 2, tokens: 1 })).toBe(false);
    expect(walk.taken).toBe(1);
    expect(walk.usedTokens).toBe(1);
  });

  test('isFull says whether any further message could belong, whatever its seq', () => {
    const walk = startWindowWalk({ maxMessages: 3, maxTokens: 10 }, 0);
    expect(walk.isFull).toBe(false);
    walk.takes({ seq: 9, tokens: 10 });
    expect(walk.isFull).toBe(false); // 10 is still within the budget
    walk.takes({ seq: 8, tokens: 1 });
    expect(walk.isFull).toBe(true); // 11 crossed it
    expect(startWindowWalk({ maxMessages: 0, maxTokens: 10 }, 0).isFull).toBe(true);
    const capped = startWindowWalk({ maxMessages: 1, maxTokens: 10 }, 0);
    capped.takes({ seq: 1, tokens: 0 });
    expect(capped.isFull).toBe(true);
  });

  test.each([
    { value: 7, limit: 7 },
    { value: 0, limit: 0 },
    { value: 2.9, limit: 2 },
    { value: -1, limit: 0 },
    { value: -0.5, limit: 0 },
    { value: Number.NaN, limit: 0 },
    { value: Number.POSITIVE_INFINITY, limit: Number.MAX_SAFE_INTEGER },
    { value: Number.NEGATIVE_INFINITY, limit: 0 },
    { value: 2 ** 60, limit: Number.MAX_SAFE_INTEGER },
  ])('reads the limit $value as $limit', ({ value, limit }) => {
    expect(windowLimit(value)).toBe(limit);
    const walk = startWindowWalk({ maxMessages: value, maxTokens: value }, 0);
    expect([walk.maxMessages, walk.maxTokens]).toEqual([limit, limit]);
  });

  test.each([
    { limits: { maxMessages: 2.5, maxTokens: 1_000 }, seqs: [3, 4], why: 'a fractional cap rounds down: never more messages than asked' },
    { limits: { maxMessages: Number.NaN, maxTokens: 1_000 }, seqs: [], why: 'NaN messages is none' },
    { limits: { maxMessages: -3, maxTokens: 1_000 }, seqs: [], why: 'negative messages is none' },
    { limits: { maxMessages: 100, maxTokens: Number.NaN }, seqs: [4], why: 'NaN tokens is a zero budget' },
    { limits: { maxMessages: 100, maxTokens: -5 }, seqs: [4], why: 'a negative budget is a zero budget' },
    { limits: { maxMessages: 100, maxTokens: 69.9 }, seqs: [3, 4], why: 'a fractional budget rounds down' },
    { limits: { maxMessages: Number.POSITIVE_INFINITY, maxTokens: Number.POSITIVE_INFINITY }, seqs: [1, 2, 3, 4], why: 'no limits' },
  ])('limits that are not whole numbers ($why)', ({ limits, seqs }) => {
    expect(windowOf(FOUR, limits)).toEqual(seqs);
  });
});
