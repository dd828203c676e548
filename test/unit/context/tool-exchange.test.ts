import { describe, expect, test } from 'vitest';
import { toolExchangeRange } from '../../../src/context/tool-exchange.js';
import { findToolSequenceProblem } from '../../../src/context/tool-sequence.js';
import type { ChatMessage } from '../../../src/domain.js';

const user = (content: string): ChatMessage => ({ role: 'user', content });
const answer = (content: string): ChatMessage => ({ role: 'assistant', content });
const calls = (...ids: string[]): ChatMessage => ({ role: 'assistant', content: null, tool_calls: ids.map((id) => ({ id, type: 'function', function: { name: 'f', arguments: '{}' } })) });
const result = (id: string): ChatMessage => ({ role: 'tool', tool_call_id: id, content: `result ${id}` });

//               0          1                2            3            4             5            6            7
const HISTORY = [user('q'), calls('a', 'b'), result('a'), result('b'), calls('c'), result('c'), answer('done'), user('thanks')];

describe('toolExchangeRange', () => {
  test.each([
    { why: 'a user message goes alone', index: 0, range: { first: 0, last: 0 } },
    { why: 'an assistant message that calls tools takes its results', index: 1, range: { first: 1, last: 3 } },
    { why: 'the first result takes its call and its sibling', index: 2, range: { first: 1, last: 3 } },
    { why: 'the last result takes its call and its sibling', index: 3, range: { first: 1, last: 3 } },
    { why: 'a call right after another exchange takes only its own results', index: 4, range: { first: 4, last: 5 } },
    { why: 'a result takes only the call just before its run', index: 5, range: { first: 4, last: 5 } },
    { why: 'a plain answer goes alone', index: 6, range: { first: 6, last: 6 } },
  ])('$why', ({ index, range }) => {
    expect(toolExchangeRange(HISTORY, index)).toEqual(range);
  });

  test('what is left keeps the tool-message rules, whichever message goes', () => {
    for (let index = 0; index < HISTORY.length; index++) {
      const { first, last } = toolExchangeRange(HISTORY, index);
      const left = [...HISTORY.slice(0, first), ...HISTORY.slice(last + 1)];
      expect(findToolSequenceProblem(left), `erasing ${index}`).toBeUndefined();
    }
  });

  test('the open tail: a call still waiting for some results goes with those it has', () => {
    const tail = [user('q'), calls('a', 'b'), result('a')];
    expect(toolExchangeRange(tail, 2)).toEqual({ first: 1, last: 2 });
    expect(toolExchangeRange(tail, 1)).toEqual({ first: 1, last: 2 });
  });

  test('results whose call is no longer stored (trimmed) go as a run', () => {
    const trimmed = [result('a'), result('b'), answer('done')];
    expect(toolExchangeRange(trimmed, 1)).toEqual({ first: 0, last: 1 });
  });
});
