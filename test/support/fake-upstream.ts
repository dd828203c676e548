// A real OpenAI-compatible HTTP server on 127.0.0.1:0 for integration tests and
// benchmarks. It answers chat completions and the Responses API (fake-responses.ts)
// the way OpenAI does (JSON or SSE chunk by chunk), and can also fail, stall, cut
// a stream or compress it, one scripted behaviour per request.

import { Buffer } from 'node:buffer';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import {
  createServer,
  type IncomingHttpHeaders,
  type IncomingMessage,
  type OutgoingHttpHeaders,
  type ServerResponse,
} from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { setImmediate as nextTurn, setTimeout as delay } from 'node:timers/promises';
import { brotliCompressSync, createBrotliCompress, createGzip, gzipSync, type BrotliCompress, type Gzip } from 'node:zlib';
import { WebSocketServer } from 'ws';
import { describeToolSequenceProblem, findToolSequenceProblem } from '../../src/context/tool-sequence.js';
import type { ChatMessage } from '../../src/domain.js';
import {
  conversationCallIds,
  failedStreamEvents,
  failureAsHttpError,
  isStoredRequest,
  lastUserInputText,
  refuseResponsesRequest,
  replyMeta,
  responseEvents,
  responseJson,
  type ResponsesStreamFailure,
} from './fake-responses.js';
import { waitFor } from './wait-for.js';

/** How the fake's response to a request ended (updated as it happens). */
export type ResponseOutcome = 'pending' | 'completed' | 'client_closed' | 'cut' | 'reset';

export interface RecordedRequest {
  method: string;
  /** Path without the query string, e.g. `/v1/chat/completions`. */
  path: string;
  /** The request target as received, query string included. */
  url: string;
  headers: IncomingHttpHeaders;
  rawBody: Buffer;
  /** The body parsed as JSON, or undefined when it is not JSON. */
  json: unknown;
  receivedAtMs: number;
  /** Set when the prompt broke OpenAI's tool-message (or, for Responses, function_call_output) rules (answered 400, as OpenAI does). */
  toolRuleViolation?: string;
  /** When the response ended (however it ended); undefined while it runs. */
  endedAtMs?: number;
  outcome: ResponseOutcome;
}

export type Compression = 'gzip' | 'br';

/** How a reply's bytes go out. "Chunks" are SSE events for streams; a JSON body is one chunk. */
export interface Delivery {
  delayBeforeHeadersMs?: number;
  delayBetweenChunksMs?: number;
  /**
   * Stop after this many chunks until `release()` (0 = right after the headers).
   * A non-streaming reply is held before its headers.
   */
  holdAfterChunks?: number;
  /**
   * Streams only: after the last chunk (`data: [DONE]`, or a Responses stream's terminal
   * event) keep the response open until `release()`, as an upstream whose end of stream
   * lags its last event.
   */
  holdEnd?: boolean;
  /**
   * Close the connection after this many chunks: no final chunk, no `[DONE]` (no `response.completed`).
   * A non-streaming reply is cut after half of its body (its content-length promised more).
   */
  cutAfterChunks?: number;
  /** Compress with this encoding if the request's accept-encoding allows it, else send identity. */
  compression?: Compression;
  /** Extra response headers; they override the fake's own. */
  headers?: Readonly<Record<string, string>>;
}

export interface ToolCallSpec {
  id?: string;
  name: string;
  /** A string is sent verbatim; an object is JSON-encoded. */
  arguments: string | Readonly<Record<string, unknown>>;
}

/** A Responses reply reports prompt_tokens as `input_tokens` and completion_tokens as `output_tokens`. */
export interface UsageOverride {
  prompt_tokens?: number;
  completion_tokens?: number;
}

interface ReplyOptions {
  /** Into how many deltas each streamed string (content, refusal, each tool call's arguments) is split. */
  chunkCount?: number;
  usage?: UsageOverride;
}

export type Behaviour =
  /** `content` omitted: `echo: <last user message text>`. An array gives the exact streamed deltas. */
  | (Delivery & ReplyOptions & { kind: 'text'; content?: string | readonly string[]; finishReason?: 'stop' | 'length' | 'content_filter' })
  | (Delivery & ReplyOptions & { kind: 'tool_calls'; toolCalls: readonly ToolCallSpec[]; content?: string })
  | (Delivery & ReplyOptions & { kind: 'refusal'; refusal: string | readonly string[] })
  | {
      kind: 'error';
      status: number;
      message?: string;
      type?: string;
      param?: string | null;
      code?: string | null;
      headers?: Readonly<Record<string, string>>;
      delayBeforeHeadersMs?: number;
    }
  /** The connection is reset before any response byte. */
  | { kind: 'reset'; delayBeforeHeadersMs?: number }
  /** Replays bytes as given (e.g. recorded SSE), one write per chunk; content-type defaults to text/event-stream. */
  | (Delivery & { kind: 'raw'; status?: number; chunks: readonly (string | Buffer)[] })
  /** Responses only (`response_failed`, `error_event`): a stream that fails after it began; see fake-responses.ts. */
  | (Delivery & Pick<ReplyOptions, 'chunkCount'> & ResponsesStreamFailure);

