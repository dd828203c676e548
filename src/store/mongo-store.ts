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
// Layout
//   messages       one document per message:
//                    { tenant, conversation, seq, claim, role, messageBytes, messageJson,
//                      tokens, cumTokens, digest, turnKey?, turnDigest?,
//                      turnLastSeq, turnLastCum, createdAt }
//                  unique (tenant, conversation, seq): seq allocation and idempotent inserts;
//                    its prefix (tenant, conversation) is the shard key for scale-out
//                  unique (tenant, conversation, claim): turn-key deduplication in the same insert
//                  (tenant, conversation, cumTokens, seq): load's budget window, read newest first
//   conversations  one document per conversation: { tenant, conversation, createdAt,
//                    summary?: { text, tokens, coversSeq, createdAt } }
//                  unique (tenant, conversation), also the shard key
// `cumTokens` is the running token total through the message. `turnLastSeq`
// and `turnLastCum` are the last seq and running total of the message's turn,
// so the newest message stored tells the next append where to start even while
// the rest of its turn is still being inserted. `claim` is `turn:<key>` on the
// first message of a turn appended with a turn key and `seq:<seq>` on every
// other message: a unique index over a field only some documents have needs a
// partial index, which FerretDB v1 lacks (and a sparse compound one indexes the
// missing field as null in MongoDB).
//
// The message itself is kept as its JSON text: unknown fields may carry keys
// with '.' or '$' (FerretDB rejects those, MongoDB only accepts them in some
// places) and JSON is what the other stores keep, so every tier round-trips a
// message identically. `role` and `messageBytes` are there for operators.

import { createHash } from 'node:crypto';
import { MongoBulkWriteError, MongoServerError, type Collection, type Db, type IndexDescription, type WriteError } from 'mongodb';
import type {
  AppendOptions,
  AppendResult,
  ChatMessage,
  ConversationKey,
  ConversationSnapshot,
  NewMessage,
  StoredMessage,
  Summary,
} from '../domain.js';
import { conversationKeyString } from '../domain.js';
import { StoreUnavailableError } from '../errors.js';
import type { ConversationStore, LoadLimits } from './conversation-store.js';

export interface MongoStoreOptions {
  /** From a MongoClient that main.ts owns: the store never opens or closes connections. */
  db: Db;
}

/** What upsertAllocated did with the messages it was given. */
export interface UpsertAllocatedResult {
  inserted: number;
  /** Already stored with the same seq and digest: left as they were. */
  alreadyStored: number;
  /** Given messages whose seq holds a different message (another digest): not stored. */
  conflicts: StoredMessage[];
}

export interface ConversationState {
  lastSeq: number;
  lastCum: number;
  summary: Summary | undefined;
}

/**
 * An append retries when another append took the seqs it read as free; each
 * failed try means another append succeeded, so only a conversation under
 * extreme contention runs out of tries.
 */
const MAX_APPEND_ATTEMPTS = 1_000;
const DUPLICATE_KEY_CODE = 11000;
const MAX_CURSOR_LIMIT = 2 ** 31 - 1;

const SEQ_INDEX = 'tenant_conversation_seq';
const CLAIM_INDEX = 'tenant_conversation_claim';
const WINDOW_INDEX = 'tenant_conversation_cumTokens_seq';
const CONVERSATION_INDEX = 'tenant_conversation';

interface MessageDocument {
  tenant: string;
  conversation: string;
  seq: number;
  claim: string;
  role: string;
  messageBytes: number;
  messageJson: string;
  tokens: number;
  cumTokens: number;
  digest: string;
  turnKey?: string;
  /** On the first message of a keyed turn: only a retry of the same turn may fill in what a failed insert left out. */
  turnDigest?: string;
  turnLastSeq: number;
  turnLastCum: number;
  createdAt: Date;
}

interface SummaryDocument {
  text: string;
  tokens: number;
  coversSeq: number;
  createdAt: Date;
}

interface ConversationDocument {
  tenant: string;
  conversation: string;
  createdAt: Date;
  summary?: SummaryDocument;
}

interface Head {
  lastSeq: number;
  lastCum: number;
}

/** A turn's messages ready to be stored from `firstSeq` on. */
interface Turn {
  key: ConversationKey;
  encoded: readonly { incoming: NewMessage; messageJson: string }[];
  turnKey: string | undefined;
  turnDigest: string | undefined;
  createdAt: Date;
}

const MESSAGE_PROJECTION = { _id: 0, seq: 1, messageJson: 1, tokens: 1, cumTokens: 1, digest: 1, turnKey: 1, createdAt: 1 } as const;
const EMPTY_HEAD: Head = { lastSeq: 0, lastCum: 0 };

