// Rebuilds the assistant message from what the upstream sent, so the turn can be
// stored. Runs on the tee's side branch: the client already got the bytes, this
// only reads them. Pure: no clock, no I/O, no throwing on bad input.
//
// Only choice index 0 is rebuilt: with `n` > 1 the other choices are dropped,
// because a conversation continues from one reply.

import type { ChatMessage, ToolCall } from '../domain.js';
import { createContentDeltaReader } from './content-delta.js';
import { createSseParser, type SseEvent } from './sse-parser.js';

export interface RebuiltReply {
  /** The Responses API's response id (`resp_…`), for previous_response_id emulation; chat replies have none. */
  responseId?: string;
  /** The prompt as the upstream counted it (usage.prompt_tokens; the Responses API's input_tokens), to check contextd's count against. */
  promptTokens?: number;
  /**
   * The assistant message as the model produced it (choice index 0): role 'assistant', content
   * (string or null), tool_calls (by index, arguments concatenated, id/type/name from the first
   * delta that had them), refusal when present; undefined when nothing usable came.
   */
  message: ChatMessage | undefined;
  /**
   * usage.completion_tokens when the upstream reported it, less the reasoning
   * tokens it includes (completion_tokens_details.reasoning_tokens): those are
   * never sent back as history, so they would only inflate the stored count.
   */
  completionTokens: number | undefined;
  finishReason: string | undefined;
  /**
   * Set when the reply is not a complete, successful one and must not be stored: e.g.
   * 'stream ended before its final event', 'upstream sent an error event', 'invalid JSON', 'empty reply'.
   */
  incompleteReason: string | undefined;
  /** Responses API: a whole reply whose output has no chat form (only hosted tools' calls or reasoning); `message` is undefined. */
  hasNoChatForm?: true;
}

/** Streaming (`text/event-stream`): feed decoded bytes as they arrive, then finish() once the upstream body ended. */
export interface SseReplyAccumulator {
  push(chunk: Uint8Array): void;
  /**
   * Whether the stream's terminal event has been seen: `[DONE]`, or the final
   * chunk with a finish_reason (followed by the usage chunk when the client
   * asked for usage). From then on the reply is whole, however the stream ends.
   */
  isComplete(): boolean;
  /** Idempotent; bytes pushed after it are ignored. */
  finish(): RebuiltReply;
}

interface ToolCallDraft {
  id: string | undefined;
  type: string | undefined;
  /** `function` for function tools, `custom` for custom (free-form input) tools. */
  payloadKey: 'function' | 'custom' | undefined;
  name: string | undefined;
  /** `function.arguments` or `custom.input`, concatenated. */
  body: string;
}

interface AudioDraft {
  id?: string;
  data?: string;
  transcript?: string;
  expires_at?: number;
}

interface MessageDraft {
  content: string;
  refusal: string;
  toolCalls: Map<number, ToolCallDraft>;
  lastToolIndex: number | undefined;
  functionCall: { name: string | undefined; arguments: string } | undefined;
  audio: AudioDraft | undefined;
}

const DONE = '[DONE]';

export interface SseReplyOptions {
  /** The request set `stream_options.include_usage`: the usage chunk comes after the finish_reason chunk. */
  usageRequested?: boolean;
}

