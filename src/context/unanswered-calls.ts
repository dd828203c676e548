import type { ChatMessage, StoredMessage } from '../domain.js';
import { hasToolCalls, toolCallIds } from './tool-sequence.js';

/** What the model is told of a call that the conversation moved on from without answering. */
export const UNANSWERED_CALL_RESULT = 'No result: the conversation continued without an answer to this tool call.';

/**
 * The stored conversation may end with an assistant tool_calls message whose
 * results never came (the app gave up on the tool, or a new-message-only
 * client simply went on). OpenAI refuses a prompt in which such a call is
 * followed by anything but its results, and contextd never stores that state,
 * so the calls the new turn (or, with an empty turn, the reply) leaves
 * unanswered get a result saying so. These go in front of the turn (and are
 * stored with it), after the stored call.
 */
export function resultsForUnansweredCalls(history: readonly StoredMessage[], turn: readonly ChatMessage[]): ChatMessage[] {
  let start = history.length;
  while (start > 0 && history[start - 1]!.message.role === 'tool') start--;
  const call = history[start - 1]?.message;
  if (call === undefined || !hasToolCalls(call)) return [];

  const answered = new Set<string>();
  for (const stored of history.slice(start)) if (typeof stored.message.tool_call_id === 'string') answered.add(stored.message.tool_call_id);
  for (const message of turn) {
    if (message.role !== 'tool') break;
    if (typeof message.tool_call_id === 'string') answered.add(message.tool_call_id);
  }
  return toolCallIds(call)
    .filter((id) => id !== '' && !answered.has(id))
    .map((id) => ({ role: 'tool', tool_call_id: id, content: UNANSWERED_CALL_RESULT }));
}
