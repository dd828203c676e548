// Erasing messages from MongoDB (the conversation API's DELETE …/messages/:seq;
// docs/storage.md, "Erasing messages").
//
// An erased message's document stays as a tombstone: its text, role, tokens and
// digest are gone, its seq, claim and turn fields stay. So the seq is never
// given again (an append starts after the newest document, tombstones
// included), a turn retried under its key finds it there and fills nothing in
// again (append, storedWhole), and a flush of the message that another
// instance read from Redis before the erasure meets the tombstone and stores
// nothing (insertIdempotently counts it as stored). Loads and listings leave
// tombstones out (NOT_ERASED). The running totals of the later documents
// lose the erased tokens, so cumTokens stays the total of what is held.
//
// The summary goes first: an erasure cut short and repeated then still finds
// the message, never a summary alone holding its text. The summary document
// also records the erasure (erasedAt, erasedFromSeq), and replaceSummary
// refuses a summary made from a read before it that covers an erased seq
// (madeAfterErasures): a flush round that read Redis's summary before the
// erasure, or a job of another instance, cannot bring the text back.

import type { Collection, Document } from 'mongodb';
import type { ConversationKey, Summary } from '../../domain.js';
import type { ErasedPosition, TierErasure } from '../conversation-store.js';
import { keyFilter, NOT_ERASED, SEQ_INDEX, SUMMARY_CLAIM, SUMMARY_SEQ, type MessageDocument } from './document-codec.js';
import { DUPLICATE_KEY_CODE, isDuplicateKey, writeErrorsOf } from './idempotent-insert.js';
import { MongoBulkWriteError } from 'mongodb';

/** A tombstone's digest: no message has it (digests are base64url of SHA-256). */
export const ERASED_DIGEST = 'erased';

/** What a tombstone keeps of a message: nothing of what it said. */
const BLANKED = { erased: true, role: 'erased', messageJson: '', messageBytes: 0, tokens: 0, digest: ERASED_DIGEST } as const;

/** Erases the documents at `seqs` (MongoStore.eraseMessages, run after this process's appends to the conversation). */
export async function eraseMessageDocuments(
  messages: Collection<MessageDocument>,
  key: ConversationKey,
  seqs: readonly number[],
  positions: readonly ErasedPosition[],
  now: Date,
): Promise<TierErasure> {
  const ascending = [...new Set(seqs)].filter((seq) => Number.isSafeInteger(seq) && seq > 0 && seq < SUMMARY_SEQ).sort((a, b) => a - b);
  const first = ascending[0];
  if (first === undefined) return { messages: 0, summaryDropped: false };
  const slots = messages as unknown as Collection<Document>;
  const summaryDropped = await recordErasure(slots, key, first, now);
  // Seqs where this erasure leaves a tombstone: first those that hold a message here.
  const taken = await tombstone(messages, key, ascending);
  let erased = taken.length;
  // Messages the hot tier held and this tier does not yet: their seqs are taken now, so no flush stores them later.
  const wanted = new Set(ascending);
  const unheld = positions.filter((position) => wanted.has(position.seq) && !taken.includes(position.seq));
  if (unheld.length > 0) {
    const present = new Set(
      (await messages.find({ ...keyFilter(key), seq: { $in: unheld.map((p) => p.seq) } }, { projection: { _id: 0, seq: 1 }, hint: SEQ_INDEX }).toArray()).map((d) => d.seq),
    );
    const placed = unheld.filter((p) => !present.has(p.seq));
    const arrived = await insertPlaceholders(messages, key, placed, now);
    // A flush got there first, since the first read: its message is tombstoned like the others.
    const late = await tombstone(messages, key, [...present, ...arrived]);
    erased += late.length;
    taken.push(...late, ...placed.map((p) => p.seq).filter((seq) => !arrived.includes(seq)));
  }
  // Seqs erased at the tail are still given: loads, which leave tombstones out, take lastSeq from here too.
  if (taken.length > 0) await slots.updateOne({ ...keyFilter(key), seq: SUMMARY_SEQ }, { $max: { erasedThroughSeq: Math.max(...taken) } });
  return { messages: erased, summaryDropped };
}

