import { describe, expect, test } from 'vitest';
import { digestMessage } from '../../../src/context/message-digest.js';
import { splitRequest } from '../../../src/context/split-request.js';
import type { ChatMessage, StoredMessage } from '../../../src/domain.js';

const u = (content: string): ChatMessage => ({ role: 'user', content });
const a = (content: string): ChatMessage => ({ role: 'assistant', content });
const sys: ChatMessage = { role: 'system', content: 'be brief' };

function store(messages: ChatMessage[], createdAtMs = 0, turnKeys: Record<number, string> = {}): StoredMessage[] {
  return messages.map((message, i) => ({ message, tokens: 5, digest: digestMessage(message), seq: i + 1, createdAtMs, turnKey: turnKeys[i] }));
}

function split(messages: ChatMessage[], stored: StoredMessage[], extra: { idempotencyKey?: string; nowMs?: number; references?: number[] } = {}) {
  return splitRequest({
    messages,
    digestAt: (i) => digestMessage(messages[i]!),
    stored,
    idempotencyKey: extra.idempotencyKey,
    nowMs: extra.nowMs ?? 100_000,
    retryWindowMs: 10_000,
    ...(extra.references === undefined ? {} : { isReference: (i: number) => extra.references!.includes(i) }),
  });
}

describe('splitRequest', () => {
  const history = [u('hi'), a('hello'), u('name?'), a('Ana')];

  test.each([
    { name: 'new conversation', messages: [sys, u('q')], stored: [], turnStart: 1 },
    { name: 'client sends only the new message', messages: [sys, u('q')], stored: history, turnStart: 1 },
    { name: 'client re-sends its whole history', messages: [sys, ...history, u('q')], stored: history, turnStart: 5 },
    { name: 're-sent history longer than what was loaded', messages: [u('old'), a('older'), ...history, u('q')], stored: history, turnStart: 6 },
    { name: 're-sent history with nothing new', messages: [...history], stored: history, turnStart: 4 },
    { name: 'several instructions', messages: [sys, { role: 'developer', content: 'x' } as ChatMessage, u('q')], stored: history, turnStart: 2 },
    { name: 'edited history: what follows the last assistant message is new', messages: [u('hi'), a('edited'), u('q')], stored: history, turnStart: 2 },
  ])('$name', ({ messages, stored, turnStart }) => {
    const out = split(messages, store(stored));
    expect(out.turnStart).toBe(turnStart);
    expect(out.isRetry).toBe(false);
    expect(out.history).toHaveLength(stored.length);
  });

  test('the SDK shape of a re-sent reply (refusal: null, annotations) matches the stored reply', () => {
    const sdkReply = { role: 'assistant', content: 'Ana', refusal: null, annotations: [] } as ChatMessage;
    const out = split([u('hi'), a('hello'), u('name?'), sdkReply, u('q')], store(history));
    expect(out.turnStart).toBe(4);
  });

  test('tool results after a stored tool_calls message are the new turn', () => {
    const call: ChatMessage = { role: 'assistant', content: null, tool_calls: [{ id: 'c1', type: 'function', function: { name: 'f', arguments: '{}' } }] };
    const result: ChatMessage = { role: 'tool', tool_call_id: 'c1', content: '42' };
    expect(split([result], store([u('q'), call])).turnStart).toBe(0);
    expect(split([u('q'), call, result], store([u('q'), call])).turnStart).toBe(2);
  });

  test('a retry with the same Idempotency-Key: history before the stored turn, nothing to store', () => {
    const stored = store([...history, u('q'), a('first answer')], 0, { 4: 'key-1' });
    const out = split([sys, u('q')], stored, { idempotencyKey: 'key-1' });
    expect(out).toMatchObject({ isRetry: true, turnStart: 1 });
    expect(out.history.map((m) => m.message)).toEqual(history);
  });

  test('a full-history client retrying a turn whose reply it never got', () => {
    const stored = store([...history, u('q'), a('first answer')], 0);
    const out = split([...history, u('q')], stored, { nowMs: 10 ** 9 });
    expect(out).toMatchObject({ isRetry: true, turnStart: 4 });
    expect(out.history).toHaveLength(4);
  });

  test('a new-message-only client repeating its last turn is a retry only within the window', () => {
    const stored = store([...history, u('q'), a('first answer')], 100_000);
    expect(split([u('q')], stored, { nowMs: 105_000 })).toMatchObject({ isRetry: true, turnStart: 0 });
    expect(split([u('q')], stored, { nowMs: 200_000 })).toMatchObject({ isRetry: false, turnStart: 0 });
  });

  describe('re-sent history the client rebuilt from its own objects', () => {
    const call = (args: string): ChatMessage => ({
      role: 'assistant',
      content: null,
      tool_calls: [{ id: 'call_7', type: 'function', function: { name: 'lookup', arguments: args } }],
    });
    const result: ChatMessage = { role: 'tool', tool_call_id: 'call_7', content: 'item 5: in stock' };

    test('LangChain re-serialises the stored call: recognised, only the tool result is new', () => {
      const stored = store([u('is item 5 in stock?'), call('{"q":"item 5"}')]);
      expect(split([sys, u('is item 5 in stock?'), call('{"q": "item 5"}'), result], stored).turnStart).toBe(3);
    });

    test('anchored on the newest stored reply: an older part the store no longer holds alike still aligns', () => {
      // The store's copy starts with a message the client's copy does not have (or has differently).
      const stored = store([u('summarised long ago'), a('hello'), u('name?'), a('Ana')]);
      const out = split([u('hi'), a('HELLO (edited by the app)'), u('name?'), a('Ana'), u('q')], stored);
      expect(out.turnStart).toBe(4);
    });

    test('a retry is told from an anchor: the same reply text earlier in the history does not anchor a retried turn', () => {
      const stored = store([u('first?'), a('OK.'), u('second?'), a('OK.')], 0);
      // The client never got the last "OK." and sends its turn again.
      expect(split([u('first?'), a('OK.'), u('second?')], stored, { nowMs: 10 ** 9 })).toMatchObject({ isRetry: true, turnStart: 2 });
    });

    test('a user message as the newest stored message is no anchor unless the whole overlap matches', () => {
      const stored = store([u('hi'), a('hello'), u('yes')]);
      expect(split([u('other'), a('reply'), u('yes')], stored).turnStart).toBe(2);
    });

    test('unaligned history that starts with a stored tool exchange: the copies are not new', () => {
      // The conversation moved on (the newest stored message is not in the request); the client re-sends an older exchange.
      const stored = store([u('q'), call('{"q":"item 5"}'), result, a('in stock'), u('thanks'), a('welcome')]);
      const out = split([u('q'), { ...call('{"q":"item 5"}'), content: 'checking' }, result, u('and item 6?')], stored);
      expect(out.turnStart).toBe(3);
    });
  });

  describe('item_references (the Responses API): what the model made, named by id, re-sent', () => {
    /** What parse-responses-request makes of an item_reference: an assistant message holding one. */
    const reference: ChatMessage = { role: 'assistant', content: null };
    const call = (id: string): ChatMessage => ({ role: 'assistant', content: null, tool_calls: [{ id, type: 'function', function: { name: 'lookup', arguments: '{}' } }] });
    const result = (id: string): ChatMessage => ({ role: 'tool', tool_call_id: id, content: 'blue' });

    test('earlier replies by reference (the AI SDK with store on): what follows the last one is the new turn', () => {
      const stored = store(history);
      const out = split([sys, u('hi'), reference, u('name?'), reference, u('q')], stored, { references: [2, 4] });
      expect(out).toMatchObject({ turnStart: 5, isRetry: false });
      expect(out.history).toHaveLength(4);
    });

    test("a tool loop's call by reference, its result new: the turn is the result alone", () => {
      const stored = store([u('colour of item 5?'), call('c1')]);
      const out = split([sys, u('colour of item 5?'), reference, result('c1')], stored, { references: [2] });
      expect(out.turnStart).toBe(3);
    });

    test('a request ending with a reference holds nothing new, as one ending with an assistant message the store lacks', () => {
      const stored = store(history);
      expect(split([sys, u('q'), reference], stored, { references: [2] }).turnStart).toBe(3);
      expect(split([sys, u('q'), a('unknown')], stored).turnStart).toBe(3);
    });
  });
});