export type BehaviourSource = Behaviour | ((request: RecordedRequest) => Behaviour);

export interface FakeUpstream {
  /** Base URL including `/v1`, e.g. `http://127.0.0.1:PORT/v1`. */
  readonly url: string;
  /** `http://127.0.0.1:PORT` */
  readonly origin: string;
  readonly port: number;
  /** Everything received, in order (WebSocket upgrades included); `reset()` empties it in place. */
  readonly requests: RecordedRequest[];
  chatRequests(): RecordedRequest[];
  /** `POST …/responses` requests: OpenAI's Responses API, also at Azure's `/openai/responses` and `/openai/v1/responses`. */
  responsesRequests(): RecordedRequest[];
  /** Chat and Responses requests refused for breaking OpenAI's tool rules, since the start (reset() keeps them). */
  readonly toolRuleViolations: RecordedRequest[];
  /** Behaviours for the next chat completions and Responses requests, first in first out; when none is queued, the default answers. */
  enqueue(...behaviours: BehaviourSource[]): void;
  setDefault(behaviour: BehaviourSource): void;
  waitForRequests(count: number, timeoutMs?: number): Promise<void>;
  waitForChatRequests(count: number, timeoutMs?: number): Promise<void>;
  waitForResponsesRequests(count: number, timeoutMs?: number): Promise<void>;
  /** How many replies are waiting at a `holdAfterChunks` point. */
  heldCount(): number;
  waitForHeld(count?: number, timeoutMs?: number): Promise<void>;
  /** Lets every currently held reply continue. */
  release(): void;
  /** Forgets requests and queued behaviours, restores the initial default, releases holds. */
  reset(): void;
  close(): Promise<void>;
}

export interface FakeUpstreamOptions {
  defaultBehaviour?: BehaviourSource;
  /** Keep every request in `requests` (default true). Benchmarks turn it off so memory stays flat; counts still work. */
  recordRequests?: boolean;
  /**
   * Refuse a prompt that breaks OpenAI's tool-message rules with a 400, as OpenAI does (default true): for Responses,
   * a function_call_output whose call_id no earlier function_call made. False acts like a lenient server.
   */
  enforceToolRules?: boolean;
}

const FINGERPRINT = 'fp_fake_upstream';
const DEFAULT_MODEL = 'gpt-4o-mini';
const MAX_DEFAULT_CHUNKS = 8;
const MODEL_IDS = ['gpt-4o-mini', 'gpt-4o', 'gpt-4.1-mini', 'text-embedding-3-small'];
/** Stored responses a later request may name as previous_response_id; the oldest are forgotten past this, so a long benchmark's memory stays flat. */
const MAX_STORED_RESPONSES = 10_000;
const SSE_HEADERS: OutgoingHttpHeaders = { 'content-type': 'text/event-stream; charset=utf-8', 'cache-control': 'no-cache' };
const UNPARSEABLE_BODY = { message: 'We could not parse the JSON body of your request.', type: 'invalid_request_error', param: null, code: null };

export async function startFakeUpstream(options: FakeUpstreamOptions = {}): Promise<FakeUpstream> {
  const fake = new FakeUpstreamServer(options);
  await fake.listen();
  return fake;
}

interface ReplyContext {
  req: IncomingMessage;
  res: ServerResponse;
  record: RecordedRequest;
  requestId: string;
  sequence: number;
  signal: AbortSignal;
}

interface Usage {
  prompt_tokens: number;
  completion_tokens: number;
  total_tokens: number;
}

export interface AssistantReply {
  content: string | null;
  contentPieces: readonly string[];
  refusal: string | null;
  refusalPieces: readonly string[];
  toolCalls: readonly { id: string; name: string; arguments: string; argumentPieces: readonly string[] }[];
  finishReason: string;
  usage: Usage;
}

interface CompletionMeta {
  id: string;
  created: number;
  model: string;
}

class FakeUpstreamServer implements FakeUpstream {
  readonly requests: RecordedRequest[] = [];
  readonly toolRuleViolations: RecordedRequest[] = [];
  private readonly server = createServer({ noDelay: true, keepAlive: true });
  private readonly webSockets = new WebSocketServer({ noServer: true });
  private readonly sockets = new Set<Socket>();
  private readonly held = new Set<() => void>();
  private readonly queue: BehaviourSource[] = [];
  private readonly closing = new AbortController();
  private readonly initialDefault: BehaviourSource;
  private readonly recordRequests: boolean;
  private readonly enforceToolRules: boolean;
  /**
   * The responses this fake issued with store on, for previous_response_id: each with the function call_ids
   * of its conversation so far (the fake keeps nothing else of them). reset() keeps them, as OpenAI would.
   */
  private readonly storedResponses = new Map<string, readonly string[]>();
  /** Makes this fake's response ids its own, so one fake does not accept another's previous_response_id. */
  private readonly idTag = randomBytes(3).toString('hex');
  private defaultBehaviour: BehaviourSource;
  private sequence = 0;
  private receivedCount = 0;
  private receivedChatCount = 0;
  private receivedResponsesCount = 0;
  private closed: Promise<void> | undefined;
  port = 0;

