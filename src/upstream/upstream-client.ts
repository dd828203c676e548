import type { IncomingHttpHeaders } from 'node:http';
import type { Readable } from 'node:stream';
import { Agent, errors as undiciErrors, type Dispatcher } from 'undici';
import { UpstreamInterruptedError, UpstreamTimeoutError, UpstreamUnreachableError } from '../errors.js';

export interface UpstreamOptions {
  /** OpenAI-style base URL including its version prefix, no trailing slash. */
  baseUrl: string;
  timeoutMs: number;
  connectTimeoutMs: number;
}

export interface UpstreamRequest {
  method: string;
  /** The part after contextd's `/v1`, with its query string: `/chat/completions?x=1`. */
  pathAndQuery: string;
  headers: Record<string, string | string[]>;
  body: Readable | Buffer | string | undefined;
  /** Ends the call when it fires: what undici takes, an AbortSignal or an emitter of 'abort' with an `aborted` flag (client-departure.ts). */
  signal: NonNullable<Dispatcher.RequestOptions['signal']>;
}

export interface UpstreamResponse {
  status: number;
  headers: Record<string, string | string[]>;
  body: Readable;
}

// Headers that describe one hop, not the message (RFC 9110 §7.6.1), and must not be relayed.
const HOP_BY_HOP = new Set([
  'connection',
  'keep-alive',
  'proxy-connection',
  'proxy-authenticate',
  'proxy-authorization',
  'te',
  'trailer',
  'transfer-encoding',
  'upgrade',
  'host',
]);

/** Copies end-to-end headers, dropping hop-by-hop ones (and those the Connection header names) and `omit` (a few lower-case names). */
export function endToEndHeaders(
  headers: IncomingHttpHeaders | Record<string, string | string[] | undefined>,
  omit: readonly string[] = [],
): Record<string, string | string[]> {
  const named = connectionNamed(headers.connection);
  const out: Record<string, string | string[]> = {};
  for (const name in headers) {
    const value = headers[name];
    if (value === undefined || HOP_BY_HOP.has(name) || omit.includes(name) || named?.includes(name) === true) continue;
    out[name] = value;
  }
  return out;
}

/** The headers a Connection header names (hop-by-hop too); none for the usual keep-alive or close, or no header. */
function connectionNamed(connection: string | string[] | undefined): string[] | undefined {
  if (connection === undefined || connection === 'keep-alive' || connection === 'close') return undefined;
  return String(connection)
    .split(',')
    .map((h) => h.trim().toLowerCase())
    .filter(Boolean);
}

/** One pooled undici client for every upstream call, with one timeout policy. */
export class UpstreamClient {
  readonly #agent: Agent;
  readonly #origin: string;
  readonly #basePath: string;
  readonly #timeoutMs: number;

  constructor(options: UpstreamOptions) {
    const url = new URL(options.baseUrl);
    this.#origin = url.origin;
    this.#basePath = url.pathname.replace(/\/+$/, '');
    this.#timeoutMs = options.timeoutMs;
    this.#agent = new Agent({
      connect: { timeout: options.connectTimeoutMs },
      // headersTimeout: time to the response head (a model thinking counts);
      // bodyTimeout: longest silence between two body chunks.
      headersTimeout: options.timeoutMs,
      bodyTimeout: options.timeoutMs,
      keepAliveTimeout: 30_000,
    });
  }

  /** The upstream URL a contextd `/v1<rest>` path maps to (for logs and WebSocket targets). */
  targetUrl(pathAndQuery: string): string {
    return this.#origin + this.#basePath + pathAndQuery;
  }

  async send(request: UpstreamRequest): Promise<UpstreamResponse> {
    try {
      const response = await this.#agent.request({
        origin: this.#origin,
        path: this.#basePath + request.pathAndQuery,
        method: request.method as 'POST',
        headers: request.headers,
        body: request.body ?? null,
        signal: request.signal,
      });
      return {
        status: response.statusCode,
        headers: endToEndHeaders(response.headers),
        body: response.body,
      };
    } catch (error) {
      throw this.classify(error);
    }
  }

  /**
   * Maps a transport failure to contextd's error: a timeout is a 504, anything
   * else a 502 (unreachable before the reply began, interrupted after). Aborts stay aborts.
   */
  classify(error: unknown, phase: 'request' | 'reply' = 'request'): unknown {
    if (error instanceof undiciErrors.RequestAbortedError || (error as { name?: string }).name === 'AbortError') return error;
    if (
      error instanceof undiciErrors.HeadersTimeoutError ||
      error instanceof undiciErrors.BodyTimeoutError ||
      error instanceof undiciErrors.ConnectTimeoutError
    ) {
      return new UpstreamTimeoutError(this.#timeoutMs);
    }
    return phase === 'reply' ? new UpstreamInterruptedError(error) : new UpstreamUnreachableError(error);
  }

  async close(): Promise<void> {
    await this.#agent.close();
  }
}
