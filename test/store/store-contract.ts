// The behaviour every ConversationStore promises its callers, written against the
// interface only. Each store's runner calls runStoreContract with a factory; the
// memory, Redis, MongoDB and two-tier stores must all pass it unchanged.

import { randomUUID } from 'node:crypto';
import { afterEach, beforeEach, describe, expect, test } from 'vitest';
import type { ChatMessage, ConversationId, ConversationKey, NewMessage, StoredMessage, Summary, TenantId } from '../../src/domain.js';
import type { ConversationStore } from '../../src/store/conversation-store.js';
import { WINDOW_CASES } from '../support/window-cases.js';

export interface StoreUnderTest {
  store: ConversationStore;
  cleanup(): Promise<void>;
}

const UNLIMITED = { maxMessages: 10_000, maxTokens: Number.MAX_SAFE_INTEGER };

export function runStoreContract(name: string, factory: () => Promise<StoreUnderTest>): void {
  describe(name, () => {
    let subject: StoreUnderTest;
    let store: ConversationStore;
    // A fresh tenant per test keeps tests apart even when a factory reuses one database.
    let tenant: string;
    const key = (conversation = 'conv', ofTenant = tenant): ConversationKey => ({
      tenant: ofTenant as TenantId,
      conversation: conversation as ConversationId,
    });

    beforeEach(async () => {
      subject = await factory();
      store = subject.store;
      tenant = `t-${randomUUID()}`;
    });

    afterEach(async () => {
      await subject.cleanup();
    });

    test('an unknown conversation loads empty', async () => {
      const snapshot = await store.load(key(), UNLIMITED);

      expect(snapshot.summary).toBeUndefined();
      expect(snapshot.messages).toEqual([]);
      expect(snapshot.lastSeq).toBe(0);
    });

    test('ping resolves', async () => {
      await expect(store.ping()).resolves.toBeUndefined();
    });

    test('a stored message comes back with every field it was given', async () => {
      const assistant: ChatMessage = {
        role: 'assistant',
        content: null,
        refusal: null,
        tool_calls: [
          { id: 'call_1', type: 'function', function: { name: 'lookup', arguments: '{"q":"ünïcödé ✓"}' } },
          { id: 'call_2', type: 'custom', custom: { name: 'grep', input: 'x' } },
        ],
        audio: { id: 'audio_1' },
      };
      const user: ChatMessage = {
        role: 'user',
        name: 'alice',
        content: [
          { type: 'text', text: 'look at this' },
          { type: 'image_url', image_url: { url: 'https://example.com/a.png', detail: 'low' } },
          { type: 'input_audio', input_audio: { data: 'AAAA', format: 'wav' } },
        ],
      };
      const tool: ChatMessage = { role: 'tool', tool_call_id: 'call_1', content: 'result', extra: { nested: [1, 'two', null, true] } };
      const turn = [
        { message: user, tokens: 31, digest: 'digest-user' },
        { message: assistant, tokens: 17, digest: 'digest-assistant' },
        { message: tool, tokens: 5, digest: 'digest-tool' },
      ];

      const result = await store.append(key(), turn, { turnKey: 'idem-1' });
      const snapshot = await store.load(key(), UNLIMITED);

      expect(result).toEqual({ seqs: [1, 2, 3], duplicate: false });
      expect(snapshot.messages.map((m) => m.message)).toStrictEqual([user, assistant, tool]);
      expect(snapshot.messages.map((m) => [m.seq, m.tokens, m.digest])).toEqual([
        [1, 31, 'digest-user'],
        [2, 17, 'digest-assistant'],
        [3, 5, 'digest-tool'],
      ]);
      // The turn key marks the first message of the turn only.
      expect(snapshot.messages.map((m) => m.turnKey)).toEqual(['idem-1', undefined, undefined]);
      for (const stored of snapshot.messages) expect(Number.isFinite(stored.createdAtMs)).toBe(true);
      expect(snapshot.lastSeq).toBe(3);
    });

    test('seqs continue gap-free across appends', async () => {
      const results = [];
      for (const size of [2, 1, 3]) results.push(await store.append(key(), texts(size, `turn-of-${size}`)));
      const snapshot = await store.load(key(), UNLIMITED);

      expect(results.map((r) => r.seqs)).toEqual([[1, 2], [3], [4, 5, 6]]);
      expect(results.every((r) => !r.duplicate)).toBe(true);
      expect(snapshot.messages.map((m) => m.seq)).toEqual([1, 2, 3, 4, 5, 6]);
      expect(snapshot.lastSeq).toBe(6);
    });

    test('listMessages pages through history oldest first after a cursor', async () => {
      for (const size of [2, 1, 3]) await store.append(key(), texts(size, `turn-of-${size}`));
      const page1 = await store.listMessages(key(), { afterSeq: 0, limit: 4 });
      const page2 = await store.listMessages(key(), { afterSeq: page1.at(-1)!.seq, limit: 4 });

      expect(page1.map((m) => m.seq)).toEqual([1, 2, 3, 4]);
      expect(page2.map((m) => m.seq)).toEqual([5, 6]);
      expect(await store.listMessages(key(), { afterSeq: 6, limit: 4 })).toEqual([]);
      expect(await store.listMessages(key('never-seen'), { afterSeq: 0, limit: 4 })).toEqual([]);
      expect(page2[1]!.message).toEqual((await store.load(key(), UNLIMITED)).messages[5]!.message);
    });

    test('appending no messages stores nothing, not even a turn key', async () => {
      expect(await store.append(key(), [], { turnKey: 'empty' })).toEqual({ seqs: [], duplicate: false });
      expect((await store.load(key(), UNLIMITED)).lastSeq).toBe(0);

      expect(await store.append(key(), texts(1, 'real'), { turnKey: 'empty' })).toEqual({ seqs: [1], duplicate: false });
    });

    test('50 concurrent appends on one conversation get unique, gap-free seqs, each turn contiguous', async () => {
      const turns = Array.from({ length: 50 }, (_, turn) => texts(1 + (turn % 3), `turn-${turn}`));

      const results = await Promise.all(turns.map((messages) => store.append(key(), messages)));
      const snapshot = await store.load(key(), UNLIMITED);

      const total = turns.reduce((sum, messages) => sum + messages.length, 0);
      const allSeqs = results.flatMap((r) => r.seqs).sort((a, b) => a - b);
      expect(allSeqs).toEqual(seqRange(1, total));
      results.forEach((result, turn) => {
        expect(result.duplicate).toBe(false);
        expect(result.seqs).toEqual(seqRange(result.seqs[0] ?? -1, turns[turn]?.length ?? -1));
      });
      expect(snapshot.lastSeq).toBe(total);
      expect(snapshot.messages.map((m) => m.seq)).toEqual(seqRange(1, total));
      // Each seq holds the message the append that was given it sent.
      const bySeq = new Map(snapshot.messages.map((m) => [m.seq, m.message.content]));
      results.forEach((result, turn) => {
        expect(result.seqs.map((seq) => bySeq.get(seq))).toEqual(turns[turn]?.map((m) => m.message.content));
      });
    });

    test.each(WINDOW_CASES)('load returns the newest messages within the limits ($why)', async ({ limits, seqs }) => {
      await store.append(key(), [withTokens('a', 10), withTokens('b', 20)]);
      await store.append(key(), [withTokens('c', 30), withTokens('d', 40)]);

      const snapshot = await store.load(key(), limits);

      expect(snapshot.messages.map((m) => m.seq)).toEqual(seqs);
      expect(snapshot.lastSeq).toBe(4);
    });

    // A chunked window starts where the running total crosses a threshold (context/window-policy.ts):
    // every store must give each message the same total, or instances on different stores send different prefixes.
    test('load returns each message with cumTokens, the running token total from the first message', async () => {
      const tokenRuns = [[7, 13], [1], [40, 2, 5], [11, 9]];
      for (const [turn, run] of tokenRuns.entries()) await store.append(key(), run.map((tokens, i) => withTokens(`t${turn}-${i}`, tokens)));
      const running = tokenRuns.flat().reduce<number[]>((totals, tokens) => [...totals, (totals.at(-1) ?? 0) + tokens], []);

      const whole = await store.load(key(), UNLIMITED);
      expect(whole.messages.map((m) => m.cumTokens)).toEqual(running);
      // A window that starts later, after a summary, keeps the totals from seq 1, not from its own start.
      await store.replaceSummary(key(), summaryOf(3, 'the first three'));
      const window = await store.load(key(), { maxMessages: 3, maxTokens: Number.MAX_SAFE_INTEGER });
      expect(window.messages.map((m) => [m.seq, m.cumTokens])).toEqual([6, 7, 8].map((seq) => [seq, running[seq - 1]]));
    });

    test('load returns the summary and only the messages after it', async () => {
      await store.append(key(), texts(5, 'before'));
      const summary = summaryOf(3, 'the first three');

      expect(await store.replaceSummary(key(), summary)).toBe(true);
      await store.append(key(), texts(1, 'after'));
      const snapshot = await store.load(key(), UNLIMITED);

      expect(snapshot.summary).toEqual(summary);
      expect(snapshot.messages.map((m) => m.seq)).toEqual([4, 5, 6]);
      expect(snapshot.lastSeq).toBe(6);
    });

    test('the summary does not count against the message limits', async () => {
      await store.append(key(), [withTokens('a', 10), withTokens('b', 10), withTokens('c', 10)]);
      await store.replaceSummary(key(), { ...summaryOf(1, 'a'), tokens: 5_000 });

      const snapshot = await store.load(key(), { maxMessages: 2, maxTokens: 20 });

      expect(snapshot.summary?.coversSeq).toBe(1);
      expect(snapshot.messages.map((m) => m.seq)).toEqual([2, 3]);
    });

    test('a summary covering no more than the stored one is ignored', async () => {
      await store.append(key(), texts(6, 'm'));

      expect(await store.replaceSummary(key(), summaryOf(4, 'up to four'))).toBe(true);
      expect(await store.replaceSummary(key(), summaryOf(2, 'stale job'))).toBe(false);
      expect(await store.replaceSummary(key(), summaryOf(4, 'same coverage, other text'))).toBe(false);
      expect((await store.load(key(), UNLIMITED)).summary?.text).toBe('up to four');

      expect(await store.replaceSummary(key(), summaryOf(5, 'up to five'))).toBe(true);
      const snapshot = await store.load(key(), UNLIMITED);
      expect(snapshot.summary?.text).toBe('up to five');
      expect(snapshot.messages.map((m) => m.seq)).toEqual([6]);
    });

    test('a repeated turn key stores nothing and returns the seqs of the first append', async () => {
      const first = await store.append(key(), texts(2, 'original'), { turnKey: 'retry-me' });
      const other = await store.append(key(), texts(1, 'other'), { turnKey: 'another' });

      const retried = await store.append(key(), texts(3, 'retried'), { turnKey: 'retry-me' });
      const snapshot = await store.load(key(), UNLIMITED);

      expect(first).toEqual({ seqs: [1, 2], duplicate: false });
      expect(other).toEqual({ seqs: [3], duplicate: false });
      expect(retried).toEqual({ seqs: [1, 2], duplicate: true });
      expect(snapshot.lastSeq).toBe(3);
      expect(snapshot.messages.map((m) => m.message.content)).toEqual(['original-0', 'original-1', 'other-0']);
      expect(await store.append(key(), texts(1, 'next'), { turnKey: 'fresh' })).toEqual({ seqs: [4], duplicate: false });
    });

    test('concurrent appends with one turn key store the turn once', async () => {
      const results = await Promise.all(
        Array.from({ length: 10 }, (_, attempt) => store.append(key(), texts(2, `attempt-${attempt}`), { turnKey: 'same' })),
      );
      const snapshot = await store.load(key(), UNLIMITED);

      expect(results.filter((r) => !r.duplicate)).toHaveLength(1);
      expect(results.map((r) => r.seqs)).toEqual(Array.from({ length: 10 }, () => [1, 2]));
      expect(snapshot.lastSeq).toBe(2);
      expect(snapshot.messages).toHaveLength(2);
    });

    test('a turn key is scoped to its conversation', async () => {
      await store.append(key('one'), texts(2, 'one'), { turnKey: 'shared' });

      const result = await store.append(key('two'), texts(1, 'two'), { turnKey: 'shared' });

      expect(result).toEqual({ seqs: [1], duplicate: false });
    });

    test('tenants are isolated: the same conversation id is a different conversation', async () => {
      const otherTenant = `${tenant}-other`;
      await store.append(key('shared-id'), texts(2, 'mine'), { turnKey: 'k' });

      expect((await store.load(key('shared-id', otherTenant), UNLIMITED)).lastSeq).toBe(0);
      expect(await store.append(key('shared-id', otherTenant), texts(1, 'theirs'), { turnKey: 'k' })).toEqual({
        seqs: [1],
        duplicate: false,
      });
      await store.delete(key('shared-id', otherTenant));

      const mine = await store.load(key('shared-id'), UNLIMITED);
      expect(mine.messages.map((m) => m.message.content)).toEqual(['mine-0', 'mine-1']);
    });

    test('no tenant and conversation pair can reach another pair by sharing separators', async () => {
      // Conversation ids may contain ':'; a key joined as `tenant:conversation` would merge these two.
      await store.append(key('b:c', `${tenant}:a`), texts(1, 'first'));

      const snapshot = await store.load(key('a:b:c', tenant), UNLIMITED);

      expect(snapshot.lastSeq).toBe(0);
      expect(snapshot.messages).toEqual([]);
    });

    test('delete erases the conversation and leaves the others alone', async () => {
      await store.append(key('doomed'), texts(3, 'doomed'), { turnKey: 'doomed-turn' });
      await store.replaceSummary(key('doomed'), summaryOf(2, 'doomed summary'));
      await store.append(key('kept'), texts(2, 'kept'));

      await store.delete(key('doomed'));

      expect(await store.load(key('doomed'), UNLIMITED)).toMatchObject({ summary: undefined, messages: [], lastSeq: 0 });
      const kept = await store.load(key('kept'), UNLIMITED);
      expect(kept.messages.map((m) => m.message.content)).toEqual(['kept-0', 'kept-1']);
      expect(kept.lastSeq).toBe(2);
      // A new conversation under the old id: seqs restart and the old turn key is forgotten.
      expect(await store.append(key('doomed'), texts(1, 'reborn'), { turnKey: 'doomed-turn' })).toEqual({
        seqs: [1],
        duplicate: false,
      });
      expect((await store.load(key('doomed'), UNLIMITED)).summary).toBeUndefined();
    });

    test('deleting an unknown conversation resolves', async () => {
      const receipt = await store.delete(key('never-seen'));
      expect(Object.values(receipt.tiers).every((tier) => tier.messages === 0 && !tier.summaryDropped)).toBe(true);
    });

    test('neither appended inputs nor loaded results share state with the store', async () => {
      const input: NewMessage = {
        message: { role: 'assistant', content: [{ type: 'text', text: 'original' }], tool_calls: [{ id: 'c', type: 'function' }] },
        tokens: 3,
        digest: 'd',
      };
      const original = structuredClone(input);
      await store.append(key(), [input]);
      (input.message.content as { text: string }[])[0]!.text = 'mutated input';
      input.message.tool_calls?.push({ id: 'injected', type: 'function' });

      const loaded = await store.load(key(), UNLIMITED);
      mutateDeeply(loaded.messages);
      loaded.messages.push(loaded.messages[0]!);
      const reloaded = await store.load(key(), UNLIMITED);

      expect(reloaded.messages).toHaveLength(1);
      expect(reloaded.messages[0]?.message).toStrictEqual(original.message);
      expect(reloaded.messages[0]).toMatchObject({ seq: 1, tokens: 3, digest: 'd' });
    });

    test('neither a given nor a loaded summary shares state with the store', async () => {
      await store.append(key(), texts(2, 'm'));
      const summary = summaryOf(1, 'original summary');
      await store.replaceSummary(key(), summary);
      summary.text = 'mutated given';

      const loaded = await store.load(key(), UNLIMITED);
      loaded.summary!.text = 'mutated loaded';
      loaded.summary!.coversSeq = 0;

      expect((await store.load(key(), UNLIMITED)).summary).toEqual(summaryOf(1, 'original summary'));
    });
  });
}

