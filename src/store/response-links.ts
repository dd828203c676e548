import type { ConversationId, ConversationKey, TenantId } from '../domain.js';

/**
 * Where a relayed Responses API reply sits, for `previous_response_id`
 * emulation (docs/responses.md): the conversation it belongs to and the turn
 * it answered, named by that turn's key (every stored turn carries one).
 */
export interface ResponseLink {
  conversation: ConversationId;
  /** The turn key of the turn whose reply this response was. */
  turnKey: string;
  createdAtMs: number;
}

/**
 * Response id → link, per tenant: another tenant never finds a link. A link
 * lives as long as its conversation is kept; the lookup also checks that the
 * conversation still holds the turn, so a link never outlives what it names.
 */
export interface ResponseLinkStore {
  put(tenant: TenantId, responseId: string, link: ResponseLink): Promise<void>;
  get(tenant: TenantId, responseId: string): Promise<ResponseLink | undefined>;
  /** Forgets every link into the conversation (it was deleted). */
  forget(key: ConversationKey): Promise<void>;
}
