import { describe, expect, test } from 'vitest';
import { assemblePrompt, pinnedHistoryStart } from '../../../src/context/assemble-prompt.js';
import { findToolSequenceProblem } from '../../../src/context/tool-sequence.js';
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

  test("an agent's tool loop longer than the window: starts at a call, never orphans a result, and still moves in steps", () => {
    // One user question, then turns that each send only a tool result and get the next call back.
    const history: StoredMessage[] = [];
    const push = (message: StoredMessage['message'], turnKey?: string): void => {
      const seq = history.length + 1;
      history.push({ message, tokens: 10, digest: `d${seq}`, seq, createdAtMs: 0, cumTokens: 10 * seq, ...(turnKey !== undefined ? { turnKey } : {}) });
    };
    const call = (id: string): StoredMessage['message'] => ({ role: 'assistant', content: null, tool_calls: [{ id, type: 'function', function: { name: 'f', arguments: '{}' } }] });
    push({ role: 'user', content: 'look everything up' }, 'q');
    push(call('c1'));
    const starts: number[] = [];
    for (let step = 1; step <= 40; step++) {
      const turn = [{ message: { role: 'tool' as const, tool_call_id: `c${step}`, content: `result ${step}` }, tokens: 10 }];
      const chunk = chunkedStart(history, 10, 100, 0.6, pinnedHistoryStart(history, turn))!;
      const prompt = assemblePrompt({ instructions: [], summary: undefined, history: history.slice(chunk.start), turn, fixedTokens: 0, budgetTokens: 100, summaryMaxTokens: 0 });
      expect(findToolSequenceProblem(prompt.messages), `step ${step}`).toBeUndefined();
      expect(prompt.contextTokens).toBeLessThanOrEqual(100);
      expect(prompt.droppedMessages, `step ${step}: the assembly took the chunked start as it was`).toBe(0);
      starts.push(history[chunk.start]!.seq);
      push(turn[0]!.message, `t${step}`);
      push(call(`c${step + 1}`));
    }
    for (let i = 1; i < starts.length; i++) expect(starts[i]!).toBeGreaterThanOrEqual(starts[i - 1]!);
    // A step of 0.4 x 100 = 40 tokens is two loop turns of 20: the start moves at most every other turn.
    expect(new Set(starts).size).toBeLessThanOrEqual(starts.length / 2 + 1);
  });

  test('a turn whose tool results answer a call the step would pass: the window starts at that call', () => {
    // 190 tokens before the call, 90 of call, 10 of result: the step's threshold (200) lies inside the call.
    const history = conversation(10).slice(0, 19);
    history.push({ message: { role: 'assistant', content: null, tool_calls: [{ id: 'big', type: 'function', function: { name: 'f', arguments: '{}' } }] }, tokens: 90, digest: 'b', seq: 20, createdAtMs: 0, cumTokens: 280 });
    const turn = [{ message: { role: 'tool' as const, tool_call_id: 'big', content: 'r' }, tokens: 10 }];
    expect(chunkedStart(history, 10, 100, 0.6)!.start, 'unpinned: none of the history').toBe(20);
    const chunk = chunkedStart(history, 10, 100, 0.6, pinnedHistoryStart(history, turn))!;
    expect(chunk.start).toBe(19);
    expect(chunk.isSameAsBefore).toBe(false);
  });

  test('history without running totals cannot be placed: undefined (the window slides)', () => {
    const history = conversation(3).map(({ cumTokens: _cum, ...m }) => m);
    expect(chunkedStart(history, 10, 100, 0.6)).toBeUndefined();
    expect(chunkedStart([], 10, 100, 0.6)).toEqual({ start: 0, isSameAsBefore: true });
  });
});
