// The summary lock of a conversation: `SET …:lock <token> NX PX ttl`, the
// token from an INCR of `…:fence`, so every holder has a larger one than the
// last; released only by its holder (compare-and-delete). Both keys carry the
// conversation's hash tag, so they share its slot.

import type { Cluster, Redis } from 'ioredis';
import type { LockLease } from '../conversation-store.js';

const RELEASE = "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0";

/** `base` is the conversation's `<prefix>{<tag>}` (keys.ts); undefined when another holder has the lock. */
export async function acquireSummaryLock(client: Redis | Cluster, base: string, ttlMs: number): Promise<LockLease | undefined> {
  const lockKey = `${base}:lock`;
  const token = await client.incr(`${base}:fence`);
  const acquired = await client.set(lockKey, String(token), 'PX', ttlMs, 'NX');
  if (acquired !== 'OK') return undefined;
  return {
    token,
    isHeld: async () => (await client.get(lockKey)) === String(token),
    release: async () => {
      await client.eval(RELEASE, 1, lockKey, String(token));
    },
  };
}
