import type { IncomingMessage, ServerResponse } from 'node:http';
import { performance } from 'node:perf_hooks';
import type { Metrics } from '../ops/metrics.js';
import { endToEndHeaders, type UpstreamClient } from '../upstream/upstream-client.js';
import { relayResponse } from '../upstream/relay-response.js';
import { watchClientDeparture } from '../upstream/client-departure.js';
import type { RequestLog } from './request-log.js';

export interface PassThroughDeps {
  upstream: UpstreamClient;
  metrics: Metrics;
  config: { conversation: { header: string } };
}

/**
 * Any request without memory: method, headers and body go upstream as they
 * came, streamed both ways (all but the conversation header, which is
 * contextd's own); status, headers and body come back the same way, with
 * `responseHeaders` added.
 */
export async function passThrough(
  req: IncomingMessage,
  res: ServerResponse,
  pathAndQuery: string,
  deps: PassThroughDeps,
  log: RequestLog,
  responseHeaders: Record<string, string> = {},
): Promise<void> {
  const departure = watchClientDeparture(res, () => {
    log.clientAborted = true;
  });
  const hasBody = req.headers['transfer-encoding'] !== undefined || Number(req.headers['content-length'] ?? 0) > 0;
  const sentAt = performance.now();
  log.addedMs = 0;
  const upstream = await deps.upstream.send({
    method: req.method ?? 'GET',
    pathAndQuery,
    headers: endToEndHeaders(req.headers, new Set(['expect', deps.config.conversation.header])),
    body: hasBody ? req : undefined,
    signal: departure.signal,
  });
  log.upstreamMs = Math.round((performance.now() - sentAt) * 100) / 100;
  log.upstreamStatus = upstream.status;
  deps.metrics.upstreamLatency.observe({ kind: 'passthrough' }, (performance.now() - sentAt) / 1000);
  try {
    await relayResponse(res, upstream, responseHeaders, { onClientHasAll: departure.markClientHasAll });
  } catch (error) {
    throw departure.signal.aborted ? error : deps.upstream.classify(error, 'reply');
  }
}
