import { expect, test } from 'vitest';
import { digestMessage } from '../../../src/context/message-digest.js';
import type { ChatMessage } from '../../../src/domain.js';
import { tokenCounterFor } from '../../../src/tokens/count-tokens.js';
import { TokenCountCache } from '../../../src/tokens/token-count-cache.js';

const o200k = tokenCounterFor('o200k_base');
const cl100k = tokenCounterFor('cl100k_base');
const system = (content: string): ChatMessage => ({ role: 'system', content });

test('gives the counter’s own count, per encoding', async () => {
  const cache = new TokenCountCache(10);
  const message = system('You are a helpful assistant that answers in Portuguese. '.repeat(20));
  const digest = digestMessage(message);
  expect(await cache.count(o200k, message, digest)).toBe(o200k.countMessage(message));
  expect(await cache.count(cl100k, message, digest)).toBe(cl100k.countMessage(message));
  expect(await cache.count(o200k, message, digest)).toBe(o200k.countMessage(message));
  expect(cache.size).toBe(2);
});

test('stays within its bound, evicting the least recently used', async () => {
  const cache = new TokenCountCache(3);
  const messages = ['a', 'b', 'c', 'd'].map((text) => system(`prompt ${text}`));
  const [a, b, c, d] = messages.map((m) => ({ m, digest: digestMessage(m) }));
  await cache.count(o200k, a!.m, a!.digest);
  await cache.count(o200k, b!.m, b!.digest);
  await cache.count(o200k, c!.m, c!.digest);
  await cache.count(o200k, a!.m, a!.digest); // a is now the most recent
  await cache.count(o200k, d!.m, d!.digest); // b goes
  expect(cache.size).toBe(3);
  // A stale entry would answer with the digest's old count; give a different message the same digest to tell.
  expect(await cache.count(o200k, system('x'), b!.digest)).toBe(o200k.countMessage(system('x')));
  expect(await cache.count(o200k, system('x'), a!.digest)).toBe(o200k.countMessage(a!.m));
});
