// The embedded store: contextd runs on it when no Redis or MongoDB is configured.
// It is bounded like the cache it stands in for (TTL, a cap on conversations and
// bytes, least-recently-used eviction), because an unbounded in-memory map is the
// bug contextd exists to fix.
//
// Every method finishes its state change synchronously before its promise is
// returned, so concurrent calls on one conversation cannot interleave: that is
// what makes seqs unique and turn keys deduplicated without locks. There are no
// timers: expiry is checked on access, and each call sweeps the expired
// conversations off the least-recently-used end of the map, so nothing keeps the
// event loop alive and close() has nothing to cancel.

import type {
  AppendOptions,
  AppendResult,
  ChatMessage,
  ConversationKey,
  ConversationSnapshot,
  NewMessage,
  StoredMessage,
  Summary,
  TenantId,
} from '../domain.js';
import { StoreUnavailableError } from '../errors.js';
import type { ConversationEntry } from './conversation-directory.js';
import type { ConversationStore, EraseReceipt, LoadLimits } from './conversation-store.js';
import { deepFreeze } from '../freeze.js';
import { startWindowWalk } from '../context/window-cut.js';

export interface MemoryStoreOptions {
  /** A conversation not loaded, appended to or summarized for this long is gone. */
  ttlMs: number;
  /** Beyond this, the least recently used conversation is evicted. */
  maxConversations: number;
  /** Approximate size of everything stored; beyond it, least recently used conversations are evicted whole. */
  maxBytes: number;
  /** Beyond this, a conversation's oldest messages are dropped; their seqs stay allocated. */
  maxMessagesPerConversation: number;
  /** Clock, injectable for tests. */
  now?: () => number;
}

/** How many recent turn keys a conversation remembers for deduplicating retried appends. */
export const RECENT_TURN_KEY_LIMIT = 64;

// Rough per-item cost of the objects around the JSON text, so that many tiny
// messages or keys still count against maxBytes.
const ENTRY_OVERHEAD_BYTES = 48;
const CONVERSATION_OVERHEAD_BYTES = 256;

// Compacting the message array only once the dropped prefix is large keeps
// trimming amortised O(1) per message.
const COMPACT_MIN_DROPPED = 32;

interface MessageEntry {
  seq: number;
  tokens: number;
  /**
   * The StoredMessage, deep-frozen: a load hands out a fresh outer object over
   * the frozen message, so callers can never change stored state, and no load
   * pays for a copy (re-parsing JSON per load was 8-18% of contextd's CPU).
   */
  stored: StoredMessage;
  /** JSON length of the message: the byte estimate. */
  bytes: number;
}

// Deep-frozen: handed out as they are, shared by every load (as the Redis store's decoded window is).
const handOut = (entry: MessageEntry): StoredMessage => entry.stored;

interface TurnRecord {
  firstSeq: number;
  count: number;
}

interface Conversation {
  key: ConversationKey;
  /** Live messages are entries[first..], oldest first, seqs ascending. */
  entries: (MessageEntry | undefined)[];
  first: number;
  lastSeq: number;
  /** Running token total through lastSeq (StoredMessage.cumTokens; the chunked window's positions). */
  lastCum: number;
  summary: Summary | undefined;
  /** Insertion order is age: the first key is the oldest and goes first. */
  turns: Map<string, TurnRecord>;
  lastUsedMs: number;
  /** When the last turn was appended: the listing's order (reads refresh lastUsedMs, not this). */
  lastActivityMs: number;
  bytes: number;
}

export class MemoryStore implements ConversationStore {
  readonly #ttlMs: number;
  readonly #maxConversations: number;
  readonly #maxBytes: number;
  readonly #maxMessagesPerConversation: number;
  readonly #now: () => number;
  /** Map order is recency of use: the first entry is the least recently used. */
  readonly #conversations = new Map<string, Conversation>();
  #totalBytes = 0;
  #isClosed = false;

  constructor(options: MemoryStoreOptions) {
    for (const field of ['ttlMs', 'maxConversations', 'maxBytes', 'maxMessagesPerConversation'] as const) {
      const value = options[field];
      if (!Number.isSafeInteger(value) || value <= 0) {
        throw new RangeError(`MemoryStore option ${field} must be a positive integer, got ${String(value)}`);
      }
    }
    this.#ttlMs = options.ttlMs;
    this.#maxConversations = options.maxConversations;
    this.#maxBytes = options.maxBytes;
    this.#maxMessagesPerConversation = options.maxMessagesPerConversation;
    this.#now = options.now ?? Date.now;
  }

