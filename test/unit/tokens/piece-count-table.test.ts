import { describe, expect, test } from 'vitest';
import { PieceCountTable } from '../../../src/tokens/piece-count-table.js';

// A stand-in for BPE that says which pieces it was asked for.
function recordingCounter(): { count: (piece: string) => number; asked: string[] } {
  const asked: string[] = [];
  return { asked, count: (piece) => (asked.push(piece), piece.length * 10 + piece.charCodeAt(0) % 7) };
}

describe('PieceCountTable', () => {
  test('a piece is counted once, wherever it stands in whatever text', () => {
    const table = new PieceCountTable(100);
    const bpe = recordingCounter();
    expect(table.count('hello world', 0, 5, bpe.count)).toBe(bpe.count('hello'));
    expect(table.count('say hello', 4, 9, bpe.count)).toBe(bpe.count('hello'));
    expect(table.count('hello', 0, 5, bpe.count)).toBe(bpe.count('hello'));
    expect(bpe.asked).toEqual(['hello', 'hello', 'hello', 'hello']); // once by the table, three times by the expectations
    expect(table.size).toBe(1);
  });

  test('pieces that share a slot, differ in one unit or in length are told apart', () => {
    // Two entries: a table of 4 slots, so most pieces share a slot with another and probe on.
    const table = new PieceCountTable(2);
    const bpe = recordingCounter();
    for (const [text, start, end] of [['ab', 0, 2], ['ac', 0, 2], ['abc', 0, 3], ['xab', 1, 3], ['a', 0, 1]] as const) {
      expect(table.count(text, start, end, bpe.count)).toBe(bpe.count(text.slice(start, end)));
    }
  });

  test('full, it starts over, and counts stay right', () => {
    const table = new PieceCountTable(50);
    const bpe = recordingCounter();
    const pieces = Array.from({ length: 175 }, (_, i) => ` w${i.toString(36)}`);
    for (const round of [1, 2]) {
      for (const piece of pieces) expect(table.count(piece, 0, piece.length, bpe.count), `round ${round}: ${piece}`).toBe(bpe.count(piece));
      expect(table.size).toBeLessThanOrEqual(50);
    }
    expect(table.size).toBeGreaterThan(0);
  });
});
