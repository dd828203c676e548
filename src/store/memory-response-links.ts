// Response links for the embedded store: bounded like the MemoryStore they sit
// beside (a TTL refreshed on use, a cap with least-recently-used eviction). No
// timers: a Map iterates in insertion order, and every use moves its link to
// the end (delete, then set), so the least recently used link is always first;
// expiry is checked on access, and each put sweeps expired links off the front.

import type { ConversationKey, TenantId } from '../domain.js';
import type { ResponseLink, ResponseLinkStore } from './response-links.js';

export interface MemoryResponseLinksOptions {
  /** A link not made or read for this long is gone. */
  ttlMs: number;
  /** Beyond this, the least recently used link is dropped. */
  maxLinks: number;
  /** Clock, injectable for tests. */
  now?: () => number;
}

interface Entry {
  link: ResponseLink;
  /** Its conversation's key in #byConversation, to leave the index when the link goes. */
  conversationId: string;
  lastUsedMs: number;
}

export class MemoryResponseLinks implements ResponseLinkStore {
  readonly #ttlMs: number;
  readonly #maxLinks: number;
  readonly #now: () => number;
  /** By linkId, least recently used first. */
  readonly #links = new Map<string, Entry>();
  /** conversationIndexId → the linkIds into that conversation, for forget. */
  readonly #byConversation = new Map<string, Set<string>>();

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
    this.#links.set(id, { link: stored, conversationId, lastUsedMs: nowMs });
    let ids = this.#byConversation.get(conversationId);
    if (ids === undefined) this.#byConversation.set(conversationId, (ids = new Set()));
    ids.add(id);
    while (this.#links.size > this.#maxLinks) {
      const oldest = this.#links.keys().next();
      if (oldest.done === true) break;
      this.#remove(oldest.value);
    }
  }

  async get(tenant: TenantId, responseId: string): Promise<ResponseLink | undefined> {
    const id = linkId(tenant, responseId);
    const entry = this.#links.get(id);
    if (entry === undefined) return undefined;
    const nowMs = this.#now();
    if (nowMs - entry.lastUsedMs >= this.#ttlMs) {
      this.#remove(id);
      return undefined;
    }
    entry.lastUsedMs = nowMs;
    this.#links.delete(id);
    this.#links.set(id, entry);
    return entry.link;
  }

  async forget(key: ConversationKey): Promise<void> {
    const conversationId = conversationIndexId(key);
    for (const id of this.#byConversation.get(conversationId) ?? []) this.#links.delete(id);
    this.#byConversation.delete(conversationId);
  }

  /** Expired links sit at the front: the least recently used expire first. */
  #sweepExpired(nowMs: number): void {
    for (const [id, entry] of this.#links) {
      if (nowMs - entry.lastUsedMs < this.#ttlMs) return;
      this.#remove(id);
    }
  }

  #remove(id: string): void {
    const entry = this.#links.get(id);
    if (entry === undefined) return;
    this.#links.delete(id);
    const ids = this.#byConversation.get(entry.conversationId);
    ids?.delete(id);
    if (ids?.size === 0) this.#byConversation.delete(entry.conversationId);
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
