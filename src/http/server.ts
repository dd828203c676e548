import { randomUUID } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { performance } from 'node:perf_hooks';
import type { Duplex } from 'node:stream';
import { ContextdError, InvalidRequestError, NotFoundError } from '../errors.js';
import type { Metrics } from '../ops/metrics.js';
import type { ConversationDirectory } from '../store/conversation-directory.js';
import type { ConversationStore } from '../store/conversation-store.js';
import type { WebSocketPassThrough } from '../upstream/websocket-pass-through.js';
import { handleConversationApi, isConversationApiPath } from './conversation-api.js';
import type { ErasureDeps } from './conversation-erase.js';
import { isInspectorUiPath, type InspectorUi } from './inspector-ui.js';
import { handleWithMemory, type MemoryPathDeps } from './with-memory.js';
import { answerClientError } from './client-error.js';
import { parseConversationId } from './conversation-identity.js';
import { firstHeader } from './request-headers.js';
import { isResponsesCreate, matchChatCompletions, upstreamPathFor } from '../routing/api-paths.js';
import { passThrough } from './pass-through.js';
import type { RequestLog } from './request-log.js';
import { recordRequest } from './record-request.js';
import { answerBeforeBody, answerOnSocket } from './lingering-close.js';
import { errorBody, sendError } from './send-error.js';
import { sendJson } from './send-json.js';

export interface ServerDeps extends MemoryPathDeps {
  metrics: Metrics;
  /** For the conversation API. */
  store: ConversationStore;
  /** The conversation API's listing (GET /contextd/v1/conversations). */
  directory: ConversationDirectory;
  websockets: WebSocketPassThrough;
  isDraining: () => boolean;
  adminToken: string | undefined;
  /** What the conversation API's erasures wait for. */
  erasure: ErasureDeps;
  /** The inspector page at /contextd/ui/; undefined when `ui.enabled: false` (its paths are then unknown). */
  inspectorUi: InspectorUi | undefined;
  /** Some route emulates previous_response_id: a Responses API request without the header is read to find its route. */
  emulatesResponses: boolean;
  /** Store tiers' states for /readyz. */
  readiness: () => { status: 'up' | 'degraded' | 'down'; tiers: Record<string, unknown> };
}

/** The HTTP front door: routes each request to memory, pass-through or ops, and logs one line per request. */
export function createContextdServer(deps: ServerDeps): Server {
  const limits = deps.config.server;
  // The response each socket is writing, for 'clientError' (a timeout may strike while a request is being handled).
  const responses = new WeakMap<Duplex, ServerResponse>();
  const server = createServer(
    {
      // Both cover receiving the request only, never the reply, however long it streams.
      headersTimeout: limits.headerTimeoutMs,
      requestTimeout: limits.requestTimeoutMs,
      // Node checks them every 30 s by default, which would stretch a 10 s timeout to 40 s.
      connectionsCheckingInterval: Math.max(10, Math.min(1_000, Math.floor(shortestRequestTimeoutMs(limits) / 4))),
      keepAliveTimeout: limits.idleTimeoutMs,
    },
    (req, res) => {
      responses.set(req.socket, res);
      void handleRequest(req, res, deps);
    },
  );
  // Beyond it Node closes each new connection at once, unanswered (clients see a reset and may retry).
  server.maxConnections = limits.maxConnections;
  server.on('drop', () => deps.metrics.connectionsRefused.inc());
  deps.metrics.countOpenConnections(
    () => new Promise((resolve) => server.getConnections((error, count) => resolve(error === null ? count : 0))),
  );
  server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    const path = req.url ?? '/';
    const upstreamPath = upstreamPathFor(deps.config.upstream.kind, path);
    if (upstreamPath === undefined) {
      answerOnSocket(socket, new NotFoundError(`${req.method} ${path.split('?')[0]}`));
      return;
    }
    if (req.method !== 'GET' || req.headers.upgrade?.toLowerCase() !== 'websocket') {
      // Node hands every Upgrade request here, h2c included, and it cannot be served as plain HTTP/1.1 from here.
      answerOnSocket(socket, new InvalidRequestError('contextd upgrades only to WebSocket (GET with Upgrade: websocket); send other requests without Upgrade.', 'upgrade', 'invalid_http'));
      return;
    }
    // The conversation header is contextd's own and never goes upstream; a WebSocket gets no memory.
    delete req.headers[deps.config.conversation.header];
    deps.logger.info({ kind: 'websocket', path: path.split('?')[0] }, 'websocket pass-through');
    deps.websockets.upgrade(req, socket, head, deps.upstream.targetUrl(upstreamPath));
  });
  // contextd is not a forward proxy; without this listener Node would drop the connection unanswered.
  server.on('connect', (req: IncomingMessage, socket: Duplex) => answerOnSocket(socket, new NotFoundError(`${req.method} ${req.url ?? ''}`)));
  server.on('clientError', (error: NodeJS.ErrnoException, socket: Duplex) => {
    const answer = answerClientError(error, socket, responses.get(socket));
    deps.logger.debug({ err: error, status: answer?.status }, 'client error: request not readable or not received in time');
  });
  return server;
}

function shortestRequestTimeoutMs({ headerTimeoutMs, requestTimeoutMs }: { headerTimeoutMs: number; requestTimeoutMs: number }): number {
  return requestTimeoutMs === 0 ? headerTimeoutMs : Math.min(headerTimeoutMs, requestTimeoutMs);
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
        links: deps.links,
        directory: deps.directory,
        tenantMode: deps.config.conversation.tenant,
        adminToken: deps.adminToken,
        memory: deps,
        erasure: deps.erasure,
      });
    } else if (deps.inspectorUi !== undefined && isInspectorUiPath(path)) {
      log.kind = 'ops';
      deps.inspectorUi.handle(req, res, path);
    } else if (upstreamPath !== undefined) {
      const chat = req.method === 'POST' ? matchChatCompletions(path) : undefined;
      const api = chat !== undefined ? 'chat' : req.method === 'POST' && isResponsesCreate(path) ? 'responses' : undefined;
      const conversation = api === undefined ? undefined : parseConversationId(req.headers, deps.config.conversation.header);
      // On a route that emulates previous_response_id, a Responses API request needs no header (its route decides).
      if (api !== undefined && (conversation !== undefined || (api === 'responses' && deps.emulatesResponses))) {
        log.kind = 'memory';
        log.api = api;
        if (conversation !== undefined) log.conversation = conversation;
        await handleWithMemory(req, res, { api, conversation, path, upstreamPath, deployment: chat?.deployment }, deps, log);
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
    if (!log.clientAborted && !res.destroyed) {
      // A client still sending its body must be able to read the answer: the
      // connection closes only once the body is in (lingering-close.ts).
      if (req.complete || res.headersSent) sendError(res, error);
      else answerBeforeBody(req, res, error);
    }
  } finally {
    if (!res.writableEnded && !res.destroyed) await new Promise((resolve) => res.once('close', resolve));
    // A request 'clientError' cut off (a timeout, a malformed chunk) was destroyed with the error it was answered.
    const cutOff = req.errored instanceof ContextdError ? req.errored : undefined;
    if (cutOff !== undefined) delete log.clientAborted;
    const status = cutOff?.status ?? (log.clientAborted === true ? 499 : res.statusCode);
    recordRequest(deps.metrics, deps.logger, log, { method: req.method, path, status, durationMs: performance.now() - startedAt });
  }
}

