// The MongoDB documents: how a conversation is laid out in the collections,
// and the conversion between messages and documents.
//
// Layout (docs/storage.md, "MongoDB layout")
//   messages       one document per message:
//                    { tenant, conversation, seq, claim, role, messageBytes, messageJson,
//                      tokens, cumTokens, digest, turnKey?, turnDigest?,
//                      turnLastSeq, turnLastCum, flushed?, createdAt }
//                  unique (tenant, conversation, seq): seq allocation and idempotent inserts;
//                    its prefix (tenant, conversation) is the shard key for scale-out
//                  unique (tenant, conversation, claim): turn-key deduplication in the same insert
//                  (tenant, conversation, cumTokens, seq): the window by running total (operators, listings)
//                  and at seq SUMMARY_SEQ (2^53 - 1, above every message) the conversation's summary:
//                    { tenant, conversation, seq: SUMMARY_SEQ, claim: 'summary', role: 'summary',
//                      summaryText, tokens, coversSeq, createdAt, erasedAt?, erasedFromSeq?, erasedThroughSeq? }
//                  an erased message leaves a tombstone at its seq: { …, erased: true, role: 'erased',
//                    messageJson: '', tokens: 0, digest: 'erased' } (erase-messages.ts)
//   conversations  one document per conversation: { tenant, conversation, createdAt, lastActivityAt, lastSeq }
//                  unique (tenant, conversation), also the shard key
//                  (tenant, lastActivityAt -1, conversation): the conversation listing (mongo-directory.ts);
//                  lastActivityAt and lastSeq follow every write of messages (conversation-activity.ts),
//                  and are filled in on the first listing of a tenant for documents written before them
// The summary is the conversation's top document in `messages`, so that load
// is one indexed query: newest first on (tenant, conversation, seq), it meets
// the summary, then the newest messages, and stops at the budget.
// `cumTokens` is the running token total through the message. `turnLastSeq`
// and `turnLastCum` are the last seq and running total of the message's turn,
// so the newest message stored tells the next append where to start even while
// the rest of its turn is still being inserted. `claim` is `turn:<key>` on the
// first message of a turn with a turn key (appended, or flushed from Redis)
// and `seq:<seq>` on every other message: a unique index over a field only some documents have needs a
// partial index, which FerretDB v1 lacks (and a sparse compound one indexes the
// missing field as null in MongoDB).
//
// The message itself is kept as its JSON text: unknown fields may carry keys
// with '.' or '$' (FerretDB rejects those, MongoDB only accepts them in some
// places) and JSON is what the other stores keep, so every tier round-trips a
// message identically. `role` and `messageBytes` are there for operators.

import { hash } from 'node:crypto';
import type { ChatMessage, ConversationKey, NewMessage, StoredMessage, Summary } from '../../domain.js';
import { frozenJson } from '../../freeze.js';

export const SEQ_INDEX = 'tenant_conversation_seq';
export const CLAIM_INDEX = 'tenant_conversation_claim';
export const WINDOW_INDEX = 'tenant_conversation_cumTokens_seq';
export const CONVERSATION_INDEX = 'tenant_conversation';
export const ACTIVITY_INDEX = 'tenant_lastActivityAt_conversation';

export interface MessageDocument {
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
  /** Stored by the flusher from Redis (seq given there), not appended here: what a diverged flush may take back. */
  flushed?: true;
  /** An erased message's tombstone (erase-messages.ts): no text, no tokens; it keeps the seq (and claim) taken. */
  erased?: true;
  turnLastSeq: number;
  turnLastCum: number;
  createdAt: Date;
}

/** The summary, stored in `messages` at SUMMARY_SEQ. */
export interface SummaryDocument {
  tenant: string;
  conversation: string;
  seq: typeof SUMMARY_SEQ;
  claim: typeof SUMMARY_CLAIM;
  role: 'summary';
  summaryText: string;
  tokens: number;
  coversSeq: number;
  createdAt: Date;
  /**
   * The last erasure of messages (erase-messages.ts): when, and the smallest
   * and largest seq ever erased. A document holding only these (coversSeq 0,
   * no summaryText) is no summary.
   */
  erasedAt?: Date;
  erasedFromSeq?: number;
  erasedThroughSeq?: number;
}

export interface ConversationDocument {
  tenant: string;
  conversation: string;
  createdAt: Date;
  /** The newest message's createdAt; missing on documents written before the listing existed. */
  lastActivityAt?: Date;
  /** The last seq given (the message count); missing on documents written before the listing existed. */
  lastSeq?: number;
}

/** A document load reads: a message, or the summary (with summaryText and coversSeq). */
export type LoadedDocument = Partial<MessageDocument> & Partial<SummaryDocument> & { seq: number };

