import { pino, type DestinationStream, type Logger } from 'pino';

/**
 * Lines wait in a buffer until it holds this much, or for LOG_FLUSH_INTERVAL_MS
 * after the first of them (bench/README.md, "Issue 16": a write per line was 5%
 * of contextd's CPU at concurrency 1). A warning or an error is written at once,
 * with what waits before it.
 */
export const LOG_BUFFER_BYTES = 4096;
export const LOG_FLUSH_INTERVAL_MS = 100;

/** Where lines go, and how long a line may wait in the destination's buffer (0: it does not wait). */
export interface LogOutput {
  destination: DestinationStream;
  maxWaitMs: number;
}

/**
 * stdout, buffered (LOG_BUFFER_BYTES, LOG_FLUSH_INTERVAL_MS) unless it is a
 * terminal. pino flushes what is left when the process exits, a crash included;
 * a SIGKILL loses at most the last interval's lines.
 */
function stdoutOutput(): LogOutput {
  const buffered = process.stdout.isTTY !== true;
  return {
    destination: pino.destination({ dest: process.stdout.fd, sync: false, ...(buffered ? { minLength: LOG_BUFFER_BYTES } : {}) }),
    maxWaitMs: buffered ? LOG_FLUSH_INTERVAL_MS : 0,
  };
}

/**
 * pino JSON to stdout. contextd never logs headers or bodies; the redact list
 * is the second line of defence should an error object carry one.
 */
export function createLogger(level: string | undefined, output: LogOutput = stdoutOutput()): Logger {
  // The flush timer runs only while a line waits: an idle contextd has no timer
  // of its own to wake for (sonic-boom's periodicFlush wrote its empty buffer
  // through the thread pool every interval; bench/idle-cost.ts).
  let flushTimer: NodeJS.Timeout | undefined;
  const flushNow = (logger: Logger): void => {
    clearTimeout(flushTimer);
    flushTimer = undefined;
    logger.flush();
  };
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
          if (level >= WARN) flushNow(this);
          else if (output.maxWaitMs > 0) flushTimer ??= setTimeout(() => flushNow(this), output.maxWaitMs).unref();
        },
      },
    },
    output.destination,
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
