import type { ChatMessage, StoredMessage, Summary } from '../domain.js';
import { hasToolCalls, toolCallIds } from './tool-sequence.js';

export interface CountedMessage {
  message: ChatMessage;
  tokens: number;
}

export interface AssemblyInput {
  instructions: readonly CountedMessage[];
  summary: Summary | undefined;
  /** Stored messages after the summary, oldest first. */
  history: readonly StoredMessage[];
  turn: readonly CountedMessage[];
  /** Tokens the prompt costs besides its messages: reply priming, tool definitions. */
  fixedTokens: number;
  budgetTokens: number;
  summaryMaxTokens: number;
}

export interface AssembledPrompt {
  messages: ChatMessage[];
  /** What the prompt costs as the model counts it. */
  contextTokens: number;
  /** Stored messages sent (the window), summary excluded. */
  historyMessages: number;
  summaryUsed: boolean;
  /** Instructions and the new turn alone exceed the budget; no history was added. */
  isOverflow: boolean;
  /** Stored messages after the summary that did not fit (candidates for the next summary). */
  droppedMessages: number;
  droppedTokens: number;
}

const SUMMARY_PREFIX = 'Summary of the earlier conversation (written by contextd; the messages it covers are not repeated below):\n';

export function summaryAsSystemMessage(summary: Summary): ChatMessage {
  return { role: 'system', content: SUMMARY_PREFIX + summary.text };
}

const sumTokens = (messages: readonly CountedMessage[]): number => messages.reduce((sum, m) => sum + m.tokens, 0);

/**
 * instructions + summary + window + new turn, never over the budget unless the
 * instructions and the turn alone are (then the route's on_overflow decides).
 */
export function assemblePrompt(input: AssemblyInput): AssembledPrompt {
  const { instructions, summary, turn, budgetTokens } = input;
  // Tool results in the new turn answer a stored assistant tool_calls message:
  // that message (and results already stored) must go with them, whatever the budget.
  const pinnedStart = pinnedHistoryStart(input.history, input.turn);
  const pinned = input.history.slice(pinnedStart);
  const history = input.history.slice(0, pinnedStart);

  let used = input.fixedTokens + sumTokens(instructions) + sumTokens(pinned) + sumTokens(turn);
  if (used > budgetTokens) {
    return {
      messages: [...instructions, ...pinned, ...turn].map((m) => m.message),
      contextTokens: used,
      historyMessages: pinned.length,
      summaryUsed: false,
      isOverflow: true,
      droppedMessages: history.length,
      droppedTokens: sumTokens(history),
    };
  }

  const keepSummary = summary !== undefined && summary.tokens <= input.summaryMaxTokens && used + summary.tokens <= budgetTokens;
  if (keepSummary) used += summary.tokens;

  // Recent turns matter most: spend what is left newest first, one whole unit
  // at a time (an assistant tool_calls message and its results never part).
  // A unit is a single message, or an assistant tool_calls message with the tool results after it;
  // tool results whose assistant message is not in the loaded history, and a call whose results are
  // not all there, are never sendable (OpenAI refuses both), so the window stops before them.
  let first = history.length;
  while (first > 0) {
    let start = first - 1;
    let tokens = history[start]!.tokens;
    while (start > 0 && history[start]!.message.role === 'tool') {
      start--;
      tokens += history[start]!.tokens;
    }
    const head = history[start]!.message;
    const isOrphan = head.role === 'tool' || (first - start > 1 && !hasToolCalls(head));
    const isUnanswered = hasToolCalls(head) && !isAnsweredBy(head, history, start + 1, first);
    if (isOrphan || isUnanswered || used + tokens > budgetTokens) break;
    used += tokens;
    first = start;
  }

  const window = history.slice(first);
  return {
    messages: [
      ...instructions.map((m) => m.message),
      ...(keepSummary ? [summaryAsSystemMessage(summary)] : []),
      ...window.map((m) => m.message),
      ...pinned.map((m) => m.message),
      ...turn.map((m) => m.message),
    ],
    contextTokens: used,
    historyMessages: window.length + pinned.length,
    summaryUsed: keepSummary,
    isOverflow: false,
    droppedMessages: first,
    droppedTokens: sumTokens(history.slice(0, first)),
  };
}

/** Whether history[from..to) holds a result for every call of `call`. */
function isAnsweredBy(call: ChatMessage, history: readonly StoredMessage[], from: number, to: number): boolean {
  const ids = toolCallIds(call);
  if (to - from < ids.length) return false;
  const answered = new Set<unknown>();
  for (let i = from; i < to; i++) answered.add(history[i]!.message.tool_call_id);
  return ids.every((id) => answered.has(id));
}

/**
 * Where the history the new turn cannot go without starts: when the turn opens
 * with tool results, the stored assistant tool_calls message they answer (and
 * any results already stored after it); else history.length (none).
 */
export function pinnedHistoryStart(history: readonly CountedMessage[], turn: readonly CountedMessage[]): number {
  return turn[0]?.message.role === 'tool' ? startOfTrailingToolUnit(history) : history.length;
}

/** Index where the newest unit starts if it is an assistant tool_calls message with (some of) its results; else history.length. */
function startOfTrailingToolUnit(history: readonly CountedMessage[]): number {
  let start = history.length;
  while (start > 0 && history[start - 1]!.message.role === 'tool') start--;
  if (start > 0 && hasToolCalls(history[start - 1]!.message)) return start - 1;
  return history.length;
}