  constructor(options: FakeUpstreamOptions) {
    this.initialDefault = options.defaultBehaviour ?? { kind: 'text' };
    this.defaultBehaviour = this.initialDefault;
    this.recordRequests = options.recordRequests ?? true;
    this.enforceToolRules = options.enforceToolRules ?? true;
    this.server.on('connection', (socket: Socket) => {
      this.sockets.add(socket);
      socket.on('close', () => this.sockets.delete(socket));
    });
    this.server.on('request', (req: IncomingMessage, res: ServerResponse) => {
      this.handle(req, res).catch((error: unknown) => {
        console.error('fake upstream: handler failed', error);
        res.destroy();
      });
    });
    this.server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => this.upgrade(req, socket, head));
  }

  get origin(): string {
    return `http://127.0.0.1:${this.port}`;
  }

  get url(): string {
    return `${this.origin}/v1`;
  }

  async listen(): Promise<void> {
    this.server.listen(0, '127.0.0.1');
    await once(this.server, 'listening');
    this.port = (this.server.address() as AddressInfo).port;
  }

  chatRequests(): RecordedRequest[] {
    return this.requests.filter(isChatRequest);
  }

  responsesRequests(): RecordedRequest[] {
    return this.requests.filter(isResponsesRequest);
  }

  enqueue(...behaviours: BehaviourSource[]): void {
    this.queue.push(...behaviours);
  }

  setDefault(behaviour: BehaviourSource): void {
    this.defaultBehaviour = behaviour;
  }

  waitForRequests(count: number, timeoutMs = 5_000): Promise<void> {
    return waitFor(() => this.receivedCount >= count, {
      timeoutMs,
      message: () => `${count} requests at the fake upstream (saw ${this.receivedCount})`,
    });
  }

  waitForChatRequests(count: number, timeoutMs = 5_000): Promise<void> {
    return waitFor(() => this.receivedChatCount >= count, {
      timeoutMs,
      message: () => `${count} chat completion requests at the fake upstream (saw ${this.receivedChatCount})`,
    });
  }

  waitForResponsesRequests(count: number, timeoutMs = 5_000): Promise<void> {
    return waitFor(() => this.receivedResponsesCount >= count, {
      timeoutMs,
      message: () => `${count} Responses requests at the fake upstream (saw ${this.receivedResponsesCount})`,
    });
  }

  heldCount(): number {
    return this.held.size;
  }

  waitForHeld(count = 1, timeoutMs = 5_000): Promise<void> {
    return waitFor(() => this.held.size >= count, {
      timeoutMs,
      message: () => `${count} held replies at the fake upstream (holding ${this.held.size})`,
    });
  }

  release(): void {
    for (const resume of [...this.held]) resume();
  }

  reset(): void {
    this.requests.length = 0;
    this.queue.length = 0;
    this.defaultBehaviour = this.initialDefault;
    this.receivedCount = 0;
    this.receivedChatCount = 0;
    this.receivedResponsesCount = 0;
    this.release();
  }

  close(): Promise<void> {
    this.closed ??= this.shutDown();
    return this.closed;
  }

  private async shutDown(): Promise<void> {
    this.closing.abort(new Error('fake upstream closed'));
    for (const client of this.webSockets.clients) client.terminate();
    this.webSockets.close();
    for (const socket of this.sockets) socket.destroy();
    await new Promise<void>((resolve) => this.server.close(() => resolve()));
  }

  private remember(record: RecordedRequest): void {
    this.receivedCount += 1;
    if (isChatRequest(record)) this.receivedChatCount += 1;
    if (isResponsesRequest(record)) this.receivedResponsesCount += 1;
    if (this.recordRequests) this.requests.push(record);
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const receivedAtMs = Date.now();
    const sequence = ++this.sequence;
    const url = req.url ?? '/';
    const record: RecordedRequest = {
      method: req.method ?? 'GET',
      path: pathOf(url),
      url,
      headers: req.headers,
      rawBody: Buffer.alloc(0),
      json: undefined,
      receivedAtMs,
      outcome: 'pending',
    };

    const parts: Buffer[] = [];
    try {
      for await (const part of req) parts.push(part as Buffer);
    } catch {
      record.rawBody = Buffer.concat(parts);
      record.outcome = 'client_closed';
      this.remember(record);
      return;
    }
    record.rawBody = parts.length === 1 ? (parts[0] as Buffer) : Buffer.concat(parts);
    record.json = parseJson(record.rawBody);
    this.remember(record);

    const replyAbort = new AbortController();
    res.on('close', () => {
      record.endedAtMs = Date.now();
      if (record.outcome === 'pending') record.outcome = res.writableFinished ? 'completed' : 'client_closed';
      if (!res.writableFinished) replyAbort.abort(new Error('client closed the connection'));
    });
    const ctx: ReplyContext = {
      req,
      res,
      record,
      requestId: `req_fake_${sequence}`,
      sequence,
      signal: AbortSignal.any([this.closing.signal, replyAbort.signal]),
    };

    try {
      if (isChatRequest(record)) await this.replyToChat(ctx);
      else if (isResponsesRequest(record)) await this.replyToResponses(ctx);
      else if (record.method === 'GET' && record.path === '/v1/models') sendJson(ctx, 200, modelList());
      else if (record.method === 'POST' && record.path === '/v1/embeddings') sendJson(ctx, 200, embeddings(record.json));
      else sendJson(ctx, 200, echoOf(record));
    } catch (error) {
      // A timer or hold cancelled because the client left or the fake closed: nothing left to answer.
      if (!ctx.signal.aborted) throw error;
    }
  }

  private async replyToChat(ctx: ReplyContext): Promise<void> {
    const body = ctx.record.json;
    if (!isObject(body)) {
      sendJson(ctx, 400, { error: UNPARSEABLE_BODY });
      return;
    }
    // OpenAI refuses a prompt that breaks its tool-message rules, and so does the
    // fake: every end-to-end test thereby checks every prompt contextd sends.
    const toolProblem = this.enforceToolRules && Array.isArray(body.messages) ? findToolSequenceProblem(body.messages as ChatMessage[]) : undefined;
    if (toolProblem !== undefined) {
      this.noteToolRuleViolation(ctx.record, describeToolSequenceProblem(toolProblem));
      sendJson(ctx, 400, { error: { message: `Invalid parameter: ${ctx.record.toolRuleViolation}.`, type: 'invalid_request_error', param: 'messages', code: null } });
      return;
    }
    const behaviour = this.nextBehaviour(ctx.record);

    switch (behaviour.kind) {
      case 'reset':
      case 'error':
      case 'raw':
        await this.answerAsScripted(ctx, behaviour);
        return;
      case 'text':
      case 'tool_calls':
      case 'refusal': {
        const reply = assistantReply(behaviour, () => lastUserText(body), ctx.record.rawBody.length, ctx.sequence);
        const meta: CompletionMeta = {
          id: `chatcmpl-fake-${ctx.sequence}`,
          created: Math.floor(ctx.record.receivedAtMs / 1000),
          model: typeof body.model === 'string' ? body.model : DEFAULT_MODEL,
        };
        if (body.stream === true) {
          const includeUsage = isObject(body.stream_options) && body.stream_options.include_usage === true;
          await this.deliver(ctx, behaviour, 200, SSE_HEADERS, completionEvents(reply, meta, includeUsage), true);
        } else {
          const json = JSON.stringify(completionJson(reply, meta));
          await this.deliver(ctx, behaviour, 200, { 'content-type': 'application/json' }, [json], false);
        }
        return;
      }
      case 'response_failed':
      case 'error_event':
        // A test that scripts a Responses failure for a chat request has a bug: say so rather than guess a chat equivalent.
        sendJson(ctx, 500, {
          error: { message: `fake upstream: behaviour '${behaviour.kind}' answers Responses requests only`, type: 'fake_upstream_misuse', param: null, code: null },
        });
        return;
    }
  }

  private async replyToResponses(ctx: ReplyContext): Promise<void> {
    const body = ctx.record.json;
    if (!isObject(body)) {
      sendJson(ctx, 400, { error: UNPARSEABLE_BODY });
      return;
    }
    const refusal = refuseResponsesRequest(body, this.storedResponses, this.enforceToolRules);
    if (refusal !== undefined) {
      if (refusal.toolRuleViolation !== undefined) this.noteToolRuleViolation(ctx.record, refusal.toolRuleViolation);
      sendJson(ctx, refusal.status, { error: refusal.error });
      return;
    }
    const behaviour = this.nextBehaviour(ctx.record);
    const meta = replyMeta(body, { idTag: this.idTag, sequence: ctx.sequence }, ctx.record.receivedAtMs, DEFAULT_MODEL);
    const isStream = body.stream === true;
    const echoText = (): string => lastUserInputText(body);

    switch (behaviour.kind) {
      case 'reset':
      case 'error':
      case 'raw':
        await this.answerAsScripted(ctx, behaviour);
        return;
      case 'text':
      case 'tool_calls':
      case 'refusal': {
        const reply = assistantReply(behaviour, echoText, ctx.record.rawBody.length, ctx.sequence);
        if (isStoredRequest(body)) this.storeResponse(meta.id, conversationCallIds(body, this.storedResponses, reply));
        if (isStream) await this.deliver(ctx, behaviour, 200, SSE_HEADERS, responseEvents(reply, meta), true);
        else await this.deliver(ctx, behaviour, 200, { 'content-type': 'application/json' }, [JSON.stringify(responseJson(reply, meta))], false);
        return;
      }
      case 'response_failed':
      case 'error_event': {
        if (!isStream) {
          const { status, body: error } = failureAsHttpError(behaviour);
          await this.deliver(ctx, behaviour, status, { 'content-type': 'application/json' }, [JSON.stringify(error)], false);
          return;
        }
        const partial =
          behaviour.partialContent === undefined
            ? undefined
            : assistantReply({ kind: 'text', content: behaviour.partialContent, chunkCount: behaviour.chunkCount }, echoText, ctx.record.rawBody.length, ctx.sequence);
        await this.deliver(ctx, behaviour, 200, SSE_HEADERS, failedStreamEvents(behaviour, partial, meta), true);
        return;
      }
    }
  }

  private nextBehaviour(record: RecordedRequest): Behaviour {
    const source = this.queue.shift() ?? this.defaultBehaviour;
    return typeof source === 'function' ? source(record) : source;
  }

  private noteToolRuleViolation(record: RecordedRequest, violation: string): void {
    record.toolRuleViolation = violation;
    this.toolRuleViolations.push(record);
  }

  private storeResponse(id: string, callIds: readonly string[]): void {
    this.storedResponses.set(id, callIds);
    if (this.storedResponses.size > MAX_STORED_RESPONSES) this.storedResponses.delete(this.storedResponses.keys().next().value as string);
  }

  /** The behaviours that read nothing of the request, answered alike for every API. */
  private async answerAsScripted(ctx: ReplyContext, behaviour: Extract<Behaviour, { kind: 'reset' | 'error' | 'raw' }>): Promise<void> {
    switch (behaviour.kind) {
      case 'reset':
        await pause(behaviour.delayBeforeHeadersMs, ctx.signal);
        ctx.record.outcome = 'reset';
        ctx.req.socket.resetAndDestroy();
        return;
      case 'error': {
        await pause(behaviour.delayBeforeHeadersMs, ctx.signal);
        const fields = defaultErrorFields(behaviour.status);
        const error = {
          message: behaviour.message ?? fields.message,
          type: behaviour.type ?? fields.type,
          param: behaviour.param ?? null,
          code: behaviour.code === undefined ? fields.code : behaviour.code,
        };
        sendJson(ctx, behaviour.status, { error }, behaviour.headers);
        return;
      }
      case 'raw':
        await this.deliver(ctx, behaviour, behaviour.status ?? 200, { 'content-type': 'text/event-stream; charset=utf-8' }, behaviour.chunks, true);
        return;
    }
  }

  private async deliver(
    ctx: ReplyContext,
    delivery: Delivery,
    status: number,
    contentHeaders: OutgoingHttpHeaders,
    chunks: readonly (string | Buffer)[],
    isStream: boolean,
  ): Promise<void> {
    const { res, signal } = ctx;
    await pause(delivery.delayBeforeHeadersMs, signal);
    const encoding = negotiateEncoding(delivery.compression, ctx.req.headers['accept-encoding']);
    const headers: OutgoingHttpHeaders = { ...contentHeaders, ...openAiHeaders(ctx.requestId) };
    if (encoding !== undefined) {
      headers['content-encoding'] = encoding;
      headers.vary = 'accept-encoding';
    }
    Object.assign(headers, delivery.headers);

    if (!isStream) {
      const plain = Buffer.concat(chunks.map((chunk) => (typeof chunk === 'string' ? Buffer.from(chunk) : chunk)));
      const body = encoding === 'gzip' ? gzipSync(plain) : encoding === 'br' ? brotliCompressSync(plain) : plain;
      headers['content-length'] = body.length;
      if (delivery.holdAfterChunks !== undefined) await this.hold(signal);
      res.writeHead(status, headers);
      if (delivery.cutAfterChunks !== undefined) {
        res.write(body.subarray(0, Math.floor(body.length / 2)));
        await cut(ctx);
        return;
      }
      res.end(body);
      return;
    }

    res.writeHead(status, headers);
    res.flushHeaders();
    const compressor = encoding === undefined ? undefined : encoding === 'gzip' ? createGzip() : createBrotliCompress();
    compressor?.pipe(res);
    try {
      for (let written = 0; ; written++) {
        if (written === delivery.cutAfterChunks) {
          await cut(ctx);
          return;
        }
        if (written === delivery.holdAfterChunks) await this.hold(signal);
        const chunk = chunks[written];
        if (chunk === undefined) break;
        // Each chunk is its own write on its own turn of the event loop, so the client sees chunks arrive separately.
        if (written > 0 && delivery.delayBetweenChunksMs) await delay(delivery.delayBetweenChunksMs, undefined, { signal });
        else await nextTurn(undefined, { signal });
        await writeChunk(compressor ?? res, chunk, compressor, signal);
      }
      if (delivery.holdEnd === true) await this.hold(signal);
      if (compressor === undefined) res.end();
      else compressor.end();
    } finally {
      if (signal.aborted) compressor?.destroy();
    }
  }

  private hold(signal: AbortSignal): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      if (signal.aborted) {
        reject(signal.reason);
        return;
      }
      const onAbort = (): void => {
        this.held.delete(resume);
        reject(signal.reason);
      };
      const resume = (): void => {
        this.held.delete(resume);
        signal.removeEventListener('abort', onAbort);
        resolve();
      };
      this.held.add(resume);
      signal.addEventListener('abort', onAbort, { once: true });
    });
  }

  private upgrade(req: IncomingMessage, socket: Duplex, head: Buffer): void {
    const url = req.url ?? '/';
    const record: RecordedRequest = {
      method: req.method ?? 'GET',
      path: pathOf(url),
      url,
      headers: req.headers,
      rawBody: Buffer.alloc(0),
      json: undefined,
      receivedAtMs: Date.now(),
      outcome: 'pending',
    };
    this.remember(record);
    if (record.path !== '/v1/realtime') {
      record.outcome = 'completed';
      socket.end('HTTP/1.1 404 Not Found\r\nConnection: close\r\nContent-Length: 0\r\n\r\n');
      return;
    }
    this.webSockets.handleUpgrade(req, socket, head, (ws) => {
      ws.on('message', (data, isBinary) => ws.send(data, { binary: isBinary }));
      ws.on('close', () => {
        record.outcome = 'completed';
      });
    });
  }
}