export function createSseReplyAccumulator(options: SseReplyOptions = {}): SseReplyAccumulator {
  const draft: MessageDraft = {
    content: '',
    refusal: '',
    toolCalls: new Map(),
    lastToolIndex: undefined,
    functionCall: undefined,
    audio: undefined,
  };
  let completionTokens: number | undefined;
  let promptTokens: number | undefined;
  let finishReason: string | undefined;
  let failure: string | undefined;
  let sawDone = false;
  let sawUsage = false;
  /** Choices other than index 0 (n > 1): then only [DONE] says that every choice has finished. */
  let sawOtherChoices = false;
  let result: RebuiltReply | undefined;
  const readContentDelta = createContentDeltaReader();
  const isComplete = (): boolean =>
    failure === undefined && (sawDone || (finishReason !== undefined && !sawOtherChoices && (sawUsage || options.usageRequested !== true)));

  function onEvent(event: SseEvent): void {
    if (sawDone || failure !== undefined) return; // the SDK ignores whatever follows [DONE] too
    if (event.event === 'error') {
      failure = 'upstream sent an error event';
      return;
    }
    // Most events are one token of content: read it without parsing the chunk
    // (content-delta.ts says when that is exact; it takes no `[DONE]` and no blank data).
    const content = readContentDelta(event.data);
    if (content !== undefined) {
      draft.content += content;
      return;
    }
    if (event.data.startsWith(DONE)) {
      sawDone = true; // a prefix match, as the SDK does
      return;
    }
    if (event.data.trim() === '') return; // keep-alive noise some proxies send as an empty data event
    let chunk: unknown;
    try {
      chunk = JSON.parse(event.data);
    } catch {
      failure = 'invalid JSON';
      return;
    }
    if (!isRecord(chunk)) {
      failure = 'malformed chunk';
      return;
    }
    if (chunk.error !== undefined && chunk.error !== null) {
      failure = 'upstream sent an error event';
      return;
    }
    // Providers that put usage on every chunk report running totals, so the last one wins.
    const tokens = completionTokensOf(chunk.usage);
    if (tokens !== undefined) completionTokens = tokens;
    promptTokens = promptTokensOf(chunk.usage, 'prompt_tokens') ?? promptTokens;
    if (isRecord(chunk.usage)) sawUsage = true;
    if (!Array.isArray(chunk.choices)) return;
    for (const choice of chunk.choices) {
      if (!isRecord(choice)) continue;
      if ((choice.index ?? 0) !== 0) {
        sawOtherChoices = true;
        continue;
      }
      if (typeof choice.finish_reason === 'string' && choice.finish_reason !== '') finishReason = choice.finish_reason;
      if (isRecord(choice.delta)) applyDelta(draft, choice.delta);
    }
  }

  const parser = createSseParser(onEvent);

  return {
    push(chunk) {
      if (result !== undefined || sawDone || failure !== undefined) return;
      parser.push(chunk);
    },
    isComplete,
    finish() {
      if (result !== undefined) return result;
      if (!sawDone && failure === undefined) {
        // Some servers end with "data: [DONE]" and no blank line; the reply itself is whole.
        const tail = parser.end();
        if (tail !== undefined && tail.event !== 'error' && tail.data.startsWith(DONE)) sawDone = true;
      }
      const message = messageFromDraft(draft);
      const incompleteReason =
        failure ?? (!isComplete() ? 'stream ended before its final event' : message === undefined ? 'empty reply' : undefined);
      result = withPromptTokens({ message, completionTokens, finishReason, incompleteReason }, promptTokens);
      return result;
    },
  };
}

/** A whole JSON reply body as an object, or, when it is not one, the reply not to store. */
// A whole body decodes in one call, which keeps no state: one decoder serves every reply.
const UTF8 = new TextDecoder();

export function jsonReplyObject(body: Uint8Array): { json: Record<string, unknown> } | { notStored: RebuiltReply } {
  let json: unknown;
  try {
    json = JSON.parse(UTF8.decode(body));
  } catch {
    return { notStored: incomplete('invalid JSON') };
  }
  return isRecord(json) ? { json } : { notStored: incomplete('malformed reply') };
}

/** Non-streaming: the whole decoded JSON body of a 2xx chat.completion. */
export function rebuildReplyFromJson(body: Uint8Array): RebuiltReply {
  const parsed = jsonReplyObject(body);
  if ('notStored' in parsed) return parsed.notStored;
  return withPromptTokens(rebuildChatCompletion(parsed.json), promptTokensOf(parsed.json.usage, 'prompt_tokens'));
}

