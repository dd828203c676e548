import fc from 'fast-check';
import { describe, expect, test } from 'vitest';
import type { ChatMessage, ConversationKey, NewMessage, TenantId, ConversationId } from '../../../src/domain.js';
import { deepFreeze, frozenJson, isDeeplyFrozen } from '../../../src/freeze.js';
import { MemoryStore } from '../../../src/store/memory-store.js';
import { decodeEntry, encodeTurn } from '../../../src/store/redis/entry-codec.js';

// Messages as a parsed request holds them, with keys that spell what the entry's JSON holds after the message.
const json = fc.jsonValue({ maxDepth: 3 });
const message = fc
  .record({ role: fc.constantFrom('user', 'assistant', 'tool'), content: fc.oneof(fc.string(), fc.constant(null), fc.array(json, { maxLength: 3 })) })
  .chain((base) =>
    fc
      .dictionary(fc.constantFrom('digest', 'createdAtMs', 'message', 'name', 'x'), json, { maxKeys: 3 })
      .map((extra) => ({ ...extra, ...base, content: [{ type: 'text', text: ',"digest":"v1d0","createdAtMs":1}', digest: 'v1d0', createdAtMs: 1_700_000_000_000 }, base.content] }) as unknown as ChatMessage),
  );

describe('frozenJson', () => {
  test('is JSON.stringify, computed once for a deep-frozen value, every time for another', () => {
    const live: ChatMessage = { role: 'user', content: 'a' };
    expect(frozenJson(live)).toBe('{"role":"user","content":"a"}');
    live.content = 'b';
    expect(frozenJson(live)).toBe('{"role":"user","content":"b"}');
    expect(frozenJson(deepFreeze({ role: 'user', content: 'c' }))).toBe('{"role":"user","content":"c"}');
  });

  test('a deep-frozen value keeps the JSON text it was frozen with', () => {
    // Text with a space JSON.stringify would not write shows the given text is the one kept.
    const given = '{"role": "user","content":"hi"}';
    expect(frozenJson(deepFreeze(JSON.parse(given) as ChatMessage, given))).toBe(given);
  });
});

describe('a stored message comes with its JSON', () => {
  const key: ConversationKey = { tenant: 't' as TenantId, conversation: 'c' as ConversationId };
  const turnOf = (messages: ChatMessage[]): NewMessage[] => messages.map((m, i) => ({ message: m, tokens: 5 + i, digest: `v1d${i}` }));

  test('Redis: a decoded entry holds a deep-frozen message whose JSON is JSON.stringify of it', () => {
    fc.assert(
      fc.property(fc.array(message, { minLength: 1, maxLength: 3 }), fc.option(fc.string(), { nil: undefined }), (messages, turnKey) => {
        const perMessage = encodeTurn(turnOf(messages), 1_700_000_000_000, turnKey === undefined ? undefined : `,"digest":"v1d0","createdAtMs":1${turnKey}`);
        messages.forEach((original, index) => {
          const decoded = decodeEntry(`${index + 1}:${perMessage[2 * index]}:0:${perMessage[2 * index + 1]}`).message;
          expect(decoded).toEqual(JSON.parse(JSON.stringify(original)));
          expect(isDeeplyFrozen(decoded)).toBe(true);
          expect(frozenJson(decoded)).toBe(JSON.stringify(decoded));
        });
      }),
      { numRuns: 300 },
    );
  });

  test('Redis: the JSON kept is the entry text itself', () => {
    const entry = '3:7:21:{"message":{"role": "user","content":"hi"},"digest":"v1abc","createdAtMs":5,"turnKey":"k"}';
    expect(frozenJson(decodeEntry(entry).message)).toBe('{"role": "user","content":"hi"}');
  });

  test('embedded store: a loaded message is deep-frozen and its JSON is JSON.stringify of it', async () => {
    const store = new MemoryStore({ ttlMs: 60_000, maxConversations: 10, maxBytes: 1 << 20, maxMessagesPerConversation: 100 });
    const messages = fc.sample(message, { numRuns: 20, seed: 7 });
    await store.append(key, turnOf(messages), { turnKey: 'k1' });
    const { messages: loaded } = await store.load(key, { maxMessages: 100, maxTokens: 10_000 });
    expect(loaded.map((stored) => stored.message)).toEqual(JSON.parse(JSON.stringify(messages)));
    for (const stored of loaded) {
      expect(isDeeplyFrozen(stored.message)).toBe(true);
      expect(frozenJson(stored.message)).toBe(JSON.stringify(stored.message));
    }
  });
});
