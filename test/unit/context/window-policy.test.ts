import { describe, expect, test } from 'vitest';
import { chunkedStart } from '../../../src/context/window-policy.js';
import type { StoredMessage } from '../../../src/domain.js';

/** A conversation of `turns` turns (user + assistant), each message `tokens` tokens, running totals from `cumBase`. */
function conversation(turns: number, tokens = 10, cumBase = 0): StoredMessage[] {
  const messages: StoredMessage[] = [];
  let cum = cumBase;
  for (let t = 0; t < turns; t++) {
    for (const role of ['user', 'assistant'] as const) {
      cum += tokens;
      messages.push({ message: { role, content: `${role} ${t}` }, tokens, digest: `d${messages.length}`, seq: messages.length + 1, createdAtMs: 0, cumTokens: cum, ...(role === 'user' ? { turnKey: `t${t}` } : {}) });
    }
  }
  return messages;
}

const kept = (history: readonly StoredMessage[], start: number): number => history.slice(start).reduce((sum, m) => sum + m.tokens, 0);

describe('chunkedStart', () => {
  test('everything while it fits; then the start steps on by whole turns and stays put between steps', () => {
    const starts: number[] = [];
    for (let turns = 1; turns <= 40; turns++) {
      const history = conversation(turns);
      const chunk = chunkedStart(history, 10, 200, 0.6)!;
      expect(kept(history, chunk.start) + 10, `turns ${turns}`).toBeLessThanOrEqual(200);
      expect(history[chunk.start]?.message.role ?? 'user').toBe('user');
      starts.push(history[chunk.start]?.seq ?? 0);
    }
    // Monotone, and it moves rarely: a step of 0.4 x 200 = 80 tokens is 4 turns of 20.
    for (let i = 1; i < starts.length; i++) expect(starts[i]!).toBeGreaterThanOrEqual(starts[i - 1]!);
    expect(starts.slice(0, 9).every((seq) => seq === 1)).toBe(true);
    expect(new Set(starts).size).toBeLessThan(starts.length / 3);
  });

  test('right after a step the window holds about low_watermark of it', () => {
    for (let turns = 10; turns <= 60; turns++) {
      const history = conversation(turns);
      const chunk = chunkedStart(history, 10, 200, 0.6)!;
      if (chunk.isSameAsBefore) continue;
      expect(kept(history, chunk.start) + 10).toBeLessThanOrEqual(0.6 * 200 + 20);
    }
  });

  test('isSameAsBefore says whether the previous request started at the same message', () => {
    let previousStart: number | undefined;
    for (let turns = 1; turns <= 40; turns++) {
      const history = conversation(turns);
      const chunk = chunkedStart(history, 10, 200, 0.6)!;
      const startSeq = history[chunk.start]?.seq ?? 0;
      if (previousStart !== undefined) expect(chunk.isSameAsBefore, `turns ${turns}`).toBe(startSeq === previousStart);
      previousStart = startSeq;
    }
  });

  test('depends on the running totals only: a window that starts later in the same conversation gives the same start', () => {
    const whole = conversation(30);
    const chunk = chunkedStart(whole, 10, 200, 0.6)!;
    const loaded = whole.slice(20);
    const fromLoaded = chunkedStart(loaded, 10, 200, 0.6)!;
    expect(loaded[fromLoaded.start]!.seq).toBe(whole[chunk.start]!.seq);
  });

  test('never starts at a tool result; messages not yet stored continue the running total', () => {
    const history = conversation(12);
    history.push(
      { message: { role: 'user', content: 'look it up' }, tokens: 10, digest: 'u', seq: 25, createdAtMs: 0, turnKey: 'tx' },
      { message: { role: 'assistant', content: null, tool_calls: [{ id: 'c', type: 'function', function: { name: 'f', arguments: '{}' } }] }, tokens: 10, digest: 'a', seq: 26, createdAtMs: 0 },
      { message: { role: 'tool', tool_call_id: 'c', content: 'r' }, tokens: 10, digest: 't', seq: 27, createdAtMs: 0 },
    );
    for (let window = 60; window <= 200; window += 10) {
      const chunk = chunkedStart(history, 10, window, 0.5)!;
      expect(history[chunk.start]?.message.role ?? 'user').not.toBe('tool');
      expect(kept(history, chunk.start) + 10).toBeLessThanOrEqual(window);
    }
  });

  test('history without running totals cannot be placed: undefined (the window slides)', () => {
    const history = conversation(3).map(({ cumTokens: _cum, ...m }) => m);
    expect(chunkedStart(history, 10, 100, 0.6)).toBeUndefined();
    expect(chunkedStart([], 10, 100, 0.6)).toEqual({ start: 0, isSameAsBefore: true });
  });
});
