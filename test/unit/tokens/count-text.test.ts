import { createRequire } from 'node:module';
import fc from 'fast-check';
import {
  CL100K_TOKEN_SPLIT_REGEX,
  O200K_TOKEN_SPLIT_REGEX,
  R50K_TOKEN_SPLIT_REGEX,
} from 'gpt-tokenizer/encodingParams/constants';
import { beforeAll, describe, expect, test } from 'vitest';
import { tokenCounterFor } from '../../../src/tokens/count-tokens.js';
import {
  isRegexWhitespace,
  MAX_EXACT_RUN_CHARS,
  MAX_PIECE_BYTES,
  PIECE_CACHE_ENTRIES,
  utf8ByteLength,
} from '../../../src/tokens/count-text.js';
import { ENCODINGS, type EncodingName } from '../../../src/tokens/encoding-for-model.js';

const SPLIT_REGEX: Record<EncodingName, RegExp> = {
  o200k_base: O200K_TOKEN_SPLIT_REGEX,
  cl100k_base: CL100K_TOKEN_SPLIT_REGEX,
  p50k_base: R50K_TOKEN_SPLIT_REGEX,
  r50k_base: R50K_TOKEN_SPLIT_REGEX,
};

// The reference: gpt-tokenizer's own count of the whole text as ordinary text, no caps.
const requireEncoding = createRequire(import.meta.url);
function plainCount(encoding: EncodingName, text: string): number {
  const encoder = requireEncoding(`gpt-tokenizer/encoding/${encoding}`) as {
    countTokens(text: string, options: { disallowedSpecial: Set<string> }): number;
  };
  return encoder.countTokens(text, { disallowedSpecial: new Set() });
}

// Just over the run cap, yet short enough to count without caps for comparison.
const LONG = MAX_EXACT_RUN_CHARS + 1000;

const countText = (encoding: EncodingName, text: string): number => tokenCounterFor(encoding).countText(text);

// Deterministic high-entropy text: base64 of a linear congruential byte stream.
function base64(chars: number): string {
  const bytes = Buffer.alloc(Math.ceil((chars * 3) / 4));
  let state = chars;
  for (let i = 0; i < bytes.length; i++) {
    state = (state * 1103515245 + 12345) >>> 0;
    bytes[i] = state >>> 24;
  }
  return bytes.toString('base64').slice(0, chars);
}
const cjk = (chars: number): string => '的一是不了人我在有他这中大来上国个到说们为子和你地出道也时年得就那要下以生会自着去之过家学对可她里'.repeat(Math.ceil(chars / 48)).slice(0, chars);

beforeAll(() => {
  for (const encoding of ENCODINGS) countText(encoding, 'warm up');
});

describe('isRegexWhitespace', () => {
  test('agrees with \\s of a u-flag regex on every UTF-16 code unit', () => {
    const mismatches: number[] = [];
    for (let code = 0; code <= 0xffff; code++) {
      if (isRegexWhitespace(code) !== /\s/u.test(String.fromCharCode(code))) mismatches.push(code);
    }
    expect(mismatches).toEqual([]);
  });
});

describe('utf8ByteLength', () => {
  test.each([
    ['', 0],
    ['abc', 3],
    ['é', 2],
    ['的', 3],
    ['😀', 4],
    ['\ud800', 3], // a lone surrogate encodes as U+FFFD
    ['a\udc00b', 5],
  ])('%j is %i bytes', (text, bytes) => {
    expect(utf8ByteLength(text)).toBe(bytes);
  });

  test('equals TextEncoder for any string', () => {
    const encoder = new TextEncoder();
    fc.assert(
      fc.property(fc.string({ unit: 'binary', maxLength: 64 }), (text) => {
        expect(utf8ByteLength(text)).toBe(encoder.encode(text).length);
      }),
    );
  });
});

