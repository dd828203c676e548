import { randomUUID } from 'node:crypto';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import type { ConversationId, ConversationKey, TenantId } from '../../src/domain.js';
import type { SummaryLock } from '../../src/store/conversation-store.js';
import { InProcessLock } from '../../src/store/in-process-lock.js';
import { RedisStore } from '../../src/store/redis/redis-store.js';
import { startRedis, type RedisServer } from '../support/redis-server.js';
import { describeWithRedis } from '../support/services.js';

const key = (conversation: string): ConversationKey => ({ tenant: 't' as TenantId, conversation: conversation as ConversationId });

function lockContract(name: string, make: () => { lock: SummaryLock; expire?: () => Promise<void> }): void {
  describe(name, () => {
    test('one holder at a time; released, it can be taken again with a larger fencing token', async () => {
      const { lock } = make();
      const first = await lock.acquire(key('a'), 60_000);
      expect(first).toBeDefined();
      expect(await lock.acquire(key('a'), 60_000)).toBeUndefined();
      expect(await lock.acquire(key('b'), 60_000)).toBeDefined(); // per conversation
      expect(await first!.isHeld()).toBe(true);
      await first!.release();
      const second = await lock.acquire(key('a'), 60_000);
      expect(second!.token).toBeGreaterThan(first!.token);
      expect(await first!.isHeld()).toBe(false);
      await first!.release(); // a stale holder's release leaves the new holder alone
      expect(await second!.isHeld()).toBe(true);
    });

    test('a lapsed lease can be taken over, and its holder can tell', async () => {
      const { lock } = make();
      const first = await lock.acquire(key('c'), 1);
      await expect.poll(async () => (await lock.acquire(key('c'), 60_000)) !== undefined).toBe(true);
      expect(await first!.isHeld()).toBe(false);
    });
  });
}

lockContract('InProcessLock', () => ({ lock: new InProcessLock() }));

describeWithRedis('RedisStore summary lock', () => {
  let server: RedisServer;
  let client: Redis;
  beforeAll(async () => {
    server = await startRedis();
    client = new Redis(server.url);
  });
  afterAll(async () => {
    client?.disconnect();
    await server?.stop();
  });
  lockContract('Redis lock', () => {
    const store = new RedisStore({ client, ttlMs: 60_000, maxCachedMessages: 10, mode: 'standalone', keyPrefix: `lock:${randomUUID()}:` });
    return { lock: { acquire: (k, ttl) => store.acquireSummaryLock(k, ttl) } };
  });
});
