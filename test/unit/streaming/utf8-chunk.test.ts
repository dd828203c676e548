import fc from 'fast-check';
import { describe, expect, test } from 'vitest';
import { completeUtf8Length } from '../../../src/streaming/utf8-chunk.js';

const bytes = (...values: number[]): Uint8Array => Uint8Array.from(values);

describe('completeUtf8Length', () => {
  test.each([
    ['empty', bytes(), 0],
    ['ASCII', bytes(0x61, 0x0a), 2],
    ['a whole 2-byte character', bytes(0x61, 0xc3, 0xa9), 3],
    ['the lead byte of a 2-byte character', bytes(0x61, 0xc3), 1],
    ['a 3-byte character cut after 1 and 2 bytes', bytes(0x61, 0xe6, 0x97), 1],
    ['a whole 3-byte character', bytes(0xe6, 0x97, 0xa5), 3],
    ['a 4-byte character cut after 3 bytes', bytes(0x61, 0xf0, 0x9f, 0x8c), 1],
    ['a whole 4-byte character', bytes(0x61, 0xf0, 0x9f, 0x8c, 0x8d), 5],
    ['stray continuation bytes', bytes(0x61, 0x80, 0x80, 0x80), 4],
    ['a lead byte after an unfinished character', bytes(0xf0, 0x9f, 0xc3), 2],
  ])('%s', (_name, input, expected) => {
    expect(completeUtf8Length(input)).toBe(expected);
  });

  test('decoding chunk by chunk, each cut before the character it ends inside, equals decoding the whole', () => {
    const arbByte = fc.oneof(fc.integer({ min: 0x80, max: 0xff }), fc.nat({ max: 0xff }));
    fc.assert(
      fc.property(fc.array(arbByte, { maxLength: 30 }), fc.array(fc.nat(), { maxLength: 6 }), (values, offsets) => {
        const input = Uint8Array.from(values);
        const points = [0, ...offsets.map((o) => o % (input.length + 1)).sort((a, b) => a - b), input.length];
        const decoder = new TextDecoder('utf-8', { ignoreBOM: true });
        let carry = new Uint8Array(0);
        let text = '';
        for (let i = 1; i < points.length; i++) {
          const chunk = Uint8Array.from([...carry, ...input.subarray(points[i - 1], points[i])]);
          const whole = completeUtf8Length(chunk);
          text += decoder.decode(chunk.subarray(0, whole));
          carry = chunk.slice(whole);
        }
        text += decoder.decode(carry);
        expect(text).toBe(new TextDecoder('utf-8', { ignoreBOM: true }).decode(input));
      }),
      { numRuns: 5000 },
    );
  });
});