  /**
   * `cache` is `hit` for a conversation held here and `miss` for one that is not
   * (never seen, expired, evicted or deleted): this store is the only tier, so a
   * miss means there is no history.
   */
  async load(key: ConversationKey, limits: LoadLimits): Promise<ConversationSnapshot> {
    const nowMs = this.#begin();
    const conversation = this.#use(storageKey(key), nowMs);
    if (conversation === undefined) return { summary: undefined, messages: [], lastSeq: 0, cache: 'miss' };

    const walk = startWindowWalk(limits, conversation.summary?.coversSeq ?? 0);
    const newestFirst: StoredMessage[] = [];
    // Newest first and stop early: the cost follows the window, not the conversation's length.
    for (let i = conversation.entries.length - 1; i >= conversation.first; i--) {
      const entry = conversation.entries[i];
      if (entry === undefined || !walk.takes(entry)) break;
      newestFirst.push(handOut(entry));
    }
    return {
      summary: conversation.summary === undefined ? undefined : { ...conversation.summary },
      messages: newestFirst.reverse(),
      lastSeq: conversation.lastSeq,
      cache: 'hit',
    };
  }

  async listMessages(key: ConversationKey, page: { afterSeq: number; limit: number }): Promise<StoredMessage[]> {
    const nowMs = this.#begin();
    const conversation = this.#use(storageKey(key), nowMs);
    if (conversation === undefined) return [];
    // Entries are in seq order: binary search for the first one after the cursor.
    let low = conversation.first;
    let high = conversation.entries.length;
    while (low < high) {
      const mid = (low + high) >>> 1;
      if (conversation.entries[mid]!.seq <= page.afterSeq) low = mid + 1;
      else high = mid;
    }
    const end = Math.min(conversation.entries.length, low + Math.max(0, page.limit));
    return conversation.entries.slice(low, end).map((entry) => handOut(entry!));
  }

  async append(key: ConversationKey, messages: readonly NewMessage[], options?: AppendOptions): Promise<AppendResult> {
    const nowMs = this.#begin();
    if (messages.length === 0) return { seqs: [], duplicate: false };

    const id = storageKey(key);
    let conversation = this.#use(id, nowMs);
    const turnKey = options?.turnKey;
    if (conversation !== undefined && turnKey !== undefined) {
      const earlier = conversation.turns.get(turnKey);
      if (earlier !== undefined) return { seqs: seqRange(earlier.firstSeq, earlier.count), duplicate: true };
    }

    const firstSeq = (conversation?.lastSeq ?? 0) + 1;
    let cum = conversation?.lastCum ?? 0;
    // Serialised before any state changes, so a message that JSON cannot encode
    // leaves the store as it was. JSON also copies the caller's objects, so their
    // later mutations cannot reach stored state.
    const entries = messages.map((incoming, index): MessageEntry => {
      // The copy the store keeps is its own (JSON round trip), then frozen; this happens once, off the
      // request path, and the message's JSON stays with it for the upstream bodies that will carry it.
      const messageJson = JSON.stringify(incoming.message);
      const stored: StoredMessage = deepFreeze({
        message: deepFreeze(JSON.parse(messageJson) as ChatMessage, messageJson),
        tokens: incoming.tokens,
        digest: incoming.digest,
        seq: firstSeq + index,
        createdAtMs: nowMs,
        ...(index === 0 && turnKey !== undefined ? { turnKey } : {}),
        cumTokens: (cum += incoming.tokens),
      });
      // The stored message's JSON length: the rest of its fields' JSON with the message's in place of null.
      const bytes = JSON.stringify({ ...stored, message: null }).length - 'null'.length + messageJson.length;
      return { seq: stored.seq, tokens: stored.tokens, stored, bytes: bytes + ENTRY_OVERHEAD_BYTES };
    });

    if (conversation === undefined) {
      conversation = { key: { tenant: key.tenant, conversation: key.conversation }, entries: [], first: 0, lastSeq: 0, lastCum: 0, summary: undefined, turns: new Map(), lastUsedMs: nowMs, lastActivityMs: nowMs, bytes: 0 };
      this.#conversations.set(id, conversation);
      this.#addBytes(conversation, CONVERSATION_OVERHEAD_BYTES + id.length);
    }
    for (const entry of entries) {
      conversation.entries.push(entry);
      this.#addBytes(conversation, entry.bytes);
    }
    conversation.lastSeq = firstSeq + messages.length - 1;
    conversation.lastCum = cum;
    conversation.lastActivityMs = nowMs;

    if (turnKey !== undefined) this.#rememberTurn(conversation, turnKey, { firstSeq, count: messages.length });
    while (conversation.entries.length - conversation.first > this.#maxMessagesPerConversation) {
      this.#dropOldest(conversation);
    }
    this.#enforceBounds(conversation);
    return { seqs: seqRange(firstSeq, messages.length), duplicate: false };
  }

