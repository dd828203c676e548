import { describe, expect, test } from 'vitest';
import type { ChatMessage } from '../../../src/domain.js';
import { countMessageYielding, segments, YIELD_ABOVE_CHARS } from '../../../src/tokens/count-message-yielding.js';
import { tokenCounterFor } from '../../../src/tokens/count-tokens.js';

const counter = tokenCounterFor('o200k_base');
const prose = (chars: number): string => {
  const words = ['the', 'budget', 'holds', 'as', 'the', 'model', 'counts', 'Ana', 'ordered', '42', 'mugs;', 'then', 'she', 'asked', '(politely)', 'for', 'more.\n'];
  let text = '';
  for (let i = 0; text.length < chars; i++) text += words[(i * 7) % words.length] + ' ';
  return text;
};
const json = (chars: number): string => JSON.stringify(Array.from({ length: Math.ceil(chars / 60) }, (_, i) => ({ id: i, name: `item ${i}`, tags: ['a', 'b'] })));

describe('countMessageYielding', () => {
  test.each([
    ['prose', prose(300_000)],
    ['JSON', json(300_000)],
    ['code-like', 'function f(x) { return x * 2; }\n'.repeat(10_000)],
  ])('counts a long %s message exactly as countMessage does', async (_name, text) => {
    const message: ChatMessage = { role: 'user', content: text, name: 'ana' };
    expect(await countMessageYielding(counter, message)).toBe(counter.countMessage(message));
    const parts: ChatMessage = { role: 'user', content: [{ type: 'text', text }, { type: 'text', text: 'short' }] };
    expect(await countMessageYielding(counter, parts)).toBe(counter.countMessage(parts));
  });

  test('short messages are counted at once, unchanged', async () => {
    const message: ChatMessage = { role: 'user', content: 'hello there' };
    expect(await countMessageYielding(counter, message)).toBe(counter.countMessage(message));
  });

  test('the event loop keeps turning while a big message is counted', async () => {
    let turns = 0;
    let isCounting = true;
    const tick = (): void => {
      turns++;
      if (isCounting) setImmediate(tick);
    };
    setImmediate(tick);
    await countMessageYielding(counter, { role: 'user', content: prose(1_000_000) });
    isCounting = false;
    // One segment is 16 K characters: a megabyte hands the loop back dozens of times.
    expect(turns).toBeGreaterThan(30);
  });

  test('segments cover the text exactly, in order, and cut long texts', () => {
    for (const text of [prose(100_000), 'x'.repeat(70_000), '🌍'.repeat(40_000)]) {
      const pieces = [...segments(text)];
      expect(pieces.join('')).toBe(text);
      expect(pieces.length).toBeGreaterThan(1);
      for (const piece of pieces) expect(piece.length).toBeLessThanOrEqual(16 * 1024);
    }
    expect(YIELD_ABOVE_CHARS).toBeGreaterThan(16 * 1024);
  });
});
