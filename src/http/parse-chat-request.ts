import type { ChatMessage } from '../domain.js';
import { InvalidJsonError, InvalidRequestError } from '../errors.js';
import { checkChatMessages } from './check-chat-messages.js';
import { checkJsonDepth } from './check-json-depth.js';

export interface ChatRequestBody {
  model: string | undefined;
  messages: ChatMessage[];
  stream: boolean;
  /** stream_options.include_usage: the stream ends with a usage chunk, its terminal event. */
  usageRequested: boolean;
  tools: unknown;
  /** `response_format` and `tool_choice` (the legacy `function_call`) as the client sent them, for counting. */
  responseFormat: unknown;
  toolChoice: unknown;
  /** Every field of the client's body, forwarded as is apart from `messages`. */
  raw: Record<string, unknown>;
}

/** A request body as a JSON object, its depth bounded first: what every API's parse starts from. */
export function parseJsonObject(body: Buffer): Record<string, unknown> {
  checkJsonDepth(body);
  let raw: unknown;
  try {
    raw = JSON.parse(body.toString('utf8'));
  } catch (error) {
    throw new InvalidJsonError((error as Error).message);
  }
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) {
    throw new InvalidRequestError('The request body must be a JSON object.', null);
  }
  return raw as Record<string, unknown>;
}

/**
 * Parses and checks what contextd needs of a chat-completion body, once: its
 * nesting depth, then the shapes of its messages. No later step meets a shape
 * it does not expect; the upstream judges the rest.
 */
export function parseChatRequest(body: Buffer): ChatRequestBody {
  const record = parseJsonObject(body);
  const messages = record.messages;
  if (messages === undefined) throw new InvalidRequestError("Missing required parameter: 'messages'.", 'messages', 'missing_required_parameter');
  if (!Array.isArray(messages)) throw new InvalidRequestError("'messages' must be an array.", 'messages', 'invalid_type');
  if (messages.length === 0) throw new InvalidRequestError("'messages' must contain at least one message.", 'messages', 'empty_array');
  checkChatMessages(messages);
  const model = typeof record.model === 'string' ? record.model : undefined;
  const options = record.stream_options;
  const usageRequested = typeof options === 'object' && options !== null && (options as { include_usage?: unknown }).include_usage === true;
  return { model, messages, stream: record.stream === true, usageRequested, tools: record.tools ?? record.functions, responseFormat: record.response_format, toolChoice: record.tool_choice ?? record.function_call, raw: record };
}
