import { describe, expect, test } from 'vitest';
import { conversationFigures, type TurnObservation } from '../../../bench/prefix-cache-report.js';
import type { PrefixRecord } from '../../../bench/prefix-cache-upstream.js';
import { cacheableTokens, commonPrefixTokens, firstChangedMessage, messageTokens, PromptTokenizer } from '../../../bench/prompt-prefix.js';
import { tokenCounterFor } from '../../../src/tokens/count-tokens.js';

describe('cacheableTokens: OpenAI prompt caching, 1,024 tokens then steps of 128', () => {
  test.each([
    // [common prefix, prompt, cacheable]
    [0, 5_000, 0],
    [1_023, 5_000, 0],
    [1_024, 5_000, 1_024],
    [1_151, 5_000, 1_024],
    [1_152, 5_000, 1_152],
    [1_153, 5_000, 1_152],
    [4_999, 5_000, 4_992],
    [7_000, 7_003, 6_912],
    [1_100, 1_050, 1_024],
    [1_200, 1_100, 1_100], // never more than the prompt
  ])('a common prefix of %i tokens in a %i-token prompt: %i cacheable', (prefix, prompt, expected) => {
    expect(cacheableTokens(prefix, prompt)).toBe(expected);
  });
});

describe('commonPrefixTokens', () => {
  test.each([
    [[], [], 0],
    [[1, 2, 3], [], 0],
    [[1, 2, 3], [1, 2, 3], 3],
    [[1, 2, 3], [1, 2, 3, 4, 5], 3],
    [[1, 2, 3, 4], [1, 2, 9, 4], 2],
    [[7, 2], [1, 2], 0],
  ])('%j and %j share %i', (a, b, expected) => {
    expect(commonPrefixTokens(a, b)).toBe(expected);
    expect(commonPrefixTokens(b, a)).toBe(expected);
  });
});

describe('the prompt as the model sees it', () => {
  const tokenizer = new PromptTokenizer();
  const system = { role: 'system' as const, content: 'You are a careful assistant. Answer in two sentences.' };
  const user = (text: string) => ({ role: 'user' as const, content: text });
  const assistant = (text: string) => ({ role: 'assistant' as const, content: text });

  test("a message's tokens are as many as contextd counts for it", () => {
    const counter = tokenCounterFor('o200k_base');
    for (const message of [system, user('How many blue mugs did Ana order?'), assistant('Forty-two, for the offsite next week.'), user('')]) {
      expect(messageTokens(message)).toHaveLength(counter.countMessage(message));
    }
  });

  test('a prompt that only appends keeps the previous one whole as its prefix', () => {
    const before = tokenizer.tokens([system, user('first question')]);
    const after = tokenizer.tokens([system, user('first question'), assistant('an answer'), user('second question')]);
    expect(commonPrefixTokens(before, after)).toBe(before.length);
  });

  test('dropping the oldest turn breaks the prefix right after the system prompt', () => {
    const before = tokenizer.tokens([system, user('first question'), assistant('an answer'), user('second question')]);
    const after = tokenizer.tokens([system, user('second question'), assistant('another answer'), user('third question')]);
    const systemTokens = messageTokens(system).length;
    // The next message starts with <|start|>user<|message|> either way: 3 more tokens in common, then the texts differ.
    expect(commonPrefixTokens(before, after)).toBe(systemTokens + 3);
  });

  test('a message that differs only at its end shares every token before the difference', () => {
    const a = tokenizer.tokens([system, user('Please order forty two blue mugs')]);
    const b = tokenizer.tokens([system, user('Please order forty two red mugs')]);
    const shared = commonPrefixTokens(a, b);
    expect(shared).toBeGreaterThan(messageTokens(system).length + 3);
    expect(shared).toBeLessThan(a.length);
  });

  test('firstChangedMessage: where the previous messages stop being a prefix', () => {
    expect(firstChangedMessage(['s', 'u1'], ['s', 'u1', 'a1', 'u2'])).toBeUndefined();
    expect(firstChangedMessage(['s', 'u1', 'a1', 'u2'], ['s', 'u2', 'a2', 'u3'])).toBe(1);
    expect(firstChangedMessage(['s', 'sum1', 'u1'], ['s', 'sum2', 'u1', 'a1'])).toBe(1);
    expect(firstChangedMessage(['s1'], ['s2'])).toBe(0);
    expect(firstChangedMessage(['s', 'u1', 'a1'], ['s', 'u1'])).toBe(2);
  });
});

describe('conversationFigures', () => {
  const turn = (promptTokens: number, cacheable: number, change: PrefixRecord['change'], prefixStable?: string): TurnObservation => ({
    record: { promptTokens, messages: 0, commonPrefixTokens: cacheable, cacheableTokens: cacheable, change, isOtherBodyChanged: false },
    historyMessages: 4,
    contextTokens: promptTokens,
    summaryUsed: false,
    prefixStable,
  });

  test('the first request counts in no share; shares are of prompt tokens', () => {
    const figures = conversationFigures([
      turn(1_000, 0, 'first request', 'yes'),
      turn(2_000, 1_024, 'appended', 'yes'),
      turn(3_000, 1_920, 'appended', 'yes'),
      turn(1_500, 0, 'window start', 'no'),
      turn(1_500, 1_408, 'appended', 'no'),
    ]);
    expect(figures.cacheableShare).toBeCloseTo((1_024 + 1_920 + 1_408) / 8_000);
    expect(figures.firstChangeTurn).toBe(4);
    expect(figures.cacheableShareFromFirstChange).toBeCloseTo(1_408 / 3_000);
    expect(figures.hitShare).toBe(0.75);
    expect(figures.meanUncachedTokens).toBe((8_000 - 1_024 - 1_920 - 1_408) / 4);
    expect(figures.changes).toEqual({ appended: 3, instructions: 0, summary: 0, 'window start': 1 });
    expect(figures.prefixStableNo).toBe(2);
    expect(figures.prefixStableDisagreements).toBe(1);
    expect(figures.maxCountDifference).toBe(0);
  });

  test('without the header, no count of it', () => {
    const figures = conversationFigures([turn(1_000, 0, 'first request'), turn(2_000, 1_024, 'appended')]);
    expect(figures.prefixStableNo).toBeUndefined();
    expect(figures.prefixStableDisagreements).toBeUndefined();
    expect(figures.firstChangeTurn).toBeUndefined();
  });
});