/** `/v1/chat/completions`, and Azure's `/…/deployments/{name}/chat/completions` and `/openai/v1/chat/completions`. */
function isChatRequest(record: RecordedRequest): boolean {
  return record.method === 'POST' && record.path.endsWith('/chat/completions');
}

/** `/v1/responses`, and Azure's `/openai/responses` and `/openai/v1/responses`. */
function isResponsesRequest(record: RecordedRequest): boolean {
  return record.method === 'POST' && record.path.endsWith('/responses');
}

function pathOf(url: string): string {
  const queryAt = url.indexOf('?');
  return queryAt === -1 ? url : url.slice(0, queryAt);
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function parseJson(body: Buffer): unknown {
  const first = body.find((byte) => byte !== 0x20 && byte !== 0x0a && byte !== 0x0d && byte !== 0x09);
  if (first !== 0x7b && first !== 0x5b) return undefined; // only `{` or `[` can start a JSON request body
  try {
    return JSON.parse(body.toString('utf8')) as unknown;
  } catch {
    return undefined;
  }
}

async function pause(ms: number | undefined, signal: AbortSignal): Promise<void> {
  if (ms !== undefined && ms > 0) await delay(ms, undefined, { signal });
}

async function writeChunk(
  sink: ServerResponse | Gzip | BrotliCompress,
  chunk: string | Buffer,
  compressor: Gzip | BrotliCompress | undefined,
  signal: AbortSignal,
): Promise<void> {
  const hasRoom = sink.write(chunk);
  // Flush per chunk so a compressed stream still streams, one event at a time.
  if (compressor !== undefined) await new Promise<void>((resolve) => compressor.flush(() => resolve()));
  if (!hasRoom) await once(sink, 'drain', { signal });
}

/** Ends the connection without finishing the response, after the bytes already written have gone out. */
async function cut(ctx: ReplyContext): Promise<void> {
  ctx.record.outcome = 'cut';
  await nextTurn();
  ctx.req.socket.destroySoon();
}

function negotiateEncoding(wanted: Compression | undefined, acceptEncoding: string | undefined): Compression | undefined {
  if (wanted === undefined || acceptEncoding === undefined) return undefined;
  const accepted = acceptEncoding.split(',').some((entry) => {
    const [name = '', ...params] = entry.split(';').map((part) => part.trim().toLowerCase());
    const refused = params.some((param) => /^q=0(\.0*)?$/.test(param));
    return (name === wanted || name === '*') && !refused;
  });
  return accepted ? wanted : undefined;
}

function openAiHeaders(requestId: string): OutgoingHttpHeaders {
  return { 'x-request-id': requestId, 'openai-version': '2020-10-01', 'openai-processing-ms': '1' };
}

function sendJson(ctx: ReplyContext, status: number, body: unknown, extraHeaders?: Readonly<Record<string, string>>): void {
  const json = Buffer.from(JSON.stringify(body));
  ctx.res.writeHead(status, {
    'content-type': 'application/json',
    'content-length': json.length,
    ...openAiHeaders(ctx.requestId),
    ...extraHeaders,
  });
  ctx.res.end(json);
}

function defaultErrorFields(status: number): { message: string; type: string; code: string | null } {
  if (status === 401) return { message: 'Incorrect API key provided.', type: 'invalid_request_error', code: 'invalid_api_key' };
  if (status === 404) return { message: 'The model does not exist or you do not have access to it.', type: 'invalid_request_error', code: 'model_not_found' };
  if (status === 429) return { message: 'Rate limit reached for requests.', type: 'requests', code: 'rate_limit_exceeded' };
  if (status >= 500) return { message: 'The server had an error while processing your request.', type: 'server_error', code: null };
  return { message: 'Invalid request.', type: 'invalid_request_error', code: null };
}

// The reply is computed from the behaviour and the request without tokenizing:
// benchmarks use this server, so its cost per request must not grow with the prompt.
// Chat completions and Responses share it, so the same behaviour says the same thing in both.
function assistantReply(
  behaviour: Extract<Behaviour, { kind: 'text' | 'tool_calls' | 'refusal' }>,
  echoText: () => string,
  bodyBytes: number,
  sequence: number,
): AssistantReply {
  const pieces = (text: string): string[] => splitIntoPieces(text, behaviour.chunkCount ?? defaultChunkCount(text));
  let content: string | null = null;
  let contentPieces: readonly string[] = [];
  let refusal: string | null = null;
  let refusalPieces: readonly string[] = [];
  let toolCalls: AssistantReply['toolCalls'] = [];
  let finishReason = 'stop';

  if (behaviour.kind === 'text') {
    const given = behaviour.content ?? `echo: ${echoText()}`;
    content = typeof given === 'string' ? given : given.join('');
    contentPieces = typeof given === 'string' ? pieces(given) : given;
    finishReason = behaviour.finishReason ?? 'stop';
  } else if (behaviour.kind === 'refusal') {
    refusal = typeof behaviour.refusal === 'string' ? behaviour.refusal : behaviour.refusal.join('');
    refusalPieces = typeof behaviour.refusal === 'string' ? pieces(behaviour.refusal) : behaviour.refusal;
  } else {
    if (behaviour.content !== undefined) {
      content = behaviour.content;
      contentPieces = pieces(behaviour.content);
    }
    toolCalls = behaviour.toolCalls.map((call, index) => {
      const args = typeof call.arguments === 'string' ? call.arguments : JSON.stringify(call.arguments);
      return { id: call.id ?? `call_fake_${sequence}_${index}`, name: call.name, arguments: args, argumentPieces: pieces(args) };
    });
    finishReason = 'tool_calls';
  }

  const replyChars = (content?.length ?? 0) + (refusal?.length ?? 0) + toolCalls.reduce((sum, call) => sum + call.name.length + call.arguments.length, 0);
  const promptTokens = behaviour.usage?.prompt_tokens ?? Math.max(1, Math.ceil(bodyBytes / 4));
  const completionTokens = behaviour.usage?.completion_tokens ?? Math.max(1, Math.ceil(replyChars / 4));
  const usage = { prompt_tokens: promptTokens, completion_tokens: completionTokens, total_tokens: promptTokens + completionTokens };
  return { content, contentPieces, refusal, refusalPieces, toolCalls, finishReason, usage };
}

function lastUserText(body: Record<string, unknown>): string {
  const messages = Array.isArray(body.messages) ? (body.messages as unknown[]) : [];
  for (let i = messages.length - 1; i >= 0; i--) {
    const message = messages[i];
    if (!isObject(message) || message.role !== 'user') continue;
    if (typeof message.content === 'string') return message.content;
    if (Array.isArray(message.content)) {
      return message.content
        .filter((part): part is { text: string } => isObject(part) && typeof part.text === 'string')
        .map((part) => part.text)
        .join(' ');
    }
    return '';
  }
  return '';
}

function defaultChunkCount(text: string): number {
  // Roughly a token (4 characters) per delta, but never more than a few deltas, so long replies cost the same as short ones.
  return Math.min(MAX_DEFAULT_CHUNKS, Math.ceil(text.length / 4));
}

function splitIntoPieces(text: string, pieceCount: number): string[] {
  const count = Math.max(1, Math.min(pieceCount, text.length));
  const pieces: string[] = [];
  let start = 0;
  for (let i = 1; i <= count && start < text.length; i++) {
    let end = i === count ? text.length : Math.max(start + 1, Math.round((text.length * i) / count));
    // Never separate a surrogate pair: each delta must be valid UTF-16 on its own.
    const last = text.charCodeAt(end - 1);
    if (end < text.length && last >= 0xd800 && last <= 0xdbff) end += 1;
    pieces.push(text.slice(start, end));
    start = end;
  }
  return pieces;
}

function usageJson(usage: Usage): Record<string, unknown> {
  return {
    ...usage,
    prompt_tokens_details: { cached_tokens: 0, audio_tokens: 0 },
    completion_tokens_details: { reasoning_tokens: 0, audio_tokens: 0, accepted_prediction_tokens: 0, rejected_prediction_tokens: 0 },
  };
}

function completionJson(reply: AssistantReply, meta: CompletionMeta): Record<string, unknown> {
  const message: Record<string, unknown> = { role: 'assistant', content: reply.content, refusal: reply.refusal };
  if (reply.toolCalls.length > 0) {
    message.tool_calls = reply.toolCalls.map((call) => ({
      id: call.id,
      type: 'function',
      function: { name: call.name, arguments: call.arguments },
    }));
  }
  message.annotations = [];
  return {
    id: meta.id,
    object: 'chat.completion',
    created: meta.created,
    model: meta.model,
    choices: [{ index: 0, message, logprobs: null, finish_reason: reply.finishReason }],
    usage: usageJson(reply.usage),
    service_tier: 'default',
    system_fingerprint: FINGERPRINT,
  };
}

/** The SSE events OpenAI sends for this reply, `data: [DONE]` included, one string per event. */
function completionEvents(reply: AssistantReply, meta: CompletionMeta, includeUsage: boolean): string[] {
  const chunk = (choices: unknown[], usage: Usage | null = null): Record<string, unknown> => ({
    id: meta.id,
    object: 'chat.completion.chunk',
    created: meta.created,
    model: meta.model,
    service_tier: 'default',
    system_fingerprint: FINGERPRINT,
    choices,
    ...(includeUsage ? { usage: usage === null ? null : usageJson(usage) } : {}),
  });
  const choice = (delta: Record<string, unknown>, finishReason: string | null = null): Record<string, unknown> => ({
    index: 0,
    delta,
    logprobs: null,
    finish_reason: finishReason,
  });

  const deltas: Record<string, unknown>[] = [];
  if (reply.refusal !== null) {
    deltas.push({ role: 'assistant', content: null, refusal: '' });
    for (const piece of reply.refusalPieces) deltas.push({ refusal: piece });
  } else if (reply.content !== null || reply.toolCalls.length === 0) {
    deltas.push({ role: 'assistant', content: '', refusal: null });
    for (const piece of reply.contentPieces) deltas.push({ content: piece });
  }
  reply.toolCalls.forEach((call, index) => {
    // Per index, the first delta names the call and later ones carry only argument fragments.
    const opening = { index, id: call.id, type: 'function', function: { name: call.name, arguments: '' } };
    if (deltas.length === 0) deltas.push({ role: 'assistant', content: null, tool_calls: [opening], refusal: null });
    else deltas.push({ tool_calls: [opening] });
    for (const piece of call.argumentPieces) deltas.push({ tool_calls: [{ index, function: { arguments: piece } }] });
  });

  const events = deltas.map((delta) => chunk([choice(delta)]));
  events.push(chunk([choice({}, reply.finishReason)]));
  if (includeUsage) events.push(chunk([], reply.usage));
  return [...events.map((event) => `data: ${JSON.stringify(event)}\n\n`), 'data: [DONE]\n\n'];
}

function modelList(): Record<string, unknown> {
  return {
    object: 'list',
    data: MODEL_IDS.map((id) => ({ id, object: 'model', created: 1_700_000_000, owned_by: 'fake-upstream' })),
  };
}

function embeddings(body: unknown): Record<string, unknown> {
  const request = isObject(body) ? body : {};
  const input = request.input;
  // A string, an array of strings, an array of token ids, or an array of token-id arrays.
  const inputs: unknown[] = Array.isArray(input) && input.length > 0 && typeof input[0] !== 'number' ? input : [input ?? ''];
  const dimensions = typeof request.dimensions === 'number' ? request.dimensions : 8;
  const asBase64 = request.encoding_format === 'base64';
  const data = inputs.map((item, index) => {
    const seed = typeof item === 'string' ? item.length : Array.isArray(item) ? item.length : 0;
    const vector = Float32Array.from({ length: dimensions }, (_, j) => ((seed + j) % 17) / 17);
    const embedding = asBase64 ? Buffer.from(vector.buffer).toString('base64') : Array.from(vector);
    return { object: 'embedding', index, embedding };
  });
  const promptTokens = inputs.length;
  return {
    object: 'list',
    data,
    model: typeof request.model === 'string' ? request.model : 'text-embedding-3-small',
    usage: { prompt_tokens: promptTokens, total_tokens: promptTokens },
  };
}

function echoOf(record: RecordedRequest): Record<string, unknown> {
  return {
    method: record.method,
    path: record.path,
    url: record.url,
    headers: record.headers,
    body: record.rawBody.toString('utf8'),
    json: record.json ?? null,
  };
}
