// The Responses API body contextd sends upstream: the client's body with
// `input` replaced by the prompt as items, in order: the client's leading
// system/developer items (instructions, as it sent them), the summary as one
// `developer` message, the window's stored history, results contextd added for
// calls the history left unanswered, then the new turn exactly as the client
// sent it (items with no chat form, such as `reasoning`, included).
// `instructions` stays in the body as it came.

import type { ChatMessage } from '../domain.js';
import { messagesToItems } from '../context/response-items.js';
import { jsonOnce, withJsonList } from './upstream-body.js';

/** What of the client's Responses request the body is built from (http/parse-responses-request.ts reads it). */
export interface ResponsesRequestInput {
  raw: Readonly<Record<string, unknown>>;
  /** `input` as items. */
  items: readonly unknown[];
  /** The request's canonical messages: the `instructions` field first when it has one, then one per range of items. */
  messages: readonly ChatMessage[];
  hasInstructionsField: boolean;
  /** For each message after the instructions field: the range of `items` it came from. */
  sources: readonly { start: number; end: number }[];
}

/** Where the assembled prompt's parts are: [instructions][summary?][history][turn]. */
export interface PromptLayout {
  messages: readonly ChatMessage[];
  instructionCount: number;
  summaryUsed: boolean;
  historyMessages: number;
  /** Messages of the new turn in the prompt (results contextd added first, then the client's). */
  turnMessages: number;
  /** Index in the request's messages where the client's part of the turn starts. */
  turnStart: number;
}

export function responsesUpstreamBody(request: ResponsesRequestInput, layout: PromptLayout): string {
  const { messages, instructionCount, summaryUsed, historyMessages, turnMessages, turnStart } = layout;
  const offset = request.hasInstructionsField ? 1 : 0;
  const input: string[] = [];
  const asSent = (items: readonly unknown[]): void => {
    for (const item of items) input.push(JSON.stringify(item));
  };
  // The instructions that came as items: as sent.
  const lastInstruction = request.sources[instructionCount - 1 - offset];
  if (lastInstruction !== undefined) asSent(request.items.slice(0, lastInstruction.end));
  let at = instructionCount;
  if (summaryUsed) {
    const summary = messages[at]!;
    input.push(JSON.stringify({ type: 'message', role: 'developer', content: typeof summary.content === 'string' ? summary.content : '' }));
    at++;
  }
  // The window and the results contextd added, each stored message's items serialised once (upstream-body.ts).
  const added = turnMessages - (request.messages.length - turnStart);
  for (const message of messages.slice(at, at + historyMessages + added)) input.push(jsonOnce(message, itemsJson, itemsJsonOfFrozen));
  const turnSource = request.sources[turnStart - offset];
  if (turnSource !== undefined) asSent(request.items.slice(turnSource.start));
  return withJsonList(request.raw, 'input', input);
}

const itemsJsonOfFrozen = new WeakMap<object, string>();

/** A message's items as JSON list elements, comma-separated (empty for none). */
function itemsJson(message: ChatMessage): string {
  return messagesToItems([message])
    .map((item) => JSON.stringify(item))
    .join(',');
}