function texts(count: number, prefix: string): NewMessage[] {
  return Array.from({ length: count }, (_, index) => ({
    message: { role: 'user', content: `${prefix}-${index}` },
    tokens: 1,
    digest: `${prefix}-${index}-digest`,
  }));
}

function withTokens(content: string, tokens: number): NewMessage {
  return { message: { role: 'user', content }, tokens, digest: `${content}-digest` };
}

function summaryOf(coversSeq: number, text: string): Summary {
  return { text, tokens: 7, coversSeq, createdAtMs: 1_700_000_000_000 + coversSeq };
}

function seqRange(first: number, count: number): number[] {
  return Array.from({ length: count }, (_, index) => first + index);
}

/**
 * Tries every kind of change a careless caller might make to loaded messages.
 * A store may hand out copies or read-only (frozen) objects: either way stored
 * state must not change, so a change refused with a TypeError is fine.
 */
function mutateDeeply(messages: StoredMessage[]): void {
  const attempt = (change: () => void): void => {
    try {
      change();
    } catch (error) {
      if (!(error instanceof TypeError)) throw error;
    }
  };
  for (const stored of messages) {
    attempt(() => (stored.seq = -1));
    attempt(() => (stored.tokens = -1));
    attempt(() => (stored.message.role = 'system'));
    if (Array.isArray(stored.message.content)) {
      const part = stored.message.content[0];
      if (part !== undefined) attempt(() => (part.text = 'mutated'));
      attempt(() => (stored.message.content as unknown[]).push({ type: 'text', text: 'extra' }));
    } else {
      attempt(() => (stored.message.content = 'mutated'));
    }
    attempt(() => stored.message.tool_calls?.push({ id: 'injected', type: 'function' }));
  }
}
