import { hash } from 'node:crypto';
import type { ChatMessage, ContentPart, StoredMessage } from '../domain.js';

// Recognising re-sent history means comparing what a client sends back with
// what contextd stored. Apps rebuild their history from their own objects, not
// from the bytes contextd stored, so the digest covers only what the model
// sees, canonically:
// - tool-call arguments compared as parsed JSON when they parse (LangChain
//   re-serialises `{"q":"item 5"}` as `{"q": "item 5"}`; key order is free);
// - text content equal whether sent as a string or as text parts;
// - an absent optional field equal to `null`, `""` or `[]` (the SDKs' reply
//   objects carry `refusal: null`, `tool_calls: []`, `annotations: []`).

/** Digests made by this version start with it; older stored digests are recomputed from their message. */
const DIGEST_VERSION = '2.';

/**
 * Tool-call arguments nested deeper than this are compared as their text. The
 * canonical form recurses once per level and overflowed the stack at ~2,300
 * levels (measured, Node 20): caught, that made the digest depend on how deep
 * the caller's stack was. Arguments are a string, so the request body's depth
 * limit (src/http/check-json-depth.ts) does not see inside them, and a reply's
 * are never checked at all. Content and the rest come from a request that
 * limit has bounded.
 */
const MAX_CANONICAL_DEPTH = 128;

/** JSON text with object keys sorted and null-valued object fields left out; a RangeError past MAX_CANONICAL_DEPTH. */
function canonicalJson(value: unknown, depth = 1): string {
  if (value === null || typeof value !== 'object') return JSON.stringify(value) ?? 'null';
  if (depth > MAX_CANONICAL_DEPTH) throw new RangeError(`nested more than ${MAX_CANONICAL_DEPTH} levels deep`);
  if (Array.isArray(value)) return `[${value.map((item) => canonicalJson(item, depth + 1)).join(',')}]`;
  const record = value as Record<string, unknown>;
  const fields = Object.keys(record)
    .filter((key) => record[key] !== null && record[key] !== undefined)
    .sort()
    .map((key) => `${JSON.stringify(key)}:${canonicalJson(record[key], depth + 1)}`);
  return `{${fields.join(',')}}`;
}

function canonicalContent(content: ChatMessage['content']): unknown {
  if (content === undefined || content === null || content === '') return null;
  if (typeof content === 'string') return content;
  if (!Array.isArray(content)) return canonicalJson(content);
  const onlyText = content.every((part: ContentPart) => part?.type === 'text' && typeof part.text === 'string');
  if (onlyText) return content.length === 0 ? null : content.map((part) => part.text).join('');
  return canonicalJson(content);
}

/**
 * Arguments as the model meant them: parsed JSON when they parse (and nest at
 * most MAX_CANONICAL_DEPTH levels), else the text itself; none at all is `{}`.
 */
function canonicalArguments(text: unknown): string | null {
  if (typeof text !== 'string') return text === undefined || text === null ? '{}' : canonicalJson(text);
  if (text.trim() === '') return '{}';
  try {
    return canonicalJson(JSON.parse(text));
  } catch {
    return text;
  }
}

function canonicalToolCalls(toolCalls: ChatMessage['tool_calls']): unknown {
  if (!Array.isArray(toolCalls) || toolCalls.length === 0) return null;
  return toolCalls.map((call) => {
    const custom = call?.custom as { name?: unknown; input?: unknown } | undefined;
    return [
      call?.id ?? null,
      call?.type ?? 'function',
      call?.function?.name ?? custom?.name ?? null,
      call?.function !== undefined ? canonicalArguments(call.function.arguments) : (custom?.input ?? null),
    ];
  });
}

const orNull = (value: unknown): unknown => (value === undefined || value === '' ? null : value);

/** A digest of what the model sees of a message: equal digests mean the same message. */
export function digestMessage(message: ChatMessage): string {
  const seen = [
    message.role,
    canonicalContent(message.content),
    orNull(message.name),
    canonicalToolCalls(message.tool_calls),
    orNull(message.tool_call_id),
    typeof message.refusal === 'string' && message.refusal !== '' ? message.refusal : null,
  ];
  return DIGEST_VERSION + hash('sha1', JSON.stringify(seen), 'base64url');
}

// Stored messages are frozen and shared by the stores' caches, so a digest
// recomputed for one stored before this version is kept for as long as it is.
const recomputed = new WeakMap<StoredMessage, string>();

/** The stored message's digest in this version's form (recomputed once for messages stored by an older version). */
export function storedDigest(stored: StoredMessage): string {
  if (stored.digest.startsWith(DIGEST_VERSION)) return stored.digest;
  let digest = recomputed.get(stored);
  if (digest === undefined) recomputed.set(stored, (digest = digestMessage(stored.message)));
  return digest;
}
