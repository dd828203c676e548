import type { ServerResponse } from 'node:http';
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
