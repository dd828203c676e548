// The nouns of contextd: chat messages as the OpenAI API defines them, and
// what a conversation store keeps of them. Imports nothing from src.

export const CHAT_ROLES = ['system', 'developer', 'user', 'assistant', 'tool', 'function'] as const;
export type ChatRole = (typeof CHAT_ROLES)[number];

export interface ToolCall {
  id: string;
  type: string;
  function?: { name: string; arguments: string };
  [field: string]: unknown;
}

export interface ContentPart {
  type: string;
  text?: string;
  refusal?: string;
  image_url?: { url: string; detail?: 'auto' | 'low' | 'high' | string };
  [field: string]: unknown;
}

/** A chat message exactly as a client sent it or the model produced it; unknown fields are kept. */
export interface ChatMessage {
  role: ChatRole;
  content?: string | ContentPart[] | null;
  name?: string;
  tool_calls?: ToolCall[];
  tool_call_id?: string;
  refusal?: string | null;
  [field: string]: unknown;
}

declare const conversationIdBrand: unique symbol;
/** A validated conversation id; only the header parser creates one. */
export type ConversationId = string & { readonly [conversationIdBrand]: true };

declare const tenantIdBrand: unique symbol;
export type TenantId = string & { readonly [tenantIdBrand]: true };

/** Who owns a conversation: a digest of the API key, a header's value, or one tenant for all. */
export type TenantMode = { kind: 'authorization' } | { kind: 'header'; header: string } | { kind: 'none' };

/** Where a conversation lives: `<tenant>:<conversation>`. */
export interface ConversationKey {
  readonly tenant: TenantId;
  readonly conversation: ConversationId;
}

export function conversationKeyString(key: ConversationKey): string {
  return `${key.tenant}:${key.conversation}`;
}

/** A message on its way into a store: its token count is computed once, here, and kept with it. */
export interface NewMessage {
  message: ChatMessage;
  /** Tokens this message costs in a prompt, per-message overhead included. */
  tokens: number;
  /** Stable digest of what the model sees of the message; recognises re-sent history. */
  digest: string;
}

export interface StoredMessage extends NewMessage {
  /** 1-based, unique and gap-free per conversation. */
  seq: number;
  createdAtMs: number;
  /** Set on the first message of a turn stored by a request that carried an Idempotency-Key. */
  turnKey?: string;
  /**
   * Running total of `tokens` over the conversation through this message, kept
   * by the Redis and MongoDB stores so a cold load can select exactly the
   * messages that fit a budget with one indexed range query.
   */
  cumTokens?: number;
}

export interface Summary {
  text: string;
  tokens: number;
  /** The highest seq whose message the summary covers. */
  coversSeq: number;
  createdAtMs: number;
}

export interface ConversationSnapshot {
  summary: Summary | undefined;
  /** The newest messages after the summary, oldest first. */
  messages: StoredMessage[];
  /** Highest seq stored (0 for a new conversation). */
  lastSeq: number;
  /**
   * Whether the hot tier answered: `hit`, `miss` (served by a slower tier), `none` (no cache tier), or
   * `partial`: the hot tier answered alone while the durable tier could not (down, or slower than the
   * cold-read deadline), so history the durable tier may hold is not in the window, only the turns
   * made since (docs/storage.md, "Unmerged conversations").
   */
  cache: 'hit' | 'miss' | 'none' | 'partial';
}

export interface AppendOptions {
  /** Idempotency-Key of the request that produced the turn: a second append with it stores nothing. */
  turnKey?: string;
  /** When the turn was made, if not now: a turn merged into the durable tier later keeps its time. */
  createdAtMs?: number;
}

export interface AppendResult {
  /** Seqs given to the appended messages, in order; empty when `duplicate`. */
  seqs: number[];
  duplicate: boolean;
}
