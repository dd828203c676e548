// A reply as the bench's fake upstream sends it, on either API: its text, and
// the pieces it streams in, one o200k_base token each (as OpenAI's deltas are
// cut), already as JSON string literals so that a request only concatenates.

import { decode, encode } from 'gpt-tokenizer/encoding/o200k_base';

export interface Reply {
  text: string;
  /** JSON string literals of the streamed deltas, one o200k_base token each. */
  pieces: readonly string[];
  completionTokens: number;
}

export function replyOf(text: string): Reply {
  const tokens = encode(text);
  let pieces = tokens.map((token) => decode([token]));
  // Prose is ASCII, so tokens decode one by one; should one not, send words instead.
  if (pieces.join('') !== text) pieces = text.match(/\s*\S+/g) ?? [text];
  return { text, pieces: pieces.map((piece) => JSON.stringify(piece)), completionTokens: tokens.length };
}

/** What a reply's body says besides the reply: the same for the JSON body and every event of a stream. */
export interface ReplyMeta {
  /** Unique per request (`chatcmpl-…`, `resp_…`). */
  id: string;
  createdSeconds: number;
  /** The request's model, as a JSON string literal. */
  model: string;
  promptTokens: number;
}
