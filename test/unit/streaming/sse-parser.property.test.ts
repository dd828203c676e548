// The fast SSE parser against the one it replaced (reference-sse-parser.ts: a
// streaming TextDecoder and a character loop): the same events and the same tail
// for any bytes, however they are cut into chunks. The bytes are drawn from the
// pieces that matter: field names, colons, spaces, every line end, a BOM (at the
// start and later), multi-byte characters, and invalid or truncated UTF-8.
import fc from 'fast-check';
import { describe, expect, test } from 'vitest';
import { createSseParser, type SseEvent, type SseParser } from '../../../src/streaming/sse-parser.js';
import { createReferenceSseParser } from './reference-sse-parser.js';

const utf8 = new TextEncoder();
const bytes = (...values: number[]): Uint8Array => Uint8Array.from(values);

const PIECES: readonly Uint8Array[] = [
  ...['data', 'data:', 'data: ', 'event:', 'event: error', 'id: 1', 'retry: 5', ':', ': keep-alive', ' ', 'x', '{"a":"b"}', '[DONE]', 'dat', 'eventx'].map((s) => utf8.encode(s)),
  ...['\n', '\r', '\r\n', '\n\n', '\r\n\r\n', '\r\r'].map((s) => utf8.encode(s)),
  utf8.encode('é日🌍\uFEFF'), // 2-, 3- and 4-byte characters, and a BOM that is not at the start
  bytes(0xef, 0xbb, 0xbf), // a BOM
  bytes(0xef, 0xbb), // a truncated BOM
  bytes(0x80), bytes(0xbf), bytes(0xc0), bytes(0xc1, 0x81), bytes(0xf5), bytes(0xff), // never valid
  bytes(0xe0, 0x80), bytes(0xed, 0xa0, 0x80), bytes(0xf4, 0x90, 0x80, 0x80), // overlong, a surrogate, past U+10FFFF
  bytes(0xe6, 0x97), bytes(0xf0, 0x9f, 0x8c), bytes(0xc3), // characters cut short
];

const arbStream = fc
  .array(fc.constantFrom(...PIECES), { maxLength: 40 })
  .map((pieces) => Uint8Array.from(pieces.flatMap((piece) => [...piece])));

type Parsed = { events: SseEvent[]; tail: SseEvent | undefined };

function run(create: (onEvent: (e: SseEvent) => void) => SseParser, chunks: readonly Uint8Array[]): Parsed {
  const events: SseEvent[] = [];
  const parser = create((e) => events.push(e));
  for (const chunk of chunks) parser.push(chunk);
  return { events, tail: parser.end() };
}

/** `input` cut at the given offsets (any order, repeats allowed: an empty chunk is a chunk too). */
function cut(input: Uint8Array, offsets: readonly number[]): Uint8Array[] {
  const points = [0, ...offsets.map((o) => o % (input.length + 1)).sort((a, b) => a - b), input.length];
  return points.slice(1).map((end, i) => input.subarray(points[i], end));
}

describe('createSseParser against the reference parser', () => {
  test('the same events and tail for random bytes in random chunks', () => {
    fc.assert(
      fc.property(arbStream, fc.array(fc.nat(), { maxLength: 8 }), (input, offsets) => {
        const chunks = cut(input, offsets);
        expect(run(createSseParser, chunks)).toEqual(run(createReferenceSseParser, chunks));
      }),
      { numRuns: 3000 },
    );
  });

  test('the same decoded text for any bytes in a data line, in random chunks', () => {
    // Mostly bytes >= 0x80, so that whole, cut and invalid UTF-8 sequences all come up.
    const arbByte = fc.oneof(fc.integer({ min: 0x80, max: 0xff }), fc.integer({ min: 0x80, max: 0xff }), fc.nat({ max: 0xff }));
    fc.assert(
      fc.property(fc.array(arbByte, { maxLength: 24 }), fc.array(fc.nat(), { maxLength: 6 }), (body, offsets) => {
        const input = Uint8Array.from([...utf8.encode('data: '), ...body, 0x0a, 0x0a, ...utf8.encode('data: '), ...body]);
        const chunks = cut(input, offsets);
        const reference = run(createReferenceSseParser, chunks);
        expect(run(createSseParser, chunks)).toEqual(reference);
      }),
      { numRuns: 5000 },
    );
  });

  test('the same events and tail for random bytes fed one byte at a time', () => {
    fc.assert(
      fc.property(arbStream, (input) => {
        const chunks = Array.from({ length: input.length }, (_, i) => input.subarray(i, i + 1));
        expect(run(createSseParser, chunks)).toEqual(run(createReferenceSseParser, chunks));
      }),
      { numRuns: 500 },
    );
  });

  test('a stream holding every piece, split at every byte boundary', () => {
    const dataLine = utf8.encode('data: ');
    const input = Uint8Array.from([0xef, 0xbb, 0xbf, ...PIECES.flatMap((piece) => [...dataLine, ...piece, 0x0a, 0x0a]), ...utf8.encode('data: end\r\n\r\ndata: tail')]);
    const whole = run(createReferenceSseParser, [input]);
    expect(whole.events.length).toBeGreaterThan(PIECES.length); // the input is not all dropped as noise
    expect(whole.tail).toEqual({ event: undefined, data: 'tail' });
    for (let at = 0; at <= input.length; at++) {
      const chunks = [input.subarray(0, at), input.subarray(at)];
      expect(run(createSseParser, chunks), `split at byte ${at}`).toEqual(whole);
    }
  });

  test.each([
    ['a Uint8Array', (bytes: Uint8Array): Uint8Array => bytes.slice()],
    ['a Buffer', (bytes: Uint8Array): Uint8Array => Buffer.from(bytes)],
  ])('%s the caller reuses after push does not change the bytes kept for the next chunk', (_name, copy) => {
    const chunk = utf8.encode('data: 🌍\n\n');
    const first = copy(chunk.subarray(0, 8)); // ends inside the 4-byte character
    const events: SseEvent[] = [];
    const parser = createSseParser((e) => events.push(e));
    parser.push(first);
    first.fill(0x41);
    parser.push(chunk.subarray(8));
    expect(events).toEqual([{ event: undefined, data: '🌍' }]);
  });
});
