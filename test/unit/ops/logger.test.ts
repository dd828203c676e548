import { describe, expect, test } from 'vitest';
import { createLogger, requestLineLogger } from '../../../src/ops/logger.js';

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
  test('info lines wait in the buffer; a warning or an error flushes it, after its own write', () => {
    const destination = recordingDestination();
    const logger = createLogger('info', destination);
    logger.info('one');
    requestLineLogger(logger).info('request');
    logger.warn('two');
    logger.info('three');
    logger.error('four');
    expect(destination.events).toEqual(['write one', 'write request', 'write two', 'flush', 'write three', 'write four', 'flush']);
  });

  test("the logger's flush flushes the destination (the listening line is not left waiting)", () => {
    const destination = recordingDestination();
    const logger = createLogger('info', destination);
    logger.info('contextd listening');
    logger.flush();
    expect(destination.events).toEqual(['write contextd listening', 'flush']);
  });

  test('lines below the level are neither written nor flushed', () => {
    const destination = recordingDestination();
    const logger = createLogger('error', destination);
    logger.info('quiet');
    logger.warn('quiet too');
    expect(destination.events).toEqual([]);
  });
});
