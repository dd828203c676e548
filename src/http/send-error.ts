import { STATUS_CODES, type ServerResponse } from 'node:http';
import { ContextdError } from '../errors.js';
import { sendJson } from './send-json.js';

export interface OpenAIErrorBody {
  error: { message: string; type: string; param: string | null; code: string | null };
}

export function errorBody(error: unknown): { status: number; body: OpenAIErrorBody; isUnexpected: boolean } {
  if (error instanceof ContextdError) {
    return {
      status: error.status,
      body: { error: { message: error.message, type: error.type, param: error.param, code: error.code } },
      isUnexpected: false,
    };
  }
  // Unknown errors are logged in full by the caller; the client learns nothing internal.
  return {
    status: 500,
    body: { error: { message: 'contextd hit an internal error.', type: 'server_error', param: null, code: 'internal_error' } },
    isUnexpected: true,
  };
}

/**
 * The one place an error becomes a response. Before the head is sent: an
 * OpenAI-shaped JSON error. Inside an SSE stream: one `data:` event carrying
 * the error, then the end. Inside any other body: the connection is cut, so the
 * client cannot mistake a truncated body for a whole one.
 */
export function sendError(res: ServerResponse, error: unknown, extraHeaders: Record<string, string> = {}): void {
  const { status, body } = errorBody(error);
  if (res.destroyed || res.writableEnded) return;
  if (!res.headersSent) {
    sendJson(res, status, body, extraHeaders);
    return;
  }
  const contentType = String(res.getHeader('content-type') ?? '');
  const encoding = res.getHeader('content-encoding');
  if (contentType.startsWith('text/event-stream') && (encoding === undefined || encoding === 'identity')) {
    res.end(`data: ${JSON.stringify(body)}\n\n`);
    return;
  }
  res.destroy();
}

/**
 * The error as a whole response, head and every byte of the body, on a
 * response left open: the caller ends it once it is done reading the request
 * (http/lingering-close.ts). Call it before the head is sent.
 */
export function sendErrorLeavingOpen(res: ServerResponse, error: unknown, extraHeaders: Record<string, string> = {}): void {
  const { status, body } = errorBody(error);
  const json = JSON.stringify(body);
  res.writeHead(status, { ...extraHeaders, 'content-type': 'application/json', 'content-length': Buffer.byteLength(json) });
  res.write(json);
}

/**
 * The error as raw HTTP/1.1 bytes, with `connection: close`, for the socket
 * of a request Node's parser gave up on: there is no response object then.
 */
export function rawErrorResponse(error: unknown): string {
  const { status, body } = errorBody(error);
  const json = JSON.stringify(body);
  return (
    `HTTP/1.1 ${status} ${STATUS_CODES[status] ?? 'Error'}\r\n` +
    `content-type: application/json\r\ncontent-length: ${Buffer.byteLength(json)}\r\nconnection: close\r\n\r\n${json}`
  );
}
