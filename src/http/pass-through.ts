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
}

/**
 * Any `/v1/<rest>` without memory: method, headers and body go to
 * `<base_url>/<rest>` as they came, streamed both ways; status, headers and
 * body come back the same way.
 */
export async function passThrough(req: IncomingMessage, res: ServerResponse, pathAndQuery: string, deps: PassThroughDeps, log: RequestLog): Promise<void> {
  const departure = watchClientDeparture(res, () => {
    log.clientAborted = true;
  });
  const hasBody = req.headers['transfer-encoding'] !== undefined || Number(req.headers['content-length'] ?? 0) > 0;
  const sentAt = performance.now();
  log.addedMs = 0;
  const upstream = await deps.upstream.send({
    method: req.method ?? 'GET',
    pathAndQuery,
    headers: endToEndHeaders(req.headers, new Set(['expect'])),
    body: hasBody ? req : undefined,
    signal: departure.signal,
  });
  log.upstreamMs = Math.round((performance.now() - sentAt) * 100) / 100;
  log.upstreamStatus = upstream.status;
  deps.metrics.upstreamLatency.observe({ kind: 'passthrough' }, (performance.now() - sentAt) / 1000);
  try {
    await relayResponse(res, upstream, {}, { onClientHasAll: departure.markClientHasAll });
  } catch (error) {
    throw departure.signal.aborted ? error : deps.upstream.classify(error, 'reply');
  }
}
