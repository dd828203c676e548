import type { IncomingHttpHeaders } from 'node:http';

/** The first value of a request header (Node gives repeated ones as an array). */
export function firstHeader(headers: IncomingHttpHeaders, name: string): string | undefined {
  const value = headers[name];
  return Array.isArray(value) ? value[0] : value;
}
