// Tokens a chat message costs in a prompt, as the model counts them. The rule is the OpenAI
// cookbook's num_tokens_from_messages (How_to_count_tokens_with_tiktoken): 3 tokens per
// message, every string field encoded, 1 more for a `name`, 3 to prime the reply; the cookbook
// checks it against the API's prompt_tokens (test/unit/tokens/openai-cookbook.test.ts).
// Where OpenAI publishes no rule, this counts more, never fewer.

import type { ChatMessage } from '../domain.js';
import { countToolDefinitions } from './count-tools.js';
import { createTextCounter } from './count-text.js';
import type { EncodingName } from './encoding-for-model.js';
import { imageTokens } from './image-tokens.js';
import { isRecord, jsonText } from './json-text.js';
import { loadEncoder } from './load-encoder.js';

export interface TokenCounter {
  readonly encoding: EncodingName;
  /** Tokens of plain text, special-token strings like "<|endoftext|>" counted as ordinary text (never throws). */
  countText(text: string): number;
  /** Tokens one message costs inside a prompt: per-message overhead + every field the model sees. */
  countMessage(message: ChatMessage): number;
  /** Tokens of the request's `tools` (function definitions) — 0 for undefined/empty. */
  countTools(tools: unknown): number;
  /** Tokens every reply is primed with (3 for these models). */
  readonly replyPrimingTokens: number;
}

const TOKENS_PER_MESSAGE = 3; // <|start|>{role}<|message|>…<|end|>
const TOKENS_PER_NAME = 1;
const REPLY_PRIMING_TOKENS = 3; // <|start|>assistant<|message|>

const counters = new Map<EncodingName, TokenCounter>();

/** Built once per encoding at startup (cache internally: calling twice with one encoding returns the same counter). */
export function tokenCounterFor(encoding: EncodingName): TokenCounter {
  let counter = counters.get(encoding);
  if (counter === undefined) {
    counter = createTokenCounter(encoding);
    counters.set(encoding, counter);
  }
  return counter;
}

function createTokenCounter(encoding: EncodingName): TokenCounter {
  const countText = createTextCounter(loadEncoder(encoding), encoding);
  return Object.freeze({
    encoding,
    replyPrimingTokens: REPLY_PRIMING_TOKENS,
    countText,
    countMessage: (message: ChatMessage) => countMessage(message, countText),
    countTools: (tools: unknown) => countToolDefinitions(tools, countText, encoding),
  });
}

type CountText = (text: string) => number;

function countMessage(message: ChatMessage, countText: CountText): number {
  let tokens = TOKENS_PER_MESSAGE;
  for (const [field, value] of Object.entries(message)) {
    if (value === undefined || value === null) continue; // `content: null` beside tool_calls costs nothing
    switch (field) {
      case 'content':
        tokens += countContent(value, countText);
        break;
      case 'name':
        tokens += countText(textOf(value)) + TOKENS_PER_NAME;
        break;
      case 'tool_calls':
        tokens += Array.isArray(value) ? value.reduce((sum: number, call) => sum + countToolCall(call, countText), 0) : countText(jsonText(value));
        break;
      case 'function_call': // the deprecated single-call form: { name, arguments }
        tokens += countCall(value, value, countText);
        break;
      default:
        // role, tool_call_id, refusal, and fields this code does not know (`audio`, a vendor's
        // extension): the model may be shown any of them, so each counts its text.
        tokens += countOtherField(field, value, countText);
    }
  }
  return tokens;
}

const FIELDS_COUNTED_WITHOUT_KEY = new Set(['role', 'tool_call_id', 'refusal']);

function countOtherField(field: string, value: unknown, countText: CountText): number {
  if (FIELDS_COUNTED_WITHOUT_KEY.has(field)) return countText(textOf(value));
  const isEmpty = value === '' || (Array.isArray(value) && value.length === 0) || (isRecord(value) && Object.keys(value).length === 0);
  return isEmpty ? 0 : countText(field) + countText(textOf(value));
}

function textOf(value: unknown): string {
  return typeof value === 'string' ? value : jsonText(value);
}

function countContent(content: unknown, countText: CountText): number {
  if (typeof content === 'string') return countText(content);
  if (!Array.isArray(content)) return countText(jsonText(content));
  let tokens = 0;
  for (const part of content) tokens += countContentPart(part, countText);
  return tokens;
}

function countContentPart(part: unknown, countText: CountText): number {
  if (isRecord(part)) {
    if (part.type === 'text' && typeof part.text === 'string') return countText(part.text);
    if (part.type === 'refusal' && typeof part.refusal === 'string') return countText(part.refusal);
    if (part.type === 'image_url') {
      const image = part.image_url;
      if (typeof image === 'string') return imageTokens(image, undefined);
      if (isRecord(image) && typeof image.url === 'string') return imageTokens(image.url, image.detail);
    }
  }
  // input_audio, file and parts this code does not know: OpenAI publishes no rule from request
  // bytes to tokens (audio is billed by duration, files by their text and page images), so they
  // count their JSON text; inline base64 data is many times what the model is charged for it.
  // A file referenced only by `file_id` is the exception: its contents cannot be seen from here.
  return countText(jsonText(part));
}

/**
 * OpenAI publishes no rule for assistant tool calls. The model sees the function name and the
 * arguments inside some framing, so a call counts its JSON with the arguments taken out (id,
 * type, name and punctuation: 21 tokens with a one-letter name and id, 35 for a typical call,
 * more than a name and a few delimiters) plus the arguments as raw text, since JSON-escaping
 * them would charge for every quote twice.
 */
function countToolCall(call: unknown, countText: CountText): number {
  if (!isRecord(call)) return countText(jsonText(call));
  return countCall(call, call.function, countText);
}

function countCall(call: unknown, fn: unknown, countText: CountText): number {
  if (!isRecord(call) || !isRecord(fn) || typeof fn.arguments !== 'string') return countText(jsonText(call));
  const framing = call === fn ? { ...fn, arguments: '' } : { ...call, function: { ...fn, arguments: '' } };
  return countText(jsonText(framing)) + countText(fn.arguments);
}
