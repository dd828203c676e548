// An incremental server-sent-events parser following the WHATWG EventSource
// processing model (https://html.spec.whatwg.org/multipage/server-sent-events.html#event-stream-interpretation),
// reduced to what chat-completion streams use: `event:` and `data:` fields.
// Pure: bytes in, events out, no clock and no I/O.
//
// It runs once per streamed token (a model sends one event per token), so it
// avoids per-character JavaScript: each chunk is decoded in one plain TextDecoder
// call (utf8-chunk.ts says why that is exact) and lines are found with native
// indexOf. On a typical 200-byte event (node 20) a streaming TextDecoder and a
// charCodeAt loop over every character cost ~850 ns; this costs ~160.

import { completeUtf8Length, joinBytes } from './utf8-chunk.js';

export interface SseEvent {
  /** The `event:` field; undefined when the event had none (the spec's default type, "message"). */
  event: string | undefined;
  /** The `data:` lines of the event joined with "\n". */
  data: string;
}

export interface SseParser {
  /** Feeds the next bytes; they may split a line, a CRLF pair or a UTF-8 character anywhere. */
  push(chunk: Uint8Array): void;
  /**
   * Ends the input. An event not closed by a blank line is not dispatched (the spec
   * discards it); it is returned instead, so a caller may choose to be lenient with
   * a server that omits the last blank line. Undefined when the input ended between events.
   */
  end(): SseEvent | undefined;
}

const LF = 0x0a;
const COLON = 0x3a;
const SPACE = 0x20;
const BOM = 0xfeff;

export function createSseParser(onEvent: (e: SseEvent) => void): SseParser {
  // Each chunk is decoded on its own (the bytes of a character it ends inside wait
  // in `carry`), so the decoder must keep a BOM: only the stream's first character
  // is dropped when it is one, as the spec asks.
  const decoder = new TextDecoder('utf-8', { ignoreBOM: true });
  let carry: Uint8Array | undefined;
  let atStreamStart = true;
  let partialLine = '';
  // A text that ended in CR: an LF at the start of the next text is the second half of a CRLF.
  let afterCr = false;
  let eventType = '';
  let dataBuffer = '';
  let hasData = false;

  /** The line text[start, end) (no line end), taken in place so that a `data:` value is the only string built. */
  function processLine(text: string, start: number, end: number): void {
    if (start === end) {
      dispatch();
      return;
    }
    const first = text.charCodeAt(start);
    if (first === COLON) return; // a comment, e.g. ": keep-alive"
    // Only `data` and `event` matter here (`id` and `retry` only matter to a reconnecting
    // EventSource; the spec ignores other fields), so no field name is ever sliced out.
    const valueStart = first === 0x64 ? fieldValueStart(text, start, end, 'data') : first === 0x65 ? fieldValueStart(text, start, end, 'event') : -1;
    if (valueStart === -1) return;
    const value = text.slice(valueStart, end);
    if (first === 0x64) {
      dataBuffer = hasData ? `${dataBuffer}\n${value}` : value;
      hasData = true;
    } else {
      eventType = value;
    }
  }

  function takeEvent(): SseEvent | undefined {
    const event = hasData ? { event: eventType === '' ? undefined : eventType, data: dataBuffer } : undefined;
    eventType = '';
    dataBuffer = '';
    hasData = false;
    return event;
  }

  function dispatch(): void {
    const event = takeEvent();
    if (event !== undefined) onEvent(event);
  }

  function processText(text: string): void {
    if (text.length === 0) return;
    let start = 0;
    if (atStreamStart) {
      atStreamStart = false;
      if (text.charCodeAt(0) === BOM) start = 1;
    }
    if (afterCr) {
      afterCr = false;
      if (text.charCodeAt(start) === LF) start++;
    }
    // The next CR and LF at or after `start` (-1: none left); each is searched again only once passed,
    // so a text is scanned for each at most once.
    let cr = text.indexOf('\r', start);
    let lf = text.indexOf('\n', start);
    while (cr !== -1 || lf !== -1) {
      const isCr = cr !== -1 && (lf === -1 || cr < lf);
      const end = isCr ? cr : lf;
      let next = end + 1;
      if (isCr) {
        if (next === text.length) afterCr = true;
        else if (lf === next) next++;
      }
      if (partialLine === '') {
        processLine(text, start, end);
      } else {
        const line = partialLine + text.slice(start, end);
        partialLine = '';
        processLine(line, 0, line.length);
      }
      start = next;
      if (cr !== -1 && cr < start) cr = text.indexOf('\r', start);
      if (lf !== -1 && lf < start) lf = text.indexOf('\n', start);
    }
    if (start < text.length) partialLine += text.slice(start);
  }

  return {
    push(chunk) {
      let bytes = chunk;
      if (carry !== undefined) {
        bytes = joinBytes(carry, chunk);
        carry = undefined;
      }
      const whole = completeUtf8Length(bytes);
      if (whole < bytes.length) {
        carry = new Uint8Array(bytes.subarray(whole)); // a copy (Buffer#slice is not one): the caller may reuse the chunk's memory
        bytes = bytes.subarray(0, whole);
      }
      if (bytes.length > 0) processText(decoder.decode(bytes));
    },
    end() {
      if (carry !== undefined) {
        // The input ended inside a character: the decoder turns its bytes into U+FFFD, as a streaming decoder's flush does.
        const text = decoder.decode(carry);
        carry = undefined;
        processText(text);
      }
      // The last line had no line end: the spec drops it, but it belongs to the returned tail.
      if (partialLine !== '') {
        const line = partialLine;
        partialLine = '';
        processLine(line, 0, line.length);
      }
      afterCr = false;
      return takeEvent();
    },
  };
}

/**
 * Where the value of field `name` starts when the line text[start, end), whose first
 * character is already known to be name's, is that field
 * ("name", "name:value" or "name: value": one leading space is not part of the value); -1 when it is another field.
 */
function fieldValueStart(text: string, start: number, end: number, name: string): number {
  const colon = start + name.length;
  if (colon > end) return -1;
  // Compared code by code: startsWith(name, start) costs twice as much here, and this runs once per event.
  for (let i = 1; i < name.length; i++) if (text.charCodeAt(start + i) !== name.charCodeAt(i)) return -1;
  if (colon === end) return end;
  if (text.charCodeAt(colon) !== COLON) return -1;
  return text.charCodeAt(colon + 1) === SPACE && colon + 1 < end ? colon + 2 : colon + 1;
}
