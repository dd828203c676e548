// What every Responses API client test (test/clients/*-responses.e2e.test.ts)
// checks, whatever the client: the `input` the upstream received, read as the
// lines of a conversation; function calls paired with their outputs, in order;
// and the stored conversation read as the same lines, so that the two compare
// line for line. The reading is written here on its own, apart from contextd's
// mapping (src/context/response-items.ts), so that the tests check that mapping
// rather than repeat it.
import { expect } from 'vitest';
import type { ChatMessage } from '../../src/domain.js';
import { textOf } from './compat-checks.js';
import type { Behaviour, RecordedRequest } from './fake-upstream.js';

export type Item = Record<string, unknown>;

const isRecord = (value: unknown): value is Item => typeof value === 'object' && value !== null && !Array.isArray(value);

/** The `input` of a recorded Responses request as items (a string is one user message). */
export function inputOf(request: Pick<RecordedRequest, 'json' | 'url'>): Item[] {
  const body = request.json as { input?: unknown } | undefined;
  if (typeof body?.input === 'string') return [{ role: 'user', content: body.input }];
  if (!Array.isArray(body?.input)) throw new Error(`request to ${request.url} carried no input`);
  return body.input as Item[];
}

/** Arguments in one spelling: clients re-serialise them (`{"q": "x"}` for `{"q":"x"}`). */
function canonicalArguments(text: unknown): string {
  try {
    return JSON.stringify(JSON.parse(String(text)));
  } catch {
    return String(text);
  }
}

const isMessageItem = (item: Item): boolean => item.type === 'message' || (item.type === undefined && typeof item.role === 'string');

function itemText(content: unknown): string {
  if (typeof content === 'string') return content;
  if (!Array.isArray(content)) return '';
  return content.map((part: unknown) => (isRecord(part) && typeof part.text === 'string' ? part.text : '')).join('');
}

/**
 * One line per item: `user: <text>` (any role), `call <call_id> <name> <arguments>`,
 * `output <call_id>: <text>`; an item of another type is its type (`item_reference`, `reasoning`).
 */
export function lineOfItem(item: Item): string {
  if (item.type === 'function_call') return `call ${String(item.call_id)} ${String(item.name)} ${canonicalArguments(item.arguments)}`;
  if (item.type === 'function_call_output') return `output ${String(item.call_id)}: ${itemText(item.output)}`;
  if (isMessageItem(item)) return `${String(item.role)}: ${itemText(item.content)}`;
  return String(item.type);
}

export const linesOfItems = (items: readonly Item[]): string[] => items.map(lineOfItem);

/** A stored chat message as the lines of the items it stands for: an assistant message is its text (if any), then one line per call. */
export function linesOfMessage(message: ChatMessage): string[] {
  if (message.role === 'tool') return [`output ${String(message.tool_call_id)}: ${textOf(message)}`];
  const text = textOf(message);
  const calls = (message.tool_calls ?? []).map((call) => `call ${call.id} ${String(call.function?.name)} ${canonicalArguments(call.function?.arguments)}`);
  if (message.role === 'assistant') return [...(text === '' ? [] : [`assistant: ${text}`]), ...calls];
  return [`${message.role}: ${text}`];
}

export const linesOfMessages = (messages: readonly ChatMessage[]): string[] => messages.flatMap(linesOfMessage);

/**
 * OpenAI's rules for function calls in `input`, read strictly: every output
 * answers a call before it, every call is answered once, no call_id appears
 * twice, and no message stands between a call and its output.
 */
export function expectCallsPaired(items: readonly Item[], label = 'input'): void {
  const problems: string[] = [];
  const calls = new Set<string>();
  const answered = new Set<string>();
  const open = new Set<string>();
  items.forEach((item, index) => {
    const id = String(item.call_id);
    if (item.type === 'function_call') {
      if (calls.has(id)) problems.push(`${label}[${index}]: call ${id} made twice`);
      calls.add(id);
      open.add(id);
    } else if (item.type === 'function_call_output') {
      if (!calls.has(id)) problems.push(`${label}[${index}]: output ${id} answers no call before it`);
      else if (answered.has(id)) problems.push(`${label}[${index}]: call ${id} answered twice`);
      answered.add(id);
      open.delete(id);
    } else if (open.size > 0 && isMessageItem(item)) {
      problems.push(`${label}[${index}]: a message stands between call(s) ${[...open].join(', ')} and their output`);
    }
  });
  for (const id of open) problems.push(`${label}: call ${id} is never answered`);
  expect(problems, linesOfItems(items).join('\n')).toEqual([]);
}

/** How many messages of each role: `{ user: 15, assistant: 20, tool: 5 }`. */
export function countRoles(messages: readonly { role: string }[]): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const { role } of messages) counts[role] = (counts[role] ?? 0) + 1;
  return counts;
}

/**
 * The lookups a user message asks for, one group per model step: "look up item
 * N" is one call; "look up items N and M" two calls at once (parallel calls);
 * "look up item N then item M" a call, and once it is answered, another.
 */
export function lookupSteps(text: string): string[][] {
  const both = /look up items (\d+) and (\d+)/.exec(text);
  if (both !== null) return [[both[1]!, both[2]!]];
  const chain = /look up item (\d+) then item (\d+)/.exec(text);
  if (chain !== null) return [[chain[1]!], [chain[2]!]];
  const one = /look up item (\d+)/.exec(text);
  return one === null ? [] : [[one[1]!]];
}

/** What the fake model says before calls it makes at once. */
export const PARALLEL_PREAMBLE = 'Let me check both.';

/**
 * The fake model's side of a tool loop on the Responses API, for the user
 * message last in the input and the outputs after it (lookupSteps): the next
 * step's calls to lookup({q: 'item N'}), call_id `call_item_N` (parallel calls
 * after PARALLEL_PREAMBLE); once every step is answered, `found: <outputs of the
 * last step, joined by ' & '>`; a message asking for no lookup gets the echo.
 */
export function responsesToolRoundTrip(request: RecordedRequest): Behaviour {
  const input = inputOf(request);
  let userAt = input.length - 1;
  while (userAt >= 0 && !(isMessageItem(input[userAt]!) && input[userAt]!.role === 'user')) userAt--;
  const steps = userAt < 0 ? [] : lookupSteps(itemText(input[userAt]!.content));
  const outputs = input.slice(userAt + 1).filter((item) => item.type === 'function_call_output');
  let answered = 0;
  let stepsDone = 0;
  while (stepsDone < steps.length && answered + steps[stepsDone]!.length <= outputs.length) answered += steps[stepsDone++]!.length;
  const next = steps[stepsDone];
  if (next !== undefined) {
    const calls = next.map((n) => ({ id: `call_item_${n}`, name: 'lookup', arguments: { q: `item ${n}` } }));
    return next.length > 1 ? { kind: 'tool_calls', content: PARALLEL_PREAMBLE, toolCalls: calls } : { kind: 'tool_calls', toolCalls: calls };
  }
  if (steps.length > 0) return { kind: 'text', content: `found: ${outputs.slice(-steps.at(-1)!.length).map((item) => itemText(item.output)).join(' & ')}` };
  return { kind: 'text' };
}
