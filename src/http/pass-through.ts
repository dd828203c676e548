import type { IncomingMessage, ServerResponse } from 'node:http';
import { endToEndHeaders, type UpstreamClient } from '../upstream/upstream-client.js';
import { forwardAndRelay } from '../upstream/forward.js';
import type { RequestLog } from './request-log.js';

export interface PassThroughDeps {
  upstream: UpstreamClient;
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
  const hasBody = req.headers['transfer-encoding'] !== undefined || Number(req.headers['content-length'] ?? 0) > 0;
  log.addedMs = 0;
  const outcome = await forwardAndRelay(deps.upstream, res, {
    method: req.method ?? 'GET',
    pathAndQuery,
    headers: endToEndHeaders(req.headers, ['expect', deps.config.conversation.header]),
    body: hasBody ? req : undefined,
    responseHeaders,
    onClientCancelled: () => {
      log.clientAborted = true;
    },
  });
  log.upstreamMs = outcome.upstreamMs;
  log.upstreamStatus = outcome.status;
  if (outcome.error !== undefined) throw outcome.error;
}
