// The conversations collection's listing fields: lastActivityAt (the newest
// message's createdAt) and lastSeq (the message count), kept by every write of
// messages, after the messages are in (a turn never counts before it is
// stored). One upsert per conversation written, all of a call's in one bulk
// write: an append pays one round trip more (not one per message), a flush
// round one for all the conversations it carries. The upsert also creates the
// document, with createdAt, on a conversation's first write.
//
// $max, so writes that arrive out of order (two instances, a merge after a
// flush) never move either field back. On MongoDB $max is atomic; FerretDB v1
// runs an update as a read and a write, so two racing writes of one
// conversation may leave the older value there until its next write.
//
// Documents written before these fields existed are filled in on the first
// listing of their tenant (backfillActivity): lastActivityAt from the newest
// message's createdAt (the document's createdAt when it has none), lastSeq
// from the newest message's turn. Until a conversation has lastActivityAt
// it is not in the listing's index order, so a listing fills in all of its
// tenant's first.

import { MongoBulkWriteError, type AnyBulkWriteOperation, type Collection } from 'mongodb';
import type { ConversationKey } from '../../domain.js';
import { keyFilter, MESSAGE_SEQS, SEQ_INDEX, type ConversationDocument, type MessageDocument } from './document-codec.js';
import { DUPLICATE_KEY_CODE, writeErrorsOf } from './idempotent-insert.js';

/** A write of messages to one conversation: the last seq it stored and when its newest message was made. */
export interface Activity {
  key: ConversationKey;
  lastSeq: number;
  atMs: number;
  /** The conversation's createdAt, if this write creates its document. */
  createdAtMs: number;
}

/** Conversations filled in per round of backfillActivity: each costs one indexed read of its newest message. */
const BACKFILL_BATCH = 200;

export async function recordActivity(conversations: Collection<ConversationDocument>, activities: readonly Activity[]): Promise<void> {
  if (activities.length === 0) return;
  const operations: AnyBulkWriteOperation<ConversationDocument>[] = activities.map(({ key, lastSeq, atMs, createdAtMs }) => ({
    updateOne: {
      filter: keyFilter(key),
      update: { $setOnInsert: { createdAt: new Date(createdAtMs) }, $max: { lastActivityAt: new Date(atMs), lastSeq } },
      upsert: true,
    },
  }));
  try {
    await conversations.bulkWrite(operations, { ordered: false });
  } catch (error) {
    // Two upserts racing to create one conversation's document: the one that
    // lost met the unique index, and once more is an update of the other's.
    if (!(error instanceof MongoBulkWriteError) || error.result.getWriteConcernError() !== undefined) throw error;
    const writeErrors = writeErrorsOf(error);
    if (writeErrors.some((writeError) => writeError.code !== DUPLICATE_KEY_CODE)) throw error;
    await conversations.bulkWrite(
      writeErrors.flatMap((writeError) => operations[writeError.index] ?? []),
      { ordered: false },
    );
  }
}

/**
 * Fills in lastActivityAt and lastSeq on the tenant's documents written
 * before they existed; once there are none, one indexed probe that finds
 * nothing. A write racing it wins (the fill-in only takes documents still
 * without lastActivityAt).
 */
export async function backfillActivity(messages: Collection<MessageDocument>, conversations: Collection<ConversationDocument>, tenant: string): Promise<void> {
  for (;;) {
    const legacy = await conversations
      .find({ tenant, lastActivityAt: { $exists: false } }, { projection: { _id: 0, conversation: 1, createdAt: 1 }, limit: BACKFILL_BATCH })
      .toArray();
    if (legacy.length === 0) return;
    const newest = await Promise.all(
      legacy.map(({ conversation }) =>
        messages.findOne({ tenant, conversation, seq: MESSAGE_SEQS }, { projection: { _id: 0, createdAt: 1, turnLastSeq: 1 }, sort: { seq: -1 }, hint: SEQ_INDEX }),
      ),
    );
    const result = await conversations.bulkWrite(
      legacy.map(({ conversation, createdAt }, index) => ({
        updateOne: {
          filter: { tenant, conversation, lastActivityAt: { $exists: false } },
          update: { $set: { lastActivityAt: newest[index]?.createdAt ?? createdAt }, $max: { lastSeq: newest[index]?.turnLastSeq ?? 0 } },
        },
      })),
      { ordered: false },
    );
    // Nothing taken (a server that would not write them) must not loop for ever.
    if (legacy.length < BACKFILL_BATCH || result.matchedCount === 0) return;
  }
}
