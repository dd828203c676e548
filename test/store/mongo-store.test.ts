// MongoStore against a real server: mongod when one is on PATH or MONGODB_URL
// is set, else FerretDB v1 on SQLite (test/support/mongo-server.ts). The shared
// contract, then what the two-tier store and its flusher rely on, the layout,
// and that a load reads a window's worth of documents however long the
// conversation is (counted with the driver's command monitoring).

import { randomUUID } from 'node:crypto';
import { MongoClient, type CommandSucceededEvent, type Db } from 'mongodb';
import { afterAll, beforeAll, describe, expect, onTestFinished, test } from 'vitest';
import type { ChatMessage, ConversationId, ConversationKey, NewMessage, StoredMessage, TenantId } from '../../src/domain.js';
import { StoreUnavailableError } from '../../src/errors.js';
import type { LoadLimits } from '../../src/store/conversation-store.js';
import { MemoryStore } from '../../src/store/memory-store.js';
import { SUMMARY_SEQ } from '../../src/store/mongo/document-codec.js';
import { MongoStore } from '../../src/store/mongo/mongo-store.js';
import { startMongo, type MongoServer } from '../support/mongo-server.js';
import { describeWithMongo } from '../support/services.js';
import { runStoreContract } from './store-contract.js';
import { seededRandom } from '../support/seeded-random.js';

const UNLIMITED = { maxMessages: 10_000, maxTokens: Number.MAX_SAFE_INTEGER };

