import fc from 'fast-check';
import { O200K_TOKEN_SPLIT_REGEX } from 'gpt-tokenizer/encodingParams/constants';
import { describe, expect, test } from 'vitest';
import { asciiPieceEnd, isAscii } from '../../../src/tokens/ascii-pieces.js';

// The oracle: o200k_base's split regex, as gpt-tokenizer runs it.
const regexPieces = (text: string): string[] => [...text.matchAll(new RegExp(O200K_TOKEN_SPLIT_REGEX.source, 'gu'))].map((match) => match[0]);

function handPieces(text: string): string[] {
  const pieces: string[] = [];
  for (let start = 0, end = 0; start < text.length; start = end) {
    end = asciiPieceEnd(text, start);
    expect(end).toBeGreaterThan(start);
    pieces.push(text.slice(start, end));
  }
  return pieces;
}

// Every ASCII unit, and more often the ones the regex's alternatives turn on.
const tricky = fc.constantFrom(' ', ' ', '\t', '\n', '\r', '\r\n', '\v', '\f', "'", '/', '!', '.', '"', '_', '0', '7', 'a', 's', 'l', 'v', 'e', 'r', 't', 'd', 'm', 'A', 'S', 'L', 'V', 'E', 'R', 'T', 'D', 'M', 'Z', 'z');
const anyAscii = fc.integer({ min: 0, max: 0x7f }).map((code) => String.fromCharCode(code));
const word = fc.constantFrom('word', 'Word', 'WORD', 'wORD', "it's", "I'LL", "we've", "'re", "don'T", 'x/', '\n/\n/', '123', '45678', '  ', '\n \n', ' \t ');
const asciiText = fc.array(fc.oneof(tricky, anyAscii, word), { maxLength: 40 }).map((parts) => parts.join(''));

describe('asciiPieceEnd', () => {
  test('cuts every ASCII text where o200k_base split regex does', () => {
    fc.assert(
      fc.property(asciiText, (text) => {
        expect(handPieces(text)).toEqual(regexPieces(text));
      }),
      { numRuns: 5_000 },
    );
  });

  test.each([
    ['prose', 'The quick brown fox, it said, jumps over the lazy dog.\n\nThen it rested.'],
    ['contractions in any case', "I'm sure they'll say it's fine, won't they? DON'T WE'VE 'Re'll'd"],
    ['code', 'export function f(a: number): string {\n\treturn `${a}`.padStart(4, "0"); // why\n}\n'],
    ['digits in threes', '1234567 89 0 x12y345'],
    ['whitespace shapes', '  leading\n\n\n  \t\ttrailing  \r\n\r\n   \n  5 \t! \v\fq'],
    ['newline-slash chain', `x!${'\n/'.repeat(5)} y`],
    ['a space before punctuation, digits, newlines', ' ! 7 \n " ?'],
    ['every ASCII unit', Array.from({ length: 128 }, (_, code) => String.fromCharCode(code)).join('')],
    ['every pair of ASCII classes', 'aA0 \n\t!/\'aA0 \n\t!/\'Aa a0 0a !a a! \na\n!\n0 \t\tA'],
  ])('%s', (_name, text) => {
    expect(handPieces(text)).toEqual(regexPieces(text));
  });
});

describe('isAscii', () => {
  test.each([
    ['', true],
    ['plain', true],
    ['\u007f', true],
    ['\u0080', false],
    ['café', false],
    ['😀', false],
  ])('%j: %s', (text, expected) => {
    expect(isAscii(text)).toBe(expected);
  });

  test('looks only at the range it is given', () => {
    expect(isAscii('é abc é', 2, 5)).toBe(true);
    expect(isAscii('é abc é', 0, 5)).toBe(false);
  });
});
