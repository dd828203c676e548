// o200k_base's pre-split (the regex that cuts text into the pieces BPE merges)
// for text that is all ASCII, written out by hand. The regex, with its Unicode
// property classes, was a third of what counting a reply cost (10 µs of the
// 28 µs a 264-token English reply took) and a match array per piece for the
// collector (bench/README.md, "Issue 16"). Text with any other character takes
// the regex.
//
// The regex, alternative by alternative, where ASCII letters are [A-Za-z]
// (upper case Lu, lower case Ll; no Lt, Lm, Lo or M), digits [0-9], and \s is
// [\t\n\v\f\r ]; "other" is any character that is none of those:
//   1. [^\r\n\p{L}\p{N}]?[Lu…M]*[Ll…M]+('s|'d|'m|'t|'ll|'ve|'re, any case)?
//   2. [^\r\n\p{L}\p{N}]?[Lu…M]+[Ll…M]*(contraction)?
//   3. \p{N}{1,3}
//   4.  ?[^\s\p{L}\p{N}]+[\r\n/]*
//   5. \s*[\r\n]+
//   6. \s+(?!\S)
//   7. \s+
// The first alternative that matches at a position wins, each as the regex
// engine backtracks it (worked out case by case below); the differential
// tests hold this to the regex itself.

const TAB = 0x09;
export const LF = 0x0a;
export const CR = 0x0d;
export const SPACE = 0x20;
const APOSTROPHE = 0x27;
export const SLASH = 0x2f;

/** Whether every UTF-16 unit of text[start, end) is ASCII. */
export function isAscii(text: string, start = 0, end = text.length): boolean {
  for (let i = start; i < end; i++) if (text.charCodeAt(i) > 0x7f) return false;
  return true;
}

// Each ASCII unit's class, looked up rather than compared: the split reads every unit.
const UPPER = 1;
const LOWER = 2;
const DIGIT = 3;
const NEWLINE = 4; // CR, LF
const SPACE_CLASS = 5; // the rest of \s
const OTHER = 6;
const CLASS = new Uint8Array(128).map((_, code) => {
  if (code >= 0x41 && code <= 0x5a) return UPPER;
  if (code >= 0x61 && code <= 0x7a) return LOWER;
  if (code >= 0x30 && code <= 0x39) return DIGIT;
  if (code === LF || code === CR) return NEWLINE;
  if (code === SPACE || (code >= TAB && code <= CR)) return SPACE_CLASS;
  return OTHER;
});

/** The class of text[at] (an ASCII text), or 0 past its end. */
const classAt = (text: string, at: number): number => (at < text.length ? CLASS[text.charCodeAt(at)]! : 0);
const isLetterClass = (cls: number): boolean => cls === UPPER || cls === LOWER;
const isSpaceClass = (cls: number): boolean => cls === NEWLINE || cls === SPACE_CLASS;
const lower = (code: number): number => code | 0x20;

/** Where the piece that starts at `start` ends, in ASCII `text` (start < text.length). */
export function asciiPieceEnd(text: string, start: number): number {
  const n = text.length;
  const cls = classAt(text, start);
  const next = classAt(text, start + 1);

  // 1, 2: letters, after one optional character that is not CR/LF, a letter or a digit.
  // That prefix is taken only when a letter follows it; a letter at `start` has none.
  const letters = isLetterClass(cls) ? start : cls !== NEWLINE && cls !== DIGIT && isLetterClass(next) ? start + 1 : -1;
  if (letters >= 0) {
    let end = letters;
    while (classAt(text, end) === UPPER) end++;
    // 1: upper case then lower case; when no lower case follows the upper-case run,
    // 2 matches the run alone (no backtracking of [Lu]* can make room for [Ll]+).
    while (classAt(text, end) === LOWER) end++;
    return end + contractionLength(text, end);
  }

  // 3: up to three digits.
  if (cls === DIGIT) return classAt(text, start + 1) !== DIGIT ? start + 1 : classAt(text, start + 2) !== DIGIT ? start + 2 : start + 3;

  // 4: other characters, after one optional space, then any CR, LF and '/'.
  const others = cls === OTHER ? start : text.charCodeAt(start) === SPACE && next === OTHER ? start + 1 : -1;
  if (others >= 0) {
    let end = others + 1;
    while (classAt(text, end) === OTHER) end++;
    while (end < n && (classAt(text, end) === NEWLINE || text.charCodeAt(end) === SLASH)) end++;
    return end;
  }

  // What is left starts a run of whitespace.
  let runEnd = start + 1;
  let lastNewline = cls === NEWLINE ? start : -1;
  for (let c = classAt(text, runEnd); isSpaceClass(c); c = classAt(text, ++runEnd)) if (c === NEWLINE) lastNewline = runEnd;
  // 5: \s* backtracks to the run's last CR/LF, and [\r\n]+ takes it.
  if (lastNewline >= 0) return lastNewline + 1;
  // 6: the whole run at the end of the text, else all of it but its last character
  // (which goes with what follows), if that leaves one; 7: else the one character.
  if (runEnd === n) return n;
  return runEnd - start >= 2 ? runEnd - 1 : start + 1;
}

/** Length of an English contraction ('s, 'd, 'm, 't, 'll, 've, 're in any case) at `at`, else 0. */
function contractionLength(text: string, at: number): number {
  if (text.charCodeAt(at) !== APOSTROPHE || at + 1 >= text.length) return 0;
  const first = lower(text.charCodeAt(at + 1));
  if (first === 0x73 || first === 0x64 || first === 0x6d || first === 0x74) return 2; // s d m t
  const second = at + 2 < text.length ? lower(text.charCodeAt(at + 2)) : -1;
  if ((first === 0x6c && second === 0x6c) || (first === 0x76 && second === 0x65) || (first === 0x72 && second === 0x65)) return 3; // ll ve re
  return 0;
}
