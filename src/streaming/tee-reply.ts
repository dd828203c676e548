import type { ChatMessage } from '../domain.js';
import { createSseReplyAccumulator, rebuildReplyFromJson, type RebuiltReply } from './accumulate-reply.js';
import { createSseResponseAccumulator, rebuildResponseFromJson } from './accumulate-response.js';
import { createBodyDecoder } from './decode-body.js';

export type TeeOutcome =
  /** `message` is undefined for a whole Responses reply with no chat form (a hosted tool's call alone): the turn is stored without one. */
  | { kind: 'reply'; message: ChatMessage | undefined; completionTokens: number | undefined; responseId?: string; promptTokens?: number }
  /** `promptTokens`: the upstream's count of the prompt, when it reported one; checked even when the reply is not stored. */
  | { kind: 'not_stored'; reason: string; promptTokens?: number };

export interface ReplyTee {
  /** A chunk of the upstream body exactly as relayed to the client (possibly compressed). */
  push(chunk: Buffer): void;
  /** Call once the body has ended (or the client left after the terminal event): the rebuilt reply, or why there is none to store. */
  finish(): Promise<TeeOutcome>;
  /**
   * Resolves once every chunk pushed so far has been decoded and read, so `onComplete` has run
   * if the client was sent the terminal event (a compressed stream decodes on the thread pool,
   * after the client may have read it and left).
   */
  caughtUp(): Promise<void>;
  /** The reply will not be stored (client gone): free the decoder. */
  discard(): void;
}

// A non-streaming reply larger than this is relayed but not stored: no chat
// message is this big, and the side branch must not hold unbounded memory.
const MAX_JSON_REPLY_BYTES = 16 * 1024 * 1024;

/** The side branch of a 2xx chat-completion reply: decode, parse, rebuild. */
export interface TeeOptions {
  /** Which API's reply this is: a chat completion (the default) or a Responses API `Response`. */
  api?: 'chat' | 'responses';
  /** The request set stream_options.include_usage: a stream ends with its usage chunk. */
  usageRequested?: boolean;
  /**
   * Runs once, when the stream's terminal event has been decoded (possibly
   * after push() returned, for a compressed stream): the client has it by then.
   */
  onComplete?: () => void;
}

export function teeReply(headers: Readonly<Record<string, string | string[]>>, options: TeeOptions = {}): ReplyTee {
  const contentEncoding = single(headers['content-encoding']);
  const decoder = createBodyDecoder(contentEncoding);
  if (decoder === undefined) return unreadable(`content-encoding ${contentEncoding} cannot be decoded`);
  const isSse = (single(headers['content-type']) ?? '').startsWith('text/event-stream');

  let failure: string | undefined;
  const onDecoderError = (error: unknown): void => {
    failure ??= `reply could not be decoded: ${(error as Error).message}`;
  };

  if (isSse) {
    const accumulator = options.api === 'responses' ? createSseResponseAccumulator() : createSseReplyAccumulator(options);
    let hasCompleted = false;
    const onData = (data: Uint8Array): void => {
      accumulator.push(data);
      if (!hasCompleted && failure === undefined && accumulator.isComplete()) {
        hasCompleted = true;
        options.onComplete?.();
      }
    };
    return {
      push: (chunk) => safely(() => decoder.push(chunk, onData), onDecoderError),
      finish: async () => {
        await decoder.end(onData).catch(onDecoderError);
        return outcome(failure, accumulator.finish());
      },
      caughtUp: () => decoder.flush(),
      discard: () => decoder.destroy(),
    };
  }

  const parts: Uint8Array[] = [];
  let size = 0;
  const onData = (data: Uint8Array): void => {
    size += data.length;
    if (size > MAX_JSON_REPLY_BYTES) failure ??= 'reply too large to store';
    else parts.push(data);
  };
  return {
    push: (chunk) => safely(() => decoder.push(chunk, onData), onDecoderError),
    finish: async () => {
      await decoder.end(onData).catch(onDecoderError);
      if (failure !== undefined) return { kind: 'not_stored', reason: failure };
      const body = Buffer.concat(parts);
      return outcome(undefined, options.api === 'responses' ? rebuildResponseFromJson(body) : rebuildReplyFromJson(body));
    },
    caughtUp: () => decoder.flush(),
    discard: () => decoder.destroy(),
  };
}

function outcome(failure: string | undefined, reply: RebuiltReply): TeeOutcome {
  if (failure !== undefined) return { kind: 'not_stored', reason: failure };
  const prompt = reply.promptTokens !== undefined ? { promptTokens: reply.promptTokens } : {};
  if (reply.incompleteReason !== undefined) return { kind: 'not_stored', reason: reply.incompleteReason, ...prompt };
  if (reply.message === undefined && reply.hasNoChatForm !== true) return { kind: 'not_stored', reason: 'empty reply', ...prompt };
  return {
    kind: 'reply',
    message: reply.message === undefined ? undefined : asHistoryMessage(reply.message),
    completionTokens: reply.completionTokens,
    ...(reply.responseId !== undefined ? { responseId: reply.responseId } : {}),
    ...(reply.promptTokens !== undefined ? { promptTokens: reply.promptTokens } : {}),
  };
}

/**
 * The reply as it can be sent back as history: the fields an assistant message
 * takes in a request. Response-only fields (annotations, reasoning_content, the
 * audio data itself) are rejected by some upstreams when sent back.
 */
export function asHistoryMessage(reply: ChatMessage): ChatMessage {
  const message: ChatMessage = { role: 'assistant', content: reply.content ?? null };
  if (typeof reply.name === 'string') message.name = reply.name;
  if (Array.isArray(reply.tool_calls) && reply.tool_calls.length > 0) message.tool_calls = reply.tool_calls;
  if (typeof reply.refusal === 'string') message.refusal = reply.refusal;
  if (reply.function_call !== undefined && reply.function_call !== null) message.function_call = reply.function_call;
  const audioId = (reply.audio as { id?: unknown } | undefined)?.id;
  if (typeof audioId === 'string') message.audio = { id: audioId };
  return message;
}

function unreadable(reason: string): ReplyTee {
  return { push: () => undefined, finish: async () => ({ kind: 'not_stored', reason }), caughtUp: () => Promise.resolve(), discard: () => undefined };
}

function safely(action: () => void, onError: (error: unknown) => void): void {
  try {
    action();
  } catch (error) {
    onError(error);
  }
}

function single(value: string | string[] | undefined): string | undefined {
  return Array.isArray(value) ? value.join(', ') : value;
}
