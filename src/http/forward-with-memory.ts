import type { IncomingMessage, ServerResponse } from 'node:http';
import { decodableAcceptEncoding } from '../streaming/decode-body.js';
import { teeReply } from '../streaming/tee-reply.js';
import { forwardAndRelay, type ForwardOutcome } from '../upstream/forward.js';
import { endToEndHeaders, type UpstreamClient } from '../upstream/upstream-client.js';
import { firstHeader } from './request-headers.js';

export interface MemoryForward {
  /** Path and query relative to the upstream's base URL. */
  upstreamPath: string;
  /** The request body as sent upstream, serialised. */
  body: string;
  /** contextd's x-contextd-* headers, added to the reply. */
  responseHeaders: Record<string, string>;
  /** Rebuild the reply on the side for storing; `onClientHasAll` runs in the tick the client has all of it. */
  tee?: { api: 'chat' | 'responses'; usageRequested: boolean; onClientHasAll: () => void };
  /** The client left before it had its whole reply (the upstream call is then cancelled). */
  onClientCancelled: () => void;
}

// The body's framing is ours to set; the conversation header is contextd's own.
const NOT_FORWARDED = ['content-length', 'accept-encoding', 'expect'];

/** Step 5 for a request with memory: the client's headers with contextd's body, relayed back with a tee when the turn is to be stored. */
export function forwardWithMemory(req: IncomingMessage, res: ServerResponse, upstream: UpstreamClient, conversationHeader: string, request: MemoryForward): Promise<ForwardOutcome> {
  const headers = endToEndHeaders(req.headers, [...NOT_FORWARDED, conversationHeader]);
  headers['content-type'] = 'application/json';
  // contextd must read the reply it stores, so it asks only for encodings it can decode.
  const acceptEncoding = firstHeader(req.headers, 'accept-encoding');
  const asked = request.tee !== undefined ? decodableAcceptEncoding(acceptEncoding) : acceptEncoding;
  if (asked !== undefined) headers['accept-encoding'] = asked;
  const { tee } = request;
  return forwardAndRelay(upstream, res, {
    method: 'POST',
    pathAndQuery: request.upstreamPath,
    headers,
    body: request.body,
    responseHeaders: request.responseHeaders,
    ...(tee !== undefined
      ? { teeFor: (upstreamHeaders, onComplete) => teeReply(upstreamHeaders, { api: tee.api, usageRequested: tee.usageRequested, onComplete }), onClientHasAll: tee.onClientHasAll }
      : {}),
    onClientCancelled: request.onClientCancelled,
  });
}
