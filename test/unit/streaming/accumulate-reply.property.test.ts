// The reply rebuilt from a stream, with content-delta.ts's shortcut and the fast
// SSE parser, against the reference (reference-reply.ts: every event through
// JSON.parse, framed plainly): identical for random streams in random framings
// and random chunks, and for every near miss of a content chunk.
import { isDeepStrictEqual } from 'node:util';
import fc from 'fast-check';
import { describe, expect, test } from 'vitest';
import { createContentDeltaReader } from '../../../src/streaming/content-delta.js';
import { arbEvents, arbFraming, chunkOf, choiceOf, cut, frame, spell } from './chunk-arbitraries.js';
import { accumulate, plainSse, referenceReply, type StreamEvent } from './reference-reply.js';

const utf8 = new TextEncoder();

describe('createSseReplyAccumulator against the JSON.parse reference', () => {
  test('the same reply for random streams, framings and chunk boundaries', () => {
    let shortcutReads = 0;
    const runs = 1500;
    fc.assert(
      fc.property(
        arbEvents,
        arbFraming,
        fc.array(fc.nat(), { maxLength: 6 }),
        fc.boolean(),
        (events, framing, offsets, usageRequested) => {
          const chunks = cut(utf8.encode(frame(events, framing)), offsets);
          const expected = referenceReply(events, { usageRequested }, framing.lastUnterminated);
          const actual = accumulate(chunks, { usageRequested });
          if (!isDeepStrictEqual(actual, expected)) expect(actual).toEqual(expected);
          const read = createContentDeltaReader();
          shortcutReads += events.filter((e) => read(e.data) !== undefined).length;
        },
      ),
      { numRuns: runs },
    );
    // The comparison means something only if the shortcut was taken, and often.
    expect(shortcutReads).toBeGreaterThan(runs);
  });

  // Every single-character deletion, insertion and replacement, and every truncation, of
  // content chunks, read after a whole one (the remembered-prefix path) and alone (the full match).
  const bases: { name: string; data: string }[] = [
    { name: 'OpenAI', data: spell(chunkOf(choiceOf({ content: ' fox' })), 'compact') },
    { name: 'OpenAI, escapes', data: spell(chunkOf(choiceOf({ content: 'a"\\/\n\u0001é🌍' }), { usage: null, obfuscation: 'xY' }), 'compact') },
    { name: 'role chunk', data: spell(chunkOf(choiceOf({ role: 'assistant', content: '', refusal: null })), 'compact') },
    { name: 'Python separators, ASCII-only', data: spell(chunkOf(choiceOf({ content: 'é\ud83c\udf0d' })), 'python').replace('é', '\\u00e9').replace('🌍', '\\ud83c\\udf0d') },
  ];
  const INSERTED = ['"', '\\', '{', '}', '[', ']', ',', ':', ' ', '\t', '\u0001', '0', '1', '-', 'n', 'u', 'é'];

  function nearMisses(data: string): Set<string> {
    const out = new Set<string>();
    for (let i = 0; i <= data.length; i++) {
      out.add(data.slice(0, i)); // truncated
      if (i < data.length) out.add(data.slice(0, i) + data.slice(i + 1)); // one character deleted
      for (const c of INSERTED) {
        out.add(data.slice(0, i) + c + data.slice(i)); // one character inserted
        if (i < data.length) out.add(data.slice(0, i) + c + data.slice(i + 1)); // one character replaced
      }
    }
    out.delete(data);
    return out;
  }

  test.each(bases)('near misses of a content chunk ($name): the same reply as JSON.parse gives, or its failure', ({ data }) => {
    const whole = { data };
    const afterSame = { data: data.replace(/"content": ?"/, '$&w') }; // the same prefix: the remembered-prefix path
    const finish = { data: JSON.stringify(chunkOf(choiceOf({}, 'stop'))) };
    let accepted = 0;
    let rejectedAsInvalid = 0;
    for (const miss of nearMisses(data)) {
      // Without [DONE] a second choice shows in isComplete(), and so does usage when it was asked for.
      const streams: [StreamEvent[], boolean][] = [
        [[whole, { data: miss }, { data: '[DONE]' }], false],
        [[afterSame, { data: miss }, finish], false],
        [[afterSame, { data: miss }, finish], true],
        [[{ data: miss }, finish], true],
      ];
      for (const [events, usageRequested] of streams) {
        const actual = accumulate([utf8.encode(plainSse(events))], { usageRequested });
        const expected = referenceReply(events, { usageRequested });
        // toEqual only on a difference, for its message: it costs more than the rest of the loop.
        if (!isDeepStrictEqual(actual, expected)) expect(actual, miss).toEqual(expected);
      }
      const read = createContentDeltaReader();
      read(whole.data);
      const content = read(miss);
      const alone = createContentDeltaReader()(miss);
      if (content !== undefined || alone !== undefined) {
        accepted++;
        // Accepted: valid JSON, whose choice 0 delta content is the string read.
        const parsed = JSON.parse(miss) as { choices: { delta: { content: string } }[] };
        expect(parsed.choices[0]!.delta.content, miss).toBe(content ?? alone);
        if (content !== undefined && alone !== undefined) expect(content).toBe(alone);
      } else if (!isJson(miss)) {
        rejectedAsInvalid++;
      }
    }
    // Both kinds occur: the shortcut takes the harmless misses (e.g. a changed character
    // inside the content) and leaves the broken ones to JSON.parse.
    expect(accepted).toBeGreaterThan(50);
    expect(rejectedAsInvalid).toBeGreaterThan(data.length);
  });
});

function isJson(text: string): boolean {
  try {
    JSON.parse(text);
    return true;
  } catch {
    return false;
  }
}
