// The outbox's target side: the flusher's writes of messages another tier
// (Redis) allocated, seq and cumTokens given, keyed on (tenant, conversation,
// seq) so that a round repeated after a crash writes the same documents again.

import type { Collection } from 'mongodb';
import type { ConversationKey, StoredMessage } from '../../domain.js';
import type { UpsertAllocatedResult } from '../conversation-store.js';
import { allocatedDocument, type ConversationDocument, type MessageDocument } from './document-codec.js';
import { createConversation, insertIdempotently } from './idempotent-insert.js';

/** MongoStore.upsertAllocatedMany, on the store's collections. */
export async function upsertAllocatedMany(
  messagesCollection: Collection<MessageDocument>,
  conversations: Collection<ConversationDocument>,
  batches: readonly { key: ConversationKey; messages: readonly StoredMessage[] }[],
): Promise<UpsertAllocatedResult[]> {
  const documents = batches.map(({ key, messages }) => messages.map((stored) => allocatedDocument(key, stored)));
  const outcomes = await insertIdempotently(messagesCollection, documents);
  const started = batches.filter((_, index) => documents[index]?.some((document) => document.seq === 1));
  await Promise.all(started.map(({ key }) => createConversation(conversations, key, new Date())));
  return batches.map(({ messages }, index) => {
    const outcome = outcomes[index] ?? { inserted: 0, alreadyStored: 0, conflicts: [] };
    return {
      inserted: outcome.inserted,
      alreadyStored: outcome.alreadyStored,
      conflicts: outcome.conflicts.flatMap((position) => messages[position] ?? []),
    };
  });
}
