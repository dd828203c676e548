// Rebuilds the assistant message of a Responses API reply, so the turn can be
// stored in the one form contextd keeps (context/response-items.ts): from the JSON
// `Response`, or from the SSE events. Of a stream only what the stored reply
// needs is parsed: `response.output_item.done` (each finished item) and the
// terminal events; the many delta events are skipped by their `event:` name
// without reading their JSON. Pure: no clock, no I/O, no throwing on bad input.
//
// Stored: a response whose status is `completed` or `incomplete` (the client
// has a whole reply, as with chat's finish_reason `length`). Not stored:
// `failed`, `cancelled`, an `error` event, a stream cut before its terminal
// event. A whole response whose output has no chat form (a hosted tool's call,
// reasoning alone) is a reply with no message: the turn is stored without one.

import { itemsToMessages } from '../context/response-items.js';
import { incomplete, jsonReplyObject, promptTokensOf, withPromptTokens, type RebuiltReply, type SseReplyAccumulator } from './accumulate-reply.js';
import { createSseParser, type SseEvent } from './sse-parser.js';

type Json = Record<string, unknown>;

const isRecord = (value: unknown): value is Json => typeof value === 'object' && value !== null && !Array.isArray(value);

/** Terminal events: the stream's last, after which the client has everything. */
const TERMINAL = new Set(['response.completed', 'response.incomplete', 'response.failed', 'error']);
/** Events whose data the accumulator reads; every other one is skipped unparsed. */
const READ = new Set([...TERMINAL, 'response.output_item.done']);

/** Streaming: feed decoded bytes as they arrive, then finish() once the upstream body ended. */
export function createSseResponseAccumulator(): SseReplyAccumulator {
  const items = new Map<number, unknown>();
  let terminal: { type: string; response: Json | undefined } | undefined;
  let failure: string | undefined;
  let result: RebuiltReply | undefined;

  function onEvent(event: SseEvent): void {
    if (terminal !== undefined || failure !== undefined) return;
    // OpenAI names each event in `event:` and again as `type` in its data; a server that sends only the data is read whole.
    if (event.event !== undefined && !READ.has(event.event)) return;
    if (event.data.trim() === '') return;
    let data: unknown;
    try {
      data = JSON.parse(event.data);
    } catch {
      failure = 'invalid JSON';
      return;
    }
    if (!isRecord(data)) return;
    const type = typeof data.type === 'string' ? data.type : event.event;
    if (type === 'response.output_item.done') {
      const index = typeof data.output_index === 'number' ? data.output_index : items.size;
      items.set(index, data.item);
    } else if (type !== undefined && TERMINAL.has(type)) {
      terminal = { type, response: isRecord(data.response) ? data.response : undefined };
    }
  }

  const parser = createSseParser(onEvent);
  return {
    push(chunk) {
      if (result !== undefined || terminal !== undefined || failure !== undefined) return;
      parser.push(chunk);
    },
    isComplete: () => terminal !== undefined,
    finish() {
      if (result !== undefined) return result;
      if (terminal === undefined && failure === undefined) {
        // A server may end without the last blank line; the terminal event itself is whole.
        const tail = parser.end();
        if (tail !== undefined) onEvent(tail);
      }
      if (failure !== undefined) return (result = incomplete(failure));
      if (terminal === undefined) return (result = incomplete('stream ended before its final event'));
      if (terminal.type === 'error') return (result = incomplete('upstream sent an error event'));
      const response = terminal.response ?? {};
      // The terminal event's response carries the output; the items seen finishing stand in when it does not.
      const output = Array.isArray(response.output) && response.output.length > 0 ? response.output : [...items.entries()].sort(([a], [b]) => a - b).map(([, item]) => item);
      result = rebuild({ ...response, status: response.status ?? statusOf(terminal.type), output });
      return result;
    },
  };
}

/** Non-streaming: the whole decoded JSON body of a 2xx `Response`. */
export function rebuildResponseFromJson(body: Uint8Array): RebuiltReply {
  const parsed = jsonReplyObject(body);
  return 'notStored' in parsed ? parsed.notStored : rebuild(parsed.json);
}

function statusOf(terminalType: string): string {
  return terminalType === 'response.completed' ? 'completed' : terminalType === 'response.incomplete' ? 'incomplete' : 'failed';
}

function rebuild(response: Json): RebuiltReply {
  const reply = withPromptTokens(rebuildMessage(response), promptTokensOf(response.usage, 'input_tokens'));
  return typeof response.id === 'string' && response.id !== '' ? { ...reply, responseId: response.id } : reply;
}

function rebuildMessage(response: Json): RebuiltReply {
  if (response.error !== undefined && response.error !== null) return incomplete('upstream sent an error');
  const status = response.status;
  if (status !== 'completed' && status !== 'incomplete') return incomplete(`response ${typeof status === 'string' ? status : 'without a status'}`);
  const completionTokens = outputTokensOf(response.usage);
  const finishReason = status === 'incomplete' ? 'length' : 'stop';
  const output = Array.isArray(response.output) ? response.output : [];
  const messages = itemsToMessages(output).map((converted) => converted.message);
  // Output with no chat form (only a hosted tool's call, or reasoning) is still a whole reply:
  // the turn's own items are stored and the response linked, with no assistant message.
  if (messages.length === 0) return { message: undefined, completionTokens, finishReason, incompleteReason: undefined, hasNoChatForm: true };
  if (messages.length > 1 || messages[0]!.role !== 'assistant') {
    return { message: undefined, completionTokens, finishReason, incompleteReason: 'output with more than one assistant message' };
  }
  return { message: messages[0], completionTokens, finishReason, incompleteReason: undefined };
}

/** usage.output_tokens less the reasoning tokens it includes: those are never sent back as history. */
function outputTokensOf(usage: unknown): number | undefined {
  if (!isRecord(usage) || typeof usage.output_tokens !== 'number') return undefined;
  const details = usage.output_tokens_details;
  const reasoning = isRecord(details) && typeof details.reasoning_tokens === 'number' ? details.reasoning_tokens : 0;
  return Math.max(0, usage.output_tokens - reasoning);
}

