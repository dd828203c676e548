import { describe, expect, test } from 'vitest';
import { cutToTokens, foldableMessages, summaryRequestMessages } from '../../../src/context/summary-request.js';
import type { ChatMessage, StoredMessage } from '../../../src/domain.js';
import { tokenCounterFor } from '../../../src/tokens/count-tokens.js';

const counter = tokenCounterFor('o200k_base');
let seq = 0;
const stored = (message: ChatMessage): StoredMessage => ({ message, tokens: 5, digest: `d${++seq}`, seq, createdAtMs: 0 });
const user = (text: string) => stored({ role: 'user', content: text });
const assistant = (text: string) => stored({ role: 'assistant', content: text });
const calls = (id: string) => stored({ role: 'assistant', content: null, tool_calls: [{ id, type: 'function', function: { name: 'lookup', arguments: '{"q":1}' } }] });
const result = (id: string) => stored({ role: 'tool', tool_call_id: id, content: 'found' });

describe('summaryRequestMessages', () => {
  test('the prompt, then the previous summary and a transcript that shows tool calls and results', () => {
    const [system, transcript] = summaryRequestMessages('PROMPT', { text: 'Ana likes tea.', tokens: 9, coversSeq: 2, createdAtMs: 0 }, [
      user('Book a table'),
      calls('c1'),
      result('c1'),
      assistant('Booked for 8pm.'),
    ]);
    expect(system).toEqual({ role: 'system', content: 'PROMPT' });
    expect(transcript!.content).toContain('Previous summary:\nAna likes tea.');
    expect(transcript!.content).toContain('[user] Book a table');
    expect(transcript!.content).toContain('(called lookup({"q":1}) as c1)');
    expect(transcript!.content).toContain('[tool result for c1] found');
    expect(transcript!.content).toContain('[assistant] Booked for 8pm.');
  });

  test('no previous summary says so', () => {
    expect(summaryRequestMessages('P', undefined, [user('hi')])[1]!.content).toContain('Previous summary:\n(none)');
  });
});

describe('cutToTokens', () => {
  const text = 'Ana ordered 3 blue mugs on Tuesday and wants them gift-wrapped. '.repeat(10);
  test.each([1, 7, 20, 64])('the longest prefix within %i tokens', (maxTokens) => {
    const cut = cutToTokens(text, maxTokens, (t) => counter.countText(t));
    expect(counter.countText(cut)).toBeLessThanOrEqual(maxTokens);
    expect(text.startsWith(cut)).toBe(true);
    expect(counter.countText(text.slice(0, cut.length + 1))).toBeGreaterThan(maxTokens);
  });
  test('text that fits is untouched; zero tokens is empty; a surrogate pair is never split', () => {
    expect(cutToTokens('short', 10, (t) => counter.countText(t))).toBe('short');
    expect(cutToTokens('anything', 0, (t) => counter.countText(t))).toBe('');
    const emoji = cutToTokens('🌍'.repeat(20), 3, (t) => t.length);
    expect(emoji.length % 2).toBe(0);
  });
});

describe('foldableMessages', () => {
  test('everything when the list is whole', () => {
    const all = [user('a'), calls('x'), result('x')];
    expect(foldableMessages(all, false)).toEqual(all);
  });
  test('a list cut short never ends inside a tool exchange', () => {
    const head = [user('a'), assistant('b')];
    expect(foldableMessages([...head, user('c'), calls('y'), result('y')], true)).toEqual([...head, expect.objectContaining({ message: { role: 'user', content: 'c' } })]);
    expect(foldableMessages([...head, calls('z')], true)).toEqual(head);
  });
});
