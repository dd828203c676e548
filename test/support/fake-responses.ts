// OpenAI's Responses API (`POST /v1/responses`) for the fake upstream: reading a
// request, refusing what OpenAI refuses, and writing the reply either as one JSON
// `Response` object or as the SSE events OpenAI streams. Values in, values out:
// fake-upstream.ts picks the behaviour, builds the assistant reply (shared with
// chat completions, so both APIs say the same thing) and delivers the bytes.

import type {
  Response as OpenAIResponse,
  ResponseOutputItem,
  ResponseOutputMessage,
  ResponseStreamEvent,
  ResponseUsage,
  Tool,
} from 'openai/resources/responses/responses';
import type { AssistantReply } from './fake-upstream.js';

/** Ways a Responses stream fails after its 200 and first events; a non-streaming request gets an HTTP 500 error instead. */
export type ResponsesStreamFailure =
  /**
   * `response.created`, `response.in_progress`, the partial output if any, then
   * `response.failed` whose `response.error` is `{ code, message }` (code default
   * `server_error`). A clean end of stream: only the event says it failed.
   */
  | { kind: 'response_failed'; code?: NonNullable<OpenAIResponse['error']>['code']; message?: string; partialContent?: string }
  /**
   * `response.created`, `response.in_progress`, the partial output if any, then an
   * `error` event and the end of the stream. `shape: 'nested'` (the default) is
   * what OpenAI sends, `{ type: 'error', sequence_number, error: { type, code,
   * message, param } }` (openai/openai-dotnet#881); `'flat'` is what its API
   * reference and the SDK types describe, `{ type: 'error', code, message, param,
   * sequence_number }`.
   */
  | {
      kind: 'error_event';
      type?: string;
      code?: string | null;
      message?: string;
      param?: string | null;
      shape?: 'nested' | 'flat';
      partialContent?: string;
    };

export interface OpenAIErrorBody {
  message: string;
  type: string;
  param: string | null;
  code: string | null;
}

export interface ResponsesRefusal {
  status: 400;
  error: OpenAIErrorBody;
  /** Set when the input broke OpenAI's tool rules (an output answering no call). */
  toolRuleViolation?: string;
}

/** What the reply needs besides the assistant's words. */
export interface ResponsesReplyMeta {
  /** `resp_…`, unique per request and per fake. */
  id: string;
  /** Ends the reply's item ids: `msg_<suffix>`, `fc_<suffix>_<n>`. */
  itemIdSuffix: string;
  createdAtSeconds: number;
  model: string;
  request: Readonly<Record<string, unknown>>;
}

/** The response ids the fake issued with `store` on, each with the function call_ids of its conversation so far. */
export type StoredResponses = ReadonlyMap<string, readonly string[]>;

/**
 * A `Response` as it goes on the wire: without the `output_text` the SDKs add, with `usage: null`
 * until the end, and with the `store` flag OpenAI echoes though the SDK types leave it out.
 */
type WireResponse = Omit<OpenAIResponse, 'output_text' | 'usage'> & { usage: ResponseUsage | null; store: boolean };
type Settings = Omit<WireResponse, 'id' | 'object' | 'created_at' | 'status' | 'model' | 'output' | 'usage' | 'error' | 'incomplete_details'>;
type Unnumbered<E> = E extends unknown ? Omit<E, 'sequence_number'> : never;
interface NestedErrorEvent {
  type: 'error';
  error: OpenAIErrorBody;
}
/** An event before its sequence number; delta events may carry OpenAI's `obfuscation` padding. */
type WireEvent = (Unnumbered<ResponseStreamEvent> | NestedErrorEvent) & { obfuscation?: string };

const OBFUSCATION_PAD = 'Zq3vX8pLm2TbK7wR';

export function replyMeta(
  request: Readonly<Record<string, unknown>>,
  ids: { idTag: string; sequence: number },
  receivedAtMs: number,
  defaultModel: string,
): ResponsesReplyMeta {
  const suffix = `fake${ids.idTag}_${ids.sequence}`;
  return {
    id: `resp_${suffix}`,
    itemIdSuffix: suffix,
    createdAtSeconds: Math.floor(receivedAtMs / 1000),
    model: typeof request.model === 'string' ? request.model : defaultModel,
    request,
  };
}

