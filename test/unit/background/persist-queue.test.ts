import { describe, expect, test } from 'vitest';
import { PersistQueue } from '../../../src/background/persist-queue.js';
import { ReadYourWrites, withPendingTurns } from '../../../src/background/read-your-writes.js';
import type { AppendOptions, AppendResult, ConversationId, ConversationKey, NewMessage, TenantId } from '../../../src/domain.js';
import type { ConversationStore } from '../../../src/store/conversation-store.js';
import { MemoryStore } from '../../../src/store/memory-store.js';
import { waitFor } from '../../support/wait-for.js';

const key: ConversationKey = { tenant: 't' as TenantId, conversation: 'c' as ConversationId };
const msg = (content: string, role: 'user' | 'assistant' = 'user'): NewMessage => ({ message: { role, content }, tokens: 5, digest: content });
const LIMITS = { maxMessages: 100, maxTokens: 10_000 };

/** The embedded store, with appends that wait until the test lets them through (or fail on demand). */
class GatedStore extends MemoryStore {
  gates: Array<() => void> = [];
  failuresLeft = 0;
  override async append(k: ConversationKey, messages: readonly NewMessage[], options?: AppendOptions): Promise<AppendResult> {
    await new Promise<void>((resolve) => this.gates.push(resolve));
    if (this.failuresLeft > 0) {
      this.failuresLeft--;
      throw new Error('store hiccup');
    }
    return super.append(k, messages, options);
  }
  open(): void {
    for (const gate of this.gates.splice(0)) gate();
  }
}

function queueOn(store: ConversationStore, dropped: string[] = [], maxPendingTurns = 10): PersistQueue {
  return new PersistQueue({ store, maxPendingTurns, maxAttempts: 3, retryDelayMs: () => 1, onDropped: (_k, reason) => dropped.push(reason) });
}

