// The Responses API body contextd sends upstream: the client's body with
// `input` replaced by the prompt as items, in order: the client's leading
// system/developer items (instructions, as it sent them), the summary as one
// `developer` message, the window's stored history, results contextd added for
// calls the history left unanswered, then the new turn exactly as the client
// sent it (items with no chat form, such as `reasoning`, included).
// Two exceptions keep what has no stored form (context/resent-run.ts): the run
// since the client's last user message, when it re-sent it with such items,
// goes as sent in place of its stored form; and a hosted tool's output whose
// call is not in the input is left out. `instructions` stays in the body as it came.

import type { ChatMessage } from '../domain.js';
import { digestMessage } from '../context/message-digest.js';
import { orphanHostedOutputs, resentRun } from '../context/resent-run.js';
import { messagesToItems } from '../context/response-items.js';
import { serialisedOnce } from '../freeze.js';
import { withJsonList } from './upstream-body.js';

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
  // JSON of items contextd makes, or the index of a client's item that goes as sent.
  const input: (string | number)[] = [];
  const asSent = (start: number, end: number = request.items.length): void => {
    for (let i = start; i < end; i++) input.push(i);
  };
  // The instructions that came as items: as sent.
  const lastInstruction = request.sources[instructionCount - 1 - offset];
  if (lastInstruction !== undefined) asSent(0, lastInstruction.end);
  let at = instructionCount;
  if (summaryUsed) {
    const summary = messages[at]!;
    input.push(JSON.stringify({ type: 'message', role: 'developer', content: typeof summary.content === 'string' ? summary.content : '' }));
    at++;
  }
  // The window, each stored message's items serialised once (serialisedOnce, freeze.ts); its newest
  // messages as the client re-sent them when they came with items that have no stored form.
  const history = messages.slice(at, at + historyMessages);
  const run = resentRunInWindow(request, history, instructionCount, turnStart);
  for (const message of run === undefined ? history : history.slice(0, -run.messages)) input.push(serialisedOnce(message, itemsJson, itemsJsonOfFrozen));
  if (run !== undefined) asSent(run.start, run.end);
  // The results contextd added for calls the window left unanswered, then the client's new turn.
  const added = turnMessages - (request.messages.length - turnStart);
  for (const message of messages.slice(at + historyMessages, at + historyMessages + added)) input.push(serialisedOnce(message, itemsJson, itemsJsonOfFrozen));
  const turnSource = request.sources[turnStart - offset];
  if (turnSource !== undefined) asSent(turnSource.start);
  // A hosted tool's output whose call does not go with it is left out (context/resent-run.ts).
  const sent = input.filter((piece): piece is number => typeof piece === 'number');
  const orphans = orphanHostedOutputs(sent.map((i) => request.items[i]));
  const orphanIndexes = new Set([...orphans].map((k) => sent[k]!));
  return withJsonList(
    request.raw,
    'input',
    input.flatMap((piece) => (typeof piece === 'string' ? [piece] : orphanIndexes.has(piece) ? [] : [JSON.stringify(request.items[piece])])),
  );
}

/**
 * The client's re-sent run (context/resent-run.ts), when the window ends with
 * exactly those messages: how many of the window's messages it stands for,
 * and its items.
 */
function resentRunInWindow(
  request: ResponsesRequestInput,
  history: readonly ChatMessage[],
  instructionCount: number,
  turnStart: number,
): { messages: number; start: number; end: number } | undefined {
  const run = resentRun(request, instructionCount, turnStart);
  if (run === undefined) return undefined;
  const count = turnStart - run.first;
  if (count > history.length) return undefined;
  for (let j = 0; j < count; j++) {
    if (digestMessage(history[history.length - count + j]!) !== digestMessage(request.messages[run.first + j]!)) return undefined;
  }
  return { messages: count, ...run.items };
}

const itemsJsonOfFrozen = new WeakMap<object, string>();

/** A message's items as JSON list elements, comma-separated (empty for none). */
function itemsJson(message: ChatMessage): string {
  return messagesToItems([message])
    .map((item) => JSON.stringify(item))
    .join(',');
}
