import { afterEach, beforeEach, describe, expect, test, vi } from 'vitest';
import { createLogger, LOG_FLUSH_INTERVAL_MS, requestLineLogger } from '../../../src/ops/logger.js';

// A destination that records what was written and when it was asked to flush.
function recordingDestination(): { write(line: string): void; flush(): void; events: string[] } {
  const events: string[] = [];
  return {
    events,
    write: (line) => events.push(`write ${(JSON.parse(line) as { msg: string }).msg}`),
    flush: () => events.push('flush'),
  };
}

describe('createLogger', () => {
  beforeEach(() => {
    vi.useFakeTimers();
  });
  afterEach(() => {
    vi.useRealTimers();
  });

  test('info lines wait in the buffer; a warning or an error flushes it, after its own write', () => {
    const destination = recordingDestination();
    const logger = createLogger('info', { destination, maxWaitMs: 0 });
    logger.info('one');
    requestLineLogger(logger).info('request');
    logger.warn('two');
    logger.info('three');
    logger.error('four');
    expect(destination.events).toEqual(['write one', 'write request', 'write two', 'flush', 'write three', 'write four', 'flush']);
  });

  test("the logger's flush flushes the destination (the listening line is not left waiting)", () => {
    const destination = recordingDestination();
    const logger = createLogger('info', { destination, maxWaitMs: 0 });
    logger.info('contextd listening');
    logger.flush();
    expect(destination.events).toEqual(['write contextd listening', 'flush']);
  });

  test('lines below the level are neither written nor flushed', () => {
    const destination = recordingDestination();
    const logger = createLogger('error', { destination, maxWaitMs: LOG_FLUSH_INTERVAL_MS });
    logger.info('quiet');
    logger.warn('quiet too');
    vi.advanceTimersByTime(10 * LOG_FLUSH_INTERVAL_MS);
    expect(destination.events).toEqual([]);
  });

  test('a buffered line is flushed once the wait has passed after it, with the lines that came meanwhile in the same flush', () => {
    const destination = recordingDestination();
    const logger = createLogger('info', { destination, maxWaitMs: LOG_FLUSH_INTERVAL_MS });
    requestLineLogger(logger).info('request');
    vi.advanceTimersByTime(LOG_FLUSH_INTERVAL_MS - 1);
    logger.info('another');
    expect(destination.events).toEqual(['write request', 'write another']);
    expect(vi.getTimerCount()).toBe(1);
    vi.advanceTimersByTime(1);
    expect(destination.events).toEqual(['write request', 'write another', 'flush']);
    expect(vi.getTimerCount()).toBe(0);
  });

  test('with nothing written there is nothing to flush: an idle logger sets no timer and never flushes', () => {
    const destination = recordingDestination();
    const logger = createLogger('info', { destination, maxWaitMs: LOG_FLUSH_INTERVAL_MS });
    logger.info('one');
    vi.advanceTimersByTime(LOG_FLUSH_INTERVAL_MS);
    expect(vi.getTimerCount()).toBe(0);
    vi.advanceTimersByTime(100 * LOG_FLUSH_INTERVAL_MS);
    expect(destination.events).toEqual(['write one', 'flush']);
  });

  test('a warning flushes at once and the wait of the lines before it ends with it (no second, empty flush)', () => {
    const destination = recordingDestination();
    const logger = createLogger('info', { destination, maxWaitMs: LOG_FLUSH_INTERVAL_MS });
    logger.info('one');
    logger.warn('two');
    vi.advanceTimersByTime(10 * LOG_FLUSH_INTERVAL_MS);
    expect(destination.events).toEqual(['write one', 'write two', 'flush']);
  });
});
