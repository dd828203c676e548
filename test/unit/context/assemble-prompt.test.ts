import fc from 'fast-check';
import { describe, expect, test } from 'vitest';
import { assemblePrompt, summaryAsSystemMessage, type CountedMessage } from '../../../src/context/assemble-prompt.js';
import type { ChatMessage, StoredMessage, Summary } from '../../../src/domain.js';

let seq = 0;
const stored = (message: ChatMessage, tokens: number): StoredMessage => ({ message, tokens, digest: `d${++seq}`, seq, createdAtMs: 0 });
const user = (content: string, tokens = 10): StoredMessage => stored({ role: 'user', content }, tokens);
const assistant = (content: string, tokens = 10): StoredMessage => stored({ role: 'assistant', content }, tokens);
const callTools = (ids: string[], tokens = 10): StoredMessage =>
  stored({ role: 'assistant', content: null, tool_calls: ids.map((id) => ({ id, type: 'function', function: { name: 'f', arguments: '{}' } })) }, tokens);
const toolResult = (id: string, tokens = 10): StoredMessage => stored({ role: 'tool', tool_call_id: id, content: `result ${id}` }, tokens);
const counted = (message: ChatMessage, tokens: number): CountedMessage => ({ message, tokens });
const contents = (messages: ChatMessage[]): unknown[] => messages.map((m) => m.content ?? m.tool_call_id ?? 'calls');

const base = { instructions: [], summary: undefined, fixedTokens: 0, summaryMaxTokens: 300 };

describe('assemblePrompt', () => {
  test('drops the oldest history first when over budget', () => {
    const out = assemblePrompt({ ...base, history: [user('a', 40), assistant('b', 40), user('c', 40)], turn: [counted({ role: 'user', content: 'hi' }, 10)], budgetTokens: 100 });
    expect(contents(out.messages)).toEqual(['b', 'c', 'hi']);
    expect(out.contextTokens).toBe(90);
    expect(out.historyMessages).toBe(2);
    expect(out.droppedMessages).toBe(1);
    expect(out.droppedTokens).toBe(40);
  });

  test('orders instructions, summary, window, turn and counts the fixed tokens', () => {
    const summary: Summary = { text: 'earlier: the user is Ana', tokens: 20, coversSeq: 3, createdAtMs: 0 };
    const out = assemblePrompt({
      ...base,
      instructions: [counted({ role: 'system', content: 'sys' }, 5)],
      summary,
      history: [user('a'), assistant('b')],
      turn: [counted({ role: 'user', content: 'now' }, 5)],
      fixedTokens: 3,
      budgetTokens: 1000,
    });
    expect(out.messages).toEqual([
      { role: 'system', content: 'sys' },
      summaryAsSystemMessage(summary),
      { role: 'user', content: 'a' },
      { role: 'assistant', content: 'b' },
      { role: 'user', content: 'now' },
    ]);
    expect(out.contextTokens).toBe(3 + 5 + 20 + 20 + 5);
    expect(out.summaryUsed).toBe(true);
  });

  test('a summary longer than summary_max_tokens is left out rather than breaking the budget split', () => {
    const summary: Summary = { text: 'x', tokens: 400, coversSeq: 1, createdAtMs: 0 };
    const out = assemblePrompt({ ...base, summary, history: [user('a')], turn: [counted({ role: 'user', content: 'q' }, 5)], budgetTokens: 1000 });
    expect(out.summaryUsed).toBe(false);
  });

  test('keeps an assistant tool_calls message and its results together or drops both', () => {
    const history = [user('q', 10), callTools(['1', '2'], 10), toolResult('1', 30), toolResult('2', 30), assistant('done', 10)];
    const turn = [counted({ role: 'user', content: 'next' }, 10)];
    const fitsAll = assemblePrompt({ ...base, history, turn, budgetTokens: 95 });
    expect(fitsAll.historyMessages).toBe(4);
    expect(fitsAll.messages[0]).toMatchObject({ role: 'assistant', tool_calls: expect.any(Array) });
    const tight = assemblePrompt({ ...base, history, turn, budgetTokens: 80 });
    expect(contents(tight.messages)).toEqual(['done', 'next']);
  });

  test('never starts the window with an orphaned tool result', () => {
    const history = [toolResult('9', 5), assistant('after', 5)];
    const out = assemblePrompt({ ...base, history, turn: [counted({ role: 'user', content: 'q' }, 5)], budgetTokens: 1000 });
    expect(contents(out.messages)).toEqual(['after', 'q']);
  });

  test('tool results in the new turn bring their stored tool_calls message, whatever the budget', () => {
    const history = [user('long ago', 50), callTools(['1', '2'], 30), toolResult('1', 5)];
    const turn = [counted({ role: 'tool', tool_call_id: '2', content: 'r2' }, 5)];
    const out = assemblePrompt({ ...base, history, turn, budgetTokens: 45 });
    expect(out.isOverflow).toBe(false);
    expect(out.messages.map((m) => m.role)).toEqual(['assistant', 'tool', 'tool']);
    expect(out.contextTokens).toBe(40);
  });

  test('overflow: instructions and turn alone over budget send no history and say so', () => {
    const out = assemblePrompt({
      ...base,
      instructions: [counted({ role: 'system', content: 'big' }, 80)],
      summary: { text: 's', tokens: 5, coversSeq: 1, createdAtMs: 0 },
      history: [user('a'), assistant('b')],
      turn: [counted({ role: 'user', content: 'q' }, 30)],
      budgetTokens: 100,
    });
    expect(out.isOverflow).toBe(true);
    expect(contents(out.messages)).toEqual(['big', 'q']);
    expect(out.contextTokens).toBe(110);
    expect(out.summaryUsed).toBe(false);
    expect(out.droppedMessages).toBe(2);
  });
});