  /**
   * Ignored (false) when no such conversation is held, when the summary does not
   * cover more than the stored one, or when it claims seqs never allocated here
   * (a summary of a conversation erased and begun again since the job started).
   * The messages it covers are dropped: load never returns them again and this
   * store is the only tier, so keeping them would only take room from live history.
   */
  async replaceSummary(key: ConversationKey, summary: Summary): Promise<boolean> {
    const nowMs = this.#begin();
    const conversation = this.#use(storageKey(key), nowMs);
    if (conversation === undefined) return false;
    if (summary.coversSeq <= (conversation.summary?.coversSeq ?? 0) || summary.coversSeq > conversation.lastSeq) {
      return false;
    }

    if (conversation.summary !== undefined) this.#addBytes(conversation, -summaryBytes(conversation.summary));
    conversation.summary = { ...summary };
    this.#addBytes(conversation, summaryBytes(conversation.summary));
    for (let oldest = conversation.entries[conversation.first]; oldest !== undefined && oldest.seq <= summary.coversSeq; ) {
      this.#dropOldest(conversation);
      oldest = conversation.entries[conversation.first];
    }
    this.#enforceBounds(conversation);
    return true;
  }

  /**
   * The held messages at `seqs` go (the array is rebuilt: erasures are rare),
   * and a summary covering any of them; lastSeq stays, so their seqs are
   * never given again. Turn keys stay too: a retried append of that turn is
   * still a duplicate, not a way back in.
   */
  async eraseMessages(key: ConversationKey, seqs: readonly number[]): Promise<EraseReceipt> {
    const nowMs = this.#begin();
    const conversation = this.#use(storageKey(key), nowMs);
    if (conversation === undefined || seqs.length === 0) return embeddedReceipt(0, false);
    const erased = new Set(seqs);
    const kept: MessageEntry[] = [];
    let removed = 0;
    for (let index = conversation.first; index < conversation.entries.length; index++) {
      const entry = conversation.entries[index];
      if (entry === undefined) continue;
      if (!erased.has(entry.seq)) {
        kept.push(entry);
        continue;
      }
      this.#addBytes(conversation, -entry.bytes);
      removed++;
    }
    if (removed > 0) {
      conversation.entries = kept;
      conversation.first = 0;
    }
    const summary = conversation.summary;
    const isSummaryDropped = summary !== undefined && summary.coversSeq >= Math.min(...seqs);
    if (isSummaryDropped) {
      this.#addBytes(conversation, -summaryBytes(summary));
      conversation.summary = undefined;
    }
    return embeddedReceipt(removed, isSummaryDropped);
  }

  /** Erases messages, summary, turn keys and the seq counter: a later append starts a new conversation at seq 1. */
  async delete(key: ConversationKey): Promise<EraseReceipt> {
    this.#begin();
    const id = storageKey(key);
    const conversation = this.#conversations.get(id);
    if (conversation === undefined) return embeddedReceipt(0, false);
    this.#remove(id, conversation);
    return embeddedReceipt(conversation.entries.length - conversation.first, conversation.summary !== undefined);
  }

  async ping(): Promise<void> {
    this.#begin();
  }

