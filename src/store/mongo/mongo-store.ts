// MongoDB as the durable tier (official driver 6). Runs unchanged on real
// MongoDB and on FerretDB v1, the tests' fallback server, so it relies only on
// what both do atomically: inserting one document against unique indexes.
// FerretDB v1 runs findAndModify and update as a query followed by a separate
// write of the whole document, so concurrent $inc lose updates (30 concurrent
// $inc of one field leave it at 1) and conditional updates all "succeed"; a
// counter or a turn-key list on a shared document cannot be kept there. So the
// messages allocate their own seqs: an append reads the newest message and
// inserts its turn at the seqs after it, and the unique index on seq lets
// exactly one of two racing appends have them (the other reads again). Nor
// does FerretDB v1 have $lookup, partial indexes, $push $slice or a `fields`
// projection on findAndModify.
//
// This file holds the store operations; the layout and the documents are in
// document-codec.ts, the inserts against the unique indexes in
// idempotent-insert.ts, the flusher's writes in flush-target.ts.

import { MongoBulkWriteError, type Collection, type Db, type IndexDescription } from 'mongodb';
import type { AppendOptions, AppendResult, ConversationKey, ConversationSnapshot, NewMessage, StoredMessage, Summary } from '../../domain.js';
import { conversationKeyString } from '../../domain.js';
import { StoreUnavailableError } from '../../errors.js';
import { startWindowWalk, windowLimit, type WindowWalk } from '../../context/window-cut.js';
import type { ConversationState, ConversationStore, EraseReceipt, ErasedPosition, LoadLimits, UpsertAllocatedResult } from '../conversation-store.js';
import {
  ACTIVITY_INDEX,
  CLAIM_INDEX,
  CONVERSATION_INDEX,
  digestOfTurn,
  EMPTY_HEAD,
  fromMessageDocument,
  keyFilter,
  LOAD_PROJECTION,
  MESSAGE_PROJECTION,
  NOT_ERASED,
  MESSAGE_SEQS,
  SEQ_INDEX,
  SUMMARY_CLAIM,
  SUMMARY_SEQ,
  summaryFrom,
  turnClaim,
  turnDocuments,
  WINDOW_INDEX,
  type ConversationDocument,
  type Head,
  type LoadedDocument,
  type MessageDocument,
  type SummaryDocument,
  type Turn,
} from './document-codec.js';
import { appendTurnsAfter, storedWhole, type TurnToAppend } from './append-turns.js';
import { eraseMessageDocuments, madeAfterErasures } from './erase-messages.js';
import { recordActivity } from './conversation-activity.js';
import { upsertAllocatedMany } from './flush-target.js';
import { DUPLICATE_KEY_CODE, insertIdempotently, isDuplicateKey, writeErrorsOf } from './idempotent-insert.js';

export interface MongoStoreOptions {
  /** From a MongoClient that main.ts owns: the store never opens or closes connections. */
  db: Db;
}

/**
 * An append retries when another append took the seqs it read as free; each
 * failed try means another append succeeded, so only a conversation under
 * extreme contention runs out of tries.
 */
const MAX_APPEND_ATTEMPTS = 1_000;
const MAX_CURSOR_LIMIT = 2 ** 31 - 1;
/** Load's first-batch estimate before any load has been seen, and its cap. */
const INITIAL_TOKENS_PER_MESSAGE = 48;
const MAX_FIRST_BATCH = 1_000;

export class MongoStore implements ConversationStore {
  readonly #db: Db;
  readonly #messages: Collection<MessageDocument>;
  /** The same collection as #messages, typed for the summary document. */
  readonly #summaries: Collection<SummaryDocument>;
  readonly #conversations: Collection<ConversationDocument>;
  #isClosed = false;
  /** Tokens per message in recent loads (a moving average): sizes load's first batch. */
  #tokensPerMessage = INITIAL_TOKENS_PER_MESSAGE;
  /**
   * This process's appends to a conversation, chained: run at once they would
   * race for the same seqs, and n of them would cost about n²/2 attempts of two
   * round trips each (50 took over 5 s on FerretDB under load). Other processes
   * still race, and the seq reservation keeps that correct.
   */
  readonly #appendChains = new Map<string, Promise<void>>();

