import { pino, type Logger } from 'pino';

/**
 * pino JSON to stdout. contextd never logs headers or bodies; the redact list
 * is the second line of defence should an error object carry one.
 */
export function createLogger(level: string | undefined): Logger {
  return pino({
    level: level ?? 'info',
    base: { service: 'contextd' },
    redact: {
      paths: ['authorization', '*.authorization', 'headers.authorization', '*.headers.authorization', '*["api-key"]', 'apiKey', '*.apiKey', 'api_key', '*.api_key', 'token', '*.token'],
      censor: '[redacted]',
    },
  });
}

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
