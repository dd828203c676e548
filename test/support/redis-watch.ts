// Watching a RedisStore from outside, so that its tests survive a restructuring
// of its insides: the commands Redis ran (MONITOR), how each load was answered
// (the store's onLoad hook, which main.ts feeds to contextd_redis_loads_total),
// and which loaded messages the store decoded anew (the local cache hands every
// load the very messages it decoded before).

import { randomUUID } from 'node:crypto';
import type { Redis } from 'ioredis';
import type { StoredMessage } from '../../src/domain.js';
import type { RedisLoadPath } from '../../src/store/redis/redis-store.js';

/**
 * Every command Redis ran while `run` ran, those of scripts included, as
 * MONITOR on a connection of its own (opened from `observer`) shows them; the
 * test's own commands through `observer` during `run` show too. Recording ends
 * at an ECHO sent after `run`, so nothing from after it is mixed in.
 */
export async function commandsDuring(observer: Redis, run: () => Promise<unknown>): Promise<string[][]> {
  const monitor = await observer.monitor();
  const seen: string[][] = [];
  const marker = `done-${randomUUID()}`;
  let isRecording = true;
  const isDone = new Promise<void>((resolve) => {
    monitor.on('monitor', (_time: string, args: string[]) => {
      if (!isRecording) return;
      if (args[0]?.toLowerCase() === 'echo' && args[1] === marker) {
        isRecording = false;
        resolve();
      } else {
        seen.push(args);
      }
    });
  });
  try {
    await run();
    await observer.echo(marker);
    await isDone;
  } finally {
    monitor.disconnect();
  }
  return seen;
}

/** The commands called `name` (any case), with their arguments. */
export const named = (commands: readonly string[][], name: string): string[][] => commands.filter((args) => args[0]?.toLowerCase() === name);

/** Records how a store answered its loads: give `onLoad` to RedisStore as main.ts gives it the metric's. */
export class LoadPaths {
  readonly seen: RedisLoadPath[] = [];
  readonly onLoad = (path: RedisLoadPath): void => void this.seen.push(path);

  count(path: RedisLoadPath): number {
    return this.seen.filter((seen) => seen === path).length;
  }
}

/**
 * Counts the loaded messages a store decoded anew. With its local cache on,
 * RedisStore gives every load the deep-frozen messages it already decoded
 * (RedisStore.load: shared with later loads), while a message decoded again
 * from Redis's entry has new contents: so a message whose contents no earlier
 * snapshot shown here held was decoded for it (or, once, for this store's own
 * append that put it in the cache).
 */
export class DecodedMessages {
  readonly #seen = new WeakSet<object>();

  newIn(snapshot: { messages: readonly StoredMessage[] }): number {
    let count = 0;
    for (const { message } of snapshot.messages) {
      if (this.#seen.has(message)) continue;
      this.#seen.add(message);
      count++;
    }
    return count;
  }
}

/** Every key under `prefix` with everything it holds, as text: for "this text is nowhere in Redis". */
export async function redisDump(redis: Redis, prefix = ''): Promise<string> {
  const parts: string[] = [];
  let cursor = '0';
  do {
    const [next, keys] = await redis.scan(cursor, 'MATCH', `${prefix}*`, 'COUNT', 1000);
    cursor = next;
    for (const name of keys) {
      const type = await redis.type(name);
      if (type === 'string') parts.push(name, String(await redis.get(name)));
      else if (type === 'list') parts.push(name, ...(await redis.lrange(name, 0, -1)));
      else if (type === 'hash') parts.push(name, JSON.stringify(await redis.hgetall(name)));
      else if (type === 'zset') parts.push(name, ...(await redis.zrange(name, 0, -1)));
      else if (type === 'set') parts.push(name, ...(await redis.smembers(name)));
      else parts.push(name, `<${type}>`);
    }
  } while (cursor !== '0');
  return parts.join('\n');
}