export function isStoredRequest(request: Readonly<Record<string, unknown>>): boolean {
  return request.store !== false; // OpenAI stores by default
}

/** The text the default reply echoes: the input string, or the text of the last user message item. */
export function lastUserInputText(request: Readonly<Record<string, unknown>>): string {
  const input = request.input;
  if (typeof input === 'string') return input;
  const items = Array.isArray(input) ? (input as unknown[]) : [];
  for (let i = items.length - 1; i >= 0; i--) {
    const item = items[i];
    if (!isObject(item) || item.role !== 'user' || (item.type !== undefined && item.type !== 'message')) continue;
    if (typeof item.content === 'string') return item.content;
    if (Array.isArray(item.content)) {
      return item.content
        .filter((part): part is { text: string } => isObject(part) && typeof part.text === 'string')
        .map((part) => part.text)
        .join(' ');
    }
    return '';
  }
  return '';
}

/**
 * The 400 OpenAI answers this request with, or undefined when it would accept it:
 * a `previous_response_id` it does not hold, or (with `enforceToolRules`) a
 * `function_call_output` whose call_id no earlier `function_call` made, in the
 * input or in the previous responses.
 */
export function refuseResponsesRequest(
  request: Readonly<Record<string, unknown>>,
  stored: StoredResponses,
  enforceToolRules: boolean,
): ResponsesRefusal | undefined {
  const previousId = request.previous_response_id;
  let known: readonly string[] = [];
  if (typeof previousId === 'string') {
    const previous = stored.get(previousId);
    if (previous === undefined) {
      return {
        status: 400,
        error: {
          message: `Previous response with id '${previousId}' not found.`,
          type: 'invalid_request_error',
          param: 'previous_response_id',
          code: 'previous_response_not_found',
        },
      };
    }
    known = previous;
  }
  if (!enforceToolRules || !Array.isArray(request.input)) return undefined;

  const calls = new Set(known);
  const items = request.input as unknown[];
  for (let index = 0; index < items.length; index++) {
    const item = items[index];
    if (!isObject(item) || typeof item.call_id !== 'string') continue;
    if (item.type === 'function_call') calls.add(item.call_id);
    else if (item.type === 'function_call_output' && !calls.has(item.call_id)) {
      return {
        status: 400,
        error: { message: `No tool call found for function call output with call_id ${item.call_id}.`, type: 'invalid_request_error', param: 'input', code: null },
        toolRuleViolation: `a function_call_output answers no function_call before it (input ${index}, call_id ${item.call_id})`,
      };
    }
  }
  return undefined;
}

/** The function call_ids of the conversation once this reply is stored: the previous response's, the input's and the reply's. */
export function conversationCallIds(request: Readonly<Record<string, unknown>>, stored: StoredResponses, reply: AssistantReply): string[] {
  const previous = typeof request.previous_response_id === 'string' ? (stored.get(request.previous_response_id) ?? []) : [];
  const given = Array.isArray(request.input)
    ? (request.input as unknown[]).flatMap((item) => (isObject(item) && item.type === 'function_call' && typeof item.call_id === 'string' ? [item.call_id] : []))
    : [];
  return [...previous, ...given, ...reply.toolCalls.map((call) => call.id)];
}

/** The JSON body OpenAI answers a non-streaming request with; `response.completed` (or `.incomplete`) carries the same object. */
export function responseJson(reply: AssistantReply, meta: ResponsesReplyMeta): WireResponse {
  const incompleteReason = reply.finishReason === 'length' ? 'max_output_tokens' : reply.finishReason === 'content_filter' ? 'content_filter' : undefined;
  const itemStatus = incompleteReason === undefined ? 'completed' : 'incomplete';
  return {
    ...responseShell(meta, incompleteReason === undefined ? 'completed' : 'incomplete'),
    incomplete_details: incompleteReason === undefined ? null : { reason: incompleteReason },
    output: plannedItems(reply, meta, itemStatus).map(finishedItem),
    usage: usageJson(reply),
  };
}

