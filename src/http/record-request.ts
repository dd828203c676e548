import type { Logger } from 'pino';
import { requestLineLogger } from '../ops/logger.js';
import type { Metrics } from '../ops/metrics.js';
import type { RequestLog } from './request-log.js';

const STORED_OUTCOME = { queued: 'queued', dropped: 'dropped', retry: 'retry_skipped', not_stored: 'not_stored' } as const;

/**
 * Writes what a request did, once, when it has ended: its metrics and its
 * log line, both from the request log gathered along the path.
 */
export function recordRequest(metrics: Metrics, logger: Logger, log: RequestLog, request: { method: string | undefined; path: string; status: number; durationMs: number }): void {
  const route = log.route ?? '';
  metrics.requests.inc({ kind: log.kind, api: log.api ?? '', route, status: String(request.status) });
  if (log.upstreamMs !== undefined && (log.kind === 'memory' || log.kind === 'passthrough')) metrics.upstreamLatency.observe({ kind: log.kind }, log.upstreamMs / 1000);
  if (log.memorySkipped !== undefined) metrics.memorySkipped.inc({ reason: log.memorySkipped });
  if (log.kind === 'memory') recordMemory(metrics, log, route);
  if (log.kind === 'ops') return;
  requestLineLogger(logger).info(
    { ...log, addedMs: round(log.addedMs), upstreamMs: round(log.upstreamMs), method: request.method, path: request.path, status: request.status, durationMs: round(request.durationMs) },
    'request',
  );
}

function recordMemory(metrics: Metrics, log: RequestLog, route: string): void {
  if (log.addedMs !== undefined) metrics.addedLatency.observe({ kind: 'memory', api: log.api ?? '' }, log.addedMs / 1000);
  if (log.storeDegraded === true) metrics.storeErrors.inc({ operation: 'load' });
  if (log.cache !== undefined) metrics.cacheLookups.inc({ outcome: log.cache });
  if (log.contextTokens !== undefined) metrics.contextTokens.observe({ route }, log.contextTokens);
  if (log.droppedMessages !== undefined && log.droppedMessages > 0) metrics.droppedHistoryMessages.inc({ route }, log.droppedMessages);
  if (log.overflow !== undefined) metrics.overflows.inc({ route, action: log.overflow });
  if (log.stored !== undefined) metrics.turnsStored.inc({ outcome: STORED_OUTCOME[log.stored] });
}

function round<T extends number | undefined>(ms: T): T {
  return (ms === undefined ? undefined : Math.round(ms * 100) / 100) as T;
}
