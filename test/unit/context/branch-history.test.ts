import { describe, expect, test } from 'vitest';
import { branchSummary, historyThroughTurn, turnPlace } from '../../../src/context/branch-history.js';
import type { StoredMessage, Summary } from '../../../src/domain.js';

/** Turns as [turnKey, message count]; seqs from `firstSeq`. */
function conversation(turns: readonly [string | undefined, number][], firstSeq = 1): StoredMessage[] {
  const messages: StoredMessage[] = [];
  let seq = firstSeq;
  for (const [turnKey, count] of turns) {
    for (let i = 0; i < count; i++) {
      const message: StoredMessage = { message: { role: i % 2 === 0 ? 'user' : 'assistant', content: `${turnKey ?? 'legacy'}#${i}` }, tokens: 5, digest: `d${seq}`, seq, createdAtMs: 0 };
      if (i === 0 && turnKey !== undefined) message.turnKey = turnKey;
      messages.push(message);
      seq++;
    }
  }
  return messages;
}

describe('turnPlace', () => {
  const messages = conversation([['t1', 2], ['t2', 4], ['t3', 2]]);
  test('the newest turn, an older one, and one not in the window', () => {
    expect(turnPlace(messages, 't3')).toBe('newest');
    expect(turnPlace(messages, 't2')).toBe('older');
    expect(turnPlace(messages, 't1')).toBe('older');
    expect(turnPlace(messages, 'elsewhere')).toBe('absent');
    expect(turnPlace([], 't1')).toBe('absent');
  });

  test('a window that starts inside the newest turn cannot tell: absent (the caller reads the whole conversation)', () => {
    expect(turnPlace(messages.slice(7), 't3')).toBe('absent');
  });

  test('messages stored without a turn key belong to the turn before them', () => {
    const legacy = conversation([['t1', 2], [undefined, 2]]);
    expect(turnPlace(legacy, 't1')).toBe('newest');
  });
});

describe('historyThroughTurn', () => {
  const messages = conversation([['t1', 2], ['t2', 4], ['t3', 2]]);
  test('every message up to the end of the turn; newest only for the last turn', () => {
    expect(historyThroughTurn(messages, 't1')).toEqual({ messages: messages.slice(0, 2), isNewest: false });
    expect(historyThroughTurn(messages, 't2')).toEqual({ messages: messages.slice(0, 6), isNewest: false });
    expect(historyThroughTurn(messages, 't3')).toEqual({ messages, isNewest: true });
    expect(historyThroughTurn(messages, 'gone')).toBeUndefined();
  });
});

describe('branchSummary', () => {
  const summary = (coversSeq: number): Summary => ({ text: 'so far', tokens: 10, coversSeq, createdAtMs: 0 });
  test('kept, renumbered, when it covers nothing after the branch point', () => {
    const copied = conversation([['t1', 2], ['t2', 4]], 1);
    expect(branchSummary(summary(2), copied)).toEqual({ ...summary(2), coversSeq: 2 });
    expect(branchSummary(summary(6), copied)).toEqual({ ...summary(6), coversSeq: 6 });
    expect(branchSummary(undefined, copied)).toBeUndefined();
  });

  test('dropped when it covers history after the branch point', () => {
    expect(branchSummary(summary(7), conversation([['t1', 2], ['t2', 4]]))).toBeUndefined();
  });

  test('covering only messages the store no longer holds: none of the copy, so not kept', () => {
    const copied = conversation([['t5', 2], ['t6', 2]], 11);
    expect(branchSummary(summary(10), copied)).toBeUndefined();
    expect(branchSummary(summary(12), copied)?.coversSeq).toBe(2);
  });
});