  constructor(options: MongoStoreOptions) {
    this.#db = options.db;
    this.#messages = options.db.collection<MessageDocument>('messages');
    this.#summaries = options.db.collection<SummaryDocument>('messages');
    this.#conversations = options.db.collection<ConversationDocument>('conversations');
  }

  /**
   * Creates the indexes; safe to call again. One index per command, one after
   * another: FerretDB v1.24 panics and drops the connection when a createIndexes
   * with two or more indexes that all exist already is sent again.
   */
  async ensureIndexes(): Promise<void> {
    this.#assertOpen();
    const messageIndexes: IndexDescription[] = [
      { key: { tenant: 1, conversation: 1, seq: 1 }, name: SEQ_INDEX, unique: true },
      { key: { tenant: 1, conversation: 1, claim: 1 }, name: CLAIM_INDEX, unique: true },
      { key: { tenant: 1, conversation: 1, cumTokens: 1, seq: 1 }, name: WINDOW_INDEX },
    ];
    for (const index of messageIndexes) await this.#messages.createIndexes([index]);
    await this.#conversations.createIndexes([{ key: { tenant: 1, conversation: 1 }, name: CONVERSATION_INDEX, unique: true }]);
    await this.#conversations.createIndexes([{ key: { tenant: 1, lastActivityAt: -1, conversation: 1 }, name: ACTIVITY_INDEX }]);
  }

  /**
   * One indexed query, whatever the conversation's length: newest first on
   * (tenant, conversation, seq), which meets the summary document first, then
   * the newest messages, and is closed as soon as the window is complete (the
   * budget crossed, the message limit reached, or the summary's coverage met).
   * The cursor's batches are sized so that only the window is read: the first
   * from the budget and the tokens per message seen lately, each further one
   * from the budget left and the tokens per message of this conversation,
   * never beyond the seqs that can still be in the window. `cache` is always
   * `miss`: this tier is not a cache.
   */
  async load(key: ConversationKey, limits: LoadLimits): Promise<ConversationSnapshot> {
    this.#assertOpen();
    const maxMessages = Math.min(windowLimit(limits.maxMessages), MAX_CURSOR_LIMIT - 2);
    const maxTokens = windowLimit(limits.maxTokens);
    // The summary and the newest message (for lastSeq) come in the first batch even when no message may be returned.
    const firstBatch = 1 + Math.max(1, Math.min(maxMessages, this.#messagesFitting(maxTokens)));
    const cursor = this.#db.runCursorCommand({
      find: this.#messages.collectionName,
      // Tombstones of erased messages are left out here, so that the limit counts only messages.
      filter: { ...keyFilter(key), ...NOT_ERASED },
      sort: { seq: -1 },
      projection: LOAD_PROJECTION,
      hint: SEQ_INDEX,
      batchSize: firstBatch,
      limit: maxMessages + 2,
    });

    let summary: Summary | undefined;
    let lastSeq = 0;
    // Seqs erased at the tail are still given (the summary document keeps the largest ever erased).
    let erasedThroughSeq = 0;
    const newestFirst: StoredMessage[] = [];
    let walk: WindowWalk | undefined;
    try {
      for (;;) {
        const document = (await cursor.next()) as LoadedDocument | null;
        if (document === null) break;
        if (document.seq === SUMMARY_SEQ) {
          summary = summaryFrom(document);
          erasedThroughSeq = document.erasedThroughSeq ?? 0;
          continue;
        }
        if (lastSeq === 0) lastSeq = document.turnLastSeq ?? document.seq;
        // The summary document sorts first (SUMMARY_SEQ is above every seq), so its coverage is known by the first message.
        walk ??= startWindowWalk({ maxMessages, maxTokens }, summary?.coversSeq ?? 0);
        const messageDocument = document as MessageDocument;
        if (!walk.takes(messageDocument)) break;
        newestFirst.push(fromMessageDocument(messageDocument));
        // Stop before the cursor fetches a message the walk would refuse anyway.
        const stillPossible = Math.min(maxMessages - walk.taken, document.seq - 1 - walk.coversSeq);
        if (walk.isFull || stillPossible <= 0) break;
        if (cursor.bufferedCount() === 0) {
          // The next batch: as many as the budget left holds at this conversation's tokens per message, plus the one that crosses.
          const perMessage = Math.max(1, walk.usedTokens / walk.taken);
          cursor.setBatchSize(Math.max(1, Math.min(stillPossible, Math.floor((maxTokens - walk.usedTokens) / perMessage) + 1)));
        }
      }
    } finally {
      // Closing a cursor the server has not exhausted is a killCursors round trip: not the caller's wait.
      void cursor.close().catch(() => undefined);
    }
    if (walk !== undefined && walk.taken > 0) this.#learnTokensPerMessage(walk.usedTokens / walk.taken);
    return { summary, messages: newestFirst.reverse(), lastSeq: Math.max(lastSeq, erasedThroughSeq), cache: 'miss' };
  }

