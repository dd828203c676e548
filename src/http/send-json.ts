import type { ServerResponse } from 'node:http';

/** A complete JSON response: contextd's own answers (errors, ops endpoints). */
export function sendJson(res: ServerResponse, status: number, body: unknown, extraHeaders: Record<string, string> = {}): void {
  const json = JSON.stringify(body);
  res.writeHead(status, { ...extraHeaders, 'content-type': 'application/json', 'content-length': Buffer.byteLength(json) });
  res.end(json);
}
