import type { ChatMessage, StoredMessage } from '../domain.js';
import { storedDigest } from './message-digest.js';
import { hasToolCalls, toolCallIds } from './tool-sequence.js';

// A request's messages are: leading instructions (system/developer, pinned,
// never stored), then either only the new turn (clients that rely on contextd)
// or their whole history followed by the new turn (existing apps that keep
// their own copy). This module finds where the genuinely new part starts, so
// that re-sent history is replaced by the stored window and never stored twice.

export interface SplitInput {
  messages: readonly ChatMessage[];
  /** Digest of request message i, computed lazily (full-history clients send long arrays; only the tail is compared). */
  digestAt: (index: number) => string;
  /** The loaded stored messages, oldest first. */
  stored: readonly StoredMessage[];
  /** Idempotency-Key of the request, if any. */
  idempotencyKey: string | undefined;
  nowMs: number;
  /** A new turn equal to the last stored one, sent again within this window, is a retry (new-message-only clients). */
  retryWindowMs: number;
  /**
   * Whether request message i stands for items the client named by reference
   * (the Responses API's item_reference): made by the model, its text unknown
   * here, so re-sent history whenever it comes before the new turn.
   */
  isReference?: (index: number) => boolean;
}

export interface SplitRequest {
  /** Number of leading instruction messages. */
  instructionCount: number;
  /** Index in `messages` where the new turn starts. */
  turnStart: number;
  /** The stored messages the window may draw from (all of `stored`, or those before a retried turn). */
  history: readonly StoredMessage[];
  /** The request repeats a turn already stored: forward it with the history the first attempt had, store nothing. */
  isRetry: boolean;
}

/** Whether the model made the message: its text or its call ids do not recur by chance, unlike a user's "yes". */
const isModelMade = (message: ChatMessage): boolean => message.role === 'assistant' || message.role === 'tool';

const isInstruction = (message: ChatMessage): boolean => message.role === 'system' || message.role === 'developer';

export function splitRequest(input: SplitInput): SplitRequest {
  const { messages, stored } = input;
  let instructionCount = 0;
  while (instructionCount < messages.length && isInstruction(messages[instructionCount]!)) instructionCount++;

  if (input.idempotencyKey !== undefined) {
    const first = stored.findIndex((m) => m.turnKey === input.idempotencyKey);
    if (first >= 0) {
      const history = stored.slice(0, first);
      const turnStart = alignedEnd(input, instructionCount, history) ?? instructionCount;
      return { instructionCount, turnStart, history, isRetry: true };
    }
  }

  const afterStoredTail = alignedEnd(input, instructionCount, stored);
  if (afterStoredTail !== undefined) return { instructionCount, turnStart: afterStoredTail, history: stored, isRetry: false };

  const retry = matchRetriedTurn(input, instructionCount);
  if (retry !== undefined) return { instructionCount, ...retry, isRetry: true };

  const afterAnchor = anchoredEnd(input, instructionCount, stored);
  if (afterAnchor !== undefined) return { instructionCount, turnStart: afterAnchor, history: stored, isRetry: false };

  const unaligned = afterLastAssistant(messages, instructionCount);
  return { instructionCount, turnStart: pastStoredCopies(input, unaligned), history: stored, isRetry: false };
}

/**
 * History that matched nothing by position may still start with messages the
 * store holds: the client's copy of a stored tool exchange (same call ids),
 * re-sent after the conversation moved on. Storing them again would put the
 * same tool_call ids in the prompt twice, which OpenAI refuses.
 */
function pastStoredCopies(input: SplitInput, turnStart: number): number {
  const { messages, stored } = input;
  // Most turns start with a user message, which this never skips: nothing to index.
  if (turnStart >= messages.length || stored.length === 0 || !isModelMade(messages[turnStart]!)) return turnStart;
  const storedDigests = new Set(stored.map(storedDigest));
  const storedCallIds = new Set(stored.flatMap((m) => toolCallIds(m.message)));
  const answeredIds = new Set(stored.flatMap((m) => (m.message.role === 'tool' && typeof m.message.tool_call_id === 'string' ? [m.message.tool_call_id] : [])));
  const isStored = (i: number): boolean => {
    const message = messages[i]!;
    if (input.isReference?.(i) === true || storedDigests.has(input.digestAt(i))) return true;
    if (hasToolCalls(message)) return toolCallIds(message).every((id) => storedCallIds.has(id));
    return message.role === 'tool' && typeof message.tool_call_id === 'string' && answeredIds.has(message.tool_call_id);
  };
  let start = turnStart;
  while (start < messages.length && isModelMade(messages[start]!) && isStored(start)) start++;
  return start;
}

