import { CHAT_ROLES, type ChatMessage } from '../domain.js';
import { InvalidJsonError, InvalidRequestError } from '../errors.js';

export interface ChatRequestBody {
  model: string | undefined;
  messages: ChatMessage[];
  stream: boolean;
  tools: unknown;
  /** Every field of the client's body, forwarded as is apart from `messages`. */
  raw: Record<string, unknown>;
}

const ROLES: ReadonlySet<string> = new Set(CHAT_ROLES);

/** Parses and checks what contextd needs of a chat-completion body; the upstream judges the rest. */
export function parseChatRequest(body: Buffer): ChatRequestBody {
  let raw: unknown;
  try {
    raw = JSON.parse(body.toString('utf8'));
  } catch (error) {
    throw new InvalidJsonError((error as Error).message);
  }
  if (typeof raw !== 'object' || raw === null || Array.isArray(raw)) {
    throw new InvalidRequestError('The request body must be a JSON object.', null);
  }
  const record = raw as Record<string, unknown>;
  const messages = record.messages;
  if (messages === undefined) throw new InvalidRequestError("Missing required parameter: 'messages'.", 'messages', 'missing_required_parameter');
  if (!Array.isArray(messages)) throw new InvalidRequestError("'messages' must be an array.", 'messages', 'invalid_type');
  if (messages.length === 0) throw new InvalidRequestError("'messages' must contain at least one message.", 'messages', 'empty_array');
  messages.forEach((message: unknown, i) => {
    if (typeof message !== 'object' || message === null || Array.isArray(message)) {
      throw new InvalidRequestError(`messages[${i}] must be an object.`, `messages[${i}]`, 'invalid_type');
    }
    const role = (message as { role?: unknown }).role;
    if (typeof role !== 'string' || !ROLES.has(role)) {
      throw new InvalidRequestError(
        `messages[${i}].role must be one of ${CHAT_ROLES.join(', ')}; got ${JSON.stringify(role ?? null)}.`,
        `messages[${i}].role`,
        'invalid_value',
      );
    }
  });
  const model = typeof record.model === 'string' ? record.model : undefined;
  return { model, messages: messages as ChatMessage[], stream: record.stream === true, tools: record.tools, raw: record };
}
