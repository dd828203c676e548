// The fake upstream's Responses API (`POST /v1/responses`): the JSON `Response`
// and the SSE events OpenAI streams for a reply, in the shapes of
// test/support/fake-responses.ts (which the tests hold to OpenAI's): created,
// in_progress, the message item and its part opened, one
// `response.output_text.delta` per token, the text, part and item done, then
// `response.completed` carrying the whole Response; no `[DONE]`. Built from
// templates like the chat reply, so the upstream's cost per request stays
// small and alike on every path. Values in, strings out.

import type { Reply, ReplyMeta } from './upstream-reply.js';

/** What the Response echoes of the request. */
export interface ResponsesEcho {
  /** `instructions` as a JSON literal (`null` when absent). */
  instructions: string;
  store: boolean;
  /** OpenAI pads each delta event (`obfuscation`) unless `stream_options.include_obfuscation` is false. */
  obfuscation: boolean;
}

type Json = Record<string, unknown>;
const isRecord = (value: unknown): value is Json => typeof value === 'object' && value !== null && !Array.isArray(value);

export function responsesEcho(body: Json): ResponsesEcho {
  return {
    instructions: JSON.stringify(body.instructions ?? null),
    store: body.store !== false, // OpenAI stores by default
    obfuscation: !(isRecord(body.stream_options) && body.stream_options.include_obfuscation === false),
  };
}

/** The text the upstream picks its reply by: `input` when a string, else the last user message item's text. */
export function lastResponsesUserText(body: Json): string {
  if (typeof body.input === 'string') return body.input;
  const items = Array.isArray(body.input) ? (body.input as unknown[]) : [];
  for (let i = items.length - 1; i >= 0; i--) {
    const item = items[i];
    if (!isRecord(item) || item.role !== 'user') continue;
    if (typeof item.content === 'string') return item.content;
    return Array.isArray(item.content) ? item.content.map((part) => (isRecord(part) && typeof part.text === 'string' ? part.text : '')).join(' ') : '';
  }
  return '';
}

const messageId = (meta: ReplyMeta): string => `msg_${meta.id.slice('resp_'.length)}`;

function usageJson(meta: ReplyMeta, reply: Reply): string {
  return `{"input_tokens":${meta.promptTokens},"input_tokens_details":{"cached_tokens":0},"output_tokens":${reply.completionTokens},"output_tokens_details":{"reasoning_tokens":0},"total_tokens":${meta.promptTokens + reply.completionTokens}}`;
}

function outputTextPart(text: string): string {
  return `{"type":"output_text","annotations":[],"logprobs":[],"text":${text}}`;
}

function messageItem(meta: ReplyMeta, status: 'in_progress' | 'completed', content: string): string {
  return `{"id":"${messageId(meta)}","type":"message","status":"${status}","content":${content},"role":"assistant"}`;
}

/** The Response object; `output` and `usage` as JSON. */
function responseObject(meta: ReplyMeta, echo: ResponsesEcho, status: 'in_progress' | 'completed', output: string, usage: string): string {
  return (
    `{"id":"${meta.id}","object":"response","created_at":${meta.createdSeconds},"status":"${status}","background":false,"error":null,"incomplete_details":null,` +
    `"instructions":${echo.instructions},"max_output_tokens":null,"model":${meta.model},"output":${output},"parallel_tool_calls":true,"previous_response_id":null,` +
    `"reasoning":{"effort":null,"summary":null},"service_tier":"default","store":${echo.store},"temperature":1,"text":{"format":{"type":"text"},"verbosity":"medium"},` +
    `"tool_choice":"auto","tools":[],"top_p":1,"truncation":"disabled","usage":${usage},"user":null,"metadata":{},"completed_at":${status === 'completed' ? meta.createdSeconds : 'null'}}`
  );
}

/** The completed Response: the JSON body of a non-streaming request, and what `response.completed` carries. */
export function responsesJson(reply: Reply, meta: ReplyMeta, echo: ResponsesEcho): string {
  const text = JSON.stringify(reply.text);
  return responseObject(meta, echo, 'completed', `[${messageItem(meta, 'completed', `[${outputTextPart(text)}]`)}]`, usageJson(meta, reply));
}

const OBFUSCATION_PAD = 'Zq3vX8pLm2TbK7wR';

/** One string per SSE event, numbered from 0, ending with `response.completed`. */
export function responsesEvents(reply: Reply, meta: ReplyMeta, echo: ResponsesEcho): string[] {
  const events: string[] = [];
  const push = (type: string, rest: string): void => {
    events.push(`event: ${type}\ndata: {"type":"${type}","sequence_number":${events.length},${rest}}\n\n`);
  };
  const shell = responseObject(meta, echo, 'in_progress', '[]', 'null');
  const at = `"item_id":"${messageId(meta)}","output_index":0,"content_index":0`;
  const text = JSON.stringify(reply.text);
  push('response.created', `"response":${shell}`);
  push('response.in_progress', `"response":${shell}`);
  push('response.output_item.added', `"output_index":0,"item":${messageItem(meta, 'in_progress', '[]')}`);
  push('response.content_part.added', `${at},"part":${outputTextPart('""')}`);
  for (const piece of reply.pieces) {
    // OpenAI pads deltas with random characters so that sizes say nothing; a fixed pad keeps the bytes reproducible (as the test fake's).
    const padding = echo.obfuscation ? `,"obfuscation":"${OBFUSCATION_PAD.slice(0, OBFUSCATION_PAD.length - ((piece.length - 2) % OBFUSCATION_PAD.length))}"` : '';
    push('response.output_text.delta', `${at},"delta":${piece},"logprobs":[]${padding}`);
  }
  push('response.output_text.done', `${at},"text":${text},"logprobs":[]`);
  push('response.content_part.done', `${at},"part":${outputTextPart(text)}`);
  push('response.output_item.done', `"output_index":0,"item":${messageItem(meta, 'completed', `[${outputTextPart(text)}]`)}`);
  push('response.completed', `"response":${responsesJson(reply, meta, echo)}`);
  return events;
}
