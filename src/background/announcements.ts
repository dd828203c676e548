/** One announced piece of work: settled once, when it is done or called off. */
export interface Announcement {
  readonly isSettled: boolean;
  /** Releases whoever waits for it; a no-op after the first call. */
  settle(): void;
}

/**
 * Work announced under a key before it can be seen (a turn or a link whose
 * reply has just ended), so that a reader of that key waits for it rather than
 * miss it: the persist queue's turn reservations, the response link book's
 * tickets. Taken in the same tick as the reply's last byte.
 */
export class Announcements {
  readonly #open = new Map<string, Set<Promise<void>>>();

  get size(): number {
    return this.#open.size;
  }

  announce(key: string): Announcement {
    let release!: () => void;
    const settled = new Promise<void>((resolve) => (release = resolve));
    const open = this.#open.get(key) ?? new Set<Promise<void>>();
    open.add(settled);
    this.#open.set(key, open);
    let isSettled = false;
    return {
      get isSettled() {
        return isSettled;
      },
      settle: () => {
        if (isSettled) return;
        isSettled = true;
        open.delete(settled);
        if (open.size === 0 && this.#open.get(key) === open) this.#open.delete(key);
        release();
      },
    };
  }

  /** Resolves once every announcement open under `key` now is settled. */
  async settledFor(key: string): Promise<void> {
    const open = this.#open.get(key);
    if (open !== undefined) await Promise.all([...open]);
  }

  /** Resolves once no announcement is open, under any key (those made meanwhile included). */
  async allSettled(): Promise<void> {
    while (this.#open.size > 0) await Promise.all([...this.#open.values()].flatMap((open) => [...open]));
  }
}
