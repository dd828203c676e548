import type { ChatMessage, NewMessage } from '../domain.js';
import { countMessageYielding } from '../tokens/count-message-yielding.js';
import type { TokenCounter } from '../tokens/count-tokens.js';
import type { TokenCountCache } from '../tokens/token-count-cache.js';
import type { CountedMessage } from './assemble-prompt.js';
import { digestMessage } from './message-digest.js';
import type { SplitRequest } from './split-request.js';
import { resultsForUnansweredCalls } from './unanswered-calls.js';

/**
 * A request's messages with their digests and token counts, each computed at
 * most once, when first needed. Counting yields to the event loop on long
 * texts, so a big message never holds other requests up.
 */
export class CountedRequest {
  readonly messages: readonly ChatMessage[];
  readonly #counter: TokenCounter;
  readonly #instructionCounts: TokenCountCache;
  readonly #digests: (string | undefined)[] = [];

  constructor(messages: readonly ChatMessage[], counter: TokenCounter, instructionCounts: TokenCountCache) {
    this.messages = messages;
    this.#counter = counter;
    this.#instructionCounts = instructionCounts;
  }

  /** The canonical digest of message `i` (the split compares many, the store keeps the turn's). */
  readonly digestAt = (i: number): string => (this.#digests[i] ??= digestMessage(this.messages[i]!));

  /** The pinned instructions, counted through the cache: they repeat on every turn. */
  async instructions(split: SplitRequest): Promise<CountedMessage[]> {
    const counted: CountedMessage[] = [];
    for (let i = 0; i < split.instructionCount; i++) {
      const message = this.messages[i]!;
      counted.push({ message, tokens: await this.#instructionCounts.count(this.#counter, message, this.digestAt(i)) });
    }
    return counted;
  }

  /** The new turn as it will be stored: results for calls it left unanswered, then its own messages. */
  async turn(split: SplitRequest): Promise<NewMessage[]> {
    const turn: NewMessage[] = [];
    for (const message of resultsForUnansweredCalls(split.history, this.messages.slice(split.turnStart))) {
      turn.push({ message, tokens: await countMessageYielding(this.#counter, message), digest: digestMessage(message) });
    }
    for (let i = split.turnStart; i < this.messages.length; i++) {
      const message = this.messages[i]!;
      turn.push({ message, tokens: await countMessageYielding(this.#counter, message), digest: this.digestAt(i) });
    }
    return turn;
  }
}
