// SSE bodies shaped like what api.openai.com sends for /v1/chat/completions with
// `stream: true, stream_options: { include_usage: true }`, for the streaming tests.

const head =
  '"id":"chatcmpl-B9MBs8CjcvOU2jLn4n570S5qMJKcT","object":"chat.completion.chunk","created":1741569952,"model":"gpt-4o-2024-08-06","service_tier":"default","system_fingerprint":"fp_f9f4fb6dbf"';

/** Content "héllo 🌍, ça va ? 日本語" (2-, 3- and 4-byte UTF-8 characters), finish_reason stop, 9 completion tokens. */
export const recordedTextStream =
  `data: {${head},"choices":[{"index":0,"delta":{"role":"assistant","content":"","refusal":null},"logprobs":null,"finish_reason":null}],"usage":null}\n\n` +
  `data: {${head},"choices":[{"index":0,"delta":{"content":"h"},"logprobs":null,"finish_reason":null}],"usage":null}\n\n` +
  `data: {${head},"choices":[{"index":0,"delta":{"content":"éllo"},"logprobs":null,"finish_reason":null}],"usage":null}\n\n` +
  `data: {${head},"choices":[{"index":0,"delta":{"content":" 🌍"},"logprobs":null,"finish_reason":null}],"usage":null}\n\n` +
  `data: {${head},"choices":[{"index":0,"delta":{"content":", ça"},"logprobs":null,"finish_reason":null}],"usage":null}\n\n` +
  `data: {${head},"choices":[{"index":0,"delta":{"content":" va ?"},"logprobs":null,"finish_reason":null}],"usage":null}\n\n` +
  `data: {${head},"choices":[{"index":0,"delta":{"content":" 日本語"},"logprobs":null,"finish_reason":null}],"usage":null}\n\n` +
  `data: {${head},"choices":[{"index":0,"delta":{},"logprobs":null,"finish_reason":"stop"}],"usage":null}\n\n` +
  `data: {${head},"choices":[],"usage":{"prompt_tokens":12,"completion_tokens":9,"total_tokens":21,"prompt_tokens_details":{"cached_tokens":0,"audio_tokens":0},"completion_tokens_details":{"reasoning_tokens":0,"audio_tokens":0,"accepted_prediction_tokens":0,"rejected_prediction_tokens":0}}}\n\n` +
  'data: [DONE]\n\n';

export const recordedTextContent = 'héllo 🌍, ça va ? 日本語';

/** One `data:` event per argument: strings are sent as they are, anything else as JSON. */
export function sse(...datas: unknown[]): string {
  return datas.map((data) => `data: ${typeof data === 'string' ? data : JSON.stringify(data)}\n\n`).join('');
}

/** A chat.completion.chunk with one choice. */
export function chunk(delta: Record<string, unknown>, finishReason: string | null = null, index = 0): Record<string, unknown> {
  return {
    id: 'chatcmpl-test',
    object: 'chat.completion.chunk',
    created: 1741569952,
    model: 'gpt-4o-2024-08-06',
    choices: [{ index, delta, logprobs: null, finish_reason: finishReason }],
  };
}

/** The include_usage chunk: no choices, only usage. */
export function usageChunk(completionTokens: number): Record<string, unknown> {
  return {
    id: 'chatcmpl-test',
    object: 'chat.completion.chunk',
    created: 1741569952,
    model: 'gpt-4o-2024-08-06',
    choices: [],
    usage: { prompt_tokens: 20, completion_tokens: completionTokens, total_tokens: 20 + completionTokens },
  };
}