/** The SSE events OpenAI streams for this reply, one string per event, ending with `response.completed` (or `.incomplete`); no `[DONE]`. */
export function responseEvents(reply: AssistantReply, meta: ResponsesReplyMeta): string[] {
  const final = responseJson(reply, meta);
  const obfuscate = wantsObfuscation(meta.request);
  const events: WireEvent[] = startEvents(meta);
  const itemStatus = final.status === 'completed' ? 'completed' : 'incomplete';
  plannedItems(reply, meta, itemStatus).forEach((item, outputIndex) => events.push(...itemEvents(item, outputIndex, obfuscate)));
  if (final.status === 'completed') events.push({ type: 'response.completed', response: asSdkResponse(final) });
  else events.push({ type: 'response.incomplete', response: asSdkResponse(final) });
  return numbered(events);
}

/** The SSE events of a stream that fails after it began; `partial` is the output streamed before the failure. */
export function failedStreamEvents(failure: ResponsesStreamFailure, partial: AssistantReply | undefined, meta: ResponsesReplyMeta): string[] {
  const events: WireEvent[] = startEvents(meta);
  const partialItems = partial === undefined ? [] : plannedItems(partial, meta, 'incomplete');
  partialItems.forEach((item, outputIndex) => events.push(...itemEvents(item, outputIndex, wantsObfuscation(meta.request), 'partial')));

  if (failure.kind === 'response_failed') {
    const response: WireResponse = {
      ...responseShell(meta, 'failed'),
      error: { code: failure.code ?? 'server_error', message: failure.message ?? 'An error occurred while processing your request.' },
      output: partialItems.map(finishedItem),
      usage: partial === undefined ? null : usageJson(partial),
    };
    events.push({ type: 'response.failed', response: asSdkResponse(response) });
  } else {
    const error = streamFailureError(failure);
    if (failure.shape === 'flat') events.push({ type: 'error', code: error.code, message: error.message, param: error.param });
    else events.push({ type: 'error', error });
  }
  return numbered(events);
}

/** What a non-streaming request gets for a stream failure behaviour: OpenAI answers a failed response with an HTTP error. */
export function failureAsHttpError(failure: ResponsesStreamFailure): { status: number; body: { error: OpenAIErrorBody } } {
  const error: OpenAIErrorBody =
    failure.kind === 'response_failed'
      ? { message: failure.message ?? 'An error occurred while processing your request.', type: 'server_error', param: null, code: failure.code ?? 'server_error' }
      : streamFailureError(failure);
  return { status: 500, body: { error } };
}

function streamFailureError(failure: Extract<ResponsesStreamFailure, { kind: 'error_event' }>): OpenAIErrorBody {
  return {
    type: failure.type ?? 'server_error',
    code: failure.code === undefined ? 'server_error' : failure.code,
    message: failure.message ?? 'The server had an error while processing your request.',
    param: failure.param ?? null,
  };
}

/** The response as `response.created` and `response.in_progress` show it: no output, no usage yet. */
function responseShell(meta: ResponsesReplyMeta, status: NonNullable<OpenAIResponse['status']>): WireResponse {
  return {
    id: meta.id,
    object: 'response',
    created_at: meta.createdAtSeconds,
    status,
    error: null,
    incomplete_details: null,
    model: meta.model,
    output: [],
    usage: null,
    ...echoedSettings(meta.request),
    completed_at: status === 'completed' ? meta.createdAtSeconds : null,
  };
}

