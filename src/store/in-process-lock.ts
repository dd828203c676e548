import type { ConversationKey } from '../domain.js';
import { conversationKeyString } from '../domain.js';
import type { LockLease, SummaryLock } from './conversation-store.js';

/**
 * The summary lock of a single instance (the embedded store, or MongoDB alone):
 * one job per conversation in this process, with the same fencing tokens and
 * TTL as the Redis lock.
 */
export class InProcessLock implements SummaryLock {
  readonly #held = new Map<string, { token: number; expiresAtMs: number }>();
  readonly #now: () => number;
  #nextToken = 0;

  constructor(now: () => number = Date.now) {
    this.#now = now;
  }

  async acquire(key: ConversationKey, ttlMs: number): Promise<LockLease | undefined> {
    const id = conversationKeyString(key);
    const current = this.#held.get(id);
    if (current !== undefined && current.expiresAtMs > this.#now()) return undefined;
    const token = ++this.#nextToken;
    this.#held.set(id, { token, expiresAtMs: this.#now() + ttlMs });
    return {
      token,
      isHeld: async () => {
        const holder = this.#held.get(id);
        return holder?.token === token && holder.expiresAtMs > this.#now();
      },
      release: async () => {
        if (this.#held.get(id)?.token === token) this.#held.delete(id);
      },
    };
  }
}