describe('PersistQueue', () => {
  test('a load started while a turn is reserved waits for it and sees it; a cancelled reservation releases it with nothing', async () => {
    const store = new MemoryStore({ ttlMs: 60_000, maxConversations: 10, maxBytes: 1 << 20, maxMessagesPerConversation: 100 });
    const queue = queueOn(store);
    const windows = new ReadYourWrites(store, queue);
    const reservation = queue.reserve(key);
    let loadSettled = false;
    const loading = windows.load(key, LIMITS).then((snapshot) => {
      loadSettled = true;
      return snapshot;
    });
    // Other conversations do not wait.
    expect((await windows.load({ ...key, conversation: 'other' as ConversationId }, LIMITS)).messages).toEqual([]);
    await Promise.resolve();
    expect(loadSettled).toBe(false);

    expect(reservation.fill([msg('q'), msg('a', 'assistant')], { turnKey: 'k' }, 1_000)).toBe(true);
    expect((await loading).messages.map((m) => m.message.content)).toEqual(['q', 'a']);
    // Filling twice, or cancelling after, changes nothing.
    expect(reservation.fill([msg('again')], {}, 1_001)).toBe(false);
    reservation.cancel();
    await queue.drain();
    expect((await store.load(key, LIMITS)).messages.map((m) => m.message.content)).toEqual(['q', 'a']);

    const cancelled = queue.reserve(key);
    const waiting = queue.pendingFor(key);
    cancelled.cancel();
    expect(await waiting).toEqual([]);
  });

  test('drain (shutdown) waits for a reserved turn to be queued, then for it to be stored', async () => {
    const store = new MemoryStore({ ttlMs: 60_000, maxConversations: 10, maxBytes: 1 << 20, maxMessagesPerConversation: 100 });
    const queue = queueOn(store);
    const reservation = queue.reserve(key);
    let drained = false;
    const draining = queue.drain().then(() => (drained = true));
    await Promise.resolve();
    expect(drained).toBe(false);
    reservation.fill([msg('late question'), msg('late answer', 'assistant')], {}, 1_000);
    await draining;
    expect((await store.load(key, LIMITS)).messages.map((m) => m.message.content)).toEqual(['late question', 'late answer']);
  });

  test('a follow-up sees the previous turn while its write is still pending, and not twice once it lands', async () => {
    const store = new GatedStore({ ttlMs: 60_000, maxConversations: 10, maxBytes: 1 << 20, maxMessagesPerConversation: 100 });
    const queue = queueOn(store);
    queue.offer(key, [msg('q1'), msg('a1', 'assistant')], {}, 1000);

    const pending = await queue.pendingFor(key);
    const early = withPendingTurns(await store.load(key, LIMITS), pending);
    expect(early.messages.map((m) => [m.seq, m.message.content])).toEqual([[1, 'q1'], [2, 'a1']]);

    await waitFor(() => store.gates.length === 1, { message: 'append started' });
    store.open();
    await queue.drain();
    // The snapshot was taken while pending; the store now holds the turn: overlay must not add it again.
    const late = withPendingTurns(await store.load(key, LIMITS), pending);
    expect(late.messages.map((m) => m.message.content)).toEqual(['q1', 'a1']);
  });

  test('a turn the store already shows, before its append has answered, is not added again (matched by its turn key)', async () => {
    const store = new GatedStore({ ttlMs: 60_000, maxConversations: 10, maxBytes: 1 << 20, maxMessagesPerConversation: 100 });
    const queue = queueOn(store);
    queue.offer(key, [msg('q1'), msg('a1', 'assistant')], { turnKey: 'k1' }, 1000);
    const pending = await queue.pendingFor(key);
    // The store holds the turn (written by the append now in flight, whose answer is not back yet).
    await MemoryStore.prototype.append.call(store, key, [msg('q1'), msg('a1', 'assistant')], { turnKey: 'k1' });
    const snapshot = withPendingTurns(await store.load(key, LIMITS), pending);
    expect(snapshot.messages.map((m) => m.message.content)).toEqual(['q1', 'a1']);
    await waitFor(() => store.gates.length === 1, { message: 'append started' });
    store.open();
    await queue.drain();
  });

  test('turns of one conversation are written in the order offered, with a turn key on the first message', async () => {
    const store = new GatedStore({ ttlMs: 60_000, maxConversations: 10, maxBytes: 1 << 20, maxMessagesPerConversation: 100 });
    const queue = queueOn(store);
    queue.offer(key, [msg('q1'), msg('a1', 'assistant')], { turnKey: 'k1' }, 1);
    queue.offer(key, [msg('q2'), msg('a2', 'assistant')], {}, 2);
    const overlaid = await new ReadYourWrites(store, queue).load(key, LIMITS);
    expect(overlaid.messages.map((m) => m.turnKey)).toEqual(['k1', undefined, undefined, undefined]);
    for (let i = 0; i < 2; i++) {
      await waitFor(() => store.gates.length === 1, { message: `append ${i + 1} started` });
      store.open();
    }
    await queue.drain();
    expect((await store.load(key, LIMITS)).messages.map((m) => `${m.seq}:${String(m.message.content)}`)).toEqual(['1:q1', '2:a1', '3:q2', '4:a2']);
  });

  test('a failing store is retried; a full queue drops and reports instead of waiting', async () => {
    const store = new GatedStore({ ttlMs: 60_000, maxConversations: 10, maxBytes: 1 << 20, maxMessagesPerConversation: 100 });
    store.failuresLeft = 2;
    const dropped: string[] = [];
    const queue = queueOn(store, dropped, 1);
    expect(queue.offer(key, [msg('q1')], {}, 1)).toBe(true);
    expect(queue.offer({ ...key, conversation: 'other' as ConversationId }, [msg('x')], {}, 1)).toBe(false);
    expect(dropped).toEqual(['persist queue full']);
    for (let i = 0; i < 3; i++) {
      await waitFor(() => store.gates.length === 1, { message: `attempt ${i + 1}` });
      store.open();
    }
    await queue.drain();
    expect((await store.load(key, LIMITS)).messages).toHaveLength(1);
    expect(queue.pendingTurns).toBe(0);
  });
  test('settledFor waits for the conversation\'s reserved and queued turns (those queued meanwhile too), not for other conversations', async () => {
    const store = new GatedStore({ ttlMs: 60_000, maxConversations: 10, maxBytes: 1 << 20, maxMessagesPerConversation: 100 });
    const queue = queueOn(store);
    const other: ConversationKey = { ...key, conversation: 'other' as ConversationId };
    queue.offer(other, [msg('elsewhere')], {}, 1_000);
    await queue.settledFor(key);

    const reservation = queue.reserve(key);
    let isSettled = false;
    const settling = queue.settledFor(key).then(() => (isSettled = true));
    reservation.fill([msg('q1')], {}, 1_000);
    await waitFor(() => store.gates.length === 2);
    queue.offer(key, [msg('q2')], {}, 1_001);
    store.open();
    await waitFor(() => store.gates.length === 1);
    expect(isSettled).toBe(false);
    store.open();
    await settling;
    expect((await store.load(key, LIMITS)).messages.map((m) => m.message.content)).toEqual(['q1', 'q2']);
  });
});
