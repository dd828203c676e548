// The fake upstream's chat completions: the JSON body and the SSE events OpenAI
// sends for a reply (a role delta, a content delta per token, the finish, the
// usage chunk when asked for, `[DONE]`). Values in, strings out.

import type { Reply, ReplyMeta } from './upstream-reply.js';

const FINGERPRINT = 'fp_bench_upstream';

/** The text of the last user message: what the upstream picks its reply by. */
export function lastChatUserText(body: { messages?: unknown }): string {
  const messages = Array.isArray(body.messages) ? (body.messages as { role?: unknown; content?: unknown }[]) : [];
  for (let i = messages.length - 1; i >= 0; i--) {
    const message = messages[i];
    if (message?.role !== 'user') continue;
    return typeof message.content === 'string' ? message.content : JSON.stringify(message.content ?? '');
  }
  return '';
}

function usageJson(promptTokens: number, completionTokens: number): string {
  return `{"prompt_tokens":${promptTokens},"completion_tokens":${completionTokens},"total_tokens":${promptTokens + completionTokens},"prompt_tokens_details":{"cached_tokens":0,"audio_tokens":0},"completion_tokens_details":{"reasoning_tokens":0,"audio_tokens":0,"accepted_prediction_tokens":0,"rejected_prediction_tokens":0}}`;
}

export function chatCompletionJson(reply: Reply, meta: ReplyMeta): string {
  return `{"id":"${meta.id}","object":"chat.completion","created":${meta.createdSeconds},"model":${meta.model},"choices":[{"index":0,"message":{"role":"assistant","content":${JSON.stringify(reply.text)},"refusal":null,"annotations":[]},"logprobs":null,"finish_reason":"stop"}],"usage":${usageJson(meta.promptTokens, reply.completionTokens)},"service_tier":"default","system_fingerprint":"${FINGERPRINT}"}`;
}

/** One string per SSE event. */
export function chatCompletionEvents(reply: Reply, meta: ReplyMeta, includeUsage: boolean): string[] {
  const head = `data: {"id":"${meta.id}","object":"chat.completion.chunk","created":${meta.createdSeconds},"model":${meta.model},"service_tier":"default","system_fingerprint":"${FINGERPRINT}","choices":`;
  const events = [`${head}[{"index":0,"delta":{"role":"assistant","content":"","refusal":null},"logprobs":null,"finish_reason":null}]}\n\n`];
  for (const piece of reply.pieces) events.push(`${head}[{"index":0,"delta":{"content":${piece}},"logprobs":null,"finish_reason":null}]}\n\n`);
  events.push(`${head}[{"index":0,"delta":{},"logprobs":null,"finish_reason":"stop"}]}\n\n`);
  if (includeUsage) events.push(`${head}[],"usage":${usageJson(meta.promptTokens, reply.completionTokens)}}\n\n`);
  events.push('data: [DONE]\n\n');
  return events;
}
