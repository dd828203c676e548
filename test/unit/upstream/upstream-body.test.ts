import fc from 'fast-check';
import { describe, expect, test } from 'vitest';
import type { ChatMessage } from '../../../src/domain.js';
import { deepFreeze } from '../../../src/store/freeze.js';
import { upstreamBodyJson } from '../../../src/upstream/upstream-body.js';

const message = fc.record({ role: fc.constantFrom('system', 'user', 'assistant', 'tool'), content: fc.oneof(fc.string(), fc.array(fc.jsonValue(), { maxLength: 3 })) }) as fc.Arbitrary<ChatMessage>;

describe('upstreamBodyJson', () => {
  test('is JSON.stringify({ ...raw, messages }) for any parsed body, frozen messages or not, sent once or again', () => {
    fc.assert(
      fc.property(
        fc.dictionary(fc.string(), fc.jsonValue(), { maxKeys: 6 }),
        fc.boolean(),
        fc.array(fc.tuple(message, fc.boolean()), { maxLength: 6 }),
        (fields, withMessages, drawn) => {
          // As the request parser gives it: from JSON text, so key order and __proto__ are JSON.parse's.
          const raw = JSON.parse(JSON.stringify(withMessages ? { ...fields, messages: [] } : fields)) as Record<string, unknown>;
          const messages = drawn.map(([m, frozen]) => (frozen ? deepFreeze(structuredClone(m)) : structuredClone(m)));
          const expected = JSON.stringify({ ...raw, messages });
          expect(upstreamBodyJson(raw, messages)).toBe(expected);
          // Again, with the frozen ones' JSON kept from the first call.
          expect(upstreamBodyJson(raw, messages)).toBe(expected);
        },
      ),
      { numRuns: 300 },
    );
  });

  test('keeps the messages where the client put them among the other fields', () => {
    const raw = JSON.parse('{"model":"m","messages":[{"role":"user","content":"x"}],"stream":true}') as Record<string, unknown>;
    const stored = deepFreeze({ role: 'assistant', content: 'stored' } as ChatMessage);
    expect(upstreamBodyJson(raw, [stored, { role: 'user', content: 'new' }])).toBe(
      '{"model":"m","messages":[{"role":"assistant","content":"stored"},{"role":"user","content":"new"}],"stream":true}',
    );
  });
});
