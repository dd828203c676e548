import { createHash } from 'node:crypto';
import type { ChatMessage, ContentPart } from '../domain.js';

// Recognising re-sent history means comparing what a client sends back with
// what contextd stored. Clients re-send replies in their own shape (the SDK's
// message object with `refusal: null`, `annotations: []`, or just role and
// content), so the digest covers only what the model sees, normalised.

function normaliseContent(content: ChatMessage['content']): unknown {
  if (content === undefined || content === null || content === '') return null;
  if (typeof content === 'string') return content;
  const onlyText = content.every((part: ContentPart) => part.type === 'text' && typeof part.text === 'string');
  if (onlyText) return content.map((part) => part.text).join('');
  return content;
}

function normaliseToolCalls(toolCalls: ChatMessage['tool_calls']): unknown {
  if (!Array.isArray(toolCalls) || toolCalls.length === 0) return null;
  return toolCalls.map((call) => [call.id, call.type ?? 'function', call.function?.name, call.function?.arguments]);
}

/** A digest of what the model sees of a message: equal digests mean the same message. */
export function digestMessage(message: ChatMessage): string {
  const seen = [
    message.role,
    normaliseContent(message.content),
    message.name ?? null,
    normaliseToolCalls(message.tool_calls),
    message.tool_call_id ?? null,
    typeof message.refusal === 'string' && message.refusal !== '' ? message.refusal : null,
  ];
  return createHash('sha1').update(JSON.stringify(seen)).digest('base64url');
}
