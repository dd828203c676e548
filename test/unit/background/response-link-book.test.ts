import { describe, expect, test } from 'vitest';
import { ResponseLinkBook } from '../../../src/background/response-link-book.js';
import type { ConversationId, ConversationKey, TenantId } from '../../../src/domain.js';
import type { ResponseLink, ResponseLinkStore } from '../../../src/store/response-links.js';

const tenant = 't.a' as TenantId;
const other = 't.b' as TenantId;
const link = (conversation: string): ResponseLink => ({ conversation: conversation as ConversationId, turnKey: `auto:${conversation}`, createdAtMs: 1 });

/** A store whose puts wait until released, recording what reached it. */
function heldStore(failures = 0) {
  const stored = new Map<string, ResponseLink>();
  const releases: Array<() => void> = [];
  let failing = failures;
  const store: ResponseLinkStore = {
    put: (t, id, value) =>
      new Promise<void>((resolve, reject) => {
        releases.push(() => {
          if (failing-- > 0) return reject(new Error('store down'));
          stored.set(`${t} ${id}`, value);
          resolve();
        });
      }),
    get: async (t, id) => stored.get(`${t} ${id}`),
    forget: async (key: ConversationKey) => {
      for (const [id, value] of stored) if (id.startsWith(`${key.tenant} `) && value.conversation === key.conversation) stored.delete(id);
    },
  };
  return { store, stored, release: () => releases.splice(0).forEach((release) => release()) };
}

const book = (store: ResponseLinkStore, dropped: string[] = []) =>
  new ResponseLinkBook({ links: store, maxAttempts: 3, retryDelayMs: () => 0, onDropped: (id) => dropped.push(id) });

describe('ResponseLinkBook', () => {
  test('a link being written is found before the store has it', async () => {
    const { store, stored } = heldStore();
    const links = book(store);
    links.expect(tenant).fill('resp_1', link('c1'));
    expect(stored.size).toBe(0);
    expect(await links.find(tenant, 'resp_1')).toEqual(link('c1'));
  });

  test('a lookup made before the ticket is filled waits for it (the follow-up that raced the reply)', async () => {
    const { store } = heldStore();
    const links = book(store);
    const ticket = links.expect(tenant);
    const found = links.find(tenant, 'resp_2');
    let settled = false;
    void found.then(() => (settled = true));
    await Promise.resolve();
    expect(settled).toBe(false);
    ticket.fill('resp_2', link('c2'));
    expect(await found).toEqual(link('c2'));
  });

  test("another tenant's open tickets are not waited for, and its links never found", async () => {
    const { store } = heldStore();
    const links = book(store);
    links.expect(other);
    expect(await links.find(tenant, 'resp_3')).toBeUndefined();
    const ticket = links.expect(other);
    ticket.fill('resp_3', link('c3'));
    expect(await links.find(tenant, 'resp_3')).toBeUndefined();
  });

  test('a cancelled ticket releases waiting lookups with nothing', async () => {
    const { store } = heldStore();
    const links = book(store);
    const ticket = links.expect(tenant);
    const found = links.find(tenant, 'resp_4');
    ticket.cancel();
    expect(await found).toBeUndefined();
    ticket.fill('resp_4', link('c4'));
    expect(await links.find(tenant, 'resp_4')).toBeUndefined();
  });

  test('once written, the link is read from the store; drain waits for the writes', async () => {
    const { store, stored, release } = heldStore();
    const links = book(store);
    links.expect(tenant).fill('resp_5', link('c5'));
    const drained = links.drain();
    release();
    await drained;
    expect(stored.get(`${tenant} resp_5`)).toEqual(link('c5'));
    expect(await links.find(tenant, 'resp_5')).toEqual(link('c5'));
  });

  test('a failing write is retried, then given up and reported', async () => {
    const failingStore = (failures: number) => {
      const stored = new Map<string, ResponseLink>();
      let attempts = 0;
      const store: ResponseLinkStore = {
        put: async (t, id, value) => {
          if (++attempts <= failures) throw new Error('store down');
          stored.set(`${t} ${id}`, value);
        },
        get: async (t, id) => stored.get(`${t} ${id}`),
        forget: async () => undefined,
      };
      return { store, stored, attempts: () => attempts };
    };
    const dropped: string[] = [];
    const once = failingStore(1);
    const links = book(once.store, dropped);
    links.expect(tenant).fill('resp_6', link('c6'));
    await links.drain();
    expect([once.attempts(), once.stored.has(`${tenant} resp_6`), dropped]).toEqual([2, true, []]);

    const always = failingStore(Number.POSITIVE_INFINITY);
    const given = book(always.store, dropped);
    given.expect(tenant).fill('resp_7', link('c7'));
    await given.drain();
    expect([always.attempts(), dropped]).toEqual([3, ['resp_7']]);
    expect(await given.find(tenant, 'resp_7')).toBeUndefined();
  });
});
