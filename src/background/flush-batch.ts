// How many conversations a flush round claims. MongoDB takes a round as one
// insert; a server slower than expected (FerretDB on a busy machine takes
// seconds for a few hundred documents) can time a big one out, and a round
// that times out is handed back whole and tried again at the same size, so
// the flusher would never catch up. So the size adapts: halved after a round
// MongoDB did not take in time, grown back by a quarter after a full round it
// took, never above the configured size.

export class FlushBatch {
  readonly #max: number;
  #size: number;

  constructor(max: number) {
    this.#max = Math.max(1, Math.floor(max));
    this.#size = this.#max;
  }

  /** Conversations the next round claims. */
  get size(): number {
    return this.#size;
  }

  /** MongoDB did not take the round within its deadline. */
  timedOut(): void {
    this.#size = Math.max(1, Math.floor(this.#size / 2));
  }

  /** MongoDB took a round of `claimed` conversations. */
  took(claimed: number): void {
    if (claimed < this.#size) return;
    this.#size = Math.min(this.#max, this.#size + Math.ceil(this.#size / 4));
  }
}
