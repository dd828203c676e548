// The outbox's target side: the flusher's writes of messages another tier
// (Redis) allocated, seq and cumTokens given, keyed on (tenant, conversation,
// seq) so that a round repeated after a crash writes the same documents again,
// each turn's first message claiming its turn key as an append's does.
//
// A seq MongoDB gives to another message means the two tiers' histories of the
// conversation went apart (turns were written to MongoDB directly while Redis
// did not answer, and Redis came back holding turns it had not flushed). From
// that seq on, Redis's numbering no longer fits MongoDB's, so none of its
// messages stay there: those this write placed after the first conflict are
// taken out again, and every message from the first conflict on is returned as
// a conflict, for the flusher to merge turn by turn after MongoDB's history.

import type { Collection } from 'mongodb';
import type { ConversationKey, StoredMessage } from '../../domain.js';
import type { UpsertAllocatedResult } from '../conversation-store.js';
import { recordActivity, type Activity } from './conversation-activity.js';
import { allocatedDocuments, keyFilter, type ConversationDocument, type MessageDocument } from './document-codec.js';
import { insertIdempotently, type InsertOutcome } from './idempotent-insert.js';

/** MongoStore.upsertAllocatedMany, on the store's collections. */
export async function upsertAllocatedMany(
  messagesCollection: Collection<MessageDocument>,
  conversations: Collection<ConversationDocument>,
  batches: readonly { key: ConversationKey; messages: readonly StoredMessage[] }[],
): Promise<UpsertAllocatedResult[]> {
  const documents = batches.map(({ key, messages }) => allocatedDocuments(key, messages));
  const outcomes = await insertIdempotently(messagesCollection, documents);
  // The listing's fields, for the whole round in one bulk write, beside the withdrawals.
  const activities = batches.flatMap(({ key, messages }, index) => activityOf(key, messages, outcomes[index]?.conflicts ?? []));
  const [results] = await Promise.all([
    Promise.all(
      batches.map(async ({ key, messages }, index) => {
        const outcome = outcomes[index] ?? { inserted: 0, alreadyStored: 0, storedAt: [], conflicts: [] };
        if (outcome.conflicts.length === 0) return { inserted: outcome.inserted, alreadyStored: outcome.alreadyStored, conflicts: [] };
        return withdrawAfterFirstConflict(messagesCollection, key, messages, documents[index] ?? [], outcome);
      }),
    ),
    recordActivity(conversations, activities),
  ]);
  return results;
}

/** What a conversation holds from this write: its messages before the first conflict (none stay after it). */
function activityOf(key: ConversationKey, messages: readonly StoredMessage[], conflicts: readonly number[]): Activity[] {
  const stored = conflicts.length === 0 ? messages : messages.slice(0, Math.min(...conflicts));
  if (stored.length === 0) return [];
  return [
    {
      key,
      lastSeq: stored.reduce((max, message) => Math.max(max, message.seq), 0),
      atMs: stored.reduce((max, message) => Math.max(max, message.createdAtMs), 0),
      createdAtMs: stored[0]!.createdAtMs,
    },
  ];
}

/**
 * Takes out of MongoDB the messages of this batch placed after its first
 * conflicting seq (inserted now, or by an earlier try of the same flush), by
 * seq, digest, claim and the mark only a flushed message carries, so nothing
 * MongoDB got another way is touched (not even a message with the same text
 * at the same seq). Everything from the first conflict on is returned as
 * conflicts, oldest first.
 */
async function withdrawAfterFirstConflict(
  messagesCollection: Collection<MessageDocument>,
  key: ConversationKey,
  messages: readonly StoredMessage[],
  documents: readonly MessageDocument[],
  outcome: InsertOutcome,
): Promise<UpsertAllocatedResult> {
  const firstConflict = Math.min(...outcome.conflicts);
  const conflictSet = new Set(outcome.conflicts);
  const misplaced = documents.filter((_, position) => position > firstConflict && !conflictSet.has(position));
  if (misplaced.length > 0) {
    await messagesCollection.deleteMany({
      ...keyFilter(key),
      flushed: true,
      $or: misplaced.map((document) => ({ seq: document.seq, digest: document.digest, claim: document.claim })),
    });
  }
  const storedBefore = outcome.storedAt.filter((position) => position < firstConflict).length;
  return {
    inserted: firstConflict - storedBefore,
    alreadyStored: storedBefore,
    conflicts: messages.slice(firstConflict),
  };
}
