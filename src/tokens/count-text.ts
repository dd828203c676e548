// Counting plain text as the model's BPE does, with the work capped so that no input
// can stall the event loop.
//
// BPE splits text into pieces with the encoding's regex and merges each piece's bytes;
// gpt-tokenizer's merge is quadratic in the piece's length. Measured without a merge
// cache (load-encoder.ts), a piece costs ~1.3 µs per byte up to 512 bytes, 2 µs/byte at
// 1 KB, 3 µs/byte at 4 KB, and a 24 KB piece 300 ms. Two caps bound it:
// - a piece longer than MAX_PIECE_BYTES counts as its UTF-8 length;
// - a run of non-whitespace longer than MAX_EXACT_RUN_CHARS (a base64 blob, a minified
//   dump) counts as its UTF-8 length without being split at all, so 1 MB with no space
//   costs ~8 ms of scanning instead of ~0.7 s of BPE.
// Both are upper bounds: every byte-level BPE token covers at least one byte. Text under
// both caps (words, code, JSON, URLs, CJK sentences) counts exactly: what gpt-tokenizer
// counts for the whole text, as the sum of its pieces' counts (BPE never merges across
// pieces).
//
// Piece cache. Most pieces are common words, and looking a piece up in the encoding's
// 200,000-entry rank table is what counting costs on a server: between two requests other
// work evicts the table from the CPU caches, and a 50-token message then took ~50 µs
// instead of ~12 µs in a warm loop (measured). Each counter therefore keeps the counts of
// recent short pieces (PIECE_CACHE_ENTRIES, piece-count-table.ts); with it that message
// takes ~20 µs cold and ~8 µs warm. The counts are gpt-tokenizer's, piece by piece.
//
// ASCII text on o200k_base (gpt-4o and later) is split by hand (ascii-pieces.ts) rather
// than by the regex, while no piece or run reaches the caps: a 264-token English reply
// counted in 28.7 µs before, 16.8 µs with both (bench/README.md, "Issue 16").

import {
  CL100K_TOKEN_SPLIT_REGEX,
  O200K_TOKEN_SPLIT_REGEX,
  R50K_TOKEN_SPLIT_REGEX,
} from 'gpt-tokenizer/encodingParams/constants';
import { asciiPieceEnd, CR, isAscii, LF, SLASH, SPACE } from './ascii-pieces.js';
import { PieceCountTable } from './piece-count-table.js';
import type { EncodingName } from './encoding-for-model.js';
import type { BpeEncoder } from './load-encoder.js';

/** Pieces up to this many bytes are merged exactly: ~2 µs/byte at worst, no more than short random pieces cost. */
export const MAX_PIECE_BYTES = 1024;
/**
 * Longer non-whitespace runs count as their bytes. With pieces capped, counting a run exactly
 * is linear: 0.05 µs/char for minified JSON, 0.8 µs/char for base64, so a run this long
 * takes up to ~13 ms; beyond it the byte bound over-counts base64 1.45x, minified JSON 2.7x.
 */
export const MAX_EXACT_RUN_CHARS = 16_384;

// Special-token strings ("<|endoftext|>") are text the client wrote; the API never reads
// them as control tokens. With no set allowed and none disallowed, gpt-tokenizer encodes
// them as ordinary text instead of throwing (its default disallows them all).
const ORDINARY_TEXT = { disallowedSpecial: new Set<string>() };

/** Pieces whose counts each counter remembers; about 1–2 MB. */
export const PIECE_CACHE_ENTRIES = 20_000;
/** Longer pieces (rare: long numbers, identifiers, non-Latin runs) are counted each time. */
const PIECE_CACHE_MAX_CHARS = 24;

type SplitRules = 'o200k' | 'cl100k' | 'r50k';

const SPLIT_RULES: Record<EncodingName, SplitRules> = {
  o200k_base: 'o200k',
  cl100k_base: 'cl100k',
  p50k_base: 'r50k',
  r50k_base: 'r50k',
};

const SPLIT_REGEX: Record<SplitRules, RegExp> = {
  o200k: O200K_TOKEN_SPLIT_REGEX,
  cl100k: CL100K_TOKEN_SPLIT_REGEX,
  r50k: R50K_TOKEN_SPLIT_REGEX,
};