  /**
   * The tenant's live conversations, unordered, for the conversation listing
   * (memory-directory.ts). Looking is not using: no TTL refresh, no change of
   * recency. O(conversations held), which max_conversations bounds.
   */
  conversationsOf(tenant: TenantId): ConversationEntry[] {
    const nowMs = this.#begin();
    const entries: ConversationEntry[] = [];
    for (const conversation of this.#conversations.values()) {
      if (conversation.key.tenant !== tenant || this.#isExpired(conversation, nowMs)) continue;
      const { summary } = conversation;
      entries.push({
        conversation: conversation.key.conversation,
        messageCount: conversation.lastSeq,
        lastActivityMs: conversation.lastActivityMs,
        summary: summary === undefined ? undefined : { coversSeq: summary.coversSeq, tokens: summary.tokens },
      });
    }
    return entries;
  }

  /** Releases everything held; later calls reject with StoreUnavailableError. */
  async close(): Promise<void> {
    this.#isClosed = true;
    this.#conversations.clear();
    this.#totalBytes = 0;
  }

  /** Every call starts here: refuse after close, then sweep what has expired. */
  #begin(): number {
    if (this.#isClosed) throw new StoreUnavailableError(new Error('the embedded store is closed'));
    const nowMs = this.#now();
    // Map order is recency, so expired conversations sit at the front: the sweep
    // costs one check plus one per conversation it removes.
    for (const [id, conversation] of this.#conversations) {
      if (!this.#isExpired(conversation, nowMs)) break;
      this.#remove(id, conversation);
    }
    return nowMs;
  }

  /** The live conversation, moved to the most-recently-used end; an expired one is removed. */
  #use(id: string, nowMs: number): Conversation | undefined {
    const conversation = this.#conversations.get(id);
    if (conversation === undefined) return undefined;
    // The sweep stops at the first young conversation, which after a clock step
    // back need not be the oldest, so expiry is checked here too.
    if (this.#isExpired(conversation, nowMs)) {
      this.#remove(id, conversation);
      return undefined;
    }
    conversation.lastUsedMs = nowMs;
    this.#conversations.delete(id);
    this.#conversations.set(id, conversation);
    return conversation;
  }

  #isExpired(conversation: Conversation, nowMs: number): boolean {
    return nowMs - conversation.lastUsedMs >= this.#ttlMs;
  }

  #remove(id: string, conversation: Conversation): void {
    this.#conversations.delete(id);
    this.#totalBytes -= conversation.bytes;
  }

  #addBytes(conversation: Conversation, bytes: number): void {
    conversation.bytes += bytes;
    this.#totalBytes += bytes;
  }

  #rememberTurn(conversation: Conversation, turnKey: string, turn: TurnRecord): void {
    conversation.turns.set(turnKey, turn);
    this.#addBytes(conversation, turnKey.length + ENTRY_OVERHEAD_BYTES);
    for (const oldest of conversation.turns.keys()) {
      if (conversation.turns.size <= RECENT_TURN_KEY_LIMIT) break;
      conversation.turns.delete(oldest);
      this.#addBytes(conversation, -(oldest.length + ENTRY_OVERHEAD_BYTES));
    }
  }

  /** Drops the oldest live message; its seq stays allocated because lastSeq never goes back. */
  #dropOldest(conversation: Conversation): void {
    const entry = conversation.entries[conversation.first];
    if (entry !== undefined) this.#addBytes(conversation, -entry.bytes);
    conversation.entries[conversation.first] = undefined;
    conversation.first++;
    if (conversation.first >= COMPACT_MIN_DROPPED && conversation.first * 2 >= conversation.entries.length) {
      conversation.entries = conversation.entries.slice(conversation.first);
      conversation.first = 0;
    }
  }

  /**
   * Evicts least recently used conversations beyond maxConversations or maxBytes,
   * never `current` (just used, so at the recent end): evicting it would restart its
   * seqs under a caller that has just been given them. If `current` alone is over
   * maxBytes, its oldest messages go instead; only its summary and turn keys can
   * then remain over the bound.
   */
  #enforceBounds(current: Conversation): void {
    for (const [id, conversation] of this.#conversations) {
      if (this.#conversations.size <= this.#maxConversations && this.#totalBytes <= this.#maxBytes) return;
      if (conversation === current) break;
      this.#remove(id, conversation);
    }
    while (this.#totalBytes > this.#maxBytes && current.first < current.entries.length) {
      this.#dropOldest(current);
    }
  }
}

/**
 * Length-prefixed so that no (tenant, conversation) pair can spell another's key:
 * a plain `tenant:conversation` joins ('a:b', 'c') and ('a', 'b:c') into one string.
 */
function storageKey(key: ConversationKey): string {
  return `${key.tenant.length}:${key.tenant}:${key.conversation}`;
}

function summaryBytes(summary: Summary): number {
  return summary.text.length + ENTRY_OVERHEAD_BYTES;
}

function embeddedReceipt(messages: number, summaryDropped: boolean): EraseReceipt {
  return { tiers: { embedded: { messages, summaryDropped } } };
}

function seqRange(firstSeq: number, count: number): number[] {
  return Array.from({ length: count }, (_, index) => firstSeq + index);
}
