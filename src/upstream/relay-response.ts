import type { ServerResponse } from 'node:http';
import { once } from 'node:events';
import type { UpstreamResponse } from './upstream-client.js';

/**
 * Writes the upstream's status, headers and body bytes to the client as they
 * arrive (no buffering, nothing re-encoded), honouring the client's
 * back-pressure. `onChunk` sees each chunk after it was handed to the client:
 * parsing happens on that side branch and can never hold a byte back.
 */
export async function relayResponse(
  res: ServerResponse,
  upstream: UpstreamResponse,
  extraHeaders: Record<string, string>,
  onChunk?: (chunk: Buffer) => void,
): Promise<void> {
  res.writeHead(upstream.status, { ...upstream.headers, ...extraHeaders });
  // A stream's head goes out at once (the first event may be a while); any other
  // head leaves with the first body chunk, saving a write per response.
  if (String(upstream.headers['content-type'] ?? '').startsWith('text/event-stream')) res.flushHeaders();
  for await (const chunk of upstream.body as AsyncIterable<Buffer>) {
    if (res.destroyed) break;
    if (!res.write(chunk)) await Promise.race([once(res, 'drain'), once(res, 'close')]);
    onChunk?.(chunk);
  }
  if (!res.destroyed) res.end();
}
