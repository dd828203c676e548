// The token counts of short pieces a counter has seen (count-text.ts), found by
// the piece's place in the text being counted, with no substring cut out and no
// string hashed by a Map: on a 264-token English reply, cutting each piece out
// and looking it up in a Map cost 6.4 µs of the split's 14 (bench/README.md,
// "Issue 16"). Open addressing over a power-of-two table, FNV-1a over the UTF-16
// units; a piece is cut out only when it is new. A slot's hash and count sit
// side by side, so a lookup that finds its piece reads one line of the table
// and the piece. Full, it starts over: the common pieces come back within a
// few messages.

const FNV_OFFSET = 0x811c9dc5 | 0;
const FNV_PRIME = 0x01000193;

export class PieceCountTable {
  readonly #maxEntries: number;
  readonly #mask: number;
  readonly #keys: (string | undefined)[];
  /** Slot i's hash at 2i, its count at 2i + 1. */
  readonly #hashAndCount: Int32Array;
  #size = 0;

  /** At most `maxEntries` pieces, in a table at most half full. */
  constructor(maxEntries: number) {
    let capacity = 1;
    while (capacity < 2 * maxEntries) capacity *= 2;
    this.#maxEntries = maxEntries;
    this.#mask = capacity - 1;
    this.#keys = new Array<string | undefined>(capacity).fill(undefined);
    this.#hashAndCount = new Int32Array(2 * capacity);
  }

  get size(): number {
    return this.#size;
  }

  /** The count of text[start, end): remembered, else `countPiece` of it (then remembered). */
  count(text: string, start: number, end: number, countPiece: (piece: string) => number): number {
    let hash = FNV_OFFSET;
    for (let i = start; i < end; i++) hash = Math.imul(hash ^ text.charCodeAt(i), FNV_PRIME);
    const length = end - start;
    let slot = hash & this.#mask;
    for (let key = this.#keys[slot]; key !== undefined; key = this.#keys[slot]) {
      if (this.#hashAndCount[2 * slot] === hash && key.length === length && sameUnits(key, text, start)) return this.#hashAndCount[2 * slot + 1]!;
      slot = (slot + 1) & this.#mask;
    }
    const piece = text.slice(start, end);
    const count = countPiece(piece);
    if (this.#size >= this.#maxEntries) {
      this.#keys.fill(undefined);
      this.#size = 0;
      slot = hash & this.#mask;
    }
    this.#keys[slot] = piece;
    this.#hashAndCount[2 * slot] = hash;
    this.#hashAndCount[2 * slot + 1] = count;
    this.#size++;
    return count;
  }
}

/** Whether `key` equals text[start, start + key.length). */
function sameUnits(key: string, text: string, start: number): boolean {
  for (let i = 0; i < key.length; i++) if (key.charCodeAt(i) !== text.charCodeAt(start + i)) return false;
  return true;
}
