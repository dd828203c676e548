import type { EventEmitter } from 'node:events';
import { pino, type DestinationStream, type Logger } from 'pino';

/**
 * Lines wait in a buffer until it holds this much, or for LOG_FLUSH_INTERVAL_MS
 * after the first of them (bench/README.md, "Issue 16": a write per line was 5%
 * of contextd's CPU at concurrency 1). A warning or an error is written at once,
 * with what waits before it.
 */
export const LOG_BUFFER_BYTES = 4096;
export const LOG_FLUSH_INTERVAL_MS = 100;

/** What batchedDestination needs of sonic-boom (pino.destination): its buffer, its flush, and its 'write' (bytes written) and 'drain' (idle again) events. */
export interface BufferedWriter extends Pick<EventEmitter, 'on'> {
  write(text: string): boolean;
  /** Writes what waits, unless a write is in flight (then it does nothing). */
  flush(): void;
}

/**
 * A buffered writer whose waiting bytes are flushed `maxWaitMs` after they
 * came. The timer is set only while bytes wait: sonic-boom's own periodicFlush
 * wrote its empty buffer through the thread pool every interval, idle or not
 * (bench/idle-cost.ts). Since sonic-boom's flush does nothing while a write is
 * in flight, a write that goes idle with bytes behind it ('drain') sets the
 * timer again, so no line is left waiting for the next one.
 */
export function batchedDestination(writer: BufferedWriter, maxWaitMs: number): DestinationStream & { flush(cb?: (error?: Error) => void): void } {
  let unwrittenBytes = 0;
  let timer: NodeJS.Timeout | undefined;
  const flush = (): void => {
    clearTimeout(timer);
    timer = undefined;
    if (unwrittenBytes > 0) writer.flush();
  };
  const flushSoon = (): void => {
    timer ??= setTimeout(flush, maxWaitMs).unref();
  };
  writer.on('write', (bytes: number) => (unwrittenBytes -= bytes));
  writer.on('drain', () => {
    if (unwrittenBytes > 0) flushSoon();
  });
  return {
    write(line: string) {
      unwrittenBytes += Buffer.byteLength(line);
      writer.write(line);
      flushSoon();
    },
    // Without a callback to sonic-boom: with one, it fsyncs the descriptor when done.
    flush(cb) {
      flush();
      cb?.();
    },
  };
}

/**
 * stdout, batched (LOG_BUFFER_BYTES, LOG_FLUSH_INTERVAL_MS) unless it is a
 * terminal. pino flushes what is left when the process exits, a crash included;
 * a SIGKILL loses at most the last interval's lines.
 */
function stdoutDestination(): DestinationStream {
  if (process.stdout.isTTY === true) return pino.destination({ dest: process.stdout.fd, sync: false });
  return batchedDestination(pino.destination({ dest: process.stdout.fd, sync: false, minLength: LOG_BUFFER_BYTES }), LOG_FLUSH_INTERVAL_MS);
}

/**
 * pino JSON to stdout. contextd never logs headers or bodies; the redact list
 * is the second line of defence should an error object carry one.
 */
export function createLogger(level: string | undefined, destination: DestinationStream = stdoutDestination()): Logger {
  return pino(
    {
      level: level ?? 'info',
      base: { service: 'contextd' },
      redact: {
        paths: ['authorization', '*.authorization', 'headers.authorization', '*.headers.authorization', '*["api-key"]', 'apiKey', '*.apiKey', 'api_key', '*.api_key', 'token', '*.token'],
        censor: '[redacted]',
      },
      hooks: {
        logMethod(args, write, level) {
          write.apply(this, args);
          if (level >= WARN) this.flush();
        },
      },
    },
    destination,
  );
}

/** pino's number for warn: such lines and worse are written at once. */
const WARN = 40;

const requestLineLoggers = new WeakMap<Logger, Logger>();

/**
 * The logger of the per-request line (record-request.ts), without the redact
 * list: that line is built field by field from RequestLog, whose fields are
 * contextd's own (ids, counts, the path without its query), never a header or
 * a body, and redaction's wildcard paths cost more than the rest of the line
 * (bench/README.md, "Issue 16": about 15 µs a request). One per logger.
 */
export function requestLineLogger(logger: Logger): Logger {
  let plain = requestLineLoggers.get(logger);
  if (plain === undefined) {
    plain = logger.child({}, { redact: { paths: [] } });
    requestLineLoggers.set(logger, plain);
  }
  return plain;
}

/** A URL fit for a log line: credentials in it are replaced. */
export function redactUrl(url: string): string {
  try {
    const parsed = new URL(url);
    if (parsed.username !== '' || parsed.password !== '') {
      parsed.username = '***';
      parsed.password = '';
    }
    return parsed.toString();
  } catch {
    // e.g. redis+cluster://a:1,b:2 (several hosts): hide whatever sits before an '@'.
    return url.replace(/\/\/[^@/]*@/, '//***@');
  }
}
