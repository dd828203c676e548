import type { ChatMessage } from '../domain.js';

// OpenAI's rules for tool messages in a prompt, which it enforces with a 400:
// - every `tool` message answers a tool_call of the assistant message before it
//   (only other tool messages may stand between them);
// - every tool_call id is answered before the next non-tool message;
// - no tool_call id appears twice (neither as a call nor as an answer).
// contextd checks the prompts it sends and the states it stores against them.

export type ToolSequenceRule = 'orphan_tool_result' | 'unanswered_tool_call' | 'duplicate_tool_call_id';

export interface ToolSequenceProblem {
  rule: ToolSequenceRule;
  /** Index of the offending message in the list checked. */
  index: number;
  /** The tool_call id concerned, when there is one. */
  id: string | undefined;
}

export interface ToolSequenceOptions {
  /**
   * Tool results at the very start may answer calls made before the list
   * (a client's new turn answering a stored call): they are not orphans.
   */
  allowLeadingResults?: boolean;
  /**
   * The last assistant tool_calls message may still wait for (some of) its
   * results: true of a stored conversation, never of a prompt.
   */
  allowOpenTail?: boolean;
}

export function hasToolCalls(message: ChatMessage): boolean {
  return message.role === 'assistant' && Array.isArray(message.tool_calls) && message.tool_calls.length > 0;
}

/** The tool_call ids an assistant message makes, in order. */
export function toolCallIds(message: ChatMessage): string[] {
  if (!hasToolCalls(message)) return [];
  return message.tool_calls!.map((call) => (typeof call?.id === 'string' ? call.id : ''));
}

/** The first way `messages` breaks OpenAI's tool-message rules, or undefined when it keeps them all. */
export function findToolSequenceProblem(messages: readonly ChatMessage[], options: ToolSequenceOptions = {}): ToolSequenceProblem | undefined {
  const seenIds = new Set<string>();
  /** Calls of the current assistant message not yet answered; undefined outside a tool exchange. */
  let open: Set<string> | undefined;
  let openAt = -1;
  let isLeading = options.allowLeadingResults === true;

  for (let index = 0; index < messages.length; index++) {
    const message = messages[index]!;
    if (message.role === 'tool') {
      const id = typeof message.tool_call_id === 'string' ? message.tool_call_id : undefined;
      if (isLeading) {
        if (id === undefined || seenIds.has(id)) return { rule: id === undefined ? 'orphan_tool_result' : 'duplicate_tool_call_id', index, id };
        seenIds.add(id);
        continue;
      }
      if (open === undefined || id === undefined || !open.has(id)) {
        const isRepeat = id !== undefined && seenIds.has(id) && open !== undefined;
        return { rule: isRepeat ? 'duplicate_tool_call_id' : 'orphan_tool_result', index, id };
      }
      open.delete(id);
      continue;
    }
    isLeading = false;
    if (open !== undefined && open.size > 0) return { rule: 'unanswered_tool_call', index: openAt, id: [...open][0] };
    open = undefined;
    if (!hasToolCalls(message)) continue;
    open = new Set();
    openAt = index;
    for (const id of toolCallIds(message)) {
      if (id === '' || seenIds.has(id) || open.has(id)) return { rule: 'duplicate_tool_call_id', index, id };
      open.add(id);
      seenIds.add(id);
    }
  }
  if (open !== undefined && open.size > 0 && options.allowOpenTail !== true) return { rule: 'unanswered_tool_call', index: openAt, id: [...open][0] };
  return undefined;
}

/**
 * A call id that `later` makes twice, or that `earlier` already used (made, or
 * answered: a window may hold a result whose call lies before it): the stored
 * history beyond a prompt's window is not in the prompt, so its ids are
 * checked apart before a turn joins it.
 */
export function findReusedCallId(earlier: readonly ChatMessage[], later: readonly ChatMessage[]): ToolSequenceProblem | undefined {
  const laterCalls = new Map<string, number>();
  for (const [index, message] of later.entries()) {
    for (const id of toolCallIds(message)) {
      if (laterCalls.has(id)) return { rule: 'duplicate_tool_call_id', index, id };
      laterCalls.set(id, index);
    }
  }
  if (laterCalls.size === 0) return undefined;
  for (const message of earlier) {
    const used = message.role === 'tool' && typeof message.tool_call_id === 'string' ? [message.tool_call_id] : toolCallIds(message);
    for (const id of used) {
      const index = laterCalls.get(id);
      if (index !== undefined) return { rule: 'duplicate_tool_call_id', index, id };
    }
  }
  return undefined;
}

/**
 * Whether a request with memory breaks the tool-message rules, and whose
 * doing it is: the client's when its own messages break them (a tool result
 * after a user message, a call left unanswered) or when the assembled prompt
 * breaks them within the new turn (a result for a call the store never held);
 * contextd's when its history does (a state written by an older version).
 */
export function findRequestToolProblem(
  /** The request's messages after its instructions. */
  requestMessages: readonly ChatMessage[],
  /** findToolSequenceProblem of the assembled prompt. */
  promptProblem: ToolSequenceProblem | undefined,
  /** Where the new turn starts in the prompt. */
  promptTurnStart: number,
): (ToolSequenceProblem & { whose: 'client' | 'contextd' }) | undefined {
  const own = findToolSequenceProblem(requestMessages, { allowLeadingResults: true });
  if (own !== undefined) return { ...own, whose: 'client' };
  if (promptProblem === undefined) return undefined;
  return { ...promptProblem, whose: promptProblem.index >= promptTurnStart ? 'client' : 'contextd' };
}

/**
 * Whether storing a turn and its reply would leave a state that breaks the
 * rules: the prompt as contextd would send it must keep them (`promptProblem`,
 * found before the request went upstream), and no call id of the turn or the
 * reply may repeat one the loaded history, or the turn, already made.
 */
export function findStoreProblem(
  promptProblem: ToolSequenceProblem | undefined,
  history: readonly ChatMessage[],
  turn: readonly ChatMessage[],
  reply: ChatMessage | undefined,
): ToolSequenceProblem | undefined {
  return promptProblem ?? findReusedCallId(history, reply === undefined ? turn : [...turn, reply]);
}

/** A one-line account of a problem, for logs and error messages. */
export function describeToolSequenceProblem(problem: ToolSequenceProblem): string {
  const what = {
    orphan_tool_result: 'a tool message answers no tool_call of the assistant message before it',
    unanswered_tool_call: 'a tool_call is not answered before the next non-tool message',
    duplicate_tool_call_id: 'a tool_call id appears twice',
  }[problem.rule];
  return `${what} (message ${problem.index}${problem.id === undefined ? '' : `, id ${problem.id}`})`;
}