function rebuildChatCompletion(json: Record<string, unknown>): RebuiltReply {
  if (json.error !== undefined && json.error !== null) return incomplete('upstream sent an error');
  const completionTokens = completionTokensOf(json.usage);
  const choices = Array.isArray(json.choices) ? json.choices : [];
  const choice = choices.find((c): c is Record<string, unknown> => isRecord(c) && (c.index ?? 0) === 0);
  const finishReason =
    typeof choice?.finish_reason === 'string' && choice.finish_reason !== '' ? choice.finish_reason : undefined;
  const raw = choice?.message;
  if (!isRecord(raw)) return { message: undefined, completionTokens, finishReason, incompleteReason: 'empty reply' };
  if (raw.tool_calls !== undefined && raw.tool_calls !== null && !isToolCallList(raw.tool_calls)) {
    return { message: undefined, completionTokens, finishReason, incompleteReason: 'malformed tool_calls' };
  }
  const message = messageFromJson(raw);
  return {
    message: hasUsableContent(message) ? message : undefined,
    completionTokens,
    finishReason,
    incompleteReason: hasUsableContent(message) ? undefined : 'empty reply',
  };
}

function applyDelta(draft: MessageDraft, delta: Record<string, unknown>): void {
  // vLLM and others send `content: ""` or `null` deltas; only text counts.
  if (typeof delta.content === 'string') draft.content += delta.content;
  if (typeof delta.refusal === 'string') draft.refusal += delta.refusal;
  if (Array.isArray(delta.tool_calls)) {
    for (const toolCall of delta.tool_calls) if (isRecord(toolCall)) applyToolCallDelta(draft, toolCall);
  }
  if (isRecord(delta.function_call)) {
    const fn = delta.function_call;
    draft.functionCall ??= { name: undefined, arguments: '' };
    draft.functionCall.name ??= nonEmptyString(fn.name);
    if (typeof fn.arguments === 'string') draft.functionCall.arguments += fn.arguments;
  }
  if (isRecord(delta.audio)) {
    const audio = delta.audio;
    draft.audio ??= {};
    if (typeof audio.id === 'string') draft.audio.id = audio.id;
    if (typeof audio.data === 'string') draft.audio.data = (draft.audio.data ?? '') + audio.data;
    if (typeof audio.transcript === 'string') draft.audio.transcript = (draft.audio.transcript ?? '') + audio.transcript;
    if (typeof audio.expires_at === 'number') draft.audio.expires_at = audio.expires_at;
  }
  // Other delta fields (`reasoning_content` of vLLM/DeepSeek, …) have provider-specific meaning and are not kept.
}

function applyToolCallDelta(draft: MessageDraft, delta: Record<string, unknown>): void {
  const id = nonEmptyString(delta.id);
  let index: number;
  if (typeof delta.index === 'number') {
    index = delta.index;
  } else {
    // Some OpenAI-compatible servers omit `index`: a new id starts a new call, anything else continues the last one.
    const last = draft.lastToolIndex === undefined ? undefined : draft.toolCalls.get(draft.lastToolIndex);
    const startsNewCall = last === undefined || (id !== undefined && last.id !== undefined && id !== last.id);
    index = startsNewCall ? (draft.lastToolIndex ?? -1) + 1 : (draft.lastToolIndex ?? 0);
  }
  draft.lastToolIndex = index;
  let call = draft.toolCalls.get(index);
  if (call === undefined) {
    call = { id: undefined, type: undefined, payloadKey: undefined, name: undefined, body: '' };
    draft.toolCalls.set(index, call);
  }
  call.id ??= id;
  call.type ??= nonEmptyString(delta.type);
  const payloadKey = isRecord(delta.function) ? 'function' : isRecord(delta.custom) ? 'custom' : undefined;
  if (payloadKey === undefined) return;
  const payload = delta[payloadKey] as Record<string, unknown>;
  call.payloadKey ??= payloadKey;
  call.name ??= nonEmptyString(payload.name);
  const piece = payloadKey === 'function' ? payload.arguments : payload.input;
  if (typeof piece === 'string') call.body += piece;
}

