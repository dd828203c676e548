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
