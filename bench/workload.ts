// What the benchmark sends. Every path asks the upstream for the same thing: a
// system message, about a budget's worth of history, and a new user message.
// Direct and floor clients send that history themselves (an app without
// contextd); contextd clients send only the system message and the new message,
// and contextd fills the window from what it stored.

import { Buffer } from 'node:buffer';
import type { ChatMessage } from '../src/domain.js';
import { tokenCounterFor, type TokenCounter } from '../src/tokens/count-tokens.js';
import { API_PATHS, type Api } from './apis.js';
import { prose } from './prose.js';
import { REPLY_HEADER } from './protocol.js';

export const MODEL = 'gpt-4o-mini';
export const API_KEY = 'sk-bench-0123456789abcdefghijklmnopqrstuvwxyz';
export const CHAT_PATH = API_PATHS.chat;
/** contextd's default route budget (max_context_tokens), which this benchmark runs with. */
export const BUDGET_TOKENS = 3000;

export const SYSTEM_PROMPT =
  'You are the operations assistant of a mid-sized software company. Answer in plain English, ' +
  'keep answers short unless asked for detail, and say so when you are not sure about a number or a date.';

export interface Turn {
  user: string;
  assistant: string;
}

export interface RequestSpec {
  api: Api;
  path: string;
  headers: Record<string, string>;
  body: string;
  /** The new user message it carries (what the fake upstream picks its reply by). */
  user?: string;
}

/**
 * What a client sends on one API: its whole history itself (the direct and
 * floor paths), or only the new turn with the conversation header (contextd).
 */
export interface ApiClient {
  readonly api: Api;
  /** A request as an app without contextd sends it; every `newEvery`-th one without history. */
  direct(stream: boolean): RequestSpec;
  /** A request to contextd: the instructions and the new message only. */
  withMemory(conversation: string, stream: boolean): RequestSpec;
  /** A set-up turn: stored by contextd with `turn.assistant` as the upstream's reply. */
  setupTurn(conversation: string, turn: Turn): RequestSpec;
  /** Whether the `count`-th request of a stream of them starts a conversation. */
  startsConversation(count: number): boolean;
}

export interface WorkloadOptions {
  /** History the direct and floor clients send, and each stored conversation's last `bigTurns` turns hold (≈ the budget minus instructions and the new message). */
  historyTokens: number;
  /** Turns in that history (each a user and an assistant message of equal size). */
  bigTurns: number;
  /**
   * Every `newEvery`-th request starts a new conversation (0: none): a direct or
   * floor client then sends no history, a contextd client a new conversation id.
   */
  newEvery?: number;
}

const SMALL_MESSAGE_TOKENS = 30;
const NEW_MESSAGE_TOKENS = 40;
const HALF_SENTENCE_CHARS = 40;

/**
 * Builds the texts: calibrated once against contextd's own counter (o200k_base, what
 * gpt-4o-mini uses) so that message sizes are in tokens, not characters. It is
 * also the chat completions client; responses-workload.ts speaks the Responses
 * API with the same texts.
 */
export class Workload implements ApiClient {
  readonly api = 'chat';
  readonly counter: TokenCounter = tokenCounterFor('o200k_base');
  readonly system: ChatMessage = { role: 'system', content: SYSTEM_PROMPT };
  readonly messageTokens: number;
  /** The history the direct and floor clients send. */
  readonly directHistory: readonly Turn[];
  /** Exact prompt tokens of a direct request, as contextd would count it. */
  readonly directPromptTokens: number;
  /** Of which the history. */
  readonly directHistoryTokens: number;
  readonly #charsPerToken: number;
  /** Mean prompt tokens of direct requests, the new conversations' (no history) included. */
  readonly directMeanPromptTokens: number;
  readonly #directPrefix: Record<'json' | 'stream', string>;
  #sequence = 0;
  #directRequests = 0;

