import type { IncomingHttpHeaders } from 'node:http';

/** The first value of a request header (Node gives repeated ones as an array). */
export function firstHeader(headers: IncomingHttpHeaders, name: string): string | undefined {
  const value = headers[name];
  return Array.isArray(value) ? value[0] : value;
}

/** The caller's own credential (authorization / api-key), for a summary job that has no key of its own. */
export function credentialHeaders(headers: IncomingHttpHeaders): Record<string, string> {
  const credential: Record<string, string> = {};
  const authorization = firstHeader(headers, 'authorization');
  const apiKey = firstHeader(headers, 'api-key');
  if (authorization !== undefined) credential.authorization = authorization;
  if (apiKey !== undefined) credential['api-key'] = apiKey;
  return credential;
}
