// Issue 12: whatever a client sends, or fails to send, it gets a clear 4xx in
// OpenAI's error shape, never a 500 and never a connection held forever.
// Raw node:net sockets play the clients no library would be (idle, trickling,
// unknown methods); fetch and the openai SDK play the ones that must be able
// to read a 413. Timeouts are configured in hundreds of milliseconds, and the
// tests wait for what happens, checking when it happened afterwards.
import { connect, type Socket } from 'node:net';
import { APIError } from 'openai';
import { afterAll, beforeAll, beforeEach, describe, expect, test } from 'vitest';
import { ensureBuilt, startContextd, stopAll, type ContextdProcess } from '../support/contextd-process.js';
import { startFakeUpstream, type FakeUpstream } from '../support/fake-upstream.js';
import { waitFor } from '../support/wait-for.js';
import { API_KEY, clientFor, contextdConfig } from './harness.js';

const HEADER_TIMEOUT_MS = 300;
const REQUEST_TIMEOUT_MS = 800;
const IDLE_TIMEOUT_MS = 600;
const BODY_LIMIT_BYTES = 256 * 1024;

let upstream: FakeUpstream;
/** Short timeouts, for the slow and idle clients. */
let slow: ContextdProcess;
/** Default timeouts, body_limit 256kb, for everything else. */
let contextd: ContextdProcess;
let conversationNo = 0;
const newConversation = (): string => `hostile-${process.pid}-${++conversationNo}`;

beforeAll(async () => {
  await ensureBuilt();
  upstream = await startFakeUpstream();
  [slow, contextd] = await Promise.all([
    startContextd({
      config: contextdConfig(upstream, {
        server: { host: '127.0.0.1', header_timeout: `${HEADER_TIMEOUT_MS}ms`, request_timeout: `${REQUEST_TIMEOUT_MS}ms`, idle_timeout: `${IDLE_TIMEOUT_MS}ms` },
      }),
    }),
    startContextd({ config: contextdConfig(upstream) }),
  ]);
});
beforeEach(() => upstream.reset());
afterAll(async () => {
  await stopAll();
  await upstream.close();
});

// ---- a raw client ----

interface RawResponse {
  status: number;
  headers: Record<string, string>;
  body: string;
}

/** A plain TCP connection that records what it receives and when it closed. */
class RawConnection {
  readonly openedAtMs = performance.now();
  closedAtMs: number | undefined;
  error: string | undefined;
  #received = Buffer.alloc(0);
  #timers = new Set<NodeJS.Timeout>();