  constructor(readonly options: WorkloadOptions) {
    const sample = prose(1, 20_000);
    this.#charsPerToken = sample.length / this.counter.countText(sample);
    this.messageTokens = Math.round(options.historyTokens / (2 * options.bigTurns));
    this.directHistory = this.bigTurns(0);
    const historyMessages = this.directHistory.flatMap((turn): ChatMessage[] => [
      { role: 'user', content: turn.user },
      { role: 'assistant', content: turn.assistant },
    ]);
    this.directHistoryTokens = historyMessages.reduce((sum, message) => sum + this.counter.countMessage(message), 0);
    const sampleNew: ChatMessage = { role: 'user', content: this.newUserText(0) };
    this.directPromptTokens =
      [this.system, ...historyMessages, sampleNew].reduce((sum, message) => sum + this.counter.countMessage(message), 0) + this.counter.replyPrimingTokens;
    // Everything before the new message is the same on every direct request: serialised once, as an app's own cache of its history would be.
    const prefix = (stream: boolean): string => {
      const head = JSON.stringify({ model: MODEL, ...(stream ? { stream: true } : {}), messages: [this.system, ...historyMessages] });
      return head.slice(0, -2); // drop the closing "]}" so the new message can follow
    };
    this.#directPrefix = { json: prefix(false), stream: prefix(true) };
    const newPromptTokens = [this.system, sampleNew].reduce((sum, message) => sum + this.counter.countMessage(message), 0) + this.counter.replyPrimingTokens;
    const newEvery = options.newEvery ?? 0;
    this.directMeanPromptTokens = newEvery > 0 ? (this.directPromptTokens * (newEvery - 1) + newPromptTokens) / newEvery : this.directPromptTokens;
  }

  /** Whether this request starts a conversation: every `newEvery`-th of a stream of requests (counted by the caller). */
  startsConversation(count: number): boolean {
    const every = this.options.newEvery ?? 0;
    return every > 0 && count % every === every - 1;
  }

  /** Text of about `tokens` tokens; deterministic in `seed`. */
  text(seed: number, tokens: number): string {
    // prose() ends on a whole sentence past its minimum: aim half a sentence short so the mean is on target.
    return prose(seed, Math.max(1, Math.round(tokens * this.#charsPerToken) - HALF_SENTENCE_CHARS));
  }

  /** The last turns of every stored conversation, and the direct clients' history: budget-sized. */
  bigTurns(seed: number): Turn[] {
    return Array.from({ length: this.options.bigTurns }, (_, i) => ({
      user: this.text(seed * 1_000 + 2 * i + 101, this.messageTokens),
      assistant: this.text(seed * 1_000 + 2 * i + 102, this.messageTokens),
    }));
  }

  /** The older turns of a long conversation: short questions and answers. */
  smallTurn(seed: number): Turn {
    return { user: this.text(seed * 2 + 7_000_001, SMALL_MESSAGE_TOKENS), assistant: this.text(seed * 2 + 7_000_002, SMALL_MESSAGE_TOKENS) };
  }

  /** A new user message, different on every request so that nothing can be served from a cache or taken for a retry. */
  newUserText(sequence: number): string {
    return `${this.text(sequence % 997, NEW_MESSAGE_TOKENS)} (request ${sequence})`;
  }

  /** The next new user message: one sequence for every API, so no two requests carry the same. */
  nextUserText(): string {
    return this.newUserText(++this.#sequence);
  }

  /** A request as an app without contextd sends it: its whole history (none when it starts a conversation), then the new message. */
  direct(stream: boolean): RequestSpec {
    const content = this.nextUserText();
    const headers = { authorization: `Bearer ${API_KEY}`, 'content-type': 'application/json' };
    if (this.startsConversation(this.#directRequests++)) {
      return { api: 'chat', path: CHAT_PATH, headers, user: content, body: JSON.stringify({ model: MODEL, ...(stream ? { stream: true } : {}), messages: [this.system, { role: 'user', content }] }) };
    }
    return { api: 'chat', path: CHAT_PATH, headers, user: content, body: `${this.#directPrefix[stream ? 'stream' : 'json']},${JSON.stringify({ role: 'user', content })}]}` };
  }

  /** A request to contextd: the system message and the new message only. */
  withMemory(conversation: string, stream: boolean): RequestSpec {
    const content = this.nextUserText();
    return {
      api: 'chat',
      path: CHAT_PATH,
      headers: { authorization: `Bearer ${API_KEY}`, 'content-type': 'application/json', 'x-conversation-id': conversation },
      user: content,
      body: JSON.stringify({ model: MODEL, ...(stream ? { stream: true } : {}), messages: [this.system, { role: 'user', content }] }),
    };
  }

  /** A set-up turn: stored by contextd with `turn.assistant` as the upstream's reply. */
  setupTurn(conversation: string, turn: Turn): RequestSpec {
    const spec = this.withMemory(conversation, false);
    spec.body = JSON.stringify({ model: MODEL, messages: [this.system, { role: 'user', content: turn.user }] });
    spec.headers[REPLY_HEADER] = Buffer.from(turn.assistant, 'utf8').toString('base64url');
    return spec;
  }
}