describeWithMongo('MongoStore', () => {
  let server: MongoServer;
  let client: MongoClient;
  let databaseCount = 0;
  /** Every command reply the client received, for tests that count what a call read. */
  const replies: CommandSucceededEvent[] = [];

  beforeAll(async () => {
    server = await startMongo();
    client = new MongoClient(server.url, { monitorCommands: true, serverSelectionTimeoutMS: 10_000 });
    client.on('commandSucceeded', (event) => replies.push(event));
    await client.connect();
  });

  afterAll(async () => {
    await client?.close();
    await server?.stop();
  });

  /** A store on a database of its own, indexes created, dropped by cleanup. */
  async function freshStore(): Promise<{ store: MongoStore; db: Db; cleanup: () => Promise<void> }> {
    const db = client.db(`${server.database}_${++databaseCount}`);
    const store = new MongoStore({ db });
    await store.ensureIndexes();
    return {
      store,
      db,
      cleanup: async () => {
        await store.close();
        await db.dropDatabase();
      },
    };
  }

  runStoreContract('MongoStore contract', freshStore);

  describe('beyond the contract', () => {
    let store: MongoStore;
    let db: Db;
    let cleanup: () => Promise<void>;

    beforeAll(async () => {
      ({ store, db, cleanup } = await freshStore());
    });

    afterAll(async () => {
      await cleanup?.();
    });

    test('appendTurns: several turns in one insert, in order; again, each is a duplicate at its seqs; a turn cut short is filled in', async () => {
      const k = key();
      const turn = (name: string) => ({
        turnKey: name,
        createdAtMs: 1_700_000_000_000,
        messages: [name, `${name} answer`].map((content) => ({ message: { role: 'user' as const, content }, tokens: 5, digest: `${content}-digest` })),
      });
      await store.append(k, turn('before').messages, { turnKey: 'before' });
      const inserts: number[] = [];
      const watch = (event: CommandSucceededEvent): void => {
        if (event.commandName === 'insert') inserts.push(1);
      };
      client.on('commandSucceeded', watch);
      const results = await store.appendTurns(k, [turn('a'), turn('b'), turn('c')]);
      client.off('commandSucceeded', watch);
      expect(results).toEqual([
        { seqs: [3, 4], duplicate: false },
        { seqs: [5, 6], duplicate: false },
        { seqs: [7, 8], duplicate: false },
      ]);
      expect(inserts).toHaveLength(1);
      // Repeated (a merge run again after a crash): nothing new, each turn found at its seqs.
      expect(await store.appendTurns(k, [turn('a'), turn('b'), turn('c'), turn('d')])).toEqual([
        { seqs: [3, 4], duplicate: true },
        { seqs: [5, 6], duplicate: true },
        { seqs: [7, 8], duplicate: true },
        { seqs: [9, 10], duplicate: false },
      ]);
      // A turn whose second message never went in: filled in, not stored twice.
      await db.collection('messages').deleteOne({ conversation: k.conversation, seq: 10 });
      expect(await store.appendTurns(k, [turn('d')])).toEqual([{ seqs: [9, 10], duplicate: true }]);
      const listed = await store.listMessages(k, { afterSeq: 0, limit: 20 });
      expect(listed.map((m) => [m.seq, m.message.content])).toEqual(
        ['before', 'a', 'b', 'c', 'd'].flatMap((name, i) => [
          [2 * i + 1, name],
          [2 * i + 2, `${name} answer`],
        ]),
      );
    });

    test('ensureIndexes is idempotent and creates the unique keys', async () => {
      await store.ensureIndexes();
      await store.ensureIndexes();

      const messageIndexes = await db.collection('messages').listIndexes().toArray();
      const conversationIndexes = await db.collection('conversations').listIndexes().toArray();
      expect(messageIndexes.map((index) => [index.key, index.unique === true]).sort(byJson)).toEqual(
        [
          [{ _id: 1 }, false],
          [{ tenant: 1, conversation: 1, seq: 1 }, true],
          [{ tenant: 1, conversation: 1, claim: 1 }, true],
          [{ tenant: 1, conversation: 1, cumTokens: 1, seq: 1 }, false],
        ].sort(byJson),
      );
      expect(conversationIndexes.map((index) => [index.key, index.unique === true]).sort(byJson)).toEqual(
        [
          [{ _id: 1 }, false],
          [{ tenant: 1, conversation: 1 }, true],
          [{ tenant: 1, lastActivityAt: -1, conversation: 1 }, false],
        ].sort(byJson),
      );
    });

    test('a message with "." and "$" in its keys round-trips exactly; the documents have the documented layout', async () => {
      const message: ChatMessage = {
        role: 'assistant',
        content: 'x',
        'dotted.key': { $dollar: ['a', { 'b.c': 1, $: null }], '': 0.5 },
        big: 2 ** 40,
        negative: -0.25,
      };
      const k = key();

      await store.append(k, [{ message, tokens: 9, digest: 'd' }, withTokens('plain', 4)], { turnKey: 'turn-1' });

      expect((await store.load(k, UNLIMITED)).messages[0]?.message).toStrictEqual(message);
      const raw = await db
        .collection('messages')
        .find({ tenant: k.tenant, conversation: k.conversation }, { projection: { _id: 0 }, sort: { seq: 1 } })
        .toArray();
      const common = { tenant: k.tenant, conversation: k.conversation, turnLastSeq: 2, turnLastCum: 13, createdAt: expect.any(Date) };
      expect(raw).toEqual([
        {
          ...common,
          seq: 1,
          claim: 'turn:turn-1',
          role: 'assistant',
          messageBytes: Buffer.byteLength(JSON.stringify(message)),
          messageJson: JSON.stringify(message),
          tokens: 9,
          cumTokens: 9,
          digest: 'd',
          turnKey: 'turn-1',
          turnDigest: expect.any(String),
        },
        {
          ...common,
          seq: 2,
          claim: 'seq:2',
          role: 'user',
          messageBytes: 33,
          messageJson: '{"role":"user","content":"plain"}',
          tokens: 4,
          cumTokens: 13,
          digest: 'plain-digest',
        },
      ]);
      const conversation = await db.collection('conversations').findOne({ tenant: k.tenant, conversation: k.conversation }, { projection: { _id: 0 } });
      expect(conversation).toEqual({ tenant: k.tenant, conversation: k.conversation, createdAt: expect.any(Date), lastActivityAt: expect.any(Date), lastSeq: 2 });
    });

    test('messages carry the running token total; conversationState reports it with lastSeq and the summary', async () => {
      const k = key();
      await store.append(k, [withTokens('a', 10), withTokens('b', 20)], { turnKey: 't1' });
      await store.append(k, [withTokens('c', 5)]);
      const summary = { text: 'a and b', tokens: 4, coversSeq: 2, createdAtMs: 1_700_000_000_123 };
      await store.replaceSummary(k, summary);

      const listed = await store.listMessages(k, { afterSeq: 0, limit: 10 });

      expect(listed.map((m) => [m.seq, m.cumTokens])).toEqual([
        [1, 10],
        [2, 30],
        [3, 35],
      ]);
      expect(await store.conversationState(k)).toEqual({ lastSeq: 3, lastCum: 35, summary });
      // The summary is the conversation's top document in messages (load reads it first); listings leave it out.
      const summaryDocument = await db.collection('messages').findOne({ tenant: k.tenant, conversation: k.conversation, role: 'summary' }, { projection: { _id: 0 } });
      expect(summaryDocument).toEqual({
        tenant: k.tenant,
        conversation: k.conversation,
        seq: SUMMARY_SEQ,
        claim: 'summary',
        role: 'summary',
        summaryText: 'a and b',
        tokens: 4,
        coversSeq: 2,
        createdAt: new Date(1_700_000_000_123),
      });
      expect(await store.conversationState(key('never-seen'))).toEqual({ lastSeq: 0, lastCum: 0, summary: undefined });
      // The durable history keeps what a summary covers; load skips it.
      expect((await store.load(k, UNLIMITED)).messages.map((m) => m.seq)).toEqual([3]);
    });

    test('load always answers cache "miss": this tier is not a cache', async () => {
      const k = key();
      await store.append(k, texts(1));

      expect((await store.load(k, UNLIMITED)).cache).toBe('miss');
      expect((await store.load(key('never-seen'), UNLIMITED)).cache).toBe('miss');
    });

    test('replaceSummary ignores an unknown conversation and seqs never allocated', async () => {
      const k = key();
      await store.append(k, texts(2));

      expect(await store.replaceSummary(key('never-seen'), { text: 's', tokens: 1, coversSeq: 1, createdAtMs: 0 })).toBe(false);
      expect(await store.replaceSummary(k, { text: 's', tokens: 1, coversSeq: 3, createdAtMs: 0 })).toBe(false);
      expect(await store.replaceSummary(k, { text: 's', tokens: 1, coversSeq: 0, createdAtMs: 0 })).toBe(false);
      expect(await db.collection('conversations').countDocuments({ tenant: k.tenant, conversation: 'never-seen' })).toBe(0);
      expect((await store.load(k, UNLIMITED)).summary).toBeUndefined();
    });

    test('upsertAllocated is idempotent: the same input twice inserts once', async () => {
      const k = key();
      const messages = allocated(1, 5, 10);

      const first = await store.upsertAllocated(k, messages);
      const second = await store.upsertAllocated(k, messages);

      expect(first).toEqual({ inserted: 5, alreadyStored: 0, conflicts: [] });
      expect(second).toEqual({ inserted: 0, alreadyStored: 5, conflicts: [] });
      expect(await db.collection('messages').countDocuments({ tenant: k.tenant, conversation: k.conversation })).toBe(5);
      expect(await store.conversationState(k)).toEqual({ lastSeq: 5, lastCum: 50, summary: undefined });
      const loaded = await store.load(k, UNLIMITED);
      expect(loaded.messages).toEqual(messages);
    });

    test('upsertAllocated stores only what is missing of an overlapping batch and never moves the counters back', async () => {
      const k = key();
      await store.upsertAllocated(k, allocated(1, 5, 10));

      const overlapping = await store.upsertAllocated(k, allocated(3, 8, 10));
      const older = await store.upsertAllocated(k, allocated(1, 2, 10));

      expect(overlapping).toEqual({ inserted: 3, alreadyStored: 3, conflicts: [] });
      expect(older).toEqual({ inserted: 0, alreadyStored: 2, conflicts: [] });
      expect(await store.conversationState(k)).toMatchObject({ lastSeq: 8, lastCum: 80 });
      expect((await store.listMessages(k, { afterSeq: 0, limit: 100 })).map((m) => m.seq)).toEqual([1, 2, 3, 4, 5, 6, 7, 8]);
    });

    test('upsertAllocated reports a seq that holds a different message, leaves the stored one alone, and takes back what it placed after it', async () => {
      const k = key();
      await store.upsertAllocated(k, allocated(1, 3, 10));
      const other: StoredMessage = { ...allocated(2, 2, 10)[0]!, message: { role: 'user', content: 'another' }, digest: 'other-digest' };
      const fresh = allocated(4, 4, 10)[0]!;

      // From the first conflict on, the other tier's numbering no longer fits: seq 4 is not kept either.
      const result = await store.upsertAllocated(k, [other, fresh]);

      expect(result).toEqual({ inserted: 0, alreadyStored: 0, conflicts: [other, fresh] });
      const listed = await store.listMessages(k, { afterSeq: 0, limit: 10 });
      expect(listed.map((m) => [m.seq, m.digest])).toEqual([
        [1, 'seq-1'],
        [2, 'seq-2'],
        [3, 'seq-3'],
      ]);
    });

    test('a turn upsertAllocated stored claims its turn key: appending the same turn later is a duplicate, at its seqs', async () => {
      const k = key();
      const [question, answer] = allocated(1, 2, 10);
      const result = await store.upsertAllocated(k, [{ ...question!, turnKey: 'flushed' }, answer!]);
      expect(result).toEqual({ inserted: 2, alreadyStored: 0, conflicts: [] });
      const again = [question!, answer!].map(({ message, tokens, digest }) => ({ message, tokens, digest }));
      expect(await store.append(k, again, { turnKey: 'flushed' })).toEqual({ seqs: [1, 2], duplicate: true });
      expect(await store.listMessages(k, { afterSeq: 0, limit: 10 })).toHaveLength(2);
      // Flushed again (a round repeated after a crash): the same documents, already stored.
      expect(await store.upsertAllocated(k, [{ ...question!, turnKey: 'flushed' }, answer!])).toEqual({ inserted: 0, alreadyStored: 2, conflicts: [] });
    });

    test('a turn stored at other seqs under the same key is a conflict for upsertAllocated, not stored twice', async () => {
      const k = key();
      const [question, answer] = allocated(3, 4, 10);
      const turnMessages = [question!, answer!].map(({ message, tokens, digest }) => ({ message, tokens, digest }));
      await store.append(k, turnMessages, { turnKey: 'moved' });
      const result = await store.upsertAllocated(k, [{ ...question!, turnKey: 'moved' }, answer!]);
      expect(result.conflicts.map((m) => m.seq)).toEqual([3, 4]);
      expect((await store.listMessages(k, { afterSeq: 0, limit: 10 })).map((m) => m.seq)).toEqual([1, 2]);
    });

    test('upsertAllocated refuses a message without cumTokens and stores nothing', async () => {
      const k = key();
      const { cumTokens: _dropped, ...withoutCum } = allocated(2, 2, 10)[0]!;

      await expect(store.upsertAllocated(k, [...allocated(1, 1, 10), withoutCum])).rejects.toThrow(TypeError);

      expect(await store.conversationState(k)).toEqual({ lastSeq: 0, lastCum: 0, summary: undefined });
    });

    test('an append after upsertAllocated continues its seqs and running total', async () => {
      const k = key();
      await store.upsertAllocated(k, allocated(1, 4, 10));

      const plain = await store.append(k, [withTokens('x', 3)]);
      const keyed = await store.append(k, [withTokens('y', 2), withTokens('z', 1)], { turnKey: 'after-redis' });

      expect([plain.seqs, keyed.seqs]).toEqual([[5], [6, 7]]);
      expect((await store.listMessages(k, { afterSeq: 4, limit: 10 })).map((m) => m.cumTokens)).toEqual([43, 45, 46]);
    });

    test('a turn cut short after its first message keeps its seqs, and the retry completes it without gap or duplicate', async () => {
      const k = key();
      await store.append(k, texts(1, 'before'), { turnKey: 'before' });
      const turn = [withTokens('question', 7), withTokens('answer', 11), withTokens('follow-up', 2)];
      const first = await store.append(k, turn, { turnKey: 'cut-short' });
      // What a connection dropped during insertMany leaves: the first message (the reservation) only.
      await db.collection('messages').deleteMany({ tenant: k.tenant, conversation: k.conversation, seq: { $in: [3, 4] } });

      const meanwhile = await store.append(k, texts(1, 'meanwhile'));
      const retried = await store.append(k, turn, { turnKey: 'cut-short' });
      const again = await store.append(k, turn, { turnKey: 'cut-short' });

      expect(first).toEqual({ seqs: [2, 3, 4], duplicate: false });
      expect(meanwhile).toEqual({ seqs: [5], duplicate: false });
      expect(retried).toEqual({ seqs: [2, 3, 4], duplicate: true });
      expect(again).toEqual({ seqs: [2, 3, 4], duplicate: true });
      const listed = await store.listMessages(k, { afterSeq: 0, limit: 10 });
      expect(listed.map((m) => [m.seq, m.message.content, m.cumTokens, m.turnKey])).toEqual([
        [1, 'before-0', 1, 'before'],
        [2, 'question', 8, 'cut-short'],
        [3, 'answer', 19, undefined],
        [4, 'follow-up', 21, undefined],
        [5, 'meanwhile-0', 22, undefined],
      ]);
      expect((await store.load(k, UNLIMITED)).lastSeq).toBe(5);
    });

    test('a different turn sent under the same key fills in nothing', async () => {
      const k = key();
      await store.append(k, [withTokens('question', 7), withTokens('answer', 11)], { turnKey: 'reused' });
      await db.collection('messages').deleteOne({ tenant: k.tenant, conversation: k.conversation, seq: 2 });

      const impostor = await store.append(k, [withTokens('question', 7), withTokens('other answer', 11)], { turnKey: 'reused' });

      expect(impostor).toEqual({ seqs: [1, 2], duplicate: true });
      expect((await store.listMessages(k, { afterSeq: 0, limit: 10 })).map((m) => m.message.content)).toEqual(['question']);
    });

    test('two stores on separate clients, each of 20 turns sent through both at once: seqs unique, gap-free, each turn once', async () => {
      const otherClient = new MongoClient(server.url, { serverSelectionTimeoutMS: 10_000 });
      await otherClient.connect();
      try {
        const stores = [store, new MongoStore({ db: otherClient.db(db.databaseName) })];
        const k = key();
        const turns = Array.from({ length: 20 }, (_, turn) => texts(1 + (turn % 2), `turn-${turn}`));

        // Each turn is sent through both stores at once, as a retry racing its original would be.
        const results = await Promise.all(
          turns.flatMap((messages, turn) => stores.map((s) => s.append(k, messages, { turnKey: `key-${turn}` }))),
        );

        const total = turns.reduce((sum, messages) => sum + messages.length, 0);
        const firsts = results.filter((r) => !r.duplicate);
        expect(firsts).toHaveLength(20);
        expect(firsts.flatMap((r) => r.seqs).sort((a, b) => a - b)).toEqual(seqRange(1, total));
        for (let turn = 0; turn < 20; turn++) expect(results[2 * turn]?.seqs).toEqual(results[2 * turn + 1]?.seqs);
        const listed = await store.listMessages(k, { afterSeq: 0, limit: 1_000 });
        expect(listed.map((m) => m.seq)).toEqual(seqRange(1, total));
        expect(listed.map((m) => m.cumTokens)).toEqual(seqRange(1, total));
      } finally {
        await otherClient.close();
      }
    });

    test('a 10,000-message conversation loads with the same MongoDB work as a 10-message one', async () => {
      // A database of its own: FerretDB v1 scans a whole collection for every query, and the other tests need not pay for these 10,000.
      const { store: large, cleanup: dropLarge } = await freshStore();
      onTestFinished(dropLarge);
      const long = key('long');
      const short = key('short');
      const seed = async (k: ConversationKey, count: number): Promise<void> => {
        const messages = allocated(1, count, 15);
        for (let i = 0; i < messages.length; i += 2_000) await large.upsertAllocated(k, messages.slice(i, i + 2_000));
      };
      await seed(long, 10_000);
      await seed(short, 10);
      const limits = { maxMessages: 50, maxTokens: 100 };

      const longRead = await readsDuring(() => large.load(long, limits));
      const shortRead = await readsDuring(() => large.load(short, limits));

      // 100 tokens hold 6 messages of 15 and the 7th crosses: 7 messages, read
      // by one query (a find and the getMore of its cursor), nothing else.
      expect(longRead.result.messages.map((m) => m.seq)).toEqual(seqRange(9_994, 7));
      expect(shortRead.result.messages.map((m) => m.seq)).toEqual(seqRange(4, 7));
      expect(longRead.documents).toBe(7);
      expect(shortRead.documents).toBe(longRead.documents);
      expect(queries(longRead.commands)).toEqual(['find', 'getMore']);
      expect(queries(shortRead.commands)).toEqual(queries(longRead.commands));

      // Where the message limit binds rather than the budget, too: one batch, with room for the summary.
      const byCount = await readsDuring(() => large.load(long, { maxMessages: 3, maxTokens: 1_000_000 }));
      expect(byCount.result.messages.map((m) => m.seq)).toEqual([9_998, 9_999, 10_000]);
      expect(byCount.documents).toBe(4);
      expect(queries(byCount.commands)).toEqual(['find']);

      // With a summary: it is the first document of the same query, and the window stops at what it covers.
      const summary = { text: 'the first 9,996', tokens: 20, coversSeq: 9_996, createdAtMs: 1_700_000_000_000 };
      expect(await large.replaceSummary(long, summary)).toBe(true);
      const withSummary = await readsDuring(() => large.load(long, limits));
      expect(withSummary.result.summary).toEqual(summary);
      expect(withSummary.result.messages.map((m) => m.seq)).toEqual(seqRange(9_997, 4));
      expect(queries(withSummary.commands)).toEqual(['find']);
      // The summary, then at most what the budget holds (7 messages) and the one the summary covers.
      expect(withSummary.documents).toBeLessThanOrEqual(1 + 7 + 1);
    });

    test('load returns what the memory store returns for the same history and limits', async () => {
      const random = seededRandom(42);
      for (let history = 0; history < 4; history++) {
        const k = key(`history-${history}`);
        const memory = new MemoryStore({ ttlMs: 3_600_000, maxConversations: 10, maxBytes: 50_000_000, maxMessagesPerConversation: 10_000 });
        let lastSeq = 0;
        for (let turn = 0; turn < 30; turn++) {
          const messages = Array.from({ length: 1 + Math.floor(random() * 3) }, (_, index) =>
            withTokens(`h${history}-t${turn}-m${index}`, Math.floor(random() * 40)),
          );
          const options = turn % 3 === 0 ? { turnKey: `turn-${turn}` } : undefined;
          const [inMemory, inMongo] = await Promise.all([memory.append(k, messages, options), store.append(k, messages, options)]);
          expect(inMongo).toEqual(inMemory);
          lastSeq = inMongo.seqs.at(-1) ?? lastSeq;
          if (turn % 10 === 9) {
            const summary = { text: `up to ${lastSeq - 2}`, tokens: 50, coversSeq: lastSeq - 2, createdAtMs: 1_000 + turn };
            expect(await store.replaceSummary(k, summary)).toBe(await memory.replaceSummary(k, summary));
          }
        }
        const limitsToTry: LoadLimits[] = [
          UNLIMITED,
          { maxMessages: 0, maxTokens: 1_000 },
          ...Array.from({ length: 12 }, () => ({ maxMessages: 1 + Math.floor(random() * 20), maxTokens: Math.floor(random() * 400) })),
        ];
        for (const limits of limitsToTry) {
          const [fromMemory, fromMongo] = await Promise.all([memory.load(k, limits), store.load(k, limits)]);
          expect({ ...fromMongo, cache: 'any', messages: fromMongo.messages.map(comparable) }).toEqual({
            ...fromMemory,
            cache: 'any',
            messages: fromMemory.messages.map(comparable),
          });
        }
        await memory.close();
      }
    });

    test('delete erases the documents in both collections', async () => {
      const k = key();
      await store.append(k, texts(3), { turnKey: 'doomed' });
      await store.upsertAllocated(k, allocated(4, 6, 1));

      await store.delete(k);

      const filter = { tenant: k.tenant, conversation: k.conversation };
      expect(await db.collection('messages').countDocuments(filter)).toBe(0);
      expect(await db.collection('conversations').countDocuments(filter)).toBe(0);
    });

    test('after close every call rejects with StoreUnavailableError and the client stays open', async () => {
      const { store: closing, cleanup: dropIt } = await freshStore();
      try {
        await closing.close();

        await expect(closing.load(key(), UNLIMITED)).rejects.toBeInstanceOf(StoreUnavailableError);
        await expect(closing.append(key(), texts(1))).rejects.toBeInstanceOf(StoreUnavailableError);
        await expect(closing.upsertAllocated(key(), allocated(1, 1, 1))).rejects.toBeInstanceOf(StoreUnavailableError);
        await expect(closing.ping()).rejects.toBeInstanceOf(StoreUnavailableError);
        await expect(store.ping()).resolves.toBeUndefined();
      } finally {
        await dropIt();
      }
    });
  });

  /** The documents the server returned for reads (cursor batches) while `call` ran, and the commands it sent. */
  async function readsDuring<T>(call: () => Promise<T>): Promise<{ result: T; documents: number; commands: string[] }> {
    const from = replies.length;
    const result = await call();
    const events = replies.slice(from);
    const documents = events.reduce((sum, event) => sum + batchOf(event.reply).length, 0);
    return { result, documents, commands: events.map((event) => event.commandName) };
  }
});

