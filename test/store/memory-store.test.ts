import { describe, expect, test } from 'vitest';
import type { ConversationId, ConversationKey, NewMessage, TenantId } from '../../src/domain.js';
import { StoreUnavailableError } from '../../src/errors.js';
import { MemoryStore, RECENT_TURN_KEY_LIMIT, type MemoryStoreOptions } from '../../src/store/memory-store.js';
import { runStoreContract } from './store-contract.js';

runStoreContract('MemoryStore', async () => {
  const store = new MemoryStore({ ttlMs: 3_600_000, maxConversations: 1_000, maxBytes: 50_000_000, maxMessagesPerConversation: 1_000 });
  return { store, cleanup: () => store.close() };
});

const UNLIMITED = { maxMessages: 10_000, maxTokens: Number.MAX_SAFE_INTEGER };
const ONE_KB = 'x'.repeat(1_000);

function key(conversation: string): ConversationKey {
  return { tenant: 'tenant' as TenantId, conversation: conversation as ConversationId };
}

function messages(count: number, content = 'hello'): NewMessage[] {
  return Array.from({ length: count }, (_, index) => ({
    message: { role: 'user', content: `${content}-${index}` },
    tokens: 1,
    digest: `digest-${index}`,
  }));
}

/** A store with roomy bounds except those a test names, on a clock the test moves. */
function storeWith(bounds: Partial<MemoryStoreOptions>) {
  const clock = { nowMs: 1_000_000 };
  const store = new MemoryStore({
    ttlMs: 3_600_000,
    maxConversations: 1_000,
    maxBytes: 50_000_000,
    maxMessagesPerConversation: 1_000,
    now: () => clock.nowMs,
    ...bounds,
  });
  return { store, clock };
}

async function lastSeqOf(store: MemoryStore, conversation: string): Promise<number> {
  return (await store.load(key(conversation), UNLIMITED)).lastSeq;
}