export interface Head {
  lastSeq: number;
  lastCum: number;
}

/** A turn's messages ready to be stored from `firstSeq` on. */
export interface Turn {
  key: ConversationKey;
  encoded: readonly { incoming: NewMessage; messageJson: string }[];
  turnKey: string | undefined;
  turnDigest: string | undefined;
  createdAt: Date;
}

export const MESSAGE_PROJECTION = { _id: 0, seq: 1, messageJson: 1, tokens: 1, cumTokens: 1, digest: 1, turnKey: 1, createdAt: 1 } as const;
/** What load reads of each document: a message's fields, the summary's, and where the newest turn ends. */
export const LOAD_PROJECTION = { ...MESSAGE_PROJECTION, turnLastSeq: 1, summaryText: 1, coversSeq: 1, erasedThroughSeq: 1 } as const;
/** Messages that are not erased (a tombstone is never loaded or listed). */
export const NOT_ERASED = { erased: { $ne: true } } as const;
/** The summary document's seq: above every message's, so a newest-first read meets it first. */
export const SUMMARY_SEQ = Number.MAX_SAFE_INTEGER;
export const SUMMARY_CLAIM = 'summary';
/** Only messages: every seq below the summary's. */
export const MESSAGE_SEQS = { $lt: SUMMARY_SEQ } as const;
export const EMPTY_HEAD: Head = { lastSeq: 0, lastCum: 0 };

export function keyFilter(key: ConversationKey): { tenant: string; conversation: string } {
  return { tenant: key.tenant, conversation: key.conversation };
}

export const TURN_CLAIM_PREFIX = 'turn:';

export function turnClaim(turnKey: string): string {
  return `${TURN_CLAIM_PREFIX}${turnKey}`;
}

/** The turn's documents at the seqs after `head`, every one carrying where the turn ends. */
export function turnDocuments(turn: Turn, head: Head): MessageDocument[] {
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
export function messageDocument(
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

/** A message another tier allocated (seq and cumTokens given), as stored; throws on a seq or total that cannot be stored. */
function allocatedDocument(key: ConversationKey, stored: StoredMessage): MessageDocument {
  const { seq, cumTokens } = stored;
  if (!Number.isSafeInteger(seq) || seq <= 0 || seq >= SUMMARY_SEQ) throw new TypeError(`upsertAllocated: seq must be a positive integer, got ${String(seq)}`);
  if (cumTokens === undefined || !Number.isFinite(cumTokens)) throw new TypeError(`upsertAllocated: message ${seq} has no cumTokens`);
  // A message the flusher read from Redis comes with its entry's JSON (entry-codec.ts): not serialised again.
  const document = messageDocument(key, { incoming: stored, messageJson: frozenJson(stored.message), seq, cumTokens, createdAt: new Date(stored.createdAtMs) });
  if (stored.turnKey !== undefined) document.turnKey = stored.turnKey;
  document.flushed = true;
  return document;
}

/**
 * Messages another tier allocated, as stored: the first message of each keyed
 * turn (a message with a turn key and those after it without one) claims the
 * turn's key and carries its digest and where it ends, as an append's does,
 * so that a merge appending the same turn later finds it by its key.
 */
export function allocatedDocuments(key: ConversationKey, messages: readonly StoredMessage[]): MessageDocument[] {
  const documents = messages.map((stored) => allocatedDocument(key, stored));
  let start = 0;
  while (start < messages.length) {
    let end = start + 1;
    while (end < messages.length && messages[end]!.turnKey === undefined && messages[end]!.seq === messages[end - 1]!.seq + 1) end++;
    const turnKey = messages[start]!.turnKey;
    if (turnKey !== undefined) {
      const turn = documents.slice(start, end);
      const last = turn.at(-1)!;
      for (const document of turn) {
        document.turnLastSeq = last.seq;
        document.turnLastCum = last.cumTokens;
      }
      turn[0]!.claim = turnClaim(turnKey);
      turn[0]!.turnDigest = digestOfTurn(messages.slice(start, end));
    }
    start = end;
  }
  return documents;
}

export function fromMessageDocument(document: MessageDocument): StoredMessage {
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

export function summaryFrom(document: Pick<LoadedDocument, 'summaryText' | 'tokens' | 'coversSeq' | 'createdAt'>): Summary | undefined {
  const { summaryText, tokens, coversSeq, createdAt } = document;
  if (typeof summaryText !== 'string' || tokens === undefined || coversSeq === undefined || createdAt === undefined) return undefined;
  return { text: summaryText, tokens, coversSeq, createdAtMs: createdAt.getTime() };
}

export function digestOfTurn(messages: readonly NewMessage[]): string {
  return hash('sha256', JSON.stringify(messages.map((m) => m.digest)), 'base64url');
}

