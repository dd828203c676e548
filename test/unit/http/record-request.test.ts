// The request log and metrics are written once, when a request ends, from
// the log gathered along the path: each field the path sets shows in both.
import pino from 'pino';
import { describe, expect, test } from 'vitest';
import { recordRequest } from '../../../src/http/record-request.js';
import type { RequestLog } from '../../../src/http/request-log.js';
import { Metrics } from '../../../src/ops/metrics.js';

function record(log: RequestLog, status = 200): { metrics: Metrics; lines: Record<string, unknown>[] } {
  const metrics = new Metrics();
  const lines: Record<string, unknown>[] = [];
  const logger = pino({ level: 'info' }, { write: (line: string) => lines.push(JSON.parse(line) as Record<string, unknown>) });
  recordRequest(metrics, logger, log, { method: 'POST', path: '/v1/chat/completions', status, durationMs: 12.3456 });
  return { metrics, lines };
}

async function value(metrics: Metrics, name: string, labels: Record<string, string>): Promise<number | undefined> {
  // A histogram's _sum and _count are values of the metric under its base name.
  const values = (await metrics.registry.getMetricsAsJSON()).flatMap((m) => m.values.map((v) => ({ ...v, name: (v as { metricName?: string }).metricName ?? m.name })));
  return values.find((v) => v.name === name && Object.entries(labels).every(([k, l]) => v.labels[k] === l))?.value;
}

describe('recordRequest', () => {
  test('a memory request: one log line with rounded times, and every memory metric from its fields', async () => {
    const { metrics, lines } = record({
      requestId: 'r1',
      kind: 'memory',
      api: 'responses',
      route: 'default',
      conversation: 'c-1',
      contextTokens: 321,
      cache: 'hit',
      droppedMessages: 4,
      overflow: 'forwarded',
      stored: 'retry',
      storeDegraded: true,
      addedMs: 0.123456,
      upstreamMs: 4.56789,
    });
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatchObject({ msg: 'request', requestId: 'r1', addedMs: 0.12, upstreamMs: 4.57, durationMs: 12.35, status: 200, stored: 'retry' });
    expect(await value(metrics, 'contextd_requests_total', { kind: 'memory', api: 'responses', route: 'default', status: '200' })).toBe(1);
    expect(await value(metrics, 'contextd_cache_lookups_total', { outcome: 'hit' })).toBe(1);
    expect(await value(metrics, 'contextd_history_messages_not_sent_total', { route: 'default' })).toBe(4);
    expect(await value(metrics, 'contextd_overflow_total', { route: 'default', action: 'forwarded' })).toBe(1);
    expect(await value(metrics, 'contextd_turns_stored_total', { outcome: 'retry_skipped' })).toBe(1);
    expect(await value(metrics, 'contextd_store_errors_total', { operation: 'load' })).toBe(1);
    expect(await value(metrics, 'contextd_context_tokens_sum', { route: 'default' })).toBe(321);
    expect(await value(metrics, 'contextd_added_latency_seconds_count', { kind: 'memory', api: 'responses' })).toBe(1);
    expect(await value(metrics, 'contextd_upstream_latency_seconds_sum', { kind: 'memory' })).toBeCloseTo(0.00456789, 8);
  });

  test('a pass-through with the header: the skip is counted, no memory metric moves', async () => {
    const { metrics, lines } = record({ requestId: 'r2', kind: 'passthrough', memory: 'unsupported', memorySkipped: 'unsupported_path', upstreamMs: 1 });
    expect(lines[0]).toMatchObject({ kind: 'passthrough', memory: 'unsupported' });
    expect(await value(metrics, 'contextd_memory_skipped_total', { reason: 'unsupported_path' })).toBe(1);
    expect(await value(metrics, 'contextd_upstream_latency_seconds_count', { kind: 'passthrough' })).toBe(1);
    expect(await value(metrics, 'contextd_added_latency_seconds_count', { kind: 'memory' })).toBeUndefined();
    expect(await value(metrics, 'contextd_turns_stored_total', {})).toBeUndefined();
  });

  test('ops requests are counted but not logged', async () => {
    const { metrics, lines } = record({ requestId: 'r3', kind: 'ops' });
    expect(lines).toEqual([]);
    expect(await value(metrics, 'contextd_requests_total', { kind: 'ops', api: '', route: '', status: '200' })).toBe(1);
  });
});
