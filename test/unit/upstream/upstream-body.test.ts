import fc from 'fast-check';
import { describe, expect, test } from 'vitest';
import type { ChatMessage } from '../../../src/domain.js';
import { deepFreeze } from '../../../src/freeze.js';
import { upstreamBody } from '../../../src/upstream/upstream-body.js';

// JSON values as a parsed request body holds them (no undefined, no functions).
const json = fc.jsonValue({ maxDepth: 3 });
const message = fc.record({ role: fc.constantFrom('system', 'user', 'assistant', 'tool'), content: fc.oneof(fc.string(), fc.constant(null), fc.array(json, { maxLength: 3 })) }, { requiredKeys: ['role'] }).chain((base) =>
  fc.dictionary(fc.string({ maxLength: 8 }), json, { maxKeys: 3 }).map((extra) => ({ ...extra, ...base }) as unknown as ChatMessage),
);

describe('upstreamBody', () => {
  test('is byte for byte JSON.stringify of the body with the messages replaced, frozen messages or not, key order kept', () => {
    fc.assert(
      fc.property(
        fc.dictionary(fc.string({ maxLength: 10 }), json, { maxKeys: 6 }),
        fc.array(fc.tuple(message, fc.boolean()), { maxLength: 12 }),
        fc.boolean(),
        (raw, entries, messagesFirst) => {
          const body = messagesFirst ? { messages: [], ...raw } : { ...raw, messages: [] };
          const messages = entries.map(([m, frozen]) => (frozen ? deepFreeze(structuredClone(m)) : m));
          const expected = JSON.stringify({ ...body, messages });
          // Twice: the second time the frozen messages' JSON comes from the cache.
          expect(upstreamBody(body, messages)).toBe(expected);
          expect(upstreamBody(body, messages)).toBe(expected);
        },
      ),
      { numRuns: 400 },
    );
  });

  test('a body without messages gets them last, as the spread does', () => {
    const messages = [deepFreeze({ role: 'user', content: 'hi' }) as ChatMessage];
    expect(upstreamBody({ model: 'm', stream: true }, messages)).toBe(JSON.stringify({ model: 'm', stream: true, messages }));
  });

  test("a client's field that spells the placeholder text cannot move the messages", () => {
    // The placeholder is random per process; a field holding any other text is just text.
    const body = { model: 'm', user: 'contextd-list-000000000000000000000000', metadata: { note: '"contextd-list-"' } };
    const messages = [{ role: 'user', content: 'x' } as ChatMessage];
    expect(upstreamBody(body, messages)).toBe(JSON.stringify({ ...body, messages }));
  });
});
