import type { ChatMessage } from '../domain.js';
import { hasToolCalls } from './tool-sequence.js';

/** Where a tool exchange lies in a list of messages: indexes of its first and last message. */
export interface ExchangeRange {
  first: number;
  last: number;
}

/**
 * The messages that go with `messages[index]` when it is erased, so that no
 * tool message is left without the call it answers and no call without its
 * answers (OpenAI's rules, tool-sequence.ts):
 *   - an assistant message with tool_calls: it and the tool messages after it;
 *   - a tool message: the whole run of tool messages around it, and the
 *     assistant message with tool_calls before the run;
 *   - any other message: itself.
 * `messages` are consecutive stored messages, oldest first; the caller gives
 * enough of them: back to the first non-tool message before `index` (or the
 * oldest stored), and on to the first non-tool message after the run.
 */
export function toolExchangeRange(messages: readonly ChatMessage[], index: number): ExchangeRange {
  const isTool = (at: number): boolean => messages[at]?.role === 'tool';
  const message = messages[index];
  if (message === undefined || (!isTool(index) && !hasToolCalls(message))) return { first: index, last: index };
  let first = index;
  if (isTool(index)) {
    while (first > 0 && isTool(first - 1)) first--;
    if (first > 0 && hasToolCalls(messages[first - 1]!)) first--;
  }
  let last = index;
  while (last + 1 < messages.length && isTool(last + 1)) last++;
  return { first, last };
}
