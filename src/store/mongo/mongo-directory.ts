// MongoDB's conversation listing: a page is one query on the conversations
// collection's (tenant, lastActivityAt -1, conversation) index, starting after
// the cursor, and one query for the page's summaries (their documents in
// `messages`, by the unique seq index). lastActivityAt and lastSeq are kept by
// every write (conversation-activity.ts); a tenant's first page fills them in
// on documents written before they existed, and on later listings that is one
// probe of the index that finds nothing.

import type { Collection, Db, Filter } from 'mongodb';
import type { TenantId } from '../../domain.js';
import type { ConversationDirectory, ConversationEntry, ConversationPage } from '../conversation-directory.js';
import { decodeCursor, pageFrom } from '../directory-order.js';
import { backfillActivity } from './conversation-activity.js';
import { ACTIVITY_INDEX, SEQ_INDEX, SUMMARY_SEQ, type ConversationDocument, type MessageDocument, type SummaryDocument } from './document-codec.js';

export interface MongoDirectoryOptions {
  /** The store's database (MongoStore's). */
  db: Db;
}

export class MongoDirectory implements ConversationDirectory {
  readonly #messages: Collection<MessageDocument>;
  readonly #summaries: Collection<SummaryDocument>;
  readonly #conversations: Collection<ConversationDocument>;

  constructor(options: MongoDirectoryOptions) {
    this.#messages = options.db.collection<MessageDocument>('messages');
    this.#summaries = options.db.collection<SummaryDocument>('messages');
    this.#conversations = options.db.collection<ConversationDocument>('conversations');
  }

  async list(tenant: TenantId, page: { limit: number; after: string | undefined }): Promise<ConversationPage> {
    const position = page.after === undefined ? undefined : decodeCursor(page.after);
    const limit = Math.max(0, Math.floor(page.limit));
    // A later page's documents are all in index order already: the first page made them so.
    if (position === undefined) await backfillActivity(this.#messages, this.#conversations, tenant);
    let filter: Filter<ConversationDocument> = { tenant };
    if (position !== undefined) {
      const at = new Date(position.activityMs);
      filter = { tenant, lastActivityAt: { $lte: at }, $or: [{ lastActivityAt: { $lt: at } }, { lastActivityAt: at, conversation: { $gt: position.conversation } }] };
    }
    const documents = await this.#conversations
      .find(filter, {
        projection: { _id: 0, conversation: 1, createdAt: 1, lastActivityAt: 1, lastSeq: 1 },
        sort: { lastActivityAt: -1, conversation: 1 },
        limit: limit + 1,
        hint: ACTIVITY_INDEX,
      })
      .toArray();
    const listed = pageFrom(documents.map(entryOf), limit);
    await this.#readSummaries(tenant, listed.conversations);
    return listed;
  }

  async #readSummaries(tenant: TenantId, entries: readonly ConversationEntry[]): Promise<void> {
    if (entries.length === 0) return;
    const summaries = await this.#summaries
      .find(
        { tenant, conversation: { $in: entries.map((entry) => entry.conversation) }, seq: SUMMARY_SEQ },
        { projection: { _id: 0, conversation: 1, tokens: 1, coversSeq: 1 }, hint: SEQ_INDEX },
      )
      .toArray();
    const byConversation = new Map(summaries.map((summary) => [summary.conversation, summary]));
    for (const entry of entries) {
      const summary = byConversation.get(entry.conversation);
      // A summary document that only records an erasure (coversSeq 0, no text) is no summary.
      if (summary !== undefined && summary.coversSeq > 0) entry.summary = { coversSeq: summary.coversSeq, tokens: summary.tokens };
    }
  }
}

function entryOf(document: Pick<ConversationDocument, 'conversation' | 'createdAt' | 'lastActivityAt' | 'lastSeq'>): ConversationEntry {
  return {
    conversation: document.conversation as ConversationEntry['conversation'],
    messageCount: document.lastSeq ?? 0,
    // Only a document an older contextd wrote after this tenant's backfill lacks it.
    lastActivityMs: (document.lastActivityAt ?? document.createdAt).getTime(),
    summary: undefined,
  };
}