function messageFromDraft(draft: MessageDraft): ChatMessage | undefined {
  const message: ChatMessage = { role: 'assistant', content: draft.content === '' ? null : draft.content };
  if (draft.refusal !== '') message.refusal = draft.refusal;
  if (draft.toolCalls.size > 0) {
    message.tool_calls = [...draft.toolCalls.entries()]
      .sort(([a], [b]) => a - b)
      .map(([, call]) => toolCallFromDraft(call));
  }
  if (draft.functionCall !== undefined) {
    message.function_call = { name: draft.functionCall.name ?? '', arguments: draft.functionCall.arguments };
  }
  if (draft.audio !== undefined) message.audio = draft.audio;
  return hasUsableContent(message) ? message : undefined;
}

function toolCallFromDraft(call: ToolCallDraft): ToolCall {
  const payloadKey = call.payloadKey ?? 'function';
  // A server that never sent an id gets '' rather than an invented one: pure code has no randomness,
  // and the client holds no id to answer with either.
  const id = call.id ?? '';
  const name = call.name ?? '';
  return payloadKey === 'function'
    ? { id, type: call.type ?? 'function', function: { name, arguments: call.body } }
    : { id, type: call.type ?? 'custom', custom: { name, input: call.body } };
}

/**
 * Keeps every field of the upstream message except null-valued ones (`refusal: null`,
 * `audio: null`, `function_call: null` carry nothing) and empty `tool_calls`/`annotations`
 * arrays (OpenAI rejects an empty `tool_calls` when the message is sent back).
 * `content` is always present: a string, content parts, or null.
 */
function messageFromJson(raw: Record<string, unknown>): ChatMessage {
  const message: ChatMessage = { role: 'assistant', content: null };
  for (const [key, value] of Object.entries(raw)) {
    if (key === 'role') continue;
    if (key === 'content') {
      if ((typeof value === 'string' && value !== '') || Array.isArray(value)) message.content = value as ChatMessage['content'];
      continue;
    }
    if (value === null || value === undefined) continue;
    if ((key === 'tool_calls' || key === 'annotations') && Array.isArray(value) && value.length === 0) continue;
    message[key] = value;
  }
  return message;
}

function hasUsableContent(message: ChatMessage): boolean {
  const { content, refusal, tool_calls: toolCalls } = message;
  return (
    (typeof content === 'string' && content !== '') ||
    (Array.isArray(content) && content.length > 0) ||
    (typeof refusal === 'string' && refusal !== '') ||
    (toolCalls !== undefined && toolCalls.length > 0) ||
    isRecord(message.function_call) ||
    isRecord(message.audio)
  );
}

function isToolCallList(value: unknown): value is ToolCall[] {
  return (
    Array.isArray(value) &&
    value.every((call) => isRecord(call) && typeof call.id === 'string' && typeof call.type === 'string')
  );
}

function completionTokensOf(usage: unknown): number | undefined {
  if (!isRecord(usage) || typeof usage.completion_tokens !== 'number') return undefined;
  const details = usage.completion_tokens_details;
  const reasoning = isRecord(details) && typeof details.reasoning_tokens === 'number' ? details.reasoning_tokens : 0;
  return Math.max(0, usage.completion_tokens - reasoning);
}

/** `usage[field]` (prompt_tokens on chat, input_tokens on the Responses API) when the upstream reported it. */
export function promptTokensOf(usage: unknown, field: 'prompt_tokens' | 'input_tokens'): number | undefined {
  if (!isRecord(usage)) return undefined;
  const tokens = usage[field];
  return typeof tokens === 'number' && Number.isFinite(tokens) && tokens >= 0 ? tokens : undefined;
}

export function withPromptTokens(reply: RebuiltReply, promptTokens: number | undefined): RebuiltReply {
  return promptTokens === undefined ? reply : { ...reply, promptTokens };
}

/** A reply not to store, and why. */
export function incomplete(reason: string): RebuiltReply {
  return { message: undefined, completionTokens: undefined, finishReason: undefined, incompleteReason: reason };
}

function nonEmptyString(value: unknown): string | undefined {
  return typeof value === 'string' && value !== '' ? value : undefined;
}

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}
