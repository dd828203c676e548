// One JSON string literal (RFC 8259 §7) inside a larger text: where it ends, and
// its value. Lets content-delta.ts take a chunk's content without JSON.parse of
// the whole chunk. Accepts exactly what JSON.parse accepts in a string and decodes
// to exactly what it returns (lone surrogates, raw or \u-escaped, pass through as
// they do there). Pure: no clock, no I/O.

const QUOTE = 0x22;
const BACKSLASH = 0x5c;

/** The character each one-letter escape stands for, by the letter's code. */
const ESCAPED: Readonly<Record<number, string>> = {
  0x22: '"',
  0x5c: '\\',
  0x2f: '/',
  0x62: '\b',
  0x66: '\f',
  0x6e: '\n',
  0x72: '\r',
  0x74: '\t',
};
const U = 0x75;

/**
 * The index just past the string literal that opens at text[start], or -1 when
 * none does: no opening quote, a raw control character, a bad escape or no closing quote.
 */
export function jsonStringEnd(text: string, start: number): number {
  if (text.charCodeAt(start) !== QUOTE) return -1;
  for (let i = start + 1; i < text.length; i++) {
    const code = text.charCodeAt(i);
    if (code === QUOTE) return i + 1;
    if (code < 0x20) return -1;
    if (code !== BACKSLASH) continue;
    const escape = text.charCodeAt(++i);
    if (escape === U) {
      if (!isHex4(text, i + 1)) return -1;
      i += 4;
    } else if (ESCAPED[escape] === undefined) {
      return -1; // also NaN: the text ended after the backslash
    }
  }
  return -1;
}

/** The value of the string literal text[start, end), which jsonStringEnd(text, start) accepted with `end`. */
export function decodeJsonString(text: string, start: number, end: number): string {
  const last = end - 1; // the closing quote
  let backslash = text.indexOf('\\', start + 1);
  if (backslash === -1 || backslash > last) return text.slice(start + 1, last); // most tokens: nothing to decode
  let value = '';
  let run = start + 1; // the start of the text not yet copied to `value`
  while (backslash !== -1 && backslash < last) {
    value += text.slice(run, backslash);
    const escape = text.charCodeAt(backslash + 1);
    if (escape === U) {
      // One UTF-16 code unit: a surrogate pair is two escapes, which join up in `value`.
      value += String.fromCharCode(parseInt(text.slice(backslash + 2, backslash + 6), 16));
      run = backslash + 6;
    } else {
      value += ESCAPED[escape]!;
      run = backslash + 2;
    }
    backslash = text.indexOf('\\', run);
  }
  return value + text.slice(run, last);
}

function isHex4(text: string, start: number): boolean {
  for (let i = start; i < start + 4; i++) {
    const code = text.charCodeAt(i); // NaN past the end, which no range holds
    if (!((code >= 0x30 && code <= 0x39) || (code >= 0x41 && code <= 0x46) || (code >= 0x61 && code <= 0x66))) return false;
  }
  return true;
}
