// Items with no chat form (`reasoning`, hosted tools' calls and outputs) in a
// Responses request with memory (docs/responses.md). They are never stored,
// so two things follow, both pure:
// - The run since the client's last user message, when the client re-sent it
//   (the Agents SDK re-sends a tool loop's own items on every step), goes
//   upstream as the client sent it rather than as the stored messages it
//   matched: a reasoning model with `store: false` needs its reasoning items
//   back within a tool loop, and a hosted tool's call needs to stay beside
//   its output.
// - They are counted roughly, by their JSON's length ÷ 4: a reasoning item's
//   `encrypted_content` is opaque, so no tokenizer can count it exactly.

import type { ChatMessage } from '../domain.js';
import { itemKind } from './response-items.js';

/** Where a request message came from in `input`: the range of its items. */
export interface ItemRange {
  start: number;
  end: number;
}

/** A Responses request's items and messages as the request path reads them (http/parse-responses-request.ts). */
export interface ItemsRequest {
  items: readonly unknown[];
  /** The request's messages, the `instructions` field first when it has one. */
  messages: readonly ChatMessage[];
  hasInstructionsField: boolean;
  /** For each message after the instructions field: the range of `items` it came from. */
  sources: readonly ItemRange[];
}

/** Characters per token of the rough count (JSON text, base64 included). */
const CHARS_PER_TOKEN = 4;

/**
 * The re-sent run that goes upstream as sent: the messages [first, turnStart)
 * from the client's last user message before the new turn, when the items
 * they came from hold one with no chat form and no item_reference (which only
 * the upstream's own store could read). Undefined otherwise (the stored
 * form then stands for what was re-sent, as for every other re-sent message).
 */
export function resentRun(request: ItemsRequest, instructionCount: number, turnStart: number): { first: number; items: ItemRange } | undefined {
  const offset = request.hasInstructionsField ? 1 : 0;
  let first = turnStart - 1;
  while (first >= instructionCount && request.messages[first]!.role !== 'user') first--;
  if (first < instructionCount) return undefined;
  const items = { start: request.sources[first - offset]!.start, end: request.sources[turnStart - 1 - offset]!.end };
  return hasKind(request.items, items, 'other') && !hasKind(request.items, items, 'item_reference') ? { first, items } : undefined;
}

/** The rough token count of the items with no chat form that can go upstream: the re-sent run's (if it goes as sent) and the new turn's. */
export function itemsWithoutChatFormTokens(request: ItemsRequest, instructionCount: number, turnStart: number): number {
  const offset = request.hasInstructionsField ? 1 : 0;
  const from = resentRun(request, instructionCount, turnStart)?.items.start ?? request.sources[turnStart - offset]?.start ?? request.items.length;
  let tokens = 0;
  for (let i = from; i < request.items.length; i++) {
    const item = request.items[i];
    if (itemKind(item) === 'other') tokens += Math.ceil(JSON.stringify(item).length / CHARS_PER_TOKEN);
  }
  return tokens;
}

function hasKind(items: readonly unknown[], range: ItemRange, kind: ReturnType<typeof itemKind>): boolean {
  for (let i = range.start; i < range.end; i++) if (itemKind(items[i]) === kind) return true;
  return false;
}

/**
 * Hosted tools' outputs (`computer_call_output`, `custom_tool_call_output`,
 * `local_shell_call_output`, `mcp_approval_response`, …) whose call is not
 * among the items before them: their call came in an earlier response, which
 * contextd does not store, and an upstream refuses an output without its call.
 * Returns the indexes of `items` to leave out.
 */
export function orphanHostedOutputs(items: readonly unknown[]): Set<number> {
  const seen = new Set<string>();
  const orphans = new Set<number>();
  items.forEach((item, index) => {
    if (typeof item !== 'object' || item === null) return;
    const record = item as Record<string, unknown>;
    const answers = hostedOutputOf(record);
    if (answers !== undefined && !seen.has(answers)) orphans.add(index);
    for (const field of ['id', 'call_id']) if (typeof record[field] === 'string') seen.add(record[field]);
  });
  return orphans;
}

/** The id of the call a hosted tool's output answers, or undefined when the item is not one. */
function hostedOutputOf(item: Record<string, unknown>): string | undefined {
  const type = item.type;
  if (type === 'mcp_approval_response') return typeof item.approval_request_id === 'string' ? item.approval_request_id : '';
  if (typeof type !== 'string' || !type.endsWith('_output') || type === 'function_call_output') return undefined;
  // local_shell_call_output names its call by `id`; the others by `call_id`.
  return typeof item.call_id === 'string' ? item.call_id : typeof item.id === 'string' ? item.id : '';
}
