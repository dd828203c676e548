import fc from 'fast-check';
import { describe, expect, test } from 'vitest';
import { decodeJsonString, jsonStringEnd } from '../../../src/streaming/json-string.js';

/** What JSON.parse says: the end of the one string literal a prefix of `text` can be, or -1. */
function referenceEnd(text: string): number {
  for (let end = 2; end <= text.length; end++) {
    try {
      if (typeof JSON.parse(text.slice(0, end)) === 'string') return end;
    } catch {
      // not (yet) a literal
    }
  }
  return -1;
}

describe('jsonStringEnd and decodeJsonString', () => {
  test.each([
    ['""', ''],
    ['"plain"', 'plain'],
    ['"a\\"b"', 'a"b'],
    ['"back\\\\slash"', 'back\\slash'],
    ['"\\/"', '/'],
    ['"\\b\\f\\n\\r\\t"', '\b\f\n\r\t'],
    ['"caf\\u00e9 caf\\u00E9"', 'café café'],
    ['"\\ud83c\\udf0d"', '🌍'], // a surrogate pair, escaped
    ['"\\ud800x"', '\ud800x'], // a lone surrogate, as JSON.parse keeps it
    ['"raw 🌍 日本 \ud800"', 'raw 🌍 日本 \ud800'],
    ['"\\\\\\""', '\\"'],
    ['"\\u0000"', '\u0000'],
  ])('%s decodes to its value', (literal, value) => {
    const text = `{"k":${literal},"x":1}`;
    const end = jsonStringEnd(text, 5);
    expect(end).toBe(5 + literal.length);
    expect(decodeJsonString(text, 5, end)).toBe(value);
    expect(value).toBe(JSON.parse(literal));
  });

  test.each([
    ['no closing quote', '"abc'],
    ['no opening quote', 'abc"'],
    ['an escaped closing quote', '"abc\\"'],
    ['a backslash at the end', '"abc\\'],
    ['an unknown escape', '"a\\xb"'],
    ['a short \\u escape', '"\\u12"'],
    ['a \\u escape with a non-hex digit', '"\\u12g4"'],
    ['a \\u escape with a control character as a digit', '"\\u001\u0010"'],
    ['a raw tab', '"a\tb"'],
    ['a raw NUL', '"a\u0000b"'],
    ['a raw LF', '"a\nb"'],
    ['a raw U+001F', '"a\u001fb"'],
  ])('rejects %s', (_name, text) => {
    expect(jsonStringEnd(text, 0)).toBe(-1);
    expect(referenceEnd(text)).toBe(-1);
  });

  test('agrees with JSON.parse on random texts built from the characters that matter', () => {
    const arbText = fc
      .array(fc.constantFrom('"', '\\', 'u', 'n', 'x', '0', '9', 'a', 'F', 'g', '/', 'é', '🌍', '\ud83c', '\t', '\u0000', '\u001f', ' ', '\u2028'), { maxLength: 16 })
      .map((parts) => `"${parts.join('')}`);
    fc.assert(
      fc.property(arbText, fc.string({ maxLength: 3 }), (literal, after) => {
        const text = `${literal}${after}`;
        const end = jsonStringEnd(text, 0);
        expect(end).toBe(referenceEnd(text));
        if (end !== -1) expect(decodeJsonString(text, 0, end)).toBe(JSON.parse(text.slice(0, end)));
      }),
      { numRuns: 5000 },
    );
  });

  test('agrees with JSON.parse on every string JSON.stringify writes', () => {
    fc.assert(
      fc.property(fc.string({ unit: 'binary', maxLength: 20 }), (value) => {
        const literal = JSON.stringify(value);
        const text = `[${literal},1]`;
        const end = jsonStringEnd(text, 1);
        expect(end).toBe(1 + literal.length);
        expect(decodeJsonString(text, 1, end)).toBe(value);
      }),
      { numRuns: 2000 },
    );
  });
});