  /** All stored history, including messages a summary covers: this is the durable record. */
  async listMessages(key: ConversationKey, page: { afterSeq: number; limit: number }): Promise<StoredMessage[]> {
    this.#assertOpen();
    const limit = Math.min(Math.floor(page.limit), MAX_CURSOR_LIMIT);
    if (!(limit > 0)) return [];
    const documents = await this.#messages
      .find(
        { ...keyFilter(key), seq: { $gt: page.afterSeq, ...MESSAGE_SEQS }, ...NOT_ERASED },
        { projection: MESSAGE_PROJECTION, sort: { seq: 1 }, limit, batchSize: limit, hint: SEQ_INDEX },
      )
      .toArray();
    return documents.map(fromMessageDocument);
  }

  /**
   * Reads the newest message and inserts the turn after it, in order, in one
   * insertMany: the first message's insert is the reservation. When its seq (or,
   * with a turn key, its claim) is taken, nothing was inserted; the append finds
   * the earlier turn under its key or reads again and retries. The winner's
   * documents carry the turn's last seq, so later appends start after the whole
   * turn even before all of it is in. Two round trips when uncontended.
   *
   * If the insert fails part way (a dropped connection), calling again with the
   * same turn key finds the turn by its first message and inserts whatever of
   * it is missing, keyed by seq, before answering `duplicate`: no gap, no
   * duplicate. That needs the turn key, which contextd always sends; without one
   * a turn cut short stays short, and its seqs are not given again.
   */
  async append(key: ConversationKey, messages: readonly NewMessage[], options?: AppendOptions): Promise<AppendResult> {
    this.#assertOpen();
    if (messages.length === 0) return { seqs: [], duplicate: false };
    return this.#chained(key, () => this.#append(key, messages, options));
  }

