import { expect, test } from 'vitest';
import { FlushBatch } from '../../../src/background/flush-batch.js';

test('starts at the configured size, halves after each timed-out round, never below one', () => {
  const batch = new FlushBatch(64);
  expect(batch.size).toBe(64);
  const sizes: number[] = [];
  for (let i = 0; i < 8; i++) {
    batch.timedOut();
    sizes.push(batch.size);
  }
  expect(sizes).toEqual([32, 16, 8, 4, 2, 1, 1, 1]);
});

test('grows back by a quarter after each full round MongoDB took, up to the configured size', () => {
  const batch = new FlushBatch(64);
  for (let i = 0; i < 4; i++) batch.timedOut();
  const sizes: number[] = [];
  while (batch.size < 64) {
    batch.took(batch.size);
    sizes.push(batch.size);
  }
  expect(sizes).toEqual([5, 7, 9, 12, 15, 19, 24, 30, 38, 48, 60, 64]);
  batch.took(64);
  expect(batch.size).toBe(64);
});

test('a round that was not full (nothing more was due) does not grow the batch', () => {
  const batch = new FlushBatch(64);
  batch.timedOut();
  batch.took(10);
  expect(batch.size).toBe(32);
});
