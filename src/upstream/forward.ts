import type { ServerResponse } from 'node:http';
import { performance } from 'node:perf_hooks';
import type { Readable } from 'node:stream';
import type { ReplyTee } from '../streaming/tee-reply.js';
import { watchClientDeparture } from './client-departure.js';
import { relayResponse } from './relay-response.js';
import type { UpstreamClient } from './upstream-client.js';

export interface ForwardRequest {
  method: string;
  /** Path and query relative to the upstream's base URL. */
  pathAndQuery: string;
  headers: Record<string, string | string[]>;
  body: string | Readable | undefined;
  /** Added to the upstream's response headers on the way to the client. */
  responseHeaders: Record<string, string>;
  /** For a reply contextd must read: makes the side branch that rebuilds a 2xx reply (`onComplete` when its terminal event is decoded). */
  teeFor?: (upstreamHeaders: Readonly<Record<string, string | string[]>>, onComplete: () => void) => ReplyTee;
  /** With a tee: runs once, in the tick the client has everything it waits for. */
  onClientHasAll?: () => void;
  /** The client left before it had its whole reply (the upstream call is then cancelled). */
  onClientCancelled: () => void;
}

export interface ForwardOutcome {
  status: number;
  /** From sending the request to the upstream's response head. */
  upstreamMs: number;
  /** The client was given everything it waits for; it may have left since (httpx clients close at [DONE]). */
  clientHasAll: boolean;
  /** The side branch of a 2xx reply the client has whole: finish() rebuilds it. */
  tee: ReplyTee | undefined;
  /** The relay broke off after the head: the upstream stopped mid-reply (classified), or the client left. */
  error?: unknown;
}

/**
 * Sends a request upstream and relays the reply to the client byte for byte,
 * on the memory path and the pass-through alike. Failing before the response
 * head (unreachable, timeout, the client gone) throws; after it, the outcome
 * says how the relay ended, so the caller can log it and answer.
 */
export async function forwardAndRelay(upstream: UpstreamClient, res: ServerResponse, request: ForwardRequest): Promise<ForwardOutcome> {
  const departure = watchClientDeparture(res, request.onClientCancelled);
  const sentAt = performance.now();
  const response = await upstream.send({ method: request.method, pathAndQuery: request.pathAndQuery, headers: request.headers, body: request.body, signal: departure.signal });
  const upstreamMs = performance.now() - sentAt;

  // The client has its whole reply once the relay wrote its last byte or the
  // tee saw the stream's terminal event, whichever it learns first.
  let hasAll = false;
  const clientHasAll = (): void => {
    if (hasAll) return;
    hasAll = true;
    departure.markClientHasAll();
    if (replyTee !== undefined) request.onClientHasAll?.();
  };
  const isSuccess = response.status >= 200 && response.status < 300;
  const replyTee = isSuccess ? request.teeFor?.(response.headers, clientHasAll) : undefined;
  if (replyTee !== undefined) departure.catchUpBeforeJudging(() => replyTee.caughtUp());
  let relayed: { clientHasAll: boolean } | undefined;
  let failure: unknown;
  try {
    relayed = await relayResponse(res, response, request.responseHeaders, {
      onChunk: replyTee === undefined ? undefined : (chunk) => replyTee.push(chunk),
      isReplyComplete: () => hasAll,
      onClientHasAll: clientHasAll,
    });
  } catch (error) {
    failure = error;
  }
  // A client that left, or an upstream that broke off, is judged on what the client was
  // sent, which the tee may still be decoding.
  await departure.judged();
  if (!hasAll && failure !== undefined) await replyTee?.caughtUp().catch(() => undefined);
  const hadAll = relayed?.clientHasAll === true || hasAll;
  if (!hadAll) replyTee?.discard();
  const outcome: ForwardOutcome = { status: response.status, upstreamMs, clientHasAll: hadAll, tee: hadAll ? replyTee : undefined };
  if (!hadAll && failure !== undefined) outcome.error = departure.signal.aborted ? failure : upstream.classify(failure, 'reply');
  return outcome;
}
