import type { ServerResponse } from 'node:http';
import { once } from 'node:events';
import type { UpstreamResponse } from './upstream-client.js';

const DONE_EVENT = Buffer.from('data: [DONE]');

export interface RelayOptions {
  /** Sees each chunk after it was handed to the client: parsing happens on that side branch and never holds a byte back. */
  onChunk?: (chunk: Buffer) => void;
  /**
   * Whether the reply the client is owed has been relayed whole by what the
   * caller knows (a stream's terminal event, as its tee saw it): then a body
   * cut short afterwards, because the client left, is no failure.
   */
  isReplyComplete?: () => boolean;
  /**
   * Runs once, in the same tick as the write that gives the client everything
   * it waits for (the last of content-length bytes, a stream's terminal event,
   * or the end), so nothing the client sends in reply to it can be handled first.
   */
  onClientHasAll?: () => void;
}

/**
 * Writes the upstream's status, headers and body bytes to the client as they
 * arrive (no buffering, nothing re-encoded), honouring the client's
 * back-pressure. Resolves with whether the client was given all it waits
 * for: a client that closes the connection after that (the Python SDK does
 * at `[DONE]`) has had its reply, and the relay stops there.
 */
export async function relayResponse(
  res: ServerResponse,
  upstream: UpstreamResponse,
  extraHeaders: Record<string, string>,
  options: RelayOptions = {},
): Promise<{ clientHasAll: boolean }> {
  const { onChunk, isReplyComplete, onClientHasAll } = options;
  res.writeHead(upstream.status, { ...upstream.headers, ...extraHeaders });
  // A stream's head goes out at once when no event has come with it (the first
  // may be a while); any other head leaves with the first body chunk, saving a
  // write per response, and a stream's first event reaches the client with it.
  const isEventStream = String(upstream.headers['content-type'] ?? '').startsWith('text/event-stream');
  if (isEventStream && upstream.body.readableLength === 0) res.flushHeaders();
  const declaredLength = Number(upstream.headers['content-length'] ?? Number.NaN);
  let written = 0;
  let clientHasAll = false;
  const markClientHasAll = (): void => {
    if (clientHasAll) return;
    clientHasAll = true;
    onClientHasAll?.();
  };
  try {
    for await (const chunk of upstream.body as AsyncIterable<Buffer>) {
      if (res.destroyed) break;
      const isWritable = res.write(chunk);
      onChunk?.(chunk);
      written += chunk.length;
      if (written >= declaredLength || (isEventStream && chunk.includes(DONE_EVENT))) markClientHasAll();
      if (!isWritable) await Promise.race([once(res, 'drain'), once(res, 'close')]);
    }
  } catch (error) {
    // The upstream body cut short after the client had everything (the relay
    // was stopped because the client left): the reply is whole all the same.
    if (!clientHasAll && isReplyComplete?.() !== true) throw error;
  }
  if (!res.destroyed) {
    res.end();
    markClientHasAll();
  }
  return { clientHasAll: clientHasAll || isReplyComplete?.() === true };
}