const LETTER = /^\p{L}$/u;
const MARK = /^\p{M}$/u;
const NUMBER = /^\p{N}$/u;

/** Exactly the characters `\s` matches in a `u` regex, as the split regexes see them. */
export function isRegexWhitespace(code: number): boolean {
  if (code <= SPACE) return code === SPACE || (code >= 0x09 && code <= 0x0d);
  if (code < 0xa0) return false;
  return (
    code === 0xa0 ||
    code === 0x1680 ||
    (code >= 0x2000 && code <= 0x200a) ||
    code === 0x2028 ||
    code === 0x2029 ||
    code === 0x202f ||
    code === 0x205f ||
    code === 0x3000 ||
    code === 0xfeff
  );
}

/** UTF-8 length of text[start, end), as TextEncoder encodes it (a lone surrogate becomes U+FFFD, 3 bytes). */
export function utf8ByteLength(text: string, start = 0, end = text.length): number {
  let bytes = 0;
  for (let i = start; i < end; i++) {
    const code = text.charCodeAt(i);
    if (code < 0x80) bytes += 1;
    else if (code < 0x800) bytes += 2;
    else if (code >= 0xd800 && code <= 0xdbff && i + 1 < end && isLowSurrogate(text.charCodeAt(i + 1))) {
      bytes += 4;
      i++;
    } else bytes += 3;
  }
  return bytes;
}

function isLowSurrogate(code: number): boolean {
  return code >= 0xdc00 && code <= 0xdfff;
}

export function createTextCounter(encoder: BpeEncoder, encoding: EncodingName): (text: string) => number {
  const rules = SPLIT_RULES[encoding];
  const nextPiece = new RegExp(SPLIT_REGEX[rules].source, 'uy');
  const allPieces = new RegExp(SPLIT_REGEX[rules].source, 'gu');
  const countByEncoder = (text: string): number => encoder.countTokens(text, ORDINARY_TEXT);
  const pieceCounts = new PieceCountTable(PIECE_CACHE_ENTRIES);
  // Short pieces from the cache; longer ones (rare) counted each time.
  const countPiece = (text: string, start: number, end: number): number =>
    end - start > PIECE_CACHE_MAX_CHARS ? countByEncoder(text.slice(start, end)) : pieceCounts.count(text, start, end, countByEncoder);
  // A stretch with no piece over the caps: the sum of its pieces' counts.
  const countExactly = (text: string): number => {
    let tokens = 0;
    for (const [piece] of text.matchAll(allPieces)) tokens += countPiece(piece, 0, piece.length);
    return tokens;
  };
  // o200k's split by hand on all-ASCII text (ascii-pieces.ts), while it stays under both caps.
  const countAscii = rules === 'o200k' ? (text: string): number | undefined => countAsciiUnderCaps(text, countPiece) : undefined;

  return function countText(text: string): number {
    const ascii = countAscii !== undefined && isAscii(text) ? countAscii(text) : undefined;
    if (ascii !== undefined) return ascii;
    const plan = planChunks(text, rules);
    if (plan.riskyChunks.length === 0) return text.length === 0 ? 0 : countExactly(text);
    let tokens = 0;
    let countedUpTo = 0;
    let longRun = 0;
    for (let i = 0; i < plan.riskyChunks.length; i += 2) {
      const start = plan.riskyChunks[i]!;
      const end = plan.riskyChunks[i + 1]!;
      if (start > countedUpTo) tokens += countExactly(text.slice(countedUpTo, start));
      while (longRun < plan.longRuns.length && plan.longRuns[longRun]! < start) longRun += 2;
      tokens += countRiskyChunk(text, start, end, plan.longRuns, longRun, rules, nextPiece, countExactly);
      countedUpTo = end;
    }
    if (countedUpTo < text.length) tokens += countExactly(text.slice(countedUpTo));
    return tokens;
  };
}

/**
 * The sum of an ASCII text's o200k pieces' counts, or undefined at the first piece
 * over MAX_PIECE_BYTES or non-whitespace run over MAX_EXACT_RUN_CHARS: such a text
 * takes the capped path. Under both caps the capped path counts every piece exactly,
 * so both give the same. A piece is [whitespace][non-whitespace…][whitespace…], so
 * a run's length is bounded by summing pieces from one that starts with whitespace
 * to one that ends with it.
 */