  /**
   * Appends turns in order, as append() would one after another, in one write
   * when nothing is in the way (append-turns.ts); from the first turn that
   * could not go in that way, one turn at a time (a turn already stored under
   * its key is then a duplicate, one cut short is filled in). Results per turn.
   */
  async appendTurns(key: ConversationKey, turns: readonly TurnToAppend[]): Promise<AppendResult[]> {
    this.#assertOpen();
    if (turns.length === 0) return [];
    return this.#chained(key, async () => {
      // A merge tried again finds its first turns in already: they are answered from one read,
      // not appended one at a time (which a busy server would time out again).
      const results: AppendResult[] = await storedWhole(this.#messages, key, turns);
      const rest = turns.slice(results.length);
      if (rest.length === 0) return results;
      const head = await this.#head(key);
      const { seqs } = await appendTurnsAfter(this.#messages, key, head, rest);
      const lastTurn = seqs.length === 0 ? undefined : rest[seqs.length - 1];
      if (lastTurn !== undefined) {
        await recordActivity(this.#conversations, [{ key, lastSeq: seqs.at(-1)!.at(-1)!, atMs: lastTurn.createdAtMs, createdAtMs: rest[0]!.createdAtMs }]);
      }
      results.push(...seqs.map((turnSeqs) => ({ seqs: turnSeqs, duplicate: false })));
      for (const turn of rest.slice(seqs.length)) results.push(await this.#append(key, turn.messages, { turnKey: turn.turnKey, createdAtMs: turn.createdAtMs }));
      return results;
    });
  }

  /** Runs `work` after this process's earlier appends to the conversation (see #appendChains). */
  async #chained<T>(key: ConversationKey, work: () => Promise<T>): Promise<T> {
    const id = conversationKeyString(key);
    const result = (this.#appendChains.get(id) ?? Promise.resolve()).then(work);
    const chain = result.then(
      () => undefined,
      () => undefined,
    );
    this.#appendChains.set(id, chain);
    try {
      return await result;
    } finally {
      if (this.#appendChains.get(id) === chain) this.#appendChains.delete(id);
    }
  }

  async #append(key: ConversationKey, messages: readonly NewMessage[], options: AppendOptions | undefined): Promise<AppendResult> {
    const turnKey = options?.turnKey;
    const turn: Turn = {
      key,
      // Encoded before anything is stored: a message JSON cannot encode stores nothing.
      encoded: messages.map((incoming) => ({ incoming, messageJson: JSON.stringify(incoming.message) })),
      turnKey,
      turnDigest: turnKey === undefined ? undefined : digestOfTurn(messages),
      createdAt: new Date(options?.createdAtMs ?? Date.now()),
    };

    for (let attempt = 1; attempt <= MAX_APPEND_ATTEMPTS; attempt++) {
      const head = await this.#head(key);
      const documents = turnDocuments(turn, head);
      if (await this.#reserve(key, documents)) {
        await this.#recordActivity(key, documents.at(-1)!.seq, turn.createdAt);
        return { seqs: documents.map((document) => document.seq), duplicate: false };
      }
      if (turnKey !== undefined) {
        const earlier = await this.#messages.findOne(
          { ...keyFilter(key), claim: turnClaim(turnKey) },
          { projection: { _id: 0, seq: 1, tokens: 1, cumTokens: 1, turnDigest: 1, turnLastSeq: 1, turnLastCum: 1 }, hint: CLAIM_INDEX },
        );
        if (earlier !== null) {
          if (earlier.turnDigest === turn.turnDigest && earlier.turnLastSeq - earlier.seq + 1 === messages.length) {
            await this.#insertMissing(key, turnDocuments(turn, { lastSeq: earlier.seq - 1, lastCum: earlier.cumTokens - earlier.tokens }));
            // The first try may have stopped before its listing fields were written.
            await this.#recordActivity(key, earlier.turnLastSeq, turn.createdAt);
          }
          return { seqs: seqRange(earlier.seq, earlier.turnLastSeq - earlier.seq + 1), duplicate: true };
        }
      }
    }
    throw new Error(`MongoDB: could not append to ${conversationKeyString(key)} in ${MAX_APPEND_ATTEMPTS} attempts`);
  }

  /**
   * Stores the summary if it covers more than the stored one and no more than
   * has been allocated. The covered messages stay: they are the durable history
   * (listMessages), and load skips them by seq. Two calls racing on one
   * conversation may, on FerretDB alone, leave the one that covers less;
   * summaries of a conversation are written by one job at a time. A summary
   * made from a read older than an erasure of a seq it covers is refused
   * (erase-messages.ts): it may hold the erased text.
   */
  async replaceSummary(key: ConversationKey, summary: Summary): Promise<boolean> {
    this.#assertOpen();
    if (!(summary.coversSeq > 0)) return false;
    const head = await this.#head(key);
    if (summary.coversSeq > head.lastSeq) return false;
    try {
      // The summary document is matched only if it covers less, so an upsert
      // that matches nothing meets the unique index when one covering as much
      // is there already.
      const result = await this.#summaries.updateOne(
        { ...keyFilter(key), seq: SUMMARY_SEQ, coversSeq: { $lt: summary.coversSeq }, ...madeAfterErasures(summary) },
        {
          $set: { summaryText: summary.text, tokens: summary.tokens, coversSeq: summary.coversSeq, createdAt: new Date(summary.createdAtMs) },
          $setOnInsert: { claim: SUMMARY_CLAIM, role: 'summary' },
        },
        { upsert: true },
      );
      if (result.matchedCount + result.upsertedCount !== 1) return false;
    } catch (error) {
      if (isDuplicateKey(error)) return false;
      throw error;
    }
    // An erasure that ran between the read above and the write must not leave
    // the summary behind: without the messages it covers, it goes too.
    if ((await this.#head(key)).lastSeq < summary.coversSeq) {
      await this.#summaries.deleteOne({ ...keyFilter(key), seq: SUMMARY_SEQ });
      return false;
    }
    return true;
  }

  /**
   * The conversation document goes first, then the messages. An append racing
   * the delete may be erased or may outlive it; a later append then continues
   * after it rather than reusing its seqs.
   */
  async delete(key: ConversationKey): Promise<EraseReceipt> {
    this.#assertOpen();
    await this.#conversations.deleteOne(keyFilter(key));
    const summary = await this.#summary(key);
    // Messages first, to count them (tombstones are none); then the summary and the tombstones.
    const removed = await this.#messages.deleteMany({ ...keyFilter(key), seq: MESSAGE_SEQS, ...NOT_ERASED });
    await this.#messages.deleteMany(keyFilter(key));
    return { tiers: { mongodb: { messages: removed.deletedCount, summaryDropped: summary !== undefined } } };
  }

  /**
   * Leaves a tombstone at each erased seq it holds (erase-messages.ts), and at
   * each of `positions` (seqs the hot tier gave and this tier does not hold
   * yet), so that no flush brings the message here later; drops a summary
   * covering any of them. After this process's appends to the conversation,
   * which read the running total this changes.
   */
  async eraseMessages(key: ConversationKey, seqs: readonly number[], positions: readonly ErasedPosition[] = []): Promise<EraseReceipt> {
    this.#assertOpen();
    const erasure = await this.#chained(key, () => eraseMessageDocuments(this.#messages, key, seqs, positions, new Date()));
    return { tiers: { mongodb: erasure } };
  }

  async ping(): Promise<void> {
    this.#assertOpen();
    await this.#db.command({ ping: 1 });
  }

  /** Later calls reject; the MongoClient is main.ts's to close. */
  async close(): Promise<void> {
    this.#isClosed = true;
  }

  /**
   * For the two-tier flusher: stores messages whose seq and cumTokens another
   * tier allocated, keyed on (tenant, conversation, seq). A seq already stored
   * is left alone: counted in `alreadyStored` when its digest matches, returned
   * in `conflicts` when it does not. Safe to call again with the same input.
   * lastSeq and lastCum follow (they are read from the newest message). Turn
   * keys are not claimed here: Redis deduplicated the turns it allocated.
   */
  async upsertAllocated(key: ConversationKey, messages: readonly StoredMessage[]): Promise<UpsertAllocatedResult> {
    const [result] = await this.upsertAllocatedMany([{ key, messages }]);
    return result ?? { inserted: 0, alreadyStored: 0, conflicts: [] };
  }

  /**
   * upsertAllocated for many conversations at once: every message in one
   * unordered insert (so a round of the flusher is one MongoDB write however
   * many conversations it carries), then one read per conversation that met
   * seqs already stored. Results in the order of `batches`. Nothing is stored
   * when any message is invalid.
   */
  async upsertAllocatedMany(batches: readonly { key: ConversationKey; messages: readonly StoredMessage[] }[]): Promise<UpsertAllocatedResult[]> {
    this.#assertOpen();
    return upsertAllocatedMany(this.#messages, this.#conversations, batches);
  }

  /** For warming Redis or seeding a cold conversation there: two single-document reads, in parallel. */
  async conversationState(key: ConversationKey): Promise<ConversationState> {
    this.#assertOpen();
    const [summary, head] = await Promise.all([this.#summary(key), this.#head(key)]);
    return { ...head, summary };
  }

  /** The listing's fields after a turn went in (conversation-activity.ts): one upsert. */
  async #recordActivity(key: ConversationKey, lastSeq: number, at: Date): Promise<void> {
    await recordActivity(this.#conversations, [{ key, lastSeq, atMs: at.getTime(), createdAtMs: at.getTime() }]);
  }

  /** How many messages `maxTokens` holds at the tokens per message seen lately (at most MAX_FIRST_BATCH). */
  #messagesFitting(maxTokens: number): number {
    if (!(maxTokens >= 0)) return 1;
    return Math.min(MAX_FIRST_BATCH, Math.floor(maxTokens / this.#tokensPerMessage) + 1);
  }

  #learnTokensPerMessage(observed: number): void {
    this.#tokensPerMessage += (observed - this.#tokensPerMessage) * 0.2;
  }

  #assertOpen(): void {
    if (this.#isClosed) throw new StoreUnavailableError(new Error('the MongoDB store is closed'));
  }

  /** The last seq given and the running total through it, from the newest message stored. */
  async #head(key: ConversationKey): Promise<Head> {
    const newest = await this.#messages.findOne({ ...keyFilter(key), seq: MESSAGE_SEQS }, {
      projection: { _id: 0, turnLastSeq: 1, turnLastCum: 1 },
      sort: { seq: -1 },
      hint: SEQ_INDEX,
    });
    return newest === null ? EMPTY_HEAD : { lastSeq: newest.turnLastSeq, lastCum: newest.turnLastCum };
  }

  async #summary(key: ConversationKey): Promise<Summary | undefined> {
    const document = await this.#summaries.findOne({ ...keyFilter(key), seq: SUMMARY_SEQ }, { projection: { _id: 0, summaryText: 1, tokens: 1, coversSeq: 1, createdAt: 1 }, hint: SEQ_INDEX });
    return document === null ? undefined : summaryFrom(document);
  }

