// Tokens of a chat message in a prompt, as the model counts them. The rule is the OpenAI
// cookbook's num_tokens_from_messages (How_to_count_tokens_with_tiktoken): 3 tokens per
// message, every string field encoded, 1 more for a `name`, 3 to prime the reply; the cookbook
// checks it against the API's prompt_tokens (test/unit/tokens/openai-cookbook.test.ts).
// Where OpenAI publishes no rule, this counts more, never fewer.

import type { ChatMessage } from '../domain.js';
import { countRequestExtras, type RequestExtras } from './count-request-extras.js';
import { countToolDefinitions } from './count-tools.js';
import { createTextCounter } from './count-text.js';
import type { EncodingName } from './encoding-for-model.js';
import { imageRuleForModel, type ImageRule } from './image-rule.js';
import { imageTokens, maxImageTokens } from './image-tokens.js';
import { isRecord, jsonText } from './json-text.js';
import { loadEncoder } from './load-encoder.js';
import { ToolCountMemo } from './tool-count-memo.js';

export interface TokenCounter {
  readonly encoding: EncodingName;
  /** How images are billed: the model's published rule, or 85 + 170 a tile (image-rule.ts). */
  readonly imageRule: ImageRule;
  /** Tokens of plain text, special-token strings like "<|endoftext|>" counted as ordinary text (never throws). */
  countText(text: string): number;
  /** Tokens one message costs inside a prompt: per-message overhead + every field the model sees. */
  countMessage(message: ChatMessage): number;
  /** Tokens of the request's `tools` (function definitions) — 0 for undefined/empty; a set seen recently is not counted again. */
  countTools(tools: unknown): number;
  /** Tokens of the request's `response_format` (Responses: `text.format`) and `tool_choice` — 0 when absent. */
  countRequestExtras(extras: RequestExtras): number;
  /** Tokens every reply is primed with (3 for these models). */
  readonly replyPrimingTokens: number;
}

const TOKENS_PER_MESSAGE = 3; // <|start|>{role}<|message|>…<|end|>
const TOKENS_PER_NAME = 1;
const REPLY_PRIMING_TOKENS = 3; // <|start|>assistant<|message|>

/**
 * A file given by reference (`file_id`, `file_url`) cannot be seen from here. OpenAI puts a
 * PDF's extracted text and an image of each page into the context (file inputs guide), so it
 * counts as one dense page: ~750 words of text, and a page image of unknown size under the
 * model's image rule (gpt-4o: 1,000 + 1,445 = 2,445 a file; gpt-4o-mini, which bills images at
 * 33x: 49,169). A longer file counts low; docs/token-counting.md says what to do about it.
 */
export const FILE_PAGE_TEXT_TOKENS = 1_000;

/** Distinct tool sets whose counts each encoding keeps: an agent resends the same set every turn. */
export const TOOL_COUNT_MEMO_ENTRIES = 256;

interface EncodingCounters {
  countText: CountText;
  tools: ToolCountMemo;
}

const encodingCounters = new Map<EncodingName, EncodingCounters>();
const counters = new Map<string, TokenCounter>();

/**
 * Built once per encoding and image rule (calling twice with one encoding and model returns the
 * same counter). `model` chooses how images are counted (image-rule.ts); without it, or for a
 * model with no dearer published rule, 85 + 170 a tile.
 */
export function tokenCounterFor(encoding: EncodingName, model?: string): TokenCounter {
  const imageRule = imageRuleForModel(model);
  const key = `${encoding} ${imageRule.id}`;
  let counter = counters.get(key);
  if (counter === undefined) {
    counter = createTokenCounter(encoding, imageRule);
    counters.set(key, counter);
  }
  return counter;
}

/** The text counter (its piece cache is ~1–2 MB) and the tools memo are the encoding's, shared by its image rules. */
function countersFor(encoding: EncodingName): EncodingCounters {
  let shared = encodingCounters.get(encoding);
  if (shared === undefined) {
    shared = { countText: createTextCounter(loadEncoder(encoding), encoding), tools: new ToolCountMemo(TOOL_COUNT_MEMO_ENTRIES) };
    encodingCounters.set(encoding, shared);
  }
  return shared;
}

function createTokenCounter(encoding: EncodingName, imageRule: ImageRule): TokenCounter {
  const { countText, tools } = countersFor(encoding);
  const parts: PartCounters = { countText, imageRule, fileTokens: FILE_PAGE_TEXT_TOKENS + maxImageTokens(imageRule) };
  const countUncounted = (definitions: unknown): number => countToolDefinitions(definitions, countText, encoding);
  return Object.freeze({
    encoding,
    imageRule,
    replyPrimingTokens: REPLY_PRIMING_TOKENS,
    countText,
    countMessage: (message: ChatMessage) => countMessage(message, parts),
    countTools: (definitions: unknown) => tools.count(definitions, countUncounted),
    countRequestExtras: (extras: RequestExtras) => countRequestExtras(extras, countText),
  });
}

type CountText = (text: string) => number;

interface PartCounters {
  countText: CountText;
  imageRule: ImageRule;
  /** What a file given by reference counts (FILE_PAGE_TEXT_TOKENS + a page image). */
  fileTokens: number;
}

function countMessage(message: ChatMessage, parts: PartCounters): number {
  const { countText } = parts;
  let tokens = TOKENS_PER_MESSAGE;
  for (const [field, value] of Object.entries(message)) {
    if (value === undefined || value === null) continue; // `content: null` beside tool_calls costs nothing
    switch (field) {
      case 'content':
        tokens += countContent(value, parts);
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

function countContent(content: unknown, parts: PartCounters): number {
  if (typeof content === 'string') return parts.countText(content);
  if (!Array.isArray(content)) return parts.countText(jsonText(content));
  let tokens = 0;
  for (const part of content) tokens += countContentPart(part, parts);
  return tokens;
}

function countContentPart(part: unknown, { countText, imageRule, fileTokens }: PartCounters): number {
  if (isRecord(part)) {
    if (part.type === 'text' && typeof part.text === 'string') return countText(part.text);
    if (part.type === 'refusal' && typeof part.refusal === 'string') return countText(part.refusal);
    if (part.type === 'image_url') {
      const image = part.image_url;
      if (typeof image === 'string') return imageTokens(image, undefined, imageRule);
      if (isRecord(image) && typeof image.url === 'string') return imageTokens(image.url, image.detail, imageRule);
    }
    // A file given by reference (chat `file.file_id`; the Responses API's input_file with a
    // file_id or file_url arrives as this part too): its contents cannot be seen from here.
    if (part.type === 'file' && isFileByReference(part.file)) return fileTokens + countText(jsonText(part));
  }
  // input_audio, inline file_data and parts this code does not know: OpenAI publishes no rule
  // from request bytes to tokens (audio is billed by duration, files by their text and page
  // images), so they count their JSON text; inline base64 data is many times what the model is
  // charged for it.
  return countText(jsonText(part));
}

function isFileByReference(file: unknown): boolean {
  if (!isRecord(file) || typeof file.file_data === 'string') return false;
  return typeof file.file_id === 'string' || typeof file.file_url === 'string';
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