  private constructor(readonly socket: Socket) {
    socket.on('data', (chunk: Buffer) => (this.#received = Buffer.concat([this.#received, chunk])));
    socket.on('error', (error: NodeJS.ErrnoException) => (this.error = error.code ?? error.message));
    socket.on('close', () => {
      this.closedAtMs = performance.now();
      for (const timer of this.#timers) clearInterval(timer);
    });
  }

  static open(port: number): Promise<RawConnection> {
    return new Promise((resolve, reject) => {
      const socket = connect(port, '127.0.0.1');
      socket.once('connect', () => resolve(new RawConnection(socket)));
      socket.once('error', reject);
    });
  }

  get text(): string {
    return this.#received.toString('latin1');
  }

  get isClosed(): boolean {
    return this.closedAtMs !== undefined;
  }

  send(data: string | Buffer): void {
    if (!this.socket.destroyed) this.socket.write(data);
  }

  /** Writes `data` one byte every `intervalMs`, until it is all sent or the connection closes. */
  trickle(data: string, intervalMs: number): void {
    let next = 0;
    const timer = setInterval(() => {
      if (next >= data.length || this.socket.destroyed || this.socket.writableEnded) clearInterval(timer);
      else this.send(data[next++]!);
    }, intervalMs);
    this.#timers.add(timer);
  }

  /** The responses received so far that are whole (by content-length, chunked, or up to the close). */
  responses(): RawResponse[] {
    const out: RawResponse[] = [];
    let rest = this.#received;
    for (;;) {
      const headEnd = rest.indexOf('\r\n\r\n');
      if (headEnd < 0) return out;
      const [statusLine = '', ...headerLines] = rest.subarray(0, headEnd).toString('latin1').split('\r\n');
      const headers = Object.fromEntries(headerLines.map((line) => [line.slice(0, line.indexOf(':')).toLowerCase(), line.slice(line.indexOf(':') + 1).trim()]));
      const framed = bodyOf(rest.subarray(headEnd + 4), headers, this.isClosed);
      if (framed === undefined) return out;
      out.push({ status: Number(statusLine.split(' ')[1]), headers, body: framed.body.toString('utf8') });
      rest = rest.subarray(headEnd + 4 + framed.length);
    }
  }

  async nextResponse(index: number, timeoutMs = 5_000): Promise<RawResponse> {
    await waitFor(() => this.responses().length > index, { timeoutMs, message: () => `response ${index + 1}; received ${JSON.stringify(this.text.slice(0, 300))}` });
    return this.responses()[index]!;
  }

  async waitClosed(timeoutMs = 5_000): Promise<number> {
    await waitFor(() => this.isClosed, { timeoutMs, message: () => `the connection to close; received ${JSON.stringify(this.text.slice(0, 300))}` });
    return this.closedAtMs! - this.openedAtMs;
  }

  close(): void {
    this.socket.destroy();
  }
}

/** A response body by its framing, with how many bytes it took; undefined while incomplete. */
function bodyOf(data: Buffer, headers: Record<string, string>, isClosed: boolean): { body: Buffer; length: number } | undefined {
  if (headers['transfer-encoding']?.toLowerCase() === 'chunked') {
    const chunks: Buffer[] = [];
    let at = 0;
    for (;;) {
      const lineEnd = data.indexOf('\r\n', at);
      if (lineEnd < 0) return undefined;
      const size = Number.parseInt(data.subarray(at, lineEnd).toString('latin1'), 16);
      if (data.length < lineEnd + 2 + size + 2) return undefined;
      if (size === 0) return { body: Buffer.concat(chunks), length: lineEnd + 4 };
      chunks.push(data.subarray(lineEnd + 2, lineEnd + 2 + size));
      at = lineEnd + 2 + size + 2;
    }
  }
  if (headers['content-length'] !== undefined) {
    const length = Number(headers['content-length']);
    return data.length < length ? undefined : { body: data.subarray(0, length), length };
  }
  return isClosed ? { body: data, length: data.length } : undefined;
}

/** Sends one request on a fresh connection and reads its one response, up to the close. */
async function rawExchange(port: number, request: string | Buffer): Promise<RawResponse> {
  const connection = await RawConnection.open(port);
  connection.send(request);
  await connection.waitClosed();
  const [response] = connection.responses();
  if (response === undefined) throw new Error(`no whole response; received ${JSON.stringify(connection.text.slice(0, 300))} (${connection.error ?? 'no error'})`);
  return response;
}

function expectOpenAIError(response: { status: number; body: string }, status: number, code?: string): void {
  expect(response.status).toBe(status);
  const parsed = JSON.parse(response.body) as { error: Record<string, unknown> };
  expect(Object.keys(parsed.error).sort()).toEqual(['code', 'message', 'param', 'type']);
  expect(typeof parsed.error.message).toBe('string');
  if (code !== undefined) expect(parsed.error.code).toBe(code);
}

const chatJson = (content: string): string => JSON.stringify({ model: 'gpt-4o', messages: [{ role: 'user', content }] });

async function requestLog(process: ContextdProcess, path: string, status: number): Promise<Record<string, unknown>> {
  return process.waitForLog((line) => line.msg === 'request' && line.path === path && line.status === status);
}

// ---- slow and idle clients ----

describe(`slow and idle clients (header_timeout ${HEADER_TIMEOUT_MS}ms, request_timeout ${REQUEST_TIMEOUT_MS}ms, idle_timeout ${IDLE_TIMEOUT_MS}ms)`, () => {
  test('a connection that sends nothing is answered 408 and closed after header_timeout', async () => {
    const connection = await RawConnection.open(slow.port);
    const openMs = await connection.waitClosed();
    expect(openMs).toBeGreaterThanOrEqual(HEADER_TIMEOUT_MS);
    expectOpenAIError(connection.responses()[0]!, 408, 'request_timeout');
  });

  test('headers sent a byte at a time are cut off after header_timeout with a 408', async () => {
    const connection = await RawConnection.open(slow.port);
    const request = `GET /healthz HTTP/1.1\r\nHost: contextd\r\nX-Padding: ${'p'.repeat(60)}\r\n\r\n`;
    connection.trickle(request, 20); // about 1.8 s to send it whole
    const openMs = await connection.waitClosed();
    expect(openMs).toBeGreaterThanOrEqual(HEADER_TIMEOUT_MS);
    expectOpenAIError(connection.responses()[0]!, 408, 'request_timeout');
  });

  test.each([
    { name: 'the memory path', path: '/v1/chat/completions', headers: `x-conversation-id: trickle-${process.pid}\r\n` },
    { name: 'a pass-through upload', path: '/v1/files', headers: '' },
  ])('a body sent a byte at a time on $name is cut off after request_timeout: 408, nothing answered by the upstream', async ({ path, headers }) => {
    const connection = await RawConnection.open(slow.port);
    connection.send(`POST ${path} HTTP/1.1\r\nHost: contextd\r\nAuthorization: Bearer ${API_KEY}\r\nContent-Type: application/json\r\n${headers}Content-Length: 1000\r\n\r\n`);
    connection.trickle('x'.repeat(1000), 20);
    const openMs = await connection.waitClosed();
    expect(openMs).toBeGreaterThanOrEqual(REQUEST_TIMEOUT_MS);
    // The 408 is written before the close; a byte the client sends meanwhile may still turn the close into a reset.
    if (connection.text !== '') expectOpenAIError(connection.responses()[0]!, 408, 'request_timeout');
    expect(await requestLog(slow, path, 408)).toBeDefined();
    expect(upstream.chatRequests()).toHaveLength(0);
    expect(upstream.requests.every((r) => r.outcome !== 'completed')).toBe(true);
  });

  test.each([
    { name: 'with memory', conversation: newConversation() },
    { name: 'passed through', conversation: undefined },
  ])('a streamed reply lasting longer than request_timeout is not cut ($name)', async ({ conversation }) => {
    const pieces = Array.from({ length: 10 }, (_, i) => `piece ${i}. `);
    upstream.enqueue({ kind: 'text', content: pieces, delayBetweenChunksMs: 150 });
    const startedMs = performance.now();
    const stream = await clientFor(slow, conversation).chat.completions.create({ model: 'gpt-4o', stream: true, messages: [{ role: 'user', content: 'take your time' }] });
    let text = '';
    for await (const chunk of stream) text += chunk.choices[0]?.delta.content ?? '';
    expect(text).toBe(pieces.join(''));
    expect(performance.now() - startedMs).toBeGreaterThan(REQUEST_TIMEOUT_MS);
  });

  test('a reply whose head comes after request_timeout is not cut either', async () => {
    upstream.enqueue({ kind: 'text', content: 'late but whole', delayBeforeHeadersMs: REQUEST_TIMEOUT_MS + 400 });
    const reply = await clientFor(slow, newConversation()).chat.completions.create({ model: 'gpt-4o', messages: [{ role: 'user', content: 'think first' }] });
    expect(reply.choices[0]!.message.content).toBe('late but whole');
  });

  test('an idle keep-alive connection outlives header_timeout and is closed after idle_timeout, without a 408', async () => {
    const connection = await RawConnection.open(slow.port);
    connection.send('GET /healthz HTTP/1.1\r\nHost: contextd\r\n\r\n');
    const response = await connection.nextResponse(0);
    expect(response.status).toBe(200);
    expect(response.headers.connection?.toLowerCase()).toBe('keep-alive');
    const answeredAtMs = performance.now();
    await connection.waitClosed();
    expect(connection.closedAtMs! - answeredAtMs).toBeGreaterThanOrEqual(IDLE_TIMEOUT_MS - 50);
    expect(connection.responses()).toHaveLength(1);
    // Not the text '408' anywhere: a request id or a date can hold those digits.
    expect(connection.text).not.toMatch(/HTTP\/1\.1 408/);
  });
});

// ---- a body over body_limit ----

describe('a body over server.body_limit: the 413 is readable every time', () => {
  const oversized = chatJson('x'.repeat(BODY_LIMIT_BYTES + 5 * 1024 * 1024));
  const ATTEMPTS = 20;

  test(`with a Content-Length, ${ATTEMPTS} times over with fetch`, async () => {
    const outcomes: string[] = [];
    for (let i = 0; i < ATTEMPTS; i++) {
      try {
        const res = await fetch(`${contextd.baseURL}/chat/completions`, {
          method: 'POST',
          headers: { authorization: `Bearer ${API_KEY}`, 'content-type': 'application/json', 'x-conversation-id': newConversation() },
          body: oversized,
        });
        const body = await res.text();
        expectOpenAIError({ status: res.status, body }, 413, 'request_too_large');
        expect(res.headers.get('connection')).toBe('close');
        outcomes.push('413');
      } catch (error) {
        outcomes.push(String((error as { cause?: { code?: string } }).cause?.code ?? error));
      }
    }
    expect(outcomes).toEqual(Array<string>(ATTEMPTS).fill('413'));
    expect(upstream.chatRequests()).toHaveLength(0);
  });

  test(`with a Content-Length, ${ATTEMPTS} times over with the openai SDK`, async () => {
    const outcomes: string[] = [];
    const content = 'x'.repeat(BODY_LIMIT_BYTES + 5 * 1024 * 1024);
    for (let i = 0; i < ATTEMPTS; i++) {
      try {
        await clientFor(contextd, newConversation()).chat.completions.create({ model: 'gpt-4o', messages: [{ role: 'user', content }] });
        outcomes.push('answered');
      } catch (error) {
        outcomes.push(error instanceof APIError && error.status === 413 && error.code === 'request_too_large' ? '413' : `${(error as Error).constructor.name}: ${(error as Error).message}`);
      }
    }
    expect(outcomes).toEqual(Array<string>(ATTEMPTS).fill('413'));
  });

  test('without a Content-Length (chunked), the 413 comes once the limit is crossed', async () => {
    for (let i = 0; i < 5; i++) {
      const bytes = new TextEncoder().encode(oversized);
      const body = new ReadableStream<Uint8Array>({
        start(controller) {
          for (let at = 0; at < bytes.length; at += 64 * 1024) controller.enqueue(bytes.subarray(at, at + 64 * 1024));
          controller.close();
        },
      });
      const res = await fetch(`${contextd.baseURL}/chat/completions`, {
        method: 'POST',
        headers: { authorization: `Bearer ${API_KEY}`, 'content-type': 'application/json', 'x-conversation-id': newConversation() },
        body,
        duplex: 'half',
      } as RequestInit);
      expectOpenAIError({ status: res.status, body: await res.text() }, 413, 'request_too_large');
    }
  });

  test('afterwards the process serves as before', async () => {
    const reply = await clientFor(contextd, newConversation()).chat.completions.create({ model: 'gpt-4o', messages: [{ role: 'user', content: 'small' }] });
    expect(reply.choices[0]!.message.content).toBe('echo: small');
  });
});

// ---- everything else reachable from outside ----

describe('everything else a client can send gets a 4xx, never a 5xx from contextd', () => {
  test('headers over 16 KB → 431 with a JSON body and connection: close (fetch)', async () => {
    for (let i = 0; i < 5; i++) {
      const res = await fetch(`${contextd.baseURL}/models`, { headers: { authorization: `Bearer ${API_KEY}`, 'x-big': 'b'.repeat(32 * 1024) } });
      expectOpenAIError({ status: res.status, body: await res.text() }, 431, 'request_headers_too_large');
      expect(res.headers.get('connection')).toBe('close');
    }
    expect(upstream.requests).toHaveLength(0);
  });

  test('headers over 16 KB followed by a 2 MB body → 431, read before the close', async () => {
    const head = `POST /v1/chat/completions HTTP/1.1\r\nHost: contextd\r\nX-Big: ${'b'.repeat(40 * 1024)}\r\nContent-Length: ${2 * 1024 * 1024}\r\n\r\n`;
    const response = await rawExchange(contextd.port, Buffer.concat([Buffer.from(head), Buffer.alloc(2 * 1024 * 1024, 'x')]));
    expectOpenAIError(response, 431, 'request_headers_too_large');
  });

  test.each([
    { method: 'GET', path: '/contextd/v1/conversations/%E0%A4%A/messages' },
    { method: 'GET', path: '/contextd/v1/conversations/%/messages' },
    { method: 'DELETE', path: '/contextd/v1/conversations/%ZZ' },
  ])('malformed percent-encoding in the conversation API: $method $path → 400 invalid_conversation_id', async ({ method, path }) => {
    const res = await fetch(`${contextd.url}${path}`, { method, headers: { authorization: `Bearer ${API_KEY}` } });
    expectOpenAIError({ status: res.status, body: await res.text() }, 400, 'invalid_conversation_id');
  });

  test.each([
    { path: '/healthz?%', status: 200 },
    { path: '/readyz?%E0%A4%A&&=&', status: 200 },
    { path: '/metrics?a=%ZZ', status: 200 },
    { path: '/contextd/v1/conversations/c1/messages?after=%FF', status: 400 },
    { path: '/contextd/v1/conversations/c1/messages?after=1e400', status: 400 },
    { path: '/contextd/v1/conversations/c1/messages?limit=-1', status: 400 },
    { path: '/contextd/v1/conversations/c1/messages?after=99999999999999999999', status: 200 },
    { path: '/contextd/v1/conversations/c1/messages?limit=99999999999999999999&after=', status: 404 },
    { path: '/v1/models?%E0%A4%A=%&x', status: 200 },
    { path: '/nowhere?%E0%A4%A', status: 404 },
  ])('an odd query string: GET $path → $status', async ({ path, status }) => {
    const res = await fetch(`${contextd.url}${path}`, { headers: { authorization: `Bearer ${API_KEY}` } });
    const body = await res.text();
    expect(res.status).toBe(status);
    if (status >= 400) expectOpenAIError({ status: res.status, body }, status);
  });

  test('an odd query string on the memory path goes upstream as sent', async () => {
    const res = await fetch(`${contextd.baseURL}/chat/completions?%E0%A4%A=%&x`, {
      method: 'POST',
      headers: { authorization: `Bearer ${API_KEY}`, 'content-type': 'application/json', 'x-conversation-id': newConversation() },
      body: chatJson('odd query'),
    });
    expect(res.status).toBe(200);
    expect(upstream.chatRequests()[0]!.url).toBe('/v1/chat/completions?%E0%A4%A=%&x');
  });

  test.each([
    { name: 'an unknown method (BREW) on an ops path', request: 'BREW /healthz HTTP/1.1', status: 400, code: 'invalid_http' },
    { name: 'an unknown method (BREW) under /v1/', request: 'BREW /v1/models HTTP/1.1', status: 400, code: 'invalid_http' },
    { name: 'PROPFIND on an ops path', request: 'PROPFIND /healthz HTTP/1.1', status: 404, code: 'not_found' },
    { name: 'POST on /metrics', request: 'POST /metrics HTTP/1.1', status: 404, code: 'not_found' },
    { name: 'TRACE on /readyz', request: 'TRACE /readyz HTTP/1.1', status: 404, code: 'not_found' },
    { name: 'OPTIONS *', request: 'OPTIONS * HTTP/1.1', status: 404, code: 'not_found' },
    { name: 'PURGE on the conversation API', request: 'PURGE /contextd/v1/conversations/c1 HTTP/1.1', status: 404, code: 'not_found' },
    { name: 'CONNECT (contextd is no forward proxy)', request: 'CONNECT example.com:443 HTTP/1.1', status: 404, code: 'not_found' },
    { name: 'an h2c upgrade', request: 'GET /v1/models HTTP/1.1\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA', status: 400, code: 'invalid_http' },
    { name: 'a WebSocket upgrade outside /v1/', request: 'GET /nowhere HTTP/1.1\r\nConnection: Upgrade\r\nUpgrade: websocket', status: 404, code: 'not_found' },
    { name: 'a malformed request line', request: 'GET /healthz HTTP/9.9', status: 400, code: 'invalid_http' },
    { name: 'a tab in the path', request: 'GET /v1/mo\tdels HTTP/1.1', status: 400, code: 'invalid_http' },
    { name: 'a header without a colon', request: 'GET /healthz HTTP/1.1\r\nNo-Colon-Here', status: 400, code: 'invalid_http' },
  ])('$name → $status $code', async ({ request, status, code }) => {
    const response = await rawExchange(contextd.port, `${request}\r\nHost: contextd\r\nConnection: close\r\n\r\n`);
    expectOpenAIError(response, status, code);
    expect(upstream.requests).toHaveLength(0);
  });

  test('a TLS handshake sent to the plain-HTTP port → 400 invalid_http', async () => {
    const response = await rawExchange(contextd.port, Buffer.from('16030100a5010000a10303', 'hex'));
    expectOpenAIError(response, 400, 'invalid_http');
  });

  test('an unusual method under /v1/ (PROPFIND) is the upstream\'s to answer: passed through', async () => {
    const response = await rawExchange(contextd.port, `PROPFIND /v1/models HTTP/1.1\r\nHost: contextd\r\nAuthorization: Bearer ${API_KEY}\r\nConnection: close\r\n\r\n`);
    expect(response.status).toBe(200);
    expect(upstream.requests.map((r) => `${r.method} ${r.url}`)).toEqual(['PROPFIND /v1/models']);
  });

  test('after all of it the process serves as before', async () => {
    expect((await fetch(`${contextd.url}/healthz`)).status).toBe(200);
    const reply = await clientFor(contextd, newConversation()).chat.completions.create({ model: 'gpt-4o', messages: [{ role: 'user', content: 'still here?' }] });
    expect(reply.choices[0]!.message.content).toBe('echo: still here?');
  });
});

// ---- the connection cap ----

test('beyond server.max_connections a new connection is closed unanswered, counted, and the open ones are served', async () => {
  const capped = await startContextd({ config: contextdConfig(upstream, { server: { host: '127.0.0.1', max_connections: 3 } }) });
  const open = await Promise.all([0, 1, 2].map(() => RawConnection.open(capped.port)));
  // Each is accepted and served (so counted) before the next one knocks.
  for (const connection of open) {
    connection.send('GET /healthz HTTP/1.1\r\nHost: contextd\r\n\r\n');
    expect((await connection.nextResponse(0)).status).toBe(200);
  }

  const refused = await RawConnection.open(capped.port);
  refused.send('GET /healthz HTTP/1.1\r\nHost: contextd\r\n\r\n');
  await refused.waitClosed();
  expect(refused.text).toBe('');

  open[0]!.send('GET /healthz HTTP/1.1\r\nHost: contextd\r\n\r\n');
  expect((await open[0]!.nextResponse(1)).status).toBe(200);

  open[0]!.close();
  // The freed slot takes a new connection once contextd has seen the close.
  let metrics = '';
  await waitFor(
    async () => {
      const response = await rawExchange(capped.port, 'GET /metrics HTTP/1.1\r\nHost: contextd\r\nConnection: close\r\n\r\n').catch(() => undefined);
      metrics = response?.status === 200 ? response.body : '';
      return metrics !== '';
    },
    { message: 'a connection accepted after one closed' },
  );
  const refusedCount = Number(/^contextd_connections_refused_total (\d+)/m.exec(metrics)?.[1]);
  expect(refusedCount).toBeGreaterThanOrEqual(1);
  expect(Number(/^contextd_connections (\d+)/m.exec(metrics)?.[1])).toBe(3); // two left open, and this one
  for (const connection of open) connection.close();
});
