// A Responses API body (`POST /v1/responses`) as contextd's request path reads
// it: the same canonical chat messages as a chat-completions body
// (context/response-items.ts), `instructions` first as the pinned instructions, then
// `input`. The shapes contextd reads are checked once, here, and named in
// OpenAI's words (`input[2].call_id`); everything else is the upstream's to
// judge and goes as it came.

import type { ChatMessage } from '../domain.js';
import { InvalidRequestError } from '../errors.js';
import { checkChatMessages } from './check-chat-messages.js';
import { parseJsonObject } from './parse-chat-request.js';
import { itemKind, itemsToMessages } from '../context/response-items.js';

type Json = Record<string, unknown>;

export interface ResponsesRequestBody {
  model: string | undefined;
  /** `instructions`, if any, as a system message, then the input items' messages. */
  messages: ChatMessage[];
  /** Whether messages[0] is the `instructions` field (it stays in the body as it came). */
  hasInstructionsField: boolean;
  /** `input` as a list of items (a string is one user message). */
  items: unknown[];
  /** For each message after the instructions field: the range of `items` it came from. */
  sources: { start: number; end: number }[];
  /** Function tools in chat-completions shape, for counting as on chat. */
  tools: unknown;
  /** `text.format` (chat's `response_format`) and `tool_choice` as the client sent them, for counting. */
  responseFormat: unknown;
  toolChoice: unknown;
  /** `previous_response_id`, if set: the upstream's state, or contextd's on an emulating route. */
  previousResponseId: string | undefined;
  /** Other state the upstream keeps for itself that the request names, if any: `conversation`. */
  serverState: string | undefined;
  /** The first item_reference (`input[3]`), if any: the upstream's state too, which memory takes only as re-sent history. */
  itemReference: string | undefined;
  /** The index in `messages` of each message holding an item_reference (ascending). */
  referenceMessages: number[];
  raw: Json;
}

const ROLES = new Set(['user', 'assistant', 'system', 'developer']);

export function parseResponsesRequest(body: Buffer): ResponsesRequestBody {
  const record = parseJsonObject(body);
  const input = record.input;
  if (input === undefined) throw new InvalidRequestError("Missing required parameter: 'input'.", 'input', 'missing_required_parameter');
  if (typeof input !== 'string' && !Array.isArray(input)) throw new InvalidRequestError("Invalid type for 'input': expected a string or an array of items.", 'input', 'invalid_type');
  const items: unknown[] = typeof input === 'string' ? [{ role: 'user', content: input }] : input;
  items.forEach(checkItem);
  const instructions = record.instructions;
  if (instructions !== undefined && instructions !== null && typeof instructions !== 'string') {
    throw new InvalidRequestError("Invalid type for 'instructions': expected a string.", 'instructions', 'invalid_type');
  }
  const hasInstructionsField = typeof instructions === 'string' && instructions !== '';
  const converted = itemsToMessages(items);
  const messages: ChatMessage[] = [...(hasInstructionsField ? [{ role: 'system' as const, content: instructions }] : []), ...converted.map((m) => m.message)];
  const offset = hasInstructionsField ? 1 : 0;
  // Named by the item each message came from, not by a message the client never wrote.
  checkChatMessages(messages, (i) => (i < offset ? 'instructions' : `input[${converted[i - offset]!.start}]`));
  const reference = items.findIndex((item) => itemKind(item) === 'item_reference');
  const previousResponseId = typeof record.previous_response_id === 'string' && record.previous_response_id !== '' ? record.previous_response_id : undefined;
  const serverState = record.conversation !== undefined && record.conversation !== null ? 'conversation' : undefined;
  return {
    model: typeof record.model === 'string' ? record.model : undefined,
    messages,
    hasInstructionsField,
    items,
    sources: converted.map(({ start, end }) => ({ start, end })),
    tools: chatShapedTools(record.tools),
    responseFormat: typeof record.text === 'object' && record.text !== null ? (record.text as Json).format : undefined,
    toolChoice: record.tool_choice,
    previousResponseId,
    serverState,
    itemReference: reference >= 0 ? `input[${reference}]` : undefined,
    referenceMessages: converted.flatMap((m, i) => (m.isReference === true ? [i + offset] : [])),
    raw: record,
  };
}

/** The fields of an item that contextd reads, checked as OpenAI's schema has them. */
function checkItem(item: unknown, index: number): void {
  const at = `input[${index}]`;
  if (typeof item !== 'object' || item === null || Array.isArray(item)) throw new InvalidRequestError(`Invalid type for '${at}': expected an object.`, at, 'invalid_type');
  const record = item as Json;
  const kind = itemKind(record);
  if (kind === 'message') {
    if (typeof record.role !== 'string' || !ROLES.has(record.role)) {
      throw new InvalidRequestError(`Invalid value for '${at}.role': expected one of user, assistant, system, developer.`, `${at}.role`, 'invalid_value');
    }
    if (typeof record.content !== 'string' && !Array.isArray(record.content)) {
      throw new InvalidRequestError(`Invalid type for '${at}.content': expected a string or an array of content parts.`, `${at}.content`, 'invalid_type');
    }
    return;
  }
  if (kind === 'function_call') {
    for (const field of ['call_id', 'name', 'arguments']) requireString(record, field, at);
    return;
  }
  if (kind === 'function_call_output') {
    requireString(record, 'call_id', at);
    if (typeof record.output !== 'string' && !Array.isArray(record.output)) {
      throw new InvalidRequestError(`Invalid type for '${at}.output': expected a string or an array.`, `${at}.output`, 'invalid_type');
    }
  }
}

function requireString(record: Json, field: string, at: string): void {
  if (record[field] === undefined) throw new InvalidRequestError(`Missing required parameter: '${at}.${field}'.`, `${at}.${field}`, 'missing_required_parameter');
  if (typeof record[field] !== 'string') throw new InvalidRequestError(`Invalid type for '${at}.${field}': expected a string.`, `${at}.${field}`, 'invalid_type');
}

/** Function tools as chat completions writes them ({type, function: {name, description, parameters}}), for counting; others are left out. */
function chatShapedTools(tools: unknown): unknown {
  if (!Array.isArray(tools)) return undefined;
  const functions = tools.flatMap((tool) => {
    if (typeof tool !== 'object' || tool === null) return [];
    const { type, name, description, parameters } = tool as Json;
    if (type !== 'function') return [];
    return [{ type: 'function', function: { name, ...(description === undefined ? {} : { description }), ...(parameters === undefined ? {} : { parameters }) } }];
  });
  return functions.length === 0 ? undefined : functions;
}
