import { describe, expect, test } from 'vitest';
import { digestMessage } from '../../../src/context/message-digest.js';
import { resultsForUnansweredCalls, UNANSWERED_CALL_RESULT } from '../../../src/context/unanswered-calls.js';
import type { ChatMessage, StoredMessage } from '../../../src/domain.js';

const u = (content: string): ChatMessage => ({ role: 'user', content });
const calls = (...ids: string[]): ChatMessage => ({
  role: 'assistant',
  content: null,
  tool_calls: ids.map((id) => ({ id, type: 'function', function: { name: 'f', arguments: '{}' } })),
});
const result = (id: string): ChatMessage => ({ role: 'tool', tool_call_id: id, content: `r ${id}` });
const store = (messages: ChatMessage[]): StoredMessage[] =>
  messages.map((message, i) => ({ message, tokens: 5, digest: digestMessage(message), seq: i + 1, createdAtMs: 0 }));
const ids = (messages: ChatMessage[]): unknown[] => messages.map((m) => [m.tool_call_id, m.content]);

describe('resultsForUnansweredCalls', () => {
  test('a new user message after a stored call nobody answered: a result for each call says so', () => {
    expect(ids(resultsForUnansweredCalls(store([u('q'), calls('a', 'b')]), [u('never mind')]))).toEqual([
      ['a', UNANSWERED_CALL_RESULT],
      ['b', UNANSWERED_CALL_RESULT],
    ]);
  });

  test('only the calls neither the store nor the turn answered', () => {
    expect(ids(resultsForUnansweredCalls(store([u('q'), calls('a', 'b', 'c'), result('a')]), [result('c'), u('go on')]))).toEqual([['b', UNANSWERED_CALL_RESULT]]);
  });

  test('nothing when every call is answered or the history ends otherwise', () => {
    expect(resultsForUnansweredCalls(store([u('q'), calls('a')]), [result('a')])).toEqual([]);
    expect(resultsForUnansweredCalls(store([u('q'), calls('a'), result('a')]), [u('next')])).toEqual([]);
    expect(resultsForUnansweredCalls(store([u('q')]), [u('next')])).toEqual([]);
  });

  test('an empty turn: the reply would follow the call, so it is answered too', () => {
    expect(ids(resultsForUnansweredCalls(store([u('q'), calls('a')]), []))).toEqual([['a', UNANSWERED_CALL_RESULT]]);
  });
});
