import { describe, expect, test } from 'vitest';
import { digestMessage, storedDigest } from '../../../src/context/message-digest.js';
import type { ChatMessage, StoredMessage } from '../../../src/domain.js';

const call = (args: string, extra: Record<string, unknown> = {}): ChatMessage => ({
  role: 'assistant',
  content: null,
  tool_calls: [{ id: 'call_1', type: 'function', function: { name: 'lookup', arguments: args } }],
  ...extra,
});

describe('digestMessage: equal for what the model sees alike', () => {
  test.each<{ name: string; stored: ChatMessage; resent: ChatMessage }>([
    { name: 'tool-call arguments re-serialised with other whitespace (LangChain)', stored: call('{"q":"item 5"}'), resent: call('{"q": "item 5"}') },
    { name: 'tool-call arguments with keys in another order', stored: call('{"a":1,"b":[1,{"c":2,"d":3}]}'), resent: call('{"b": [1, {"d": 3, "c": 2}], "a": 1}') },
    { name: 'text sent as text parts', stored: { role: 'user', content: 'hello there' }, resent: { role: 'user', content: [{ type: 'text', text: 'hello ' }, { type: 'text', text: 'there' }] } },
    { name: 'null optional fields', stored: { role: 'assistant', content: 'Ana' }, resent: { role: 'assistant', content: 'Ana', refusal: null, name: null, tool_calls: [] } as unknown as ChatMessage },
    { name: 'empty content for a tool call', stored: call('{}'), resent: call('{}', { content: '' }) },
    { name: 'no arguments streamed for a call without parameters, re-sent as {}', stored: call(''), resent: call('{}') },
    { name: 'a missing tool-call type', stored: call('{}'), resent: { ...call('{}'), tool_calls: [{ id: 'call_1', function: { name: 'lookup', arguments: '{}' } }] } as unknown as ChatMessage },
  ])('$name', ({ stored, resent }) => {
    expect(digestMessage(resent)).toBe(digestMessage(stored));
  });

  test.each<{ name: string; a: ChatMessage; b: ChatMessage }>([
    { name: 'other argument values', a: call('{"q":"item 5"}'), b: call('{"q":"item 6"}') },
    { name: 'arguments that do not parse are compared as text', a: call('{"q": oops'), b: call('{"q":oops') },
    { name: 'another role', a: { role: 'user', content: 'x' }, b: { role: 'assistant', content: 'x' } },
    { name: 'another call id', a: call('{}'), b: { ...call('{}'), tool_calls: [{ id: 'call_2', type: 'function', function: { name: 'lookup', arguments: '{}' } }] } },
  ])('but not for $name', ({ a, b }) => {
    expect(digestMessage(a)).not.toBe(digestMessage(b));
  });
});

describe('storedDigest', () => {
  test('a digest stored by an older version is recomputed from its message', () => {
    const message = call('{"q":"item 5"}');
    const stored: StoredMessage = { message, tokens: 9, digest: 'olddigestfromversion1xxxxxx', seq: 1, createdAtMs: 0 };
    expect(storedDigest(stored)).toBe(digestMessage(call('{"q": "item 5"}')));
    const current: StoredMessage = { ...stored, digest: digestMessage(message) };
    expect(storedDigest(current)).toBe(current.digest);
  });
});

describe('tool-call arguments holding deeply nested JSON (issue 12)', () => {
  // Not in canonical form (a space after the colon), so the canonical form and the text differ.
  const deep = (levels: number): string => `{"q": ${'['.repeat(levels)}${']'.repeat(levels)}}`;

  test('10,000 levels: no stack overflow; compared as text', () => {
    expect(digestMessage(call(deep(10_000)))).toBe(digestMessage(call(deep(10_000))));
    expect(digestMessage(call(deep(10_000)))).not.toBe(digestMessage(call(deep(9_999))));
    // As text past 128 levels, so whitespace counts there; the canonical form is for the nesting real arguments have.
    expect(digestMessage(call(deep(200)))).not.toBe(digestMessage(call(deep(200).replace(': ', ':'))));
    expect(digestMessage(call(deep(120)))).toBe(digestMessage(call(deep(120).replace(': ', ':'))));
  });

  test('the digest does not depend on how deep the caller stack is', () => {
    // 2,000 levels canonicalise on an empty stack but overflowed a deeper one, where the
    // overflow was caught and the text used instead: one message, two digests.
    const message = call(deep(2_000));
    const expected = digestMessage(message);
    const atDepth = (frames: number): string => (frames === 0 ? digestMessage(message) : atDepth(frames - 1));
    let checked = 0;
    for (let frames = 0; ; frames += 100) {
      let digest: string;
      try {
        digest = atDepth(frames);
      } catch {
        break; // the stack ran out outside the digest's own walk: deep enough
      }
      expect(digest, `digest ${frames} frames deep`).toBe(expected);
      checked++;
    }
    expect(checked).toBeGreaterThan(10);
  });
});