function countAsciiUnderCaps(text: string, countPiece: (text: string, start: number, end: number) => number): number | undefined {
  let tokens = 0;
  let run = 0;
  for (let start = 0, end = 0; start < text.length; start = end) {
    end = asciiPieceEnd(text, start);
    if (end - start > MAX_PIECE_BYTES) return undefined;
    if (isRegexWhitespace(text.charCodeAt(start))) run = end - start - 1;
    else run += end - start;
    if (run > MAX_EXACT_RUN_CHARS) return undefined;
    if (isRegexWhitespace(text.charCodeAt(end - 1))) run = 0;
    tokens += countPiece(text, start, end);
  }
  return tokens;
}

interface ChunkPlan {
  /** [start, end) pairs of chunks that may hold a piece over MAX_PIECE_BYTES or a long run. */
  riskyChunks: number[];
  /** [start, end) pairs of non-whitespace runs over MAX_EXACT_RUN_CHARS. */
  longRuns: number[];
}

/**
 * Cuts the text where a run of non-whitespace ends and a whitespace other than CR/LF follows
 * ("word| "). No split regex lets a piece cross such a cut (a punctuation piece takes
 * trailing newlines, never a space), and the text before it ends in non-whitespace, so
 * `$` and `(?!\S)` read the same there as in the whole text: a stretch between cuts splits
 * into the same pieces alone as inside the text, and safe stretches can be counted together
 * in one call. A chunk is risky when its runs could form a piece over MAX_PIECE_BYTES.
 */
function planChunks(text: string, rules: SplitRules): ChunkPlan {
  const riskyChunks: number[] = [];
  const longRuns: number[] = [];
  const tracksSlashChain = rules === 'o200k'; // o200k's ` ?[^\s\p{L}\p{N}]+[\r\n/]*` chains "\n/\n/…"
  let chunkStart = 0;
  let longestRun = 0;
  let longestSpace = 0;
  let longestChain = 0;
  let runStart = -1;
  let spaceStart = -1;
  let chainStart = -1;

  const endRun = (end: number): void => {
    const runLength = end - runStart;
    longestRun = Math.max(longestRun, runLength);
    if (runLength > MAX_EXACT_RUN_CHARS) longRuns.push(runStart, end);
    runStart = -1;
  };
  const endChunk = (end: number): void => {
    // 3 bytes per UTF-16 unit at most; a piece is one leading character, part of one run,
    // and a whitespace run or (o200k) a newline/slash chain after it. (A chunk with a long
    // run is always risky: MAX_EXACT_RUN_CHARS is far over MAX_PIECE_BYTES / 3.)
    const longestPieceBytes = 3 * (1 + longestRun + Math.max(longestSpace, longestChain));
    if (longestPieceBytes > MAX_PIECE_BYTES) riskyChunks.push(chunkStart, end);
    chunkStart = end;
    longestRun = 0;
    longestSpace = 0;
    longestChain = 0;
  };

  for (let i = 0; i < text.length; i++) {
    const code = text.charCodeAt(i);
    if (tracksSlashChain) {
      if (code === LF || code === CR || code === SLASH) {
        if (chainStart < 0) chainStart = i;
      } else if (chainStart >= 0) {
        longestChain = Math.max(longestChain, i - chainStart);
        chainStart = -1;
      }
    }
    if (!isRegexWhitespace(code)) {
      if (runStart < 0) runStart = i;
      if (spaceStart >= 0) {
        longestSpace = Math.max(longestSpace, i - spaceStart);
        spaceStart = -1;
      }
      continue;
    }
    if (runStart >= 0) {
      endRun(i);
      if (code !== LF && code !== CR) endChunk(i);
    }
    if (spaceStart < 0) spaceStart = i;
  }
  if (chainStart >= 0) longestChain = Math.max(longestChain, text.length - chainStart);
  if (spaceStart >= 0) longestSpace = Math.max(longestSpace, text.length - spaceStart);
  if (runStart >= 0) endRun(text.length);
  if (chunkStart < text.length) endChunk(text.length);
  return { riskyChunks, longRuns };
}