/**
 * Where the re-sent part of the request ends: the largest k such that
 * messages[start..k) ends with the tail of `tail` (compared over
 * min(k - start, tail.length) messages), or undefined.
 */
function alignedEnd(input: SplitInput, start: number, tail: readonly StoredMessage[]): number | undefined {
  const last = tail.at(-1);
  if (last === undefined) return undefined;
  const lastDigest = storedDigest(last);
  for (let k = input.messages.length; k > start; k--) {
    if (input.digestAt(k - 1) !== lastDigest) continue;
    const overlap = Math.min(k - start, tail.length);
    let matches = true;
    for (let j = 1; j < overlap && matches; j++) matches = input.digestAt(k - 1 - j) === storedDigest(tail[tail.length - 1 - j]!);
    if (matches) return k;
  }
  return undefined;
}

/**
 * The match anchored on the newest stored message alone, when the model made
 * it (its text or call ids do not recur by chance, unlike a user's "yes"):
 * the request's older part may then differ from the store's, whose copy may no
 * longer be whole (folded into the summary, trimmed, expired) or may be
 * serialised otherwise. Tried after a strict match and a retried turn.
 */
function anchoredEnd(input: SplitInput, start: number, stored: readonly StoredMessage[]): number | undefined {
  const last = stored.at(-1);
  if (last === undefined || !isModelMade(last.message)) return undefined;
  const lastDigest = storedDigest(last);
  for (let k = input.messages.length; k > start; k--) if (input.digestAt(k - 1) === lastDigest) return k;
  return undefined;
}

/**
 * The request ends with the inputs of the last stored turn (the messages after
 * the previous assistant reply), but not with that turn's reply: the client is
 * retrying a turn whose reply it never got. Unambiguous when the client re-sends
 * its history (which then lacks the stored reply); for a client that sends only
 * the new turn, only within the retry window, since people do say "yes" twice.
 */
function matchRetriedTurn(input: SplitInput, start: number): Omit<SplitRequest, 'instructionCount' | 'isRetry'> | undefined {
  const { stored, messages } = input;
  const reply = stored.at(-1);
  if (reply === undefined || reply.message.role !== 'assistant') return undefined;
  let inputsStart = stored.length - 1;
  while (inputsStart > 0 && stored[inputsStart - 1]!.message.role !== 'assistant') inputsStart--;
  const inputs = stored.slice(inputsStart, -1);
  const turnStart = messages.length - inputs.length;
  if (inputs.length === 0 || turnStart < start) return undefined;
  for (let j = 0; j < inputs.length; j++) if (input.digestAt(turnStart + j) !== storedDigest(inputs[j]!)) return undefined;

  const history = stored.slice(0, inputsStart);
  if (turnStart > start) {
    // Full-history client: what precedes the repeated inputs must be the stored history before them.
    const aligned = history.length === 0 ? undefined : alignedEnd({ ...input, messages: messages.slice(0, turnStart) }, start, history);
    return aligned === turnStart ? { turnStart, history } : undefined;
  }
  const isRecent = input.nowMs - reply.createdAtMs <= input.retryWindowMs;
  return isRecent ? { turnStart, history } : undefined;
}

/**
 * History that matches nothing stored (edited, or older than what was loaded):
 * assistant messages come from the model, so what follows the last one is new.
 * Tool results stay with the assistant message that called them.
 */
function afterLastAssistant(messages: readonly ChatMessage[], start: number): number {
  let last = -1;
  for (let i = messages.length - 1; i >= start; i--) {
    if (messages[i]!.role === 'assistant') {
      last = i;
      break;
    }
  }
  if (last < 0) return start;
  return messages[last + 1]?.role === 'tool' ? last : last + 1;
}