/** The request's settings as OpenAI echoes them in the response, defaults filled in. */
function echoedSettings(request: Readonly<Record<string, unknown>>): Settings {
  const text = isObject(request.text) ? request.text : {};
  return {
    background: false,
    instructions: echoed<Settings['instructions']>(request.instructions, null),
    max_output_tokens: echoed<Settings['max_output_tokens']>(request.max_output_tokens, null),
    parallel_tool_calls: echoed(request.parallel_tool_calls, true),
    previous_response_id: echoed<Settings['previous_response_id']>(request.previous_response_id, null),
    prompt_cache_key: echoed<Settings['prompt_cache_key']>(request.prompt_cache_key, null),
    reasoning: echoed<Settings['reasoning']>(request.reasoning, { effort: null, summary: null }),
    safety_identifier: echoed<Settings['safety_identifier']>(request.safety_identifier, null),
    service_tier: 'default',
    store: isStoredRequest(request),
    temperature: echoed<Settings['temperature']>(request.temperature, 1),
    text: { format: echoed<NonNullable<Settings['text']>['format']>(text.format, { type: 'text' }), verbosity: echoed<NonNullable<Settings['text']>['verbosity']>(text.verbosity, 'medium') },
    tool_choice: echoed<Settings['tool_choice']>(request.tool_choice, 'auto'),
    tools: Array.isArray(request.tools) ? request.tools.map(echoedTool) : [],
    top_logprobs: echoed<Settings['top_logprobs']>(request.top_logprobs, 0),
    top_p: echoed<Settings['top_p']>(request.top_p, 1),
    truncation: echoed<Settings['truncation']>(request.truncation, 'disabled'),
    user: echoed<Settings['user']>(request.user, undefined),
    metadata: echoed<Settings['metadata']>(request.metadata, {}),
  };
}

/** The SDK's type for a streamed response; the wire object differs only in what the SDK adds (output_text) and in usage null before the end. */
function asSdkResponse(response: WireResponse): OpenAIResponse {
  return response as unknown as OpenAIResponse;
}

function echoed<T>(value: unknown, fallback: T): T {
  return value === undefined || value === null ? fallback : (value as T);
}

/** OpenAI echoes a function tool with its defaults filled in; in the Responses API `strict` defaults to true (unlike chat completions). */
function echoedTool(tool: unknown): Tool {
  if (!isObject(tool) || tool.type !== 'function') return tool as Tool;
  return { ...tool, description: echoed(tool.description, null), parameters: echoed(tool.parameters, null), strict: echoed(tool.strict, true) } as Tool;
}

function startEvents(meta: ResponsesReplyMeta): WireEvent[] {
  const shell = asSdkResponse(responseShell(meta, 'in_progress'));
  return [
    { type: 'response.created', response: shell },
    { type: 'response.in_progress', response: shell },
  ];
}

function numbered(events: readonly WireEvent[]): string[] {
  return events.map(({ type, ...rest }, sequence) => `event: ${type}\ndata: ${JSON.stringify({ type, sequence_number: sequence, ...rest })}\n\n`);
}

function usageJson(reply: AssistantReply): ResponseUsage {
  return {
    input_tokens: reply.usage.prompt_tokens,
    input_tokens_details: { cached_tokens: 0, cache_write_tokens: 0 },
    output_tokens: reply.usage.completion_tokens,
    output_tokens_details: { reasoning_tokens: 0 },
    total_tokens: reply.usage.total_tokens,
  };
}

function wantsObfuscation(request: Readonly<Record<string, unknown>>): boolean {
  return !(isObject(request.stream_options) && request.stream_options.include_obfuscation === false);
}

/** OpenAI pads each delta event with random characters so payload sizes say nothing; a fixed pad keeps the fake's bytes reproducible. */
function obfuscationFor(delta: string): string {
  return OBFUSCATION_PAD.slice(0, OBFUSCATION_PAD.length - (delta.length % OBFUSCATION_PAD.length));
}

type ItemStatus = 'completed' | 'incomplete';

/** One output item of the reply: what it says whole, and the pieces it streams in. */
type PlannedItem =
  | { kind: 'output_text'; id: string; text: string; pieces: readonly string[]; status: ItemStatus }
  | { kind: 'refusal'; id: string; text: string; pieces: readonly string[]; status: ItemStatus }
  | { kind: 'function_call'; id: string; callId: string; name: string; text: string; pieces: readonly string[]; status: ItemStatus };

