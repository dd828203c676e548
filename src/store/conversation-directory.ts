import type { ConversationId, TenantId } from '../domain.js';

/** One conversation as a listing shows it. */
export interface ConversationEntry {
  conversation: ConversationId;
  /** Messages stored (the last seq given: seqs are gap-free from 1). */
  messageCount: number;
  lastActivityMs: number;
  /** The summary's covered seq and size, when there is one. */
  summary: { coversSeq: number; tokens: number } | undefined;
}

/** A page of a tenant's conversations, newest activity first; `next` continues after the last one. */
export interface ConversationPage {
  conversations: ConversationEntry[];
  next: string | undefined;
}

/** Lists a tenant's conversations (the conversation API's GET /contextd/v1/conversations). */
export interface ConversationDirectory {
  /** `after` is a previous page's `next` (opaque); at most `limit` entries. */
  list(tenant: TenantId, page: { limit: number; after: string | undefined }): Promise<ConversationPage>;
}