/**
 * The filter a summary document must also match for `summary` to be stored:
 * no erasure after the read the summary was made from (its createdAtMs) of a
 * seq it covers.
 */
export function madeAfterErasures(summary: Summary): Document {
  return { $nor: [{ erasedAt: { $gt: new Date(summary.createdAtMs) }, erasedFromSeq: { $lte: summary.coversSeq } }] };
}

/**
 * Notes the erasure on the summary document (created without a summary when
 * there is none), then drops a summary covering `fromSeq`; true when one was dropped.
 * In that order: a summary stored between the two is either refused or dropped.
 */
async function recordErasure(slots: Collection<Document>, key: ConversationKey, fromSeq: number, now: Date): Promise<boolean> {
  const slot = { ...keyFilter(key), seq: SUMMARY_SEQ };
  const record = (): Promise<unknown> =>
    slots.updateOne(
      slot,
      {
        $set: { erasedAt: now },
        $min: { erasedFromSeq: fromSeq },
        $setOnInsert: { claim: SUMMARY_CLAIM, role: 'summary', coversSeq: 0, createdAt: now },
      },
      { upsert: true },
    );
  // Two upserts racing to create the document: the loser finds it there.
  await record().catch((error: unknown) => (isDuplicateKey(error) ? record() : Promise.reject(error)));
  const dropped = await slots.updateOne({ ...slot, coversSeq: { $gte: fromSeq } }, { $set: { coversSeq: 0 }, $unset: { summaryText: '', tokens: '' } });
  return dropped.modifiedCount > 0;
}

/** Blanks the held, not yet erased messages at `seqs` and takes their tokens out of the running totals; the seqs it blanked. */
async function tombstone(messages: Collection<MessageDocument>, key: ConversationKey, seqs: readonly number[]): Promise<number[]> {
  if (seqs.length === 0) return [];
  const held = await messages
    .find({ ...keyFilter(key), seq: { $in: [...seqs] }, ...NOT_ERASED }, { projection: { _id: 0, seq: 1, tokens: 1 }, hint: SEQ_INDEX })
    .toArray();
  if (held.length === 0) return [];
  // The text first; a crash before the totals leaves them too high, which only makes windows shorter.
  await messages.updateMany({ ...keyFilter(key), seq: { $in: held.map((d) => d.seq) }, ...NOT_ERASED }, { $set: BLANKED, $unset: { turnDigest: '' } });
  for (const { seq, tokens } of held.sort((a, b) => a.seq - b.seq)) {
    // Running totals through this seq or later lose its tokens; so does the end of its own turn, whose first
    // message also forgets the turn's digest (a digest of what the turn said).
    if (tokens > 0) await messages.updateMany({ ...keyFilter(key), seq: { $gte: seq, $lt: SUMMARY_SEQ } }, { $inc: { cumTokens: -tokens, turnLastCum: -tokens } });
    await messages.updateMany(
      { ...keyFilter(key), seq: { $lt: seq }, turnLastSeq: { $gte: seq } },
      tokens > 0 ? { $inc: { turnLastCum: -tokens }, $unset: { turnDigest: '' } } : { $unset: { turnDigest: '' } },
    );
  }
  return held.map((d) => d.seq);
}

/** Tombstones at seqs this tier does not hold, with the hot tier's running totals; returns the seqs a message took meanwhile. */
async function insertPlaceholders(messages: Collection<MessageDocument>, key: ConversationKey, positions: readonly ErasedPosition[], now: Date): Promise<number[]> {
  if (positions.length === 0) return [];
  const documents: MessageDocument[] = positions.map(({ seq, cumTokens }) => ({
    ...keyFilter(key),
    seq,
    claim: `seq:${seq}`,
    ...BLANKED,
    cumTokens,
    turnLastSeq: seq,
    turnLastCum: cumTokens,
    createdAt: now,
  }));
  try {
    await messages.insertMany(documents, { ordered: false });
    return [];
  } catch (error) {
    if (!(error instanceof MongoBulkWriteError) || writeErrorsOf(error).some((e) => e.code !== DUPLICATE_KEY_CODE)) throw error;
    return writeErrorsOf(error).flatMap((e) => documents[e.index]?.seq ?? []);
  }
}