/** A message item (text or refusal) first when there is one, then a function_call item per tool call, as OpenAI orders them. */
function plannedItems(reply: AssistantReply, meta: ResponsesReplyMeta, status: ItemStatus): PlannedItem[] {
  const items: PlannedItem[] = [];
  const messageId = `msg_${meta.itemIdSuffix}`;
  if (reply.refusal !== null) items.push({ kind: 'refusal', id: messageId, text: reply.refusal, pieces: reply.refusalPieces, status });
  else if (reply.content !== null) items.push({ kind: 'output_text', id: messageId, text: reply.content, pieces: reply.contentPieces, status });
  reply.toolCalls.forEach((call, index) =>
    items.push({
      kind: 'function_call',
      id: `fc_${meta.itemIdSuffix}_${index}`,
      callId: call.id,
      name: call.name,
      text: call.arguments,
      pieces: call.argumentPieces,
      status: 'completed',
    }),
  );
  return items;
}

function finishedItem(item: PlannedItem): ResponseOutputItem {
  if (item.kind === 'function_call') {
    return { id: item.id, type: 'function_call', status: item.status, arguments: item.text, call_id: item.callId, name: item.name };
  }
  return { id: item.id, type: 'message', status: item.status, content: [finishedPart(item)], role: 'assistant' };
}

function finishedPart(item: Exclude<PlannedItem, { kind: 'function_call' }>): ResponseOutputMessage['content'][number] {
  return item.kind === 'refusal' ? { type: 'refusal', refusal: item.text } : { type: 'output_text', annotations: [], logprobs: [], text: item.text };
}

/** The events of one output item; a `partial` item stops after its deltas, as a stream that fails mid-item does. */
function itemEvents(item: PlannedItem, outputIndex: number, obfuscate: boolean, extent: 'whole' | 'partial' = 'whole'): WireEvent[] {
  const padding = (delta: string): { obfuscation?: string } => (obfuscate ? { obfuscation: obfuscationFor(delta) } : {});
  const at = { item_id: item.id, output_index: outputIndex };
  const events: WireEvent[] = [];

  if (item.kind === 'function_call') {
    events.push({
      type: 'response.output_item.added',
      output_index: outputIndex,
      item: { id: item.id, type: 'function_call', status: 'in_progress', arguments: '', call_id: item.callId, name: item.name },
    });
    for (const delta of item.pieces) events.push({ type: 'response.function_call_arguments.delta', ...at, delta, ...padding(delta) });
    if (extent === 'partial') return events;
    events.push({ type: 'response.function_call_arguments.done', ...at, name: item.name, arguments: item.text });
    events.push({ type: 'response.output_item.done', output_index: outputIndex, item: finishedItem(item) });
    return events;
  }

  const part = { ...at, content_index: 0 };
  events.push({ type: 'response.output_item.added', output_index: outputIndex, item: { id: item.id, type: 'message', status: 'in_progress', content: [], role: 'assistant' } });
  if (item.kind === 'refusal') {
    events.push({ type: 'response.content_part.added', ...part, part: { type: 'refusal', refusal: '' } });
    for (const delta of item.pieces) events.push({ type: 'response.refusal.delta', ...part, delta });
    if (extent === 'partial') return events;
    events.push({ type: 'response.refusal.done', ...part, refusal: item.text });
  } else {
    events.push({ type: 'response.content_part.added', ...part, part: { type: 'output_text', annotations: [], logprobs: [], text: '' } });
    for (const delta of item.pieces) events.push({ type: 'response.output_text.delta', ...part, delta, logprobs: [], ...padding(delta) });
    if (extent === 'partial') return events;
    events.push({ type: 'response.output_text.done', ...part, text: item.text, logprobs: [] });
  }
  events.push({ type: 'response.content_part.done', ...part, part: finishedPart(item) });
  events.push({ type: 'response.output_item.done', output_index: outputIndex, item: finishedItem(item) });
  return events;
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}
