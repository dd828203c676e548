import type { ServerResponse } from 'node:http';
import { once } from 'node:events';
import type { UpstreamResponse } from './upstream-client.js';

const DONE_EVENT = Buffer.from('data: [DONE]');

/**
 * Writes the upstream's status, headers and body bytes to the client as they
 * arrive (no buffering, nothing re-encoded), honouring the client's
 * back-pressure. `onChunk` sees each chunk after it was handed to the client:
 * parsing happens on that side branch and can never hold a byte back.
 * `onClientHasAll` runs once, in the same tick as the write that gives the
 * client everything it waits for (the last of content-length bytes, a stream's
 * `data: [DONE]`, or the end), so nothing the client sends in reply to it can
 * be handled before it.
 */
export async function relayResponse(
  res: ServerResponse,
  upstream: UpstreamResponse,
  extraHeaders: Record<string, string>,
  onChunk?: (chunk: Buffer) => void,
  onClientHasAll?: () => void,
): Promise<void> {
  res.writeHead(upstream.status, { ...upstream.headers, ...extraHeaders });
  // A stream's head goes out at once (the first event may be a while); any other
  // head leaves with the first body chunk, saving a write per response.
  const isEventStream = String(upstream.headers['content-type'] ?? '').startsWith('text/event-stream');
  if (isEventStream) res.flushHeaders();
  const declaredLength = Number(upstream.headers['content-length'] ?? Number.NaN);
  let written = 0;
  let hasAll = false;
  const clientHasAll = (): void => {
    if (hasAll) return;
    hasAll = true;
    onClientHasAll?.();
  };
  for await (const chunk of upstream.body as AsyncIterable<Buffer>) {
    if (res.destroyed) break;
    const isWritable = res.write(chunk);
    onChunk?.(chunk);
    written += chunk.length;
    if (onClientHasAll !== undefined && (written >= declaredLength || (isEventStream && chunk.includes(DONE_EVENT)))) clientHasAll();
    if (!isWritable) await Promise.race([once(res, 'drain'), once(res, 'close')]);
  }
  if (!res.destroyed) {
    res.end();
    clientHasAll();
  }
}