describe('MemoryStore', () => {
  test('answers cache hit for a conversation it holds and miss for one it does not', async () => {
    const { store } = storeWith({});
    await store.append(key('known'), messages(1));

    expect((await store.load(key('known'), UNLIMITED)).cache).toBe('hit');
    expect((await store.load(key('unknown'), UNLIMITED)).cache).toBe('miss');
  });

  test('stamps messages with the injected clock', async () => {
    const { store, clock } = storeWith({});
    clock.nowMs = 1_234_567;

    await store.append(key('c'), messages(2));

    expect((await store.load(key('c'), UNLIMITED)).messages.map((m) => m.createdAtMs)).toEqual([1_234_567, 1_234_567]);
  });

  test('a conversation unused for ttlMs is gone; loads and appends refresh it', async () => {
    const { store, clock } = storeWith({ ttlMs: 1_000 });
    const start = clock.nowMs;
    await store.append(key('c'), messages(1), { turnKey: 'k' });
    await store.append(key('other'), messages(1));

    clock.nowMs = start + 999;
    expect(await lastSeqOf(store, 'c')).toBe(1);
    clock.nowMs = start + 1_998;
    await store.append(key('c'), messages(1));
    clock.nowMs = start + 2_997;
    expect(await lastSeqOf(store, 'c')).toBe(2);
    expect(await lastSeqOf(store, 'other')).toBe(0);

    clock.nowMs = start + 3_997;
    const expired = await store.load(key('c'), UNLIMITED);
    expect(expired).toMatchObject({ messages: [], lastSeq: 0, cache: 'miss' });
    // An expired conversation is a new one: seqs restart and its turn keys are forgotten.
    expect(await store.append(key('c'), messages(1), { turnKey: 'k' })).toEqual({ seqs: [1], duplicate: false });
  });

  test('beyond maxConversations the least recently used conversation goes, not the oldest', async () => {
    const { store, clock } = storeWith({ maxConversations: 3 });
    for (const name of ['a', 'b', 'c']) {
      await store.append(key(name), messages(1));
      clock.nowMs += 1;
    }
    await store.load(key('a'), UNLIMITED);
    // Misses must not take a place: otherwise loading random ids would evict real conversations.
    for (const name of ['x', 'y', 'z']) await store.load(key(name), UNLIMITED);

    await store.append(key('d'), messages(1));

    expect(await lastSeqOf(store, 'b')).toBe(0);
    for (const name of ['a', 'c', 'd']) expect(await lastSeqOf(store, name)).toBe(1);
  });

  test('beyond maxBytes least recently used conversations are evicted whole', async () => {
    // Each conversation below is about 2.6 KB: two fit in 6.5 KB, three do not.
    const { store } = storeWith({ maxBytes: 6_500 });
    await store.append(key('a'), messages(2, ONE_KB));
    await store.append(key('b'), messages(2, ONE_KB));
    await store.load(key('a'), UNLIMITED);

    await store.append(key('c'), messages(2, ONE_KB));

    expect(await lastSeqOf(store, 'b')).toBe(0);
    expect((await store.load(key('a'), UNLIMITED)).messages).toHaveLength(2);
    expect((await store.load(key('c'), UNLIMITED)).messages).toHaveLength(2);
  });

  test('a conversation larger than maxBytes alone sheds its oldest messages and keeps its seqs', async () => {
    const { store } = storeWith({ maxBytes: 6_500 });
    for (let turn = 0; turn < 10; turn++) await store.append(key('big'), messages(1, `${turn}-${ONE_KB}`));

    const snapshot = await store.load(key('big'), UNLIMITED);
    const seqs = snapshot.messages.map((m) => m.seq);
    expect(snapshot.lastSeq).toBe(10);
    expect(seqs.length).toBeGreaterThanOrEqual(3);
    expect(seqs.length).toBeLessThanOrEqual(6);
    expect(seqs).toEqual(Array.from({ length: seqs.length }, (_, index) => 11 - seqs.length + index));
    expect(await store.append(key('big'), messages(1))).toEqual({ seqs: [11], duplicate: false });
  });

  test('a summary frees the bytes of the messages it covers', async () => {
    // Without the freed bytes, 'a' (about 4.9 KB) and 'b' (about 2.6 KB) would not fit in 6.5 KB.
    const { store } = storeWith({ maxBytes: 6_500 });
    await store.append(key('a'), messages(4, ONE_KB));
    await store.replaceSummary(key('a'), { text: 'short', tokens: 2, coversSeq: 4, createdAtMs: 0 });

    await store.append(key('b'), messages(2, ONE_KB));

    const a = await store.load(key('a'), UNLIMITED);
    expect(a.summary?.coversSeq).toBe(4);
    expect(a.lastSeq).toBe(4);
    expect(await store.append(key('a'), messages(1))).toEqual({ seqs: [5], duplicate: false });
  });

  test('bytes freed by delete, expiry, trimming and summaries are available again', async () => {
    const { store, clock } = storeWith({ ttlMs: 1_000, maxBytes: 6_500, maxMessagesPerConversation: 2 });
    for (let round = 0; round < 20; round++) {
      await store.append(key(`deleted-${round}`), messages(2, ONE_KB));
      await store.delete(key(`deleted-${round}`));
      const { seqs } = await store.append(key('trimmed'), messages(3, ONE_KB));
      const coversSeq = (seqs[2] ?? 0) - 1;
      await store.replaceSummary(key('trimmed'), { text: 'y'.repeat(500), tokens: 1, coversSeq, createdAtMs: 0 });
      await store.append(key(`summarized-${round}`), messages(2, ONE_KB));
      await store.replaceSummary(key(`summarized-${round}`), { text: 's', tokens: 1, coversSeq: 2, createdAtMs: 0 });
      await store.append(key(`expired-${round}`), messages(2, ONE_KB));
      clock.nowMs += 1_000;
    }

    // Were any of that still counted, the second of these would push the first out.
    await store.append(key('a'), messages(2, ONE_KB));
    await store.append(key('b'), messages(2, ONE_KB));

    expect(await lastSeqOf(store, 'a')).toBe(2);
    expect(await lastSeqOf(store, 'b')).toBe(2);
  });

  test('replaced summaries and forgotten turn keys stop counting against maxBytes', async () => {
    // Live: one message, one summary and 64 turn keys, about 18 KB; counting every
    // summary and turn key ever stored would pass 30 KB and shed the newest message.
    const { store } = storeWith({ maxBytes: 30_000 });
    for (let turn = 1; turn <= 200; turn++) {
      await store.append(key('c'), messages(1, ONE_KB), { turnKey: `${'k'.repeat(200)}-${turn}` });
      await store.replaceSummary(key('c'), { text: 'y'.repeat(500), tokens: 1, coversSeq: turn - 1, createdAtMs: 0 });
    }

    const snapshot = await store.load(key('c'), UNLIMITED);

    expect(snapshot.summary?.coversSeq).toBe(199);
    expect(snapshot.messages.map((m) => m.seq)).toEqual([200]);
  });

  test('beyond maxMessagesPerConversation the oldest messages go; seqs are never reused', async () => {
    const { store } = storeWith({ maxMessagesPerConversation: 3 });
    await store.append(key('c'), messages(2, 'first'), { turnKey: 'first-turn' });
    await store.append(key('c'), messages(3, 'second'));

    expect((await store.load(key('c'), UNLIMITED)).messages.map((m) => m.seq)).toEqual([3, 4, 5]);
    expect(await store.append(key('c'), messages(1, 'third'))).toEqual({ seqs: [6], duplicate: false });
    expect((await store.load(key('c'), UNLIMITED)).messages.map((m) => m.seq)).toEqual([4, 5, 6]);
    // The trimmed turn is still recognised when its request is retried.
    expect(await store.append(key('c'), messages(2, 'first'), { turnKey: 'first-turn' })).toEqual({ seqs: [1, 2], duplicate: true });
    expect(await lastSeqOf(store, 'c')).toBe(6);
  });

  test('a long trimmed conversation still loads its newest messages in order', async () => {
    const { store } = storeWith({ maxMessagesPerConversation: 10 });
    for (let turn = 0; turn < 500; turn++) await store.append(key('long'), messages(1, `m${turn}`));

    const snapshot = await store.load(key('long'), { maxMessages: 4, maxTokens: 100 });

    expect(snapshot.messages.map((m) => m.seq)).toEqual([497, 498, 499, 500]);
    expect(snapshot.messages.map((m) => m.message.content)).toEqual(['m496-0', 'm497-0', 'm498-0', 'm499-0']);
  });

  test(`remembers only the last ${RECENT_TURN_KEY_LIMIT} turn keys of a conversation`, async () => {
    const { store } = storeWith({});
    for (let turn = 0; turn <= RECENT_TURN_KEY_LIMIT; turn++) {
      await store.append(key('c'), messages(1), { turnKey: `turn-${turn}` });
    }

    expect(await store.append(key('c'), messages(1), { turnKey: 'turn-1' })).toEqual({ seqs: [2], duplicate: true });
    expect(await store.append(key('c'), messages(1), { turnKey: 'turn-0' })).toEqual({
      seqs: [RECENT_TURN_KEY_LIMIT + 2],
      duplicate: false,
    });
  });

  test('an append that cannot be serialised rejects and changes nothing', async () => {
    const { store } = storeWith({});
    await store.append(key('c'), messages(1));
    const unencodable: NewMessage = { message: { role: 'user', content: 'x', size: 1n }, tokens: 1, digest: 'd' };

    await expect(store.append(key('c'), [...messages(1), unencodable])).rejects.toThrow(TypeError);
    await expect(store.append(key('new'), [unencodable])).rejects.toThrow(TypeError);

    expect(await store.append(key('c'), messages(1))).toEqual({ seqs: [2], duplicate: false });
    expect((await store.load(key('new'), UNLIMITED)).cache).toBe('miss');
  });

  test('ignores a summary for a conversation it does not hold or of seqs it never gave', async () => {
    const { store } = storeWith({});
    await store.append(key('c'), messages(2));

    expect(await store.replaceSummary(key('unknown'), { text: 's', tokens: 1, coversSeq: 1, createdAtMs: 0 })).toBe(false);
    expect(await store.replaceSummary(key('c'), { text: 's', tokens: 1, coversSeq: 3, createdAtMs: 0 })).toBe(false);
    expect(await lastSeqOf(store, 'unknown')).toBe(0);
    expect((await store.load(key('c'), UNLIMITED)).messages).toHaveLength(2);
  });

  test.each(['ttlMs', 'maxConversations', 'maxBytes', 'maxMessagesPerConversation'] as const)(
    'rejects a %s that is not a positive integer',
    (field) => {
      for (const value of [0, -1, 1.5, Number.NaN, Number.POSITIVE_INFINITY]) {
        expect(() => storeWith({ [field]: value })).toThrow(RangeError);
      }
    },
  );

  test('after close every call rejects with StoreUnavailableError', async () => {
    const { store } = storeWith({});
    await store.append(key('c'), messages(1));

    await store.close();

    await expect(store.load(key('c'), UNLIMITED)).rejects.toBeInstanceOf(StoreUnavailableError);
    await expect(store.append(key('c'), messages(1))).rejects.toBeInstanceOf(StoreUnavailableError);
    await expect(store.ping()).rejects.toBeInstanceOf(StoreUnavailableError);
  });
});
