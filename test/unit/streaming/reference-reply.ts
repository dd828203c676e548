// The reply accumulate-reply.ts rebuilds when every event's data goes through
// plain JSON.parse and its delta logic, never content-delta.ts's shortcut: the
// reference the shortcut is compared against. Each JSON object is re-serialised
// with one extra member whose value is an object, which the accumulator ignores
// and which content-delta.ts never accepts (forcedFullParse checks that for each
// event, so the reference cannot quietly take the shortcut too).
import { createContentDeltaReader } from '../../../src/streaming/content-delta.js';
import { createSseReplyAccumulator, type RebuiltReply, type SseReplyOptions } from '../../../src/streaming/accumulate-reply.js';

/** One SSE event: its `event:` field and its data (which may hold "\n": then it is sent as several data lines). */
export interface StreamEvent {
  event?: string;
  data: string;
}

export interface Accumulated {
  /** isComplete() once every byte was pushed, before finish(). */
  complete: boolean;
  reply: RebuiltReply;
}

const utf8 = new TextEncoder();

export function accumulate(chunks: readonly Uint8Array[], options: SseReplyOptions): Accumulated {
  const accumulator = createSseReplyAccumulator(options);
  for (const chunk of chunks) accumulator.push(chunk);
  return { complete: accumulator.isComplete(), reply: accumulator.finish() };
}

/** LF line ends, one chunk; the last event left without its blank line when `lastUnterminated`. */
export function plainSse(events: readonly StreamEvent[], lastUnterminated = false): string {
  return events
    .map((e, i) => {
      const lines = [...(e.event === undefined ? [] : [`event: ${e.event}`]), ...e.data.split('\n').map((line) => `data: ${line}`)];
      return `${lines.join('\n')}\n${lastUnterminated && i === events.length - 1 ? '' : '\n'}`;
    })
    .join('');
}

export function referenceReply(events: readonly StreamEvent[], options: SseReplyOptions, lastUnterminated = false): Accumulated {
  return accumulate([utf8.encode(plainSse(events.map(forcedFullParse), lastUnterminated))], options);
}

const forcedByData = new Map<string, string>();

function forcedFullParse(event: StreamEvent): StreamEvent {
  let data = forcedByData.get(event.data);
  if (data === undefined) {
    data = forcedDataChecked(event.data);
    if (forcedByData.size > 1000) forcedByData.clear(); // the tests repeat a few events around many unique ones
    forcedByData.set(event.data, data);
  }
  return { ...event, data };
}

function forcedDataChecked(original: string): string {
  // The data as the accumulator gets it: sent as UTF-8, a lone surrogate arrives as U+FFFD.
  const data = forcedData(new TextDecoder().decode(utf8.encode(original)));
  // Also fails when the shortcut accepts data JSON.parse rejects (kept as it is below).
  if (createContentDeltaReader()(data) !== undefined) throw new Error(`content-delta.ts accepts the reference's data: ${data}`);
  return data;
}

function forcedData(data: string): string {
  if (data.startsWith('[DONE]') || data.trim() === '') return data;
  let parsed: unknown;
  try {
    parsed = JSON.parse(data);
  } catch {
    return data; // stays invalid, and content-delta.ts must reject it too
  }
  const isObject = typeof parsed === 'object' && parsed !== null && !Array.isArray(parsed);
  return isObject ? JSON.stringify({ ...(parsed as Record<string, unknown>), zz_forces_full_parse: {} }) : data;
}
