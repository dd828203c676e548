// What a provider's prompt cache could serve of a request: the prompt as the
// model sees it (token ids, message by message), its longest common prefix with
// the previous request of the conversation, and OpenAI's rule for how much of
// that prefix a cache hit covers. Values in, values out (bench/prefix-cache.ts).

import { encode } from 'gpt-tokenizer/encoding/o200k_base';

/** OpenAI's prompt caching: nothing below this prefix length … */
export const CACHE_MIN_TOKENS = 1024;
/** … and above it, hits grow in steps of this many tokens. */
export const CACHE_STEP_TOKENS = 128;
/** Tokens every reply is primed with (<|start|>assistant<|message|>): in prompt_tokens, never in a shared prefix. */
export const REPLY_PRIMING_TOKENS = 3;

// A message is <|start|>{role}<|message|>{content}<|end|> to the model: 3 tokens
// besides its text, as src/tokens/count-tokens.ts counts it. Ids outside the
// vocabulary stand for them: they are only ever compared for equality.
const START = -1;
const MESSAGE = -2;
const END = -3;
const NO_SPECIAL = { disallowedSpecial: new Set<string>() };

export interface PromptMessage {
  role?: unknown;
  content?: unknown;
  [field: string]: unknown;
}

const isEmpty = (value: unknown): boolean =>
  value === undefined || value === null || value === '' || (Array.isArray(value) && value.length === 0) || (typeof value === 'object' && value !== null && Object.keys(value).length === 0);

const textOf = (value: unknown): string => (typeof value === 'string' ? value : JSON.stringify(value));

/**
 * One message's tokens. Equal messages give equal tokens, and a message that
 * differs diverges no earlier than its first differing field, so equal message
 * prefixes give equal token prefixes. Fields besides role and content (a name,
 * tool calls, a `refusal: null` a client echoes) count too, as their JSON.
 */
export function messageTokens(message: PromptMessage): number[] {
  const tokens = [START, ...encode(textOf(message.role ?? ''), NO_SPECIAL), MESSAGE];
  for (const [field, value] of Object.entries(message)) {
    if (field === 'role' || isEmpty(value)) continue;
    tokens.push(...encode(field === 'content' ? textOf(value) : JSON.stringify({ [field]: value }), NO_SPECIAL));
  }
  tokens.push(END);
  return tokens;
}

/** Tokenizes prompts message by message, each distinct message once: a 200-turn conversation re-sends the same ones every turn. */
export class PromptTokenizer {
  readonly #byJson = new Map<string, readonly number[]>();

  tokens(messages: readonly PromptMessage[]): number[] {
    const out: number[] = [];
    for (const message of messages) {
      const json = JSON.stringify(message);
      let tokens = this.#byJson.get(json);
      if (tokens === undefined) {
        tokens = messageTokens(message);
        this.#byJson.set(json, tokens);
      }
      for (const token of tokens) out.push(token);
    }
    return out;
  }
}

/** Length of the longest common prefix of two token sequences. */
export function commonPrefixTokens(a: readonly number[], b: readonly number[]): number {
  const end = Math.min(a.length, b.length);
  let i = 0;
  while (i < end && a[i] === b[i]) i++;
  return i;
}

/**
 * Tokens a prefix cache serves, by OpenAI's rule: none below 1,024 tokens of
 * shared prefix, then 1,024 and every further whole 128 (never more than the prompt).
 */
export function cacheableTokens(prefixTokens: number, promptTokens: number): number {
  if (prefixTokens < CACHE_MIN_TOKENS) return 0;
  const steps = Math.floor((prefixTokens - CACHE_MIN_TOKENS) / CACHE_STEP_TOKENS);
  return Math.min(promptTokens, CACHE_MIN_TOKENS + steps * CACHE_STEP_TOKENS);
}

/**
 * Where the previous request's messages stop being a prefix of this one's: the
 * index of the first of them that is changed or gone, or undefined when every
 * one of them is there unchanged (this request only appended).
 */
export function firstChangedMessage(previous: readonly string[], next: readonly string[]): number | undefined {
  for (let i = 0; i < previous.length; i++) if (previous[i] !== next[i]) return i;
  return undefined;
}
