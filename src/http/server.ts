import { randomUUID } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { performance } from 'node:perf_hooks';
import type { Duplex } from 'node:stream';
import { BodyTooLargeError, NotFoundError } from '../errors.js';
import type { Metrics } from '../ops/metrics.js';
import type { ConversationStore } from '../store/conversation-store.js';
import type { WebSocketPassThrough } from '../upstream/websocket-pass-through.js';
import { handleConversationApi, isConversationApiPath } from './conversation-api.js';
import { handleChatWithMemory, type ChatCompletionsDeps } from './chat-completions.js';
import { parseConversationId } from './conversation-identity.js';
import { firstHeader } from './request-headers.js';
import { matchChatCompletions, upstreamPathFor } from '../routing/api-paths.js';
import { passThrough } from './pass-through.js';
import type { RequestLog } from './request-log.js';
import { recordRequest } from './record-request.js';
import { errorBody, sendError } from './send-error.js';
import { sendJson } from './send-json.js';

export interface ServerDeps extends ChatCompletionsDeps {
  metrics: Metrics;
  /** For the conversation API. */
  store: ConversationStore;
  websockets: WebSocketPassThrough;
  isDraining: () => boolean;
  adminToken: string | undefined;
  /** Store tiers' states for /readyz. */
  readiness: () => { status: 'up' | 'degraded' | 'down'; tiers: Record<string, unknown> };
}

/** The HTTP front door: routes each request to memory, pass-through or ops, and logs one line per request. */
export function createContextdServer(deps: ServerDeps): Server {
  const server = createServer({ keepAliveTimeout: 65_000, requestTimeout: 0 }, (req, res) => {
    void handleRequest(req, res, deps);
  });
  server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    const path = req.url ?? '/';
    const upstreamPath = upstreamPathFor(deps.config.upstream.kind, path);
    if (upstreamPath === undefined) {
      socket.end('HTTP/1.1 404 Not Found\r\nconnection: close\r\ncontent-length: 0\r\n\r\n');
      return;
    }
    // The conversation header is contextd's own and never goes upstream; a WebSocket gets no memory.
    delete req.headers[deps.config.conversation.header];
    deps.logger.info({ kind: 'websocket', path: path.split('?')[0] }, 'websocket pass-through');
    deps.websockets.upgrade(req, socket, head, deps.upstream.targetUrl(upstreamPath));
  });
  server.on('clientError', (error, socket) => {
    if (socket.writable) socket.end('HTTP/1.1 400 Bad Request\r\nconnection: close\r\ncontent-length: 0\r\n\r\n');
    deps.logger.debug({ err: error }, 'malformed HTTP from a client');
  });
  return server;
}

async function handleRequest(req: IncomingMessage, res: ServerResponse, deps: ServerDeps): Promise<void> {
  const startedAt = performance.now();
  const log: RequestLog = { requestId: randomUUID(), kind: 'unmatched' };
  res.setHeader('x-contextd-request-id', log.requestId);
  if (deps.isDraining()) res.setHeader('connection', 'close');
  const url = req.url ?? '/';
  const path = url.split('?')[0]!;
  const upstreamPath = upstreamPathFor(deps.config.upstream.kind, url);
  try {
    if (path === '/healthz' && req.method === 'GET') {
      log.kind = 'ops';
      sendJson(res, 200, { status: 'ok' });
    } else if (path === '/readyz' && req.method === 'GET') {
      log.kind = 'ops';
      const report = deps.readiness();
      // Degraded still serves (from the tier that is up); down serves only per the routes' on_store_down.
      sendJson(res, deps.isDraining() || report.status === 'down' ? 503 : 200, deps.isDraining() ? { ...report, status: 'draining' } : report);
    } else if (path === '/metrics' && req.method === 'GET') {
      log.kind = 'ops';
      const text = await deps.metrics.registry.metrics();
      res.writeHead(200, { 'content-type': deps.metrics.registry.contentType });
      res.end(text);
    } else if (isConversationApiPath(path)) {
      log.kind = 'ops';
      await handleConversationApi(req, res, new URL(url, 'http://contextd'), {
        store: deps.store,
        tenantMode: deps.config.conversation.tenant,
        adminToken: deps.adminToken,
      });
    } else if (upstreamPath !== undefined) {
      const chat = req.method === 'POST' ? matchChatCompletions(path) : undefined;
      const conversation = chat === undefined ? undefined : parseConversationId(req.headers, deps.config.conversation.header);
      if (chat !== undefined && conversation !== undefined) {
        log.kind = 'memory';
        log.conversation = conversation;
        await handleChatWithMemory(req, res, { conversation, path, upstreamPath, deployment: chat.deployment }, deps, log);
      } else if (firstHeader(req.headers, deps.config.conversation.header) !== undefined) {
        // Memory was asked for on a path that has none: say so, rather than let anyone believe otherwise.
        log.kind = 'passthrough';
        log.memory = 'unsupported';
        log.memorySkipped = 'unsupported_path';
        await passThrough(req, res, upstreamPath, deps, log, { 'x-contextd-memory': 'unsupported' });
      } else {
        log.kind = 'passthrough';
        await passThrough(req, res, upstreamPath, deps, log);
      }
    } else {
      throw new NotFoundError(`${req.method} ${path}`);
    }
  } catch (error) {
    const { isUnexpected, body } = errorBody(error);
    if (log.kind === 'memory' && log.stored === undefined) {
      log.stored = 'not_stored';
      log.notStoredReason = log.clientAborted ? 'client disconnected' : (body.error.code ?? 'error');
    }
    if (isUnexpected && !log.clientAborted) deps.logger.error({ err: error, requestId: log.requestId }, 'request failed');
    const isTooLarge = error instanceof BodyTooLargeError;
    if (!log.clientAborted) sendError(res, error, isTooLarge ? { connection: 'close' } : {});
    // A request body left unread would be parsed as the next request on this
    // connection, and a client still sending would see a reset instead of our
    // answer: read and discard it, up to a bound beyond which the connection is cut.
    if (!req.complete) discardBody(req);
  } finally {
    if (!res.writableEnded && !res.destroyed) await new Promise((resolve) => res.once('close', resolve));
    recordRequest(deps.metrics, deps.logger, log, { method: req.method, path, status: log.clientAborted === true ? 499 : res.statusCode, durationMs: performance.now() - startedAt });
  }
}

const MAX_DISCARDED_BYTES = 64 * 1024 * 1024;

function discardBody(req: IncomingMessage): void {
  let discarded = 0;
  req.on('data', (chunk: Buffer) => {
    discarded += chunk.length;
    if (discarded > MAX_DISCARDED_BYTES) req.destroy();
  });
  req.resume();
}