// Random histories of user/assistant messages and tool-call groups (sometimes
// cut so that the loaded history begins inside a group), random budgets.
const arbMessageTokens = fc.integer({ min: 4, max: 60 });
const arbUnit = fc.oneof(
  fc.tuple(fc.constant('user' as const), arbMessageTokens),
  fc.tuple(fc.constant('assistant' as const), arbMessageTokens),
  fc.tuple(fc.constant('tools' as const), arbMessageTokens, fc.array(arbMessageTokens, { minLength: 1, maxLength: 4 })),
);
const arbHistory = fc.tuple(fc.array(arbUnit, { maxLength: 40 }), fc.nat(3)).map(([units, cut]) => {
  const history: StoredMessage[] = [];
  let call = 0;
  for (const unit of units) {
    if (unit[0] === 'tools') {
      const ids = unit[2].map(() => `call_${++call}`);
      history.push(callTools(ids, unit[1]));
      unit[2].forEach((tokens, i) => history.push(toolResult(ids[i]!, tokens)));
    } else {
      history.push(unit[0] === 'user' ? user(`u${history.length}`, unit[1]) : assistant(`a${history.length}`, unit[1]));
    }
  }
  return history.slice(Math.min(cut, history.length));
});

describe('assemblePrompt properties', () => {
  test('within budget unless instructions + turn alone exceed it; turn-safe window; newest kept', () => {
    fc.assert(
      fc.property(
        arbHistory,
        fc.integer({ min: 0, max: 2000 }),
        fc.array(arbMessageTokens, { minLength: 1, maxLength: 3 }),
        fc.integer({ min: 0, max: 100 }),
        (history, budgetTokens, turnTokens, instructionTokens) => {
          const instructions = [counted({ role: 'system', content: 'sys' }, instructionTokens)];
          const turn = turnTokens.map((t, i) => counted({ role: 'user', content: `t${i}` }, t));
          const out = assemblePrompt({ ...base, instructions, history, turn, budgetTokens });
          const fixed = instructionTokens + turnTokens.reduce((a, b) => a + b, 0);

          if (fixed > budgetTokens) {
            expect(out.isOverflow).toBe(true);
            expect(out.historyMessages).toBe(0);
            return;
          }
          expect(out.contextTokens).toBeLessThanOrEqual(budgetTokens);
          const window = out.messages.slice(1, 1 + out.historyMessages);
          expect(window).toEqual(history.slice(history.length - out.historyMessages).map((m) => m.message));
          expect(out.contextTokens).toBe(fixed + history.slice(history.length - out.historyMessages).reduce((a, m) => a + m.tokens, 0));
          if (window.length > 0) expect(window[0]!.role).not.toBe('tool');
          // Every tool result in the window has its assistant tool_calls message in the window.
          const calledIds = new Set(window.flatMap((m) => (m.tool_calls ?? []).map((c) => c.id)));
          for (const m of window) if (m.role === 'tool') expect(calledIds.has(m.tool_call_id!)).toBe(true);
          // Every tool_calls message in the window has all its stored results in the window.
          const resultIds = new Set(window.filter((m) => m.role === 'tool').map((m) => m.tool_call_id));
          for (const m of window) for (const call of m.tool_calls ?? []) {
            if (history.some((h) => h.message.tool_call_id === call.id)) expect(resultIds.has(call.id)).toBe(true);
          }
          // Newest kept: the next older unit would not have fitted (or is an orphan).
          const next = history[history.length - out.historyMessages - 1];
          if (next !== undefined && next.message.role !== 'tool') {
            expect(out.contextTokens + next.tokens).toBeGreaterThan(budgetTokens);
          }
        },
      ),
      { numRuns: 500 },
    );
  });
});
