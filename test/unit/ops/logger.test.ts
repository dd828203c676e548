import { EventEmitter } from 'node:events';
import { afterEach, beforeEach, describe, expect, test, vi } from 'vitest';
import { batchedDestination, createLogger, requestLineLogger, type BufferedWriter } from '../../../src/ops/logger.js';

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

/**
 * sonic-boom as batchedDestination sees it: text waits until flush() starts a
 * write (none while one is in flight); `finishWrite()` ends the write in flight
 * as sonic-boom does, with 'write' (its bytes) and 'drain' (idle again).
 */
class FakeWriter extends EventEmitter implements BufferedWriter {
  waiting = '';
  inFlight: string | undefined;
  written: string[] = [];
  flushes = 0;

  write(text: string): boolean {
    this.waiting += text;
    return true;
  }

  flush(): void {
    this.flushes++;
    if (this.inFlight !== undefined) return;
    this.inFlight = this.waiting;
    this.waiting = '';
  }

  finishWrite(): void {
    const text = this.inFlight!;
    this.inFlight = undefined;
    this.written.push(text);
    this.emit('write', Buffer.byteLength(text));
    this.emit('drain');
  }
}

describe('batchedDestination', () => {
  const WAIT_MS = 100;
  beforeEach(() => {
    vi.useFakeTimers();
  });
  afterEach(() => {
    vi.useRealTimers();
  });

  test('lines are flushed together the wait after the first of them, with one timer for all', () => {
    const writer = new FakeWriter();
    const destination = batchedDestination(writer, WAIT_MS);
    destination.write('one\n');
    vi.advanceTimersByTime(WAIT_MS - 1);
    destination.write('two\n');
    expect(vi.getTimerCount()).toBe(1);
    expect(writer.flushes).toBe(0);
    vi.advanceTimersByTime(1);
    expect(writer.inFlight).toBe('one\ntwo\n');
    writer.finishWrite();
    expect(writer.written).toEqual(['one\ntwo\n']);
    expect(vi.getTimerCount()).toBe(0);
  });

  test('an idle destination sets no timer and never flushes', () => {
    const writer = new FakeWriter();
    const destination = batchedDestination(writer, WAIT_MS);
    destination.write('one\n');
    vi.advanceTimersByTime(WAIT_MS);
    writer.finishWrite();
    vi.advanceTimersByTime(100 * WAIT_MS);
    expect(writer.flushes).toBe(1);
    expect(vi.getTimerCount()).toBe(0);
  });

  test('lines that came while a write was in flight, when the flush found it still writing, are flushed after it', () => {
    const writer = new FakeWriter();
    const destination = batchedDestination(writer, WAIT_MS);
    destination.write('a warning\n');
    destination.flush(); // a warning: at once
    destination.write('listening\n');
    vi.advanceTimersByTime(WAIT_MS); // the timer's flush finds the warning's write in flight: it does nothing
    expect(writer.waiting).toBe('listening\n');
    writer.finishWrite();
    vi.advanceTimersByTime(WAIT_MS);
    writer.finishWrite();
    expect(writer.written).toEqual(['a warning\n', 'listening\n']);
    expect(vi.getTimerCount()).toBe(0);
  });

  test("the logger's flush calls back without handing sonic-boom a callback (which would fsync), and flushes nothing when nothing waits", () => {
    const writer = new FakeWriter();
    const destination = batchedDestination(writer, WAIT_MS);
    const flushSpy = vi.spyOn(writer, 'flush');
    const done = vi.fn();
    destination.flush(done);
    expect(done).toHaveBeenCalledOnce();
    expect(flushSpy).not.toHaveBeenCalled();
    destination.write('one\n');
    destination.flush(done);
    expect(flushSpy).toHaveBeenCalledWith();
  });
});