interface InsertOutcome {
  inserted: number;
  alreadyStored: number;
  /** Indexes into the documents given. */
  conflicts: number[];
}

export class MongoStore implements ConversationStore {
  readonly #db: Db;
  readonly #messages: Collection<MessageDocument>;
  readonly #conversations: Collection<ConversationDocument>;
  #isClosed = false;

  constructor(options: MongoStoreOptions) {
    this.#db = options.db;
    this.#messages = options.db.collection<MessageDocument>('messages');
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
  }

  /**
   * Three single-document or window-sized indexed reads, whatever the
   * conversation's length: the summary and the newest message (in parallel),
   * then exactly the window (one range on the window index, newest first,
   * stopped by the message limit). No fewer on both servers: FerretDB v1 has no
   * $lookup, $unionWith or $facet, and it cannot keep the counters on the
   * conversation document (see the top of the file). `cache` is always `miss`:
   * this tier is not a cache.
   */
  async load(key: ConversationKey, limits: LoadLimits): Promise<ConversationSnapshot> {
    this.#assertOpen();
    const [summary, head] = await Promise.all([this.#summary(key), this.#head(key)]);
    const coversSeq = summary?.coversSeq ?? 0;
    const limit = Math.min(Math.floor(limits.maxMessages), MAX_CURSOR_LIMIT);
    // A limit of 0 would mean "no limit" to MongoDB.
    if (!(limit > 0) || head.lastSeq <= coversSeq) return { summary, messages: [], lastSeq: head.lastSeq, cache: 'miss' };

    // A message belongs to the window when the messages newer than it add up to
    // at most maxTokens, i.e. lastCum - cumTokens <= maxTokens, which also takes
    // the one that crosses the budget. The upper bounds leave out appends that
    // land between the reads, so the snapshot is as of the head read.
    const newestFirst = await this.#messages
      .find(
        {
          ...keyFilter(key),
          cumTokens: { $gte: head.lastCum - limits.maxTokens, $lte: head.lastCum },
          seq: { $gt: coversSeq, $lte: head.lastSeq },
        },
        { projection: MESSAGE_PROJECTION, sort: { cumTokens: -1, seq: -1 }, limit, batchSize: limit, hint: WINDOW_INDEX },
      )
      .toArray();
    return { summary, messages: newestFirst.reverse().map(fromMessageDocument), lastSeq: head.lastSeq, cache: 'miss' };
  }

  /** All stored history, including messages a summary covers: this is the durable record. */
  async listMessages(key: ConversationKey, page: { afterSeq: number; limit: number }): Promise<StoredMessage[]> {
    this.#assertOpen();
    const limit = Math.min(Math.floor(page.limit), MAX_CURSOR_LIMIT);
    if (!(limit > 0)) return [];
    const documents = await this.#messages
      .find(
        { ...keyFilter(key), seq: { $gt: page.afterSeq } },
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
    const turnKey = options?.turnKey;
    const turn: Turn = {
      key,
      // Encoded before anything is stored: a message JSON cannot encode stores nothing.
      encoded: messages.map((incoming) => ({ incoming, messageJson: JSON.stringify(incoming.message) })),
      turnKey,
      turnDigest: turnKey === undefined ? undefined : digestOfTurn(messages),
      createdAt: new Date(),
    };

    for (let attempt = 1; attempt <= MAX_APPEND_ATTEMPTS; attempt++) {
      const head = await this.#head(key);
      const documents = turnDocuments(turn, head);
      if (await this.#reserve(key, documents)) {
        if (head.lastSeq === 0) await this.#createConversation(key, turn.createdAt);
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
   * summaries of a conversation are written by one job at a time.
   */
  async replaceSummary(key: ConversationKey, summary: Summary): Promise<boolean> {
    this.#assertOpen();
    if (!(summary.coversSeq > 0)) return false;
    const head = await this.#head(key);
    if (summary.coversSeq > head.lastSeq) return false;
    const stored: SummaryDocument = {
      text: summary.text,
      tokens: summary.tokens,
      coversSeq: summary.coversSeq,
      createdAt: new Date(summary.createdAtMs),
    };
    try {
      // The conversation document is matched only if its summary covers less, so
      // an upsert that matches nothing meets the unique index when one covering
      // as much is there already.
      const result = await this.#conversations.updateOne(
        { ...keyFilter(key), $or: [{ summary: { $exists: false } }, { 'summary.coversSeq': { $lt: summary.coversSeq } }] },
        { $set: { summary: stored }, $setOnInsert: { createdAt: new Date() } },
        { upsert: true },
      );
      return result.matchedCount + result.upsertedCount === 1;
    } catch (error) {
      if (isDuplicateKey(error)) return false;
      throw error;
    }
  }

  /**
   * The conversation document goes first, then the messages. An append racing
   * the delete may be erased or may outlive it; a later append then continues
   * after it rather than reusing its seqs.
   */
  async delete(key: ConversationKey): Promise<void> {
    this.#assertOpen();
    await this.#conversations.deleteOne(keyFilter(key));
    await this.#messages.deleteMany(keyFilter(key));
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
    this.#assertOpen();
    if (messages.length === 0) return { inserted: 0, alreadyStored: 0, conflicts: [] };
    const documents = messages.map((stored) => {
      const { seq, cumTokens } = stored;
      if (!Number.isSafeInteger(seq) || seq <= 0) throw new TypeError(`upsertAllocated: seq must be a positive integer, got ${String(seq)}`);
      if (cumTokens === undefined || !Number.isFinite(cumTokens)) throw new TypeError(`upsertAllocated: message ${seq} has no cumTokens`);
      const messageJson = JSON.stringify(stored.message);
      const document = messageDocument(key, { incoming: stored, messageJson, seq, cumTokens, createdAt: new Date(stored.createdAtMs) });
      if (stored.turnKey !== undefined) document.turnKey = stored.turnKey;
      return document;
    });

    const outcome = await this.#insertIdempotently(key, documents);
    if (documents.some((document) => document.seq === 1)) await this.#createConversation(key, new Date());
    return {
      inserted: outcome.inserted,
      alreadyStored: outcome.alreadyStored,
      conflicts: outcome.conflicts.flatMap((index) => messages[index] ?? []),
    };
  }

  /** For warming Redis or seeding a cold conversation there: two single-document reads, in parallel. */
  async conversationState(key: ConversationKey): Promise<ConversationState> {
    this.#assertOpen();
    const [summary, head] = await Promise.all([this.#summary(key), this.#head(key)]);
    return { ...head, summary };
  }

  #assertOpen(): void {
    if (this.#isClosed) throw new StoreUnavailableError(new Error('the MongoDB store is closed'));
  }

  /** The last seq given and the running total through it, from the newest message stored. */
  async #head(key: ConversationKey): Promise<Head> {
    const newest = await this.#messages.findOne(keyFilter(key), {
      projection: { _id: 0, turnLastSeq: 1, turnLastCum: 1 },
      sort: { seq: -1 },
      hint: SEQ_INDEX,
    });
    return newest === null ? EMPTY_HEAD : { lastSeq: newest.turnLastSeq, lastCum: newest.turnLastCum };
  }

  async #summary(key: ConversationKey): Promise<Summary | undefined> {
    const conversation = await this.#conversations.findOne(keyFilter(key), { projection: { _id: 0, summary: 1 } });
    const summary = conversation?.summary;
    if (summary === undefined || summary === null) return undefined;
    return { text: summary.text, tokens: summary.tokens, coversSeq: summary.coversSeq, createdAtMs: summary.createdAt.getTime() };
  }

  /** Insert-only, so it can never overwrite a summary stored at the same moment (FerretDB writes whole documents). */
  async #createConversation(key: ConversationKey, createdAt: Date): Promise<void> {
    try {
      await this.#conversations.insertOne({ ...keyFilter(key), createdAt });
    } catch (error) {
      if (!isDuplicateKey(error)) throw error;
    }
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
    const outcome = await this.#insertIdempotently(key, documents.slice(failedIndex));
    if (outcome.conflicts.length > 0) {
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
    await this.#insertIdempotently(
      key,
      documents.filter((document) => !stored.has(document.seq)),
    );
  }

  /**
   * Inserts the documents, keeping whatever is stored at a seq already: a
   * duplicate key means "already there", and the stored digest tells a copy of
   * the same message from a different one. Unordered, so one stored seq does
   * not stop the rest.
   */
  async #insertIdempotently(key: ConversationKey, documents: MessageDocument[]): Promise<InsertOutcome> {
    if (documents.length === 0) return { inserted: 0, alreadyStored: 0, conflicts: [] };
    let duplicates: number[];
    let inserted: number;
    try {
      const result = await this.#messages.insertMany(documents, { ordered: false });
      return { inserted: result.insertedCount, alreadyStored: 0, conflicts: [] };
    } catch (error) {
      if (!(error instanceof MongoBulkWriteError) || error.result.getWriteConcernError() !== undefined) throw error;
      const writeErrors = writeErrorsOf(error);
      if (writeErrors.some((writeError) => writeError.code !== DUPLICATE_KEY_CODE)) throw error;
      duplicates = writeErrors.map((writeError) => writeError.index);
      inserted = error.insertedCount;
      // A connection cut mid-batch also surfaces as a bulk write error, with
      // documents neither inserted nor reported as duplicates: not an answer.
      if (inserted + duplicates.length !== documents.length) throw error;
    }

    const seqs = duplicates.flatMap((index) => documents[index]?.seq ?? []);
    const stored = await this.#messages
      .find({ ...keyFilter(key), seq: { $in: seqs } }, { projection: { _id: 0, seq: 1, digest: 1 }, hint: SEQ_INDEX })
      .toArray();
    const storedDigests = new Map(stored.map((document) => [document.seq, document.digest]));
    const conflicts = duplicates.filter((index) => {
      const document = documents[index];
      const storedDigest = document === undefined ? undefined : storedDigests.get(document.seq);
      // Gone again (a racing delete) counts as stored: there is nothing to conflict with.
      return storedDigest !== undefined && storedDigest !== document?.digest;
    });
    return { inserted, alreadyStored: duplicates.length - conflicts.length, conflicts };
  }
}

function keyFilter(key: ConversationKey): { tenant: string; conversation: string } {
  return { tenant: key.tenant, conversation: key.conversation };
}

function turnClaim(turnKey: string): string {
  return `turn:${turnKey}`;
}

/** The turn's documents at the seqs after `head`, every one carrying where the turn ends. */
function turnDocuments(turn: Turn, head: Head): MessageDocument[] {
  const turnLastSeq = head.lastSeq + turn.encoded.length;
  const turnLastCum = turn.encoded.reduce((sum, { incoming }) => sum + incoming.tokens, head.lastCum);
  let cumTokens = head.lastCum;
  return turn.encoded.map(({ incoming, messageJson }, index) => {
    cumTokens += incoming.tokens;
    const document = messageDocument(turn.key, { incoming, messageJson, seq: head.lastSeq + 1 + index, cumTokens, createdAt: turn.createdAt });
    document.turnLastSeq = turnLastSeq;
    document.turnLastCum = turnLastCum;
    if (index === 0 && turn.turnKey !== undefined && turn.turnDigest !== undefined) {
      document.claim = turnClaim(turn.turnKey);
      document.turnKey = turn.turnKey;
      document.turnDigest = turn.turnDigest;
    }
    return document;
  });
}

/**
 * A message as its own turn: what upsertAllocated stores (another tier knew the
 * turns) and what turnDocuments starts from. Optional fields are left out, never
 * set to undefined, which the driver would store as null.
 */
function messageDocument(
  key: ConversationKey,
  fields: { incoming: NewMessage; messageJson: string; seq: number; cumTokens: number; createdAt: Date },
): MessageDocument {
  const { incoming, messageJson, seq, cumTokens } = fields;
  const role: unknown = incoming.message.role;
  return {
    ...keyFilter(key),
    seq,
    claim: `seq:${seq}`,
    role: typeof role === 'string' ? role : 'unknown',
    messageBytes: Buffer.byteLength(messageJson),
    messageJson,
    tokens: incoming.tokens,
    cumTokens,
    digest: incoming.digest,
    turnLastSeq: seq,
    turnLastCum: cumTokens,
    createdAt: fields.createdAt,
  };
}

function fromMessageDocument(document: MessageDocument): StoredMessage {
  const stored: StoredMessage = {
    message: JSON.parse(document.messageJson) as ChatMessage,
    tokens: document.tokens,
    digest: document.digest,
    seq: document.seq,
    createdAtMs: document.createdAt.getTime(),
    cumTokens: document.cumTokens,
  };
  if (typeof document.turnKey === 'string') stored.turnKey = document.turnKey;
  return stored;
}

function digestOfTurn(messages: readonly NewMessage[]): string {
  return createHash('sha256')
    .update(JSON.stringify(messages.map((m) => m.digest)))
    .digest('base64url');
}

function writeErrorsOf(error: MongoBulkWriteError): readonly WriteError[] {
  const { writeErrors } = error;
  return Array.isArray(writeErrors) ? writeErrors : [writeErrors as WriteError];
}

function isDuplicateKey(error: unknown): boolean {
  return error instanceof MongoServerError && error.code === DUPLICATE_KEY_CODE;
}

function seqRange(firstSeq: number, count: number): number[] {
  return Array.from({ length: count }, (_, index) => firstSeq + index);
}
