// Response links for the embedded store, kept per conversation so that a link
// lives as long as its conversation does (docs/responses.md): a conversation's
// links share one TTL, refreshed whenever one of them is made (a new turn) or
// read, and the cap evicts the least recently used conversation's links
// whole, never one link of a conversation still in use. No timers: a Map
// iterates in insertion order, and every use moves its conversation to the
// end (delete, then set), so the least recently used is always first; expiry
// is checked on access, and each put sweeps expired conversations off the front.

import type { ConversationKey, TenantId } from '../domain.js';
import type { ResponseLink, ResponseLinkStore } from './response-links.js';

export interface MemoryResponseLinksOptions {
  /** A conversation none of whose links was made or read for this long has lost them (the MemoryStore's TTL). */
  ttlMs: number;
  /** Beyond this many links, the least recently used conversation's links are dropped. */
  maxLinks: number;
  /** Clock, injectable for tests. */
  now?: () => number;
}

interface Entry {
  link: ResponseLink;
  /** Its conversation's key in #conversations. */
  conversationId: string;
}

interface ConversationLinks {
  linkIds: Set<string>;
  lastUsedMs: number;
}

export class MemoryResponseLinks implements ResponseLinkStore {
  readonly #ttlMs: number;
  readonly #maxLinks: number;
  readonly #now: () => number;
  /** By linkId. */
  readonly #links = new Map<string, Entry>();
  /** conversationIndexId → its links, least recently used conversation first. */
  readonly #conversations = new Map<string, ConversationLinks>();

  constructor(options: MemoryResponseLinksOptions) {
    for (const field of ['ttlMs', 'maxLinks'] as const) {
      const value = options[field];
      if (!Number.isSafeInteger(value) || value <= 0) throw new RangeError(`MemoryResponseLinks option ${field} must be a positive integer, got ${String(value)}`);
    }
    this.#ttlMs = options.ttlMs;
    this.#maxLinks = options.maxLinks;
    this.#now = options.now ?? Date.now;
  }

  async put(tenant: TenantId, responseId: string, link: ResponseLink): Promise<void> {
    const nowMs = this.#now();
    this.#sweepExpired(nowMs);
    const id = linkId(tenant, responseId);
    // Put again into another conversation: the old one's forget must not take it.
    this.#remove(id);
    const conversationId = conversationIndexId({ tenant, conversation: link.conversation });
    const stored: ResponseLink = Object.freeze({ conversation: link.conversation, turnKey: link.turnKey, createdAtMs: link.createdAtMs });
    this.#links.set(id, { link: stored, conversationId });
    const conversation = this.#touch(conversationId, nowMs);
    conversation.linkIds.add(id);
    while (this.#links.size > this.#maxLinks) {
      const oldest = this.#conversations.entries().next().value;
      if (oldest === undefined) break;
      const [oldestId, oldestLinks] = oldest;
      if (oldestId !== conversationId) {
        this.#dropConversation(oldestId);
        continue;
      }
      // Only this conversation is left and it alone is over the cap: its oldest link goes.
      const first = oldestLinks.linkIds.values().next().value;
      if (first === undefined) break;
      this.#remove(first);
    }
  }

  async get(tenant: TenantId, responseId: string): Promise<ResponseLink | undefined> {
    const entry = this.#links.get(linkId(tenant, responseId));
    if (entry === undefined) return undefined;
    const nowMs = this.#now();
    const conversation = this.#conversations.get(entry.conversationId);
    if (conversation === undefined || nowMs - conversation.lastUsedMs >= this.#ttlMs) {
      this.#dropConversation(entry.conversationId);
      return undefined;
    }
    this.#touch(entry.conversationId, nowMs);
    return entry.link;
  }

  async forget(key: ConversationKey): Promise<void> {
    this.#dropConversation(conversationIndexId(key));
  }

  /** The conversation's links, moved to the recent end and refreshed. */
  #touch(conversationId: string, nowMs: number): ConversationLinks {
    const conversation = this.#conversations.get(conversationId) ?? { linkIds: new Set<string>(), lastUsedMs: nowMs };
    conversation.lastUsedMs = nowMs;
    this.#conversations.delete(conversationId);
    this.#conversations.set(conversationId, conversation);
    return conversation;
  }

  /** Expired conversations sit at the front: the least recently used expire first. */
  #sweepExpired(nowMs: number): void {
    for (const [conversationId, conversation] of this.#conversations) {
      if (nowMs - conversation.lastUsedMs < this.#ttlMs) return;
      this.#dropConversation(conversationId);
    }
  }

  #dropConversation(conversationId: string): void {
    for (const id of this.#conversations.get(conversationId)?.linkIds ?? []) this.#links.delete(id);
    this.#conversations.delete(conversationId);
  }

  #remove(id: string): void {
    const entry = this.#links.get(id);
    if (entry === undefined) return;
    this.#links.delete(id);
    const conversation = this.#conversations.get(entry.conversationId);
    conversation?.linkIds.delete(id);
    if (conversation?.linkIds.size === 0) this.#conversations.delete(entry.conversationId);
  }
}

/**
 * One key per (tenant, response id) that no other pair spells: a plain
 * `${tenant}:${responseId}` would let tenant `a:b`'s `c` and tenant `a`'s
 * `b:c` meet, and tenant isolation must not rest on what tenants look like.
 */
function linkId(tenant: TenantId, responseId: string): string {
  return JSON.stringify([tenant, responseId]);
}

/** The same for a conversation (conversationKeyString has the same ambiguity, and forget must never reach another tenant). */
function conversationIndexId(key: ConversationKey): string {
  return JSON.stringify([key.tenant, key.conversation]);
}