/** The commands that read: a cursor closed early is killed after load has answered, whenever that lands. */
function queries(commands: readonly string[]): string[] {
  return commands.filter((command) => command !== 'killCursors');
}

function batchOf(reply: unknown): unknown[] {
  const cursor = (reply as { cursor?: { firstBatch?: unknown[]; nextBatch?: unknown[] } }).cursor;
  return cursor?.firstBatch ?? cursor?.nextBatch ?? [];
}

function key(conversation = `c-${randomUUID()}`): ConversationKey {
  return { tenant: 'tenant' as TenantId, conversation: conversation as ConversationId };
}

function texts(count: number, prefix = 'm'): NewMessage[] {
  return Array.from({ length: count }, (_, index) => withTokens(`${prefix}-${index}`, 1));
}

function withTokens(content: string, tokens: number): NewMessage {
  return { message: { role: 'user', content }, tokens, digest: `${content}-digest` };
}

/** Messages seqs first..last as another tier would hand them over: seq and cumTokens allocated. */
function allocated(first: number, last: number, tokensEach: number): StoredMessage[] {
  return seqRange(first, last - first + 1).map((seq) => ({
    message: { role: seq % 2 === 0 ? 'assistant' : 'user', content: `message ${seq}` },
    tokens: tokensEach,
    digest: `seq-${seq}`,
    seq,
    createdAtMs: 1_700_000_000_000 + seq,
    cumTokens: tokensEach * seq,
  }));
}

/** What both stores must agree on: the memory store keeps no cumTokens, and each has its own clock. */
function comparable({ seq, tokens, digest, message, turnKey }: StoredMessage): Partial<StoredMessage> {
  return { seq, tokens, digest, message, turnKey };
}

function seqRange(first: number, count: number): number[] {
  return Array.from({ length: count }, (_, index) => first + index);
}

function byJson(a: unknown, b: unknown): number {
  return JSON.stringify(a).localeCompare(JSON.stringify(b));
}

