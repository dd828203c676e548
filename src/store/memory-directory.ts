// The embedded store's conversation listing: every conversation is in the
// store's map, so a page is that tenant's entries sorted per call. The map
// holds at most storage.memory.max_conversations, which bounds the sort.

import type { TenantId } from '../domain.js';
import type { ConversationDirectory, ConversationEntry, ConversationPage } from './conversation-directory.js';
import { pageOf } from './directory-order.js';

export class MemoryDirectory implements ConversationDirectory {
  readonly #store: { conversationsOf(tenant: TenantId): ConversationEntry[] };

  /** `store` is the MemoryStore the conversations are in. */
  constructor(store: { conversationsOf(tenant: TenantId): ConversationEntry[] }) {
    this.#store = store;
  }

  async list(tenant: TenantId, page: { limit: number; after: string | undefined }): Promise<ConversationPage> {
    return pageOf(this.#store.conversationsOf(tenant), page);
  }
}
