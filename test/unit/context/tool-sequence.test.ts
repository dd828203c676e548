import { describe, expect, test } from 'vitest';
import { findReusedCallId, findToolSequenceProblem, type ToolSequenceOptions } from '../../../src/context/tool-sequence.js';
import type { ChatMessage } from '../../../src/domain.js';

const u = (content: string): ChatMessage => ({ role: 'user', content });
const a = (content: string): ChatMessage => ({ role: 'assistant', content });
const calls = (...ids: string[]): ChatMessage => ({
  role: 'assistant',
  content: null,
  tool_calls: ids.map((id) => ({ id, type: 'function', function: { name: 'f', arguments: '{}' } })),
});
const result = (id: string): ChatMessage => ({ role: 'tool', tool_call_id: id, content: `r ${id}` });

describe('findToolSequenceProblem', () => {
  test.each<{ name: string; messages: ChatMessage[]; options?: ToolSequenceOptions; rule: string | undefined; index?: number }>([
    { name: 'plain chat', messages: [u('hi'), a('hello'), u('q')], rule: undefined },
    { name: 'a call answered, in any order', messages: [u('q'), calls('a', 'b'), result('b'), result('a'), a('done')], rule: undefined },
    { name: 'a tool message after a user message', messages: [u('q'), result('a')], rule: 'orphan_tool_result', index: 1 },
    { name: 'a tool message answering another call', messages: [calls('a'), result('x')], rule: 'orphan_tool_result', index: 1 },
    { name: 'a call left unanswered before a user message', messages: [calls('a', 'b'), result('a'), u('next')], rule: 'unanswered_tool_call', index: 0 },
    { name: 'a call unanswered at the end of a prompt', messages: [u('q'), calls('a')], rule: 'unanswered_tool_call', index: 1 },
    { name: 'a call unanswered at the end of a stored state', messages: [u('q'), calls('a')], options: { allowOpenTail: true }, rule: undefined },
    { name: 'the same call id made twice', messages: [calls('a'), result('a'), calls('a'), result('a')], rule: 'duplicate_tool_call_id', index: 2 },
    { name: 'one call answered twice', messages: [calls('a'), result('a'), result('a')], rule: 'duplicate_tool_call_id', index: 2 },
    { name: 'leading results of a new turn may answer a stored call', messages: [result('a'), u('and?')], options: { allowLeadingResults: true }, rule: undefined },
    { name: 'leading results are orphans in a prompt', messages: [result('a'), u('and?')], rule: 'orphan_tool_result', index: 0 },
    { name: 'a leading result whose id is then called again', messages: [result('a'), calls('a'), result('a')], options: { allowLeadingResults: true }, rule: 'duplicate_tool_call_id', index: 1 },
    { name: 'a call without an id', messages: [{ role: 'assistant', tool_calls: [{ type: 'function', function: { name: 'f', arguments: '{}' } }] } as unknown as ChatMessage], rule: 'duplicate_tool_call_id' },
  ])('$name', ({ messages, options, rule, index }) => {
    const problem = findToolSequenceProblem(messages, options);
    expect(problem?.rule).toBe(rule);
    if (index !== undefined) expect(problem?.index).toBe(index);
  });
});

describe('findReusedCallId', () => {
  test('a call id made again, answered earlier, or made twice later is found; answers to earlier calls are not', () => {
    expect(findReusedCallId([calls('a'), result('a')], [calls('a')])?.id).toBe('a');
    // The window may hold a result whose call lies before it.
    expect(findReusedCallId([result('b')], [u('q'), calls('b')])).toMatchObject({ index: 1, id: 'b' });
    expect(findReusedCallId([], [calls('c'), result('c'), calls('c')])).toMatchObject({ index: 2, id: 'c' });
    expect(findReusedCallId([calls('d')], [result('d'), u('next'), calls('e')])).toBeUndefined();
  });
});
