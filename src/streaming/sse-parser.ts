// An incremental server-sent-events parser following the WHATWG EventSource
// processing model (https://html.spec.whatwg.org/multipage/server-sent-events.html#event-stream-interpretation),
// reduced to what chat-completion streams use: `event:` and `data:` fields.
// Pure: bytes in, events out, no clock and no I/O.

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
const CR = 0x0d;

export function createSseParser(onEvent: (e: SseEvent) => void): SseParser {
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
