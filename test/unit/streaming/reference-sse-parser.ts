// The SSE parser as it was before it was made fast (a streaming TextDecoder, then
// a charCodeAt loop over every character): kept as the reference the fast one is
// compared against in sse-parser.property.test.ts. Not used by src/.

import type { SseEvent, SseParser } from '../../../src/streaming/sse-parser.js';

const LF = 0x0a;
const CR = 0x0d;

export function createReferenceSseParser(onEvent: (e: SseEvent) => void): SseParser {
  // The UTF-8 decoder keeps a character split across chunks and drops a leading BOM, as the spec asks.
  const decoder = new TextDecoder('utf-8');
  let partialLine = '';
  // A chunk that ended in CR: an LF at the start of the next text is the second half of a CRLF.
  let afterCr = false;
  let eventType = '';
  let dataBuffer = '';
  let hasData = false;

  function processLine(line: string): void {
    if (line === '') {
      dispatch();
      return;
    }
    if (line.charCodeAt(0) === 0x3a) return; // ':' starts a comment, e.g. ": keep-alive"
    const colon = line.indexOf(':');
    const field = colon === -1 ? line : line.slice(0, colon);
    let value = colon === -1 ? '' : line.slice(colon + 1);
    if (value.charCodeAt(0) === 0x20) value = value.slice(1);
    if (field === 'data') {
      dataBuffer = hasData ? `${dataBuffer}\n${value}` : value;
      hasData = true;
    } else if (field === 'event') {
      eventType = value;
    }
    // `id` and `retry` only matter to a reconnecting EventSource; other fields are ignored by the spec.
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
    let start = 0;
    if (afterCr && text.length > 0) {
      afterCr = false;
      if (text.charCodeAt(0) === LF) start = 1;
    }
    for (let i = start; i < text.length; i++) {
      const c = text.charCodeAt(i);
      if (c !== LF && c !== CR) continue;
      const line = partialLine === '' ? text.slice(start, i) : partialLine + text.slice(start, i);
      partialLine = '';
      if (c === CR) {
        if (i + 1 === text.length) afterCr = true;
        else if (text.charCodeAt(i + 1) === LF) i++;
      }
      start = i + 1;
      processLine(line);
    }
    if (start < text.length) partialLine += text.slice(start);
  }

  return {
    push(chunk) {
      processText(decoder.decode(chunk, { stream: true }));
    },
    end() {
      processText(decoder.decode());
      // The last line had no line end: the spec drops it, but it belongs to the returned tail.
      if (partialLine !== '') {
        const line = partialLine;
        partialLine = '';
        processLine(line);
      }
      afterCr = false;
      return takeEvent();
    },
  };
}
