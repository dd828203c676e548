import { setImmediate as yieldToEventLoop } from 'node:timers/promises';
import type { ChatMessage, ContentPart } from '../domain.js';
import type { TokenCounter } from './count-tokens.js';

// BPE is linear at best: a megabyte of ordinary prose costs ~200 ms, of JSON
// ~430 ms, of base64 lines ~0.7 s (measured). Counted in one go, a big message
// would stall every other request on this process. Long texts are therefore
// counted in segments, handing the event loop back between them.

/** Texts shorter than this are counted in one go. */
export const YIELD_ABOVE_CHARS = 64 * 1024;
const SEGMENT_CHARS = 16 * 1024;

/** Same count as `counter.countMessage`, without holding the event loop for more than one segment. */
export async function countMessageYielding(counter: TokenCounter, message: ChatMessage): Promise<number> {
  const longTexts: string[] = [];
  const content = withoutLongTexts(message.content, longTexts);
  if (longTexts.length === 0) return counter.countMessage(message);
  // Empty text costs nothing, so the rest of the message counts as before.
  let tokens = counter.countMessage({ ...message, content });
  for (const text of longTexts) {
    for (const segment of segments(text)) {
      await yieldToEventLoop();
      tokens += counter.countText(segment);
    }
  }
  return tokens;
}

function withoutLongTexts(content: ChatMessage['content'], longTexts: string[]): ChatMessage['content'] {
  if (typeof content === 'string') {
    if (content.length < YIELD_ABOVE_CHARS) return content;
    longTexts.push(content);
    return '';
  }
  if (!Array.isArray(content)) return content;
  return content.map((part: ContentPart) => {
    if (part.type !== 'text' || typeof part.text !== 'string' || part.text.length < YIELD_ABOVE_CHARS) return part;
    longTexts.push(part.text);
    return { ...part, text: '' };
  });
}

const isWordChar = (code: number): boolean => (code >= 48 && code <= 57) || (code >= 65 && code <= 90) || (code >= 97 && code <= 122);

/**
 * Cuts text into pieces of about SEGMENT_CHARS, each cut just before a space
 * that stands between two word characters ("…end| next…"): the tokenizer's
 * pre-split never joins across such a point, so the pieces count exactly what
 * the whole does. A stretch with no such point (a long run without spaces) is
 * cut where it is: runs that long are counted by their byte length anyway.
 */
export function* segments(text: string): Generator<string> {
  let start = 0;
  while (text.length - start > SEGMENT_CHARS) {
    let cut = start + SEGMENT_CHARS;
    const lowest = start + SEGMENT_CHARS / 2;
    while (cut > lowest && !(text.charCodeAt(cut) === 32 && isWordChar(text.charCodeAt(cut - 1)) && isWordChar(text.charCodeAt(cut + 1)))) cut--;
    if (cut <= lowest) {
      cut = start + SEGMENT_CHARS;
      // Never between the halves of a surrogate pair.
      const code = text.charCodeAt(cut - 1);
      if (code >= 0xd800 && code <= 0xdbff) cut--;
    }
    yield text.slice(start, cut);
    start = cut;
  }
  yield text.slice(start);
}