describe('countText is exact for ordinary text', () => {
  const ordinary: [string, string][] = [
    ['empty', ''],
    ['words', 'The quick brown fox jumps over the lazy dog.'],
    ['contractions', "I'm sure they'll say it's fine, won't they? DON'T"],
    ['code', 'export function f(a: number): string {\n\treturn `${a}`.padStart(4, "0"); // why\n}\n'],
    ['pretty JSON', JSON.stringify({ id: 42, tags: ['a', 'b'], nested: { ok: true, n: null } }, null, 2)],
    ['minified JSON', JSON.stringify({ items: Array.from({ length: 120 }, (_, i) => ({ id: i, name: `item-${i}` })) })],
    ['long URL', `https://example.com/a/b/c?${'q=1&x=abc%20def&'.repeat(30)}#frag`],
    ['CJK sentence', `${cjk(300)}。${cjk(200)}`],
    ['emoji and marks', 'naïve café 😀🎉 e\u0301 a\u0308 👍🏽 🇫🇷'],
    ['unicode spaces', 'a\u00a0b\u2003c\u3000d\ufeffe \u2028 f\u202fg'],
    ['whitespace shapes', '  leading\n\n\n  \t\ttrailing  \r\n\r\n   \n'],
    ['indentation', `${' '.repeat(300)}x\n${'\t'.repeat(200)}y`],
    ['markdown separators', `| a | b |\n|${'-'.repeat(300)}|${'-'.repeat(300)}|\n${'='.repeat(250)}\n`],
    ['base64 under the run cap', base64(MAX_EXACT_RUN_CHARS)],
    ['newline-slash chain', `x!${'\n/'.repeat(150)} y`],
    ['only spaces', ' '.repeat(100)],
  ];
  test.each(ENCODINGS.flatMap((encoding) => ordinary.map(([name, text]) => [encoding, name, text] as const)))(
    '%s: %s',
    (encoding, _name, text) => {
      expect(countText(encoding, text)).toBe(plainCount(encoding, text));
    },
  );

  // Texts built from every kind of split boundary, with runs of a few hundred characters that
  // make a chunk risky (so it is counted piece by piece) while no piece passes the caps.
  const fragment = fc.oneof(
    fc.constantFrom(' ', '  ', '\n', '\r\n', '\n\n', '\t', ' \n ', '\u00a0', '\u3000', '/', '\n/', '//'),
    fc.constantFrom('word', 'Word', 'WORD', "it's", "'S", '123', '4567', '!', '?!', '(', '...', '"', '#', '-', '_'),
    fc.constantFrom('的', '日本語', 'é', 'e\u0301', '\u0301', '😀', '\ud800', 'Ω', '٣'),
    fc.string({ unit: 'binary', maxLength: 6 }),
    fc.constantFrom('ab1'.repeat(120), 'x/'.repeat(150), 'Ab'.repeat(140), '的1'.repeat(110), '\n'.repeat(200), ' '.repeat(250)),
  );
  const text = fc.array(fragment, { maxLength: 60 }).map((parts) => parts.join(''));

  test.each(ENCODINGS)('%s: equals the plain count on generated text', (encoding) => {
    fc.assert(
      fc.property(text, (generated) => {
        expect(countText(encoding, generated)).toBe(plainCount(encoding, generated));
      }),
      { numRuns: 300 },
    );
  });
});

describe('the piece cache', () => {
  test.each(ENCODINGS)('%s: counts are the same from the cache, and after more distinct pieces than it holds', (encoding) => {
    const early = 'Honestly, the quarterly budget quietly doubles the retry logic (request 7) — 日本語 naïve 😀';
    expect(countText(encoding, early)).toBe(plainCount(encoding, early));
    expect(countText(encoding, early)).toBe(plainCount(encoding, early));
    // Enough distinct pieces to push every earlier one out, each counted right on the way.
    const flood = Array.from({ length: PIECE_CACHE_ENTRIES + 500 }, (_, i) => ` w${i.toString(36)}x`).join('');
    expect(countText(encoding, flood)).toBe(plainCount(encoding, flood));
    expect(countText(encoding, early)).toBe(plainCount(encoding, early));
    // A long piece is never cached, and still counted exactly.
    const longPiece = `${'Supercalifragilistic'.repeat(4)} ${'9'.repeat(40)}`;
    expect(countText(encoding, longPiece)).toBe(plainCount(encoding, longPiece));
  });
});