/**
 * Counts a risky chunk piece by piece: pieces over MAX_PIECE_BYTES count their bytes, and
 * everything from the piece that reaches into a long run up to the next piece boundary after
 * it counts its bytes, without running the split regex through the run.
 */
function countRiskyChunk(
  text: string,
  start: number,
  end: number,
  longRuns: readonly number[],
  firstLongRun: number,
  rules: SplitRules,
  nextPiece: RegExp,
  countExactly: (text: string) => number,
): number {
  let tokens = 0;
  let position = start; // always a piece boundary of the whole text
  let longRun = firstLongRun;
  while (position < end) {
    const runStart = longRun < longRuns.length && longRuns[longRun]! < end ? longRuns[longRun]! : Number.POSITIVE_INFINITY;
    if (position < runStart) {
      nextPiece.lastIndex = position;
      const piece = nextPiece.exec(text);
      // Every character matches some alternative of the split regexes; a miss would mean the
      // regex changed under us, and the rest of the chunk then counts as bytes.
      if (piece === null) return tokens + utf8ByteLength(text, position, end);
      const pieceEnd = position + piece[0].length;
      if (pieceEnd <= runStart) {
        const mayBeLong = piece[0].length * 3 > MAX_PIECE_BYTES;
        const bytes = mayBeLong ? utf8ByteLength(piece[0]) : 0;
        tokens += bytes > MAX_PIECE_BYTES ? bytes : countExactly(piece[0]);
        position = pieceEnd;
        continue;
      }
    }
    // This piece reaches into the run: it starts the region counted as bytes.
    const regionEnd = boundaryAfterRun(text, longRuns[longRun + 1]!, end, rules);
    tokens += utf8ByteLength(text, position, regionEnd);
    position = regionEnd;
    while (longRun < longRuns.length && longRuns[longRun]! < regionEnd) longRun += 2;
  }
  return tokens;
}

/**
 * The first piece boundary at or after the end of a non-whitespace run, found from the
 * characters around the whitespace that follows it, without splitting the run. Inside a
 * chunk, a run that does not end the chunk is followed by CR/LF-led whitespace and then
 * another run. A piece crosses from whitespace into a run only by taking its last character
 * as a prefix (a letter piece takes any non-newline; a punctuation piece, a space; r50k's
 * pieces, a space), or, in o200k, as newlines followed by "/" in a punctuation piece's tail.
 */
function boundaryAfterRun(text: string, runEnd: number, chunkEnd: number, rules: SplitRules): number {
  let afterRun = runEnd;
  for (;;) {
    if (afterRun >= chunkEnd) return chunkEnd;
    let nextRun = afterRun;
    let onlyNewlines = true;
    while (nextRun < chunkEnd && isRegexWhitespace(text.charCodeAt(nextRun))) {
      const code = text.charCodeAt(nextRun);
      if (code !== LF && code !== CR) onlyNewlines = false;
      nextRun++;
    }
    if (nextRun >= chunkEnd) return chunkEnd;
    if (rules === 'o200k' && onlyNewlines && text.charCodeAt(nextRun) === SLASH) {
      // The tail "[\r\n/]*" may carry on into this run: take it into the region too.
      afterRun = nextRun;
      while (afterRun < chunkEnd && !isRegexWhitespace(text.charCodeAt(afterRun))) afterRun++;
      continue;
    }
    const lastSpace = text.charCodeAt(nextRun - 1);
    const next = String.fromCodePoint(text.codePointAt(nextRun)!);
    return absorbsPrefix(lastSpace, next, rules) ? nextRun - 1 : nextRun;
  }
}

function absorbsPrefix(space: number, next: string, rules: SplitRules): boolean {
  if (rules === 'r50k') return space === SPACE; // ` ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+`
  const isNewline = space === LF || space === CR;
  const startsLetterPiece = LETTER.test(next) || (rules === 'o200k' && MARK.test(next));
  if (!isNewline && startsLetterPiece) return true; // `[^\r\n\p{L}\p{N}]?` + letters
  const isPunctuation = !LETTER.test(next) && !NUMBER.test(next);
  return space === SPACE && isPunctuation; // ` ?[^\s\p{L}\p{N}]+`
}