  /**
   * Inserts a turn at the seqs after the head; false when its first message
   * could not go in (its seq or its claim is taken), in which case nothing did.
   * Once the first is in, the rest of the seqs are this turn's.
   */
  async #reserve(key: ConversationKey, documents: MessageDocument[]): Promise<boolean> {
    let failedIndex: number;
    try {
      await this.#messages.insertMany(documents, { ordered: true });
      return true;
    } catch (error) {
      const writeError = error instanceof MongoBulkWriteError && error.result.getWriteConcernError() === undefined ? writeErrorsOf(error)[0] : undefined;
      if (writeError?.code !== DUPLICATE_KEY_CODE) throw error;
      failedIndex = writeError.index;
    }
    if (failedIndex === 0) return false;
    // Only a retry of this turn filling it in can have been first at these seqs.
    const [outcome] = await insertIdempotently(this.#messages, [documents.slice(failedIndex)]);
    if (outcome !== undefined && outcome.conflicts.length > 0) {
      throw new Error(`MongoDB holds other messages at seqs reserved for a turn of ${conversationKeyString(key)}`);
    }
    return true;
  }

  /** A retried turn whose insert was cut short: inserts those of its messages that are not stored. */
  async #insertMissing(key: ConversationKey, documents: MessageDocument[]): Promise<void> {
    const first = documents[0];
    const last = documents.at(-1);
    if (first === undefined || last === undefined) return;
    const present = await this.#messages
      .find({ ...keyFilter(key), seq: { $gte: first.seq, $lte: last.seq } }, { projection: { _id: 0, seq: 1 }, hint: SEQ_INDEX })
      .toArray();
    if (present.length === documents.length) return;
    const stored = new Set(present.map((document) => document.seq));
    // A concurrent retry may insert the same messages: the unique index keeps one.
    await insertIdempotently(this.#messages, [documents.filter((document) => !stored.has(document.seq))]);
  }
}

function seqRange(firstSeq: number, count: number): number[] {
  return Array.from({ length: count }, (_, index) => firstSeq + index);
}