describe('countText bounds long pieces and runs from above', () => {
  // What the caps promise, spelled out on the pieces of the whole text: a piece over
  // MAX_PIECE_BYTES counts its bytes, and so does a piece touching a non-whitespace run over
  // MAX_EXACT_RUN_CHARS or lying in the CR/LF-led whitespace after one (the run's last piece
  // may have taken those newlines); every other piece counts exactly.
  function cappedCount(encoding: EncodingName, text: string): number {
    const regions = [...text.matchAll(/\S+(?:[\r\n]\s*)?/gu)]
      .filter((run) => run[0].trimEnd().length > MAX_EXACT_RUN_CHARS)
      .map((run) => ({ start: run.index, end: run.index + run[0].length, runEnd: run.index + run[0].trimEnd().length }));
    let tokens = 0;
    for (const piece of text.matchAll(new RegExp(SPLIT_REGEX[encoding].source, 'gu'))) {
      const start = piece.index;
      const end = start + piece[0].length;
      const inRegion = regions.some((region) => start < region.runEnd ? end > region.start : end <= region.end);
      const bytes = utf8ByteLength(piece[0]);
      tokens += inRegion || bytes > MAX_PIECE_BYTES ? bytes : plainCount(encoding, piece[0]);
    }
    return tokens;
  }

  const longInputs: [string, () => string][] = [
    ['one long letter piece', () => 'a'.repeat(5000)],
    ['long random letters', () => base64(6000).replace(/[^a-z]/g, 'q')],
    ['long CJK piece', () => cjk(2000)],
    ['long space run', () => ' '.repeat(5000)],
    ['long newline run', () => '\n'.repeat(5000)],
    ['punctuation then newlines', () => `!${'\n'.repeat(3000)}x`],
    ['newline-slash chain', () => `x!${'\n/'.repeat(600)} y`],
    ['base64 over the run cap', () => base64(MAX_EXACT_RUN_CHARS + 3000)],
    ['long run between words', () => `Here is the blob: ${base64(LONG)} and the text goes on.`],
    ['long run, newline, letters', () => `see:\n${base64(LONG)}\nnext line\n\tindented`],
    ['long run, newline, space, word', () => `${base64(LONG)}\n hello\n\n world`],
    ['long run, newline, punctuation', () => `(${base64(LONG)})\n(more) [x]\n (y)`],
    ['long run, newline, digits', () => `${'x'.repeat(LONG)}\n 123\n456`],
    ['long run, newline, ideographic space, digits', () => `${base64(LONG)}\n\u3000123 x`],
    ['long run, newline, tab, combining mark', () => `${base64(LONG)}\n\t\u0483 x`], // o200k letter pieces take marks, and a tab before them
    ['long run, newline, space, punctuation', () => `${base64(LONG)}\n ("quoted") x`], // ' ("' is one token
    ['long run, tab, letters', () => `${base64(LONG)}\n\tabc ${base64(LONG)}\n 9 z`],
    ['long run, space-led start', () => ` ${'Z'.repeat(LONG)}\n ok`],
    ['two long runs', () => `${base64(LONG)}\n${base64(LONG)}\r\n end`],
    ['long run of marks', () => `a${'\u0301'.repeat(LONG)}\nb`],
  ];
  test.each(ENCODINGS.flatMap((encoding) => longInputs.map(([name, make]) => [encoding, name, make] as const)))(
    '%s: %s',
    (encoding, _name, make) => {
      const input = make();
      const counted = countText(encoding, input);
      expect(counted).toBe(cappedCount(encoding, input));
      expect(counted).toBeGreaterThanOrEqual(plainCount(encoding, input));
    },
  );

  // o200k's punctuation piece takes "[\r\n/]*" after it, so newlines and then "/" after a long
  // run may belong to the run's last piece: the run after them joins the bytes-counted region.
  test.each(ENCODINGS)('%s: newlines then "/" after a long run', (encoding) => {
    const input = `${'!'.repeat(LONG)}\n\n/usr/bin\n//x/ y`;
    const counted = countText(encoding, input);
    expect(counted).toBeGreaterThanOrEqual(cappedCount(encoding, input));
    expect(counted).toBeGreaterThanOrEqual(plainCount(encoding, input));
    expect(counted).toBeLessThanOrEqual(utf8ByteLength(input));
  });

  test('a piece over the cap counts its bytes', () => {
    const piece = 'a'.repeat(MAX_PIECE_BYTES + 1);
    expect(countText('o200k_base', piece)).toBe(MAX_PIECE_BYTES + 1);
    expect(countText('o200k_base', piece.slice(1))).toBe(plainCount('o200k_base', piece.slice(1)));
  });
});

describe('special-token text is ordinary text', () => {
  const specials = ['<|endoftext|>', '<|im_start|>', '<|im_end|>', '<|im_sep|>', '<|endofprompt|>', '<|fim_prefix|>', '<|start|>'];
  test.each(ENCODINGS.flatMap((encoding) => specials.map((special) => [encoding, special] as const)))(
    '%s: %s is counted as its characters, not as one special token',
    (encoding, special) => {
      const text = `before ${special} after`;
      const inner = special.slice(2, -2);
      expect(countText(encoding, text)).toBe(
        countText(encoding, 'before') + countText(encoding, ' <|') + countText(encoding, inner) + countText(encoding, '|>') + countText(encoding, ' after'),
      );
    },
  );

  test('"<|endoftext|>" is 7 cl100k tokens, as tiktoken encode_ordinary gives', () => {
    expect(countText('cl100k_base', '<|endoftext|>')).toBe(7);
  });
});

describe('countText speed', () => {
  // The requirement; the one timing bound in this suite.
  const noSpace: [string, () => string][] = [
    ['one repeated letter', () => 'x'.repeat(1_000_000)],
    ['random base64', () => base64(1_000_000)],
    ['letter-digit alternation', () => 'a1'.repeat(500_000)],
    ['CJK', () => cjk(1_000_000)],
  ];
  test.each(ENCODINGS.flatMap((encoding) => noSpace.map(([name, make]) => [encoding, name, make] as const)))(
    '%s: 1 MB with no space (%s) in under 100 ms',
    (encoding, _name, make) => {
      const input = make();
      // CPU time of this process (not wall time, which other test workers on
      // the same cores stretch), best of three to shed one-off JIT and GC work.
      const cpuMs: number[] = [];
      for (let run = 0; run < 3; run++) {
        const started = process.cpuUsage();
        const counted = countText(encoding, input);
        const used = process.cpuUsage(started);
        cpuMs.push((used.user + used.system) / 1000);
        expect(counted).toBe(utf8ByteLength(input));
      }
      expect(Math.min(...cpuMs)).toBeLessThan(100);
    },
  );
});

test('tokenCounterFor returns one counter per encoding', () => {
  expect(tokenCounterFor('o200k_base')).toBe(tokenCounterFor('o200k_base'));
  expect(tokenCounterFor('cl100k_base')).not.toBe(tokenCounterFor('o200k_base'));
  expect(tokenCounterFor('cl100k_base').encoding).toBe('cl100k_base');
});
