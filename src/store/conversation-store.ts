import type {
  AppendOptions,
  AppendResult,
  ConversationKey,
  ConversationSnapshot,
  NewMessage,
  StoredMessage,
  Summary,
} from '../domain.js';

/** How much of a conversation a load returns; every store cuts the window by the one rule in context/window-cut.ts. */
export interface LoadLimits {
  /** Never return more than this many messages. */
  maxMessages: number;
  /**
   * Return the newest messages whose tokens add up to at most this, plus the one
   * that crosses it, so the caller can tell the window is full. History older
   * than that can never fit the budget, so it is not read.
   */
  maxTokens: number;
}

/** What a caller of any store (embedded, Redis, MongoDB, two-tier) may ask of it, and nothing else. */
export interface ConversationStore {
  /** The summary and the newest messages after it, oldest first. */
  load(key: ConversationKey, limits: LoadLimits): Promise<ConversationSnapshot>;
  /** Stored messages with seq > afterSeq, oldest first, at most `limit` (the conversation API's pages). */
  listMessages(key: ConversationKey, page: { afterSeq: number; limit: number }): Promise<StoredMessage[]>;
  /** Appends one turn atomically, giving it the next seqs; unique and ordered under concurrency. */
  append(key: ConversationKey, messages: readonly NewMessage[], options?: AppendOptions): Promise<AppendResult>;
  /** Stores a newer summary; a summary covering less than the stored one is ignored (returns false). */
  replaceSummary(key: ConversationKey, summary: Summary): Promise<boolean>;
  /** Erases the conversation. */
  delete(key: ConversationKey): Promise<void>;
  ping(): Promise<void>;
  close(): Promise<void>;
}

/** The hot tier as the flusher sees it: turns waiting to reach the durable tier. */
export interface FlushSource {
  /** Claims up to `limit` conversations whose flush is due, leasing them for `leaseMs`. */
  claimDirty(limit: number, leaseMs: number, nowMs: number): Promise<ConversationKey[]>;
  /** Messages above flushedSeq, oldest first, with cumTokens, and the hot tier's summary (read in the same step). */
  unflushed(key: ConversationKey): Promise<{ flushedSeq: number; messages: StoredMessage[]; summary: Summary | undefined }>;
  /** Records that the durable tier holds everything up to `seq` (0: hand the claim back unchanged). */
  markFlushed(key: ConversationKey, seq: number): Promise<void>;
  /** Finds conversations with unflushed messages that are missing from the due list. */
  sweepDirty(): Promise<number>;
  /** The conversation's summary, if the hot tier holds one. */
  load: ConversationStore['load'];
}

/** What storing already-allocated messages did: `conflicts` are given messages whose seq holds another message. */
export interface UpsertAllocatedResult {
  inserted: number;
  /** Already stored with the same seq and digest: left as they were. */
  alreadyStored: number;
  conflicts: StoredMessage[];
}

/** The durable tier as the flusher sees it. */
export interface FlushTarget {
  /** Stores messages that already carry seq and cumTokens, idempotently by seq; another message under a seq is a conflict. */
  upsertAllocated(key: ConversationKey, messages: readonly StoredMessage[]): Promise<UpsertAllocatedResult>;
  /** upsertAllocated for many conversations in one write; results in the order given. */
  upsertAllocatedMany(batches: readonly { key: ConversationKey; messages: readonly StoredMessage[] }[]): Promise<UpsertAllocatedResult[]>;
  append: ConversationStore['append'];
  replaceSummary: ConversationStore['replaceSummary'];
}

/** A held lock; `token` grows with every acquisition (a fencing token). */
export interface LockLease {
  token: number;
  /** Still ours? (A lease that outlived its TTL may have been taken over.) */
  isHeld(): Promise<boolean>;
  release(): Promise<void>;
}

/** One summary job per conversation at a time, across every instance that shares the lock. */
export interface SummaryLock {
  acquire(key: ConversationKey, ttlMs: number): Promise<LockLease | undefined>;
}

/** Where a conversation stands in the durable tier: the last seq given, the running token total through it, the summary. */
export interface ConversationState {
  lastSeq: number;
  lastCum: number;
  summary: Summary | undefined;
}

/** What the hot tier is seeded with: the durable tier's state and its newest messages, oldest first. */
export interface WarmState extends ConversationState {
  messages: readonly StoredMessage[];
}

/** The hot tier (Redis in cache mode) as the two-tier store sees it. */
export interface HotTier extends ConversationStore {
  /** Seeds a conversation the tier does not hold (everything flushed); a no-op if it holds it already. */
  warm(key: ConversationKey, state: WarmState): Promise<void>;
  unflushed: FlushSource['unflushed'];
  /** The summary lock every instance sharing the tier sees. */
  acquireSummaryLock(key: ConversationKey, ttlMs: number): Promise<LockLease | undefined>;
}

/** The durable tier (MongoDB) as the two-tier store sees it. */
export interface DurableTier extends ConversationStore {
  /** For seeding the hot tier when a load could not tell the state (the newest turn still being inserted). */
  conversationState(key: ConversationKey): Promise<ConversationState>;
}
