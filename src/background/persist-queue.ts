import type { AppendOptions, ConversationKey, NewMessage } from '../domain.js';
import { conversationKeyString } from '../domain.js';
import type { ConversationStore } from '../store/conversation-store.js';
import { Announcements } from './announcements.js';

export interface PersistQueueOptions {
  store: ConversationStore;
  /** Turns waiting at once; beyond it a turn is dropped and counted, never waited for. */
  maxPendingTurns: number;
  /** Attempts per turn before it is given up (and logged). */
  maxAttempts: number;
  retryDelayMs: (attempt: number) => number;
  onDropped: (key: ConversationKey, reason: string, error?: unknown) => void;
  onRetry?: (key: ConversationKey, attempt: number, error: unknown) => void;
}

/** A turn offered and not yet stored (storedSeqs set once its append completed). */
export interface PendingTurn {
  key: ConversationKey;
  messages: readonly NewMessage[];
  options: AppendOptions;
  createdAtMs: number;
  /** Seqs the store gave, once the append has completed. */
  storedSeqs?: readonly number[];
}

/** A turn announced before it is known: a follow-up's load waits for it (fill or cancel). */
export interface TurnReservation {
  /** Queues the turn (as offer does) and releases waiting loads; false when the queue is full. */
  fill(messages: readonly NewMessage[], options: AppendOptions, nowMs: number): boolean;
  /** Releases waiting loads with no turn; a no-op after fill. */
  cancel(): void;
}

/**
 * Writes turns after the reply, off the request path. Turns of one conversation
 * are appended in the order they were offered; different conversations proceed
 * in parallel. Until a turn is stored, `pendingFor` hands it to ReadYourWrites,
 * so a fast follow-up on this instance always sees the previous turn.
 */
export class PersistQueue {
  readonly #options: PersistQueueOptions;
  readonly #byConversation = new Map<string, PendingTurn[]>();
  /** Reservations not yet filled or cancelled, by conversation. */
  readonly #reserved = new Announcements();
  #pendingTurns = 0;
  #idle: Array<() => void> = [];
  /** Waiting for one conversation's queued turns (settledFor), by conversation. */
  readonly #settled = new Map<string, Array<() => void>>();

  constructor(options: PersistQueueOptions) {
    this.#options = options;
  }

  get pendingTurns(): number {
    return this.#pendingTurns;
  }

  /** Queues a turn; false when the queue is full (the turn is dropped and reported). */
  offer(key: ConversationKey, messages: readonly NewMessage[], options: AppendOptions, nowMs: number): boolean {
    if (messages.length === 0) return true;
    if (this.#pendingTurns >= this.#options.maxPendingTurns) {
      this.#options.onDropped(key, 'persist queue full');
      return false;
    }
    const id = conversationKeyString(key);
    const turn: PendingTurn = { key, messages, options, createdAtMs: nowMs };
    const queue = this.#byConversation.get(id);
    this.#pendingTurns++;
    if (queue !== undefined) {
      queue.push(turn);
      return true;
    }
    this.#byConversation.set(id, [turn]);
    void this.#drainConversation(id);
    return true;
  }

  /**
   * Announces a turn whose reply has just ended but whose messages are still
   * being put together (reply parsed, tokens counted). Taken in the same tick
   * as the reply's last byte, so a follow-up that the client sends after that
   * byte finds it and waits for it: it sees the turn however fast it comes.
   */
  reserve(key: ConversationKey): TurnReservation {
    const announcement = this.#reserved.announce(conversationKeyString(key));
    return {
      fill: (messages, options, nowMs) => {
        if (announcement.isSettled) return false;
        const queued = this.offer(key, messages, options, nowMs);
        announcement.settle();
        return queued;
      },
      cancel: () => announcement.settle(),
    };
  }

  /**
   * The conversation's turns not yet stored, taken before its load (see
   * ReadYourWrites). Waits for the conversation's reserved turns first (see reserve).
   */
  async pendingFor(key: ConversationKey): Promise<readonly PendingTurn[]> {
    const id = conversationKeyString(key);
    await this.#reserved.settledFor(id);
    return [...(this.#byConversation.get(id) ?? [])];
  }

  /**
   * Resolves once the conversation's reserved turns are queued or cancelled
   * and its queued turns (those queued meanwhile too) stored or given up: an
   * erasure waits for them, so that it sees every turn it may name and none
   * is stored after it.
   */
  async settledFor(key: ConversationKey): Promise<void> {
    const id = conversationKeyString(key);
    await this.#reserved.settledFor(id);
    if (!this.#byConversation.has(id)) return;
    await new Promise<void>((resolve) => this.#settled.set(id, [...(this.#settled.get(id) ?? []), resolve]));
  }

  /** Resolves once every reserved turn has been queued or cancelled, and every queued turn stored or given up. */
  async drain(): Promise<void> {
    // Turns announced but not yet queued come first: they are on their way.
    await this.#reserved.allSettled();
    if (this.#pendingTurns === 0) return;
    await new Promise<void>((resolve) => this.#idle.push(resolve));
  }

  async #drainConversation(id: string): Promise<void> {
    const queue = this.#byConversation.get(id);
    while (queue !== undefined && queue.length > 0) {
      const turn = queue[0]!;
      await this.#store(turn);
      queue.shift();
      this.#pendingTurns--;
    }
    this.#byConversation.delete(id);
    for (const resolve of this.#settled.get(id) ?? []) resolve();
    this.#settled.delete(id);
    if (this.#pendingTurns === 0) for (const resolve of this.#idle.splice(0)) resolve();
  }

  async #store(turn: PendingTurn): Promise<void> {
    for (let attempt = 1; ; attempt++) {
      try {
        const result = await this.#options.store.append(turn.key, turn.messages, turn.options);
        turn.storedSeqs = result.seqs;
        return;
      } catch (error) {
        if (attempt >= this.#options.maxAttempts) {
          this.#options.onDropped(turn.key, 'store kept failing', error);
          return;
        }
        this.#options.onRetry?.(turn.key, attempt, error);
        await new Promise((resolve) => setTimeout(resolve, this.#options.retryDelayMs(attempt)));
      }
    }
  }
}
