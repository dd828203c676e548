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
  /**
   * Erases the messages at these seqs (those this store holds), and a summary
   * that covers any of them (its coversSeq is at least the smallest): no
   * later load, listing or summary of this store shows them. Their seqs are
   * never given again. (docs/storage.md, "Erasing messages")
   */
  eraseMessages(key: ConversationKey, seqs: readonly number[]): Promise<EraseReceipt>;
  /** Erases the conversation; says what it held. */
  delete(key: ConversationKey): Promise<EraseReceipt>;
  ping(): Promise<void>;
  close(): Promise<void>;
}

/** What one tier removed of a conversation: messages, and whether a summary went with them. */
export interface TierErasure {
  messages: number;
  summaryDropped: boolean;
}

/** What an erasure removed, by tier: `embedded`, `redis`, `mongodb` (each store names itself). */
export interface EraseReceipt {
  tiers: Record<string, TierErasure>;
}

/**
 * Where an erased message sat in the hot tier: its seq and the running token
 * total there once the erasure is done. The durable tier keeps the seq taken
 * with it, so that a flush of the message read before the erasure (by any
 * instance) never stores it.
 */
export interface ErasedPosition {
  seq: number;
  cumTokens: number;
}

/** The hot tier's erasure: its receipt, the positions it erased, and whether it refused an unmerged conversation (seqs provisional). */
export interface HotErasure extends EraseReceipt {
  positions: ErasedPosition[];
  isUnmerged: boolean;
}

/**
 * What the hot tier holds that the durable tier lacks: the messages above
 * flushedSeq, oldest first, with cumTokens, and the hot tier's summary.
 */
export interface Unflushed {
  flushedSeq: number;
  messages: StoredMessage[];
  summary: Summary | undefined;
  /**
   * Set when the conversation is unmerged (the hot tier took it while the
   * durable tier could not tell its state; docs/storage.md): its incarnation.
   * Its seqs are then provisional, from 1, and `messages` is all of it.
   */
  unmergedIncarnation?: string;
}

/** One turn of an unmerged conversation as the durable tier numbered it (for the hot tier's turn-key dedupe). */
export interface MergedTurnKey {
  turnKey: string;
  firstSeq: number;
  count: number;
}

/** What a rebase did: replaced the conversation; found newer turns than the merge saw; found it gone or merged already. */
export type RebaseOutcome = 'rebased' | 'moved' | 'gone';

/** What demote did to a copy that went apart from the durable tier. */
export type DemoteOutcome = 'dropped' | 'demoted' | 'gone';

/** The hot tier as the flusher sees it: turns waiting to reach the durable tier. */
export interface FlushSource {
  /** Claims up to `limit` conversations whose flush is due, leasing them for `leaseMs`. */
  claimDirty(limit: number, leaseMs: number, nowMs: number): Promise<ConversationKey[]>;
  /** Messages above flushedSeq and the hot tier's summary, read in the same step. */
  unflushed(key: ConversationKey): Promise<Unflushed>;
  /** Records that the durable tier holds everything up to `seq` (0: hand the claim back unchanged). */
  markFlushed(key: ConversationKey, seq: number): Promise<void>;
  /** Finds conversations with unflushed messages that are missing from the due list. */
  sweepDirty(): Promise<number>;
  /**
   * An unmerged conversation whose turns are all in the durable tier now:
   * replaced, in one step, by the durable tier's state (as warm seeds it), if
   * it is still the unmerged incarnation `expected` names with `expected.lastSeq`
   * its last provisional seq. `turnKeys` are remembered for deduplication.
   */
  rebase(key: ConversationKey, expected: { incarnation: string; lastSeq: number }, state: WarmState, turnKeys: readonly MergedTurnKey[]): Promise<RebaseOutcome>;
  /**
   * For a copy whose history went apart from the durable tier's (turns reached
   * the durable tier while the hot tier did not answer), in one step: dropped
   * when everything in it is flushed (the next miss warms it again); else made
   * unmerged, so that its messages above flushedSeq are merged like an
   * outage's turns (left as it is when unmerged already).
   */
  demote(key: ConversationKey): Promise<DemoteOutcome>;
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
  /** Appends turns in order, as append() one after another would, in as few writes as it can; results per turn. */
  appendTurns(key: ConversationKey, turns: readonly { messages: readonly NewMessage[]; turnKey: string; createdAtMs: number }[]): Promise<AppendResult[]>;
  replaceSummary: ConversationStore['replaceSummary'];
  /** For merging an unmerged conversation: the durable tier's newest messages and state, to rebase the hot tier on. */
  load: ConversationStore['load'];
  conversationState: DurableTier['conversationState'];
  /** The flusher asks a durable tier it saw fail before it claims anything. */
  ping: ConversationStore['ping'];
}

/** What a merge stored: the seqs its turns have in the durable tier, and how many messages were new there. */
export interface UnmergedMergeResult {
  /** The durable tier holds the conversation through this seq; the hot tier was rebased on it. */
  throughSeq: number;
  seqs: number[];
  inserted: number;
  /** Messages of turns the durable tier held already (a merge repeated after a crash). */
  alreadyStored: number;
}

/** Brings an unmerged conversation's turns into the durable tier and rebases the hot tier (store/outage-merge.ts). */
export interface UnmergedMerge {
  /**
   * Appends the turns of `unflushed` (an unmerged conversation) after what the
   * durable tier holds, in order and by turn key (so a merge repeated after a
   * crash stores none twice), then rebases the hot tier on the result.
   * Undefined when the conversation is gone or another instance merged it.
   */
  merge(key: ConversationKey, unflushed: Unflushed & { unmergedIncarnation: string }): Promise<UnmergedMergeResult | undefined>;
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
  /**
   * append, but a conversation the tier does not hold is taken unmerged
   * (its durable state unknown, seqs provisional from 1) instead of refused:
   * for when the durable tier cannot seed it in time.
   */
  appendUnmerged: ConversationStore['append'];
  unflushed: FlushSource['unflushed'];
  demote: FlushSource['demote'];
  /** The summary lock every instance sharing the tier sees. */
  acquireSummaryLock(key: ConversationKey, ttlMs: number): Promise<LockLease | undefined>;
  /** eraseMessages, saying where the erased messages sat; an unmerged conversation is left as it is (isUnmerged). */
  eraseMessages(key: ConversationKey, seqs: readonly number[]): Promise<HotErasure>;
}

/** The durable tier (MongoDB) as the two-tier store sees it. */
export interface DurableTier extends ConversationStore {
  /** For seeding the hot tier when a load could not tell the state (the newest turn still being inserted). */
  conversationState(key: ConversationKey): Promise<ConversationState>;
  /** eraseMessages; `positions` are the hot tier's, for erased messages not flushed here yet. */
  eraseMessages(key: ConversationKey, seqs: readonly number[], positions?: readonly ErasedPosition[]): Promise<EraseReceipt>;
}
