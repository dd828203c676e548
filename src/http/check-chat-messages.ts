import { CHAT_ROLES, type ChatMessage } from '../domain.js';
import { InvalidRequestError } from '../errors.js';

// The shapes of `messages` that contextd's later steps read (the digest, token
// counting, the split, the tool-message rules, the stored copy), checked once,
// when the request is parsed, against OpenAI's request schema for chat
// completions (ChatCompletionMessageParam in openai-node 6.x, generated from
// OpenAI's OpenAPI spec). What that schema allows is accepted; a field of a
// wrong type is a 400 naming it, in OpenAI's own words (`invalid_type`,
// `missing_required_parameter`, `invalid_value`). Fields no step reads (`audio`,
// the insides of `input_audio` and `file` parts, fields OpenAI adds later, a
// vendor's) are forwarded unchecked: the upstream judges them. So are rules
// only the upstream applies (which roles may carry which part types, content
// required for a user message): a lenient upstream may take what OpenAI refuses.

const ROLES: ReadonlySet<string> = new Set(CHAT_ROLES);

type Json = Record<string, unknown>;

/**
 * Refuses the first message whose shape a later step would not expect; afterwards `messages` can be read as ChatMessage[].
 * `nameOf` names message i in the error's `param` (`messages[i]`, or the item a Responses request's message came from).
 */
export function checkChatMessages(messages: readonly unknown[], nameOf: (index: number) => string = (i) => `messages[${i}]`): asserts messages is ChatMessage[] {
  messages.forEach((message, i) => checkMessage(message, nameOf(i)));
}

function checkMessage(message: unknown, at: string): void {
  if (!isRecord(message)) throw invalidType(at, 'an object', message);
  const { role } = message;
  if (role === undefined) throw missing(`${at}.role`);
  if (typeof role !== 'string' || !ROLES.has(role)) {
    const got = typeof role === 'string' ? JSON.stringify(role.slice(0, 64)) : kindOf(role);
    throw new InvalidRequestError(`${at}.role must be one of ${CHAT_ROLES.join(', ')}; got ${got}.`, `${at}.role`, 'invalid_value');
  }
  checkContent(message.content, `${at}.content`);
  optionalString(message, 'name', at);
  optionalString(message, 'refusal', at);
  // The tool-message rules pair each result with its call by this id.
  if (role === 'tool') requiredString(message, 'tool_call_id', at);
  else optionalString(message, 'tool_call_id', at);
  // `null` and `[]` are how the SDKs' reply objects say "no calls" when a client re-sends them.
  if (message.tool_calls !== undefined && message.tool_calls !== null) checkToolCalls(message.tool_calls, `${at}.tool_calls`);
  // The deprecated single call of role assistant: { name, arguments }.
  if (message.function_call !== undefined && message.function_call !== null) checkFunction(message.function_call, `${at}.function_call`);
}

/** string | array of parts | null; absent is null (an assistant message with tool_calls has none). */
function checkContent(content: unknown, at: string): void {
  if (content === undefined || content === null || typeof content === 'string') return;
  if (!Array.isArray(content)) throw invalidType(at, 'a string, an array of content parts or null', content);
  content.forEach((part, j) => checkContentPart(part, `${at}[${j}]`));
}

function checkContentPart(part: unknown, at: string): void {
  if (!isRecord(part)) throw invalidType(at, 'an object', part);
  requiredString(part, 'type', at);
  switch (part.type) {
    case 'text':
      requiredString(part, 'text', at);
      break;
    case 'refusal':
      requiredString(part, 'refusal', at);
      break;
    case 'image_url': {
      // `{ url, detail? }`; a bare URL string is counted too (some clients send one).
      const image = part.image_url;
      if (typeof image === 'string') break;
      if (!isRecord(image)) throw image === undefined ? missing(`${at}.image_url`) : invalidType(`${at}.image_url`, 'an object', image);
      requiredString(image, 'url', `${at}.image_url`);
      break;
    }
    // input_audio, file and part types OpenAI adds later count as their JSON text: nothing reads inside them.
  }
}

function checkToolCalls(toolCalls: unknown, at: string): void {
  if (!Array.isArray(toolCalls)) throw invalidType(at, 'an array of tool calls', toolCalls);
  toolCalls.forEach((call, k) => checkToolCall(call, `${at}[${k}]`));
}

/**
 * `{ id, type: 'function', function: { name, arguments } }` or
 * `{ id, type: 'custom', custom: { name, input } }`. A missing type means
 * 'function' (as the digest reads it); a type OpenAI adds later is forwarded,
 * but whichever of `function` and `custom` it carries is checked all the same.
 */
function checkToolCall(call: unknown, at: string): void {
  if (!isRecord(call)) throw invalidType(at, 'an object', call);
  requiredString(call, 'id', at);
  const type = call.type ?? 'function';
  if (typeof type !== 'string') throw invalidType(`${at}.type`, 'a string', type);
  if (type === 'function' || call.function !== undefined) checkFunction(call.function, `${at}.function`);
  if (type === 'custom' || call.custom !== undefined) {
    const custom = call.custom;
    if (!isRecord(custom)) throw custom === undefined ? missing(`${at}.custom`) : invalidType(`${at}.custom`, 'an object', custom);
    requiredString(custom, 'name', `${at}.custom`);
    requiredString(custom, 'input', `${at}.custom`);
  }
}

/** `{ name, arguments }`, both strings: arguments are the model's JSON text, which need not parse. */
function checkFunction(fn: unknown, at: string): void {
  if (!isRecord(fn)) throw fn === undefined ? missing(at) : invalidType(at, 'an object', fn);
  requiredString(fn, 'name', at);
  requiredString(fn, 'arguments', at);
}

function requiredString(record: Json, field: string, at: string): void {
  const value = record[field];
  if (typeof value === 'string') return;
  throw value === undefined ? missing(`${at}.${field}`) : invalidType(`${at}.${field}`, 'a string', value);
}

/** Absent, null or a string. */
function optionalString(record: Json, field: string, at: string): void {
  const value = record[field];
  if (value !== undefined && value !== null && typeof value !== 'string') throw invalidType(`${at}.${field}`, 'a string', value);
}

function isRecord(value: unknown): value is Json {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function missing(param: string): InvalidRequestError {
  return new InvalidRequestError(`Missing required parameter: '${param}'.`, param, 'missing_required_parameter');
}

/** OpenAI's wording: "Invalid type for 'messages[0].content': expected …, but got an object instead." */
function invalidType(param: string, expected: string, got: unknown): InvalidRequestError {
  return new InvalidRequestError(`Invalid type for '${param}': expected ${expected}, but got ${kindOf(got)} instead.`, param, 'invalid_type');
}

function kindOf(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'an array';
  if (typeof value === 'object') return 'an object';
  if (typeof value === 'number') return Number.isInteger(value) ? 'an integer' : 'a decimal';
  return `a ${typeof value}`;
}
