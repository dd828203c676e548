import { request } from 'node:http';
import { createServer } from 'node:net';
import { gunzipSync } from 'node:zlib';
import { afterAll, beforeAll, beforeEach, describe, expect, test } from 'vitest';
import { ensureBuilt, startContextd, stopAll, type ContextdProcess } from '../support/contextd-process.js';
import { startFakeUpstream, type FakeUpstream } from '../support/fake-upstream.js';
import { waitFor } from '../support/wait-for.js';
import { API_KEY, clientFor, startInFrontOf, storedMessages } from './harness.js';

let upstream: FakeUpstream;
let contextd: ContextdProcess;
const CONVERSATION = `errors-${process.pid}`;

interface RawResponse {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: Buffer;
}

/** A plain HTTP request, for inputs the SDK would refuse to send. */
function send(path: string, body: string | Buffer, headers: Record<string, string> = {}, base = contextd.url): Promise<RawResponse> {
  return new Promise((resolve, reject) => {
    const req = request(`${base}${path}`, { method: 'POST', headers: { 'content-type': 'application/json', authorization: `Bearer ${API_KEY}`, ...headers } }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => resolve({ status: res.statusCode!, headers: res.headers, body: Buffer.concat(chunks) }));
      res.on('error', reject);
    });
    req.on('error', reject);
    req.end(body);
  });
}

const chat = (body: unknown, headers: Record<string, string> = {}): Promise<RawResponse> =>
  send('/v1/chat/completions', typeof body === 'string' ? body : JSON.stringify(body), { 'x-conversation-id': CONVERSATION, ...headers });

function expectOpenAIError(res: RawResponse, status: number, code?: string): void {
  expect(res.status).toBe(status);
  const parsed = JSON.parse(res.body.toString()) as { error: Record<string, unknown> };
  expect(Object.keys(parsed.error).sort()).toEqual(['code', 'message', 'param', 'type']);
  expect(typeof parsed.error.message).toBe('string');
  if (code !== undefined) expect(parsed.error.code).toBe(code);
}

let storedBefore: string;
let probe = 0;
async function expectStillServingAndIntact(): Promise<void> {
  const question = `still there? (${++probe})`;
  const ok = await chat({ model: 'gpt-4o', messages: [{ role: 'user', content: question }] });
  expect(ok.status).toBe(200);
  await waitFor(async () => (await storedMessages(contextd, CONVERSATION)).some((r) => r.message.content === `echo: ${question}`), { message: 'good turn stored' });
  const stored = await storedMessages(contextd, CONVERSATION);
  // Everything stored before is unchanged; the good request added exactly its turn.
  expect(JSON.stringify(stored.slice(0, -2))).toBe(storedBefore);
  expect(stored.slice(-2).map((r) => r.message.content)).toEqual([question, `echo: ${question}`]);
  storedBefore = JSON.stringify(stored);
}

beforeAll(async () => {
  await ensureBuilt();
  upstream = await startFakeUpstream();
  contextd = await startInFrontOf(upstream, { upstream: { base_url: upstream.url, timeout: '500ms', connect_timeout: '1s' } });
  storedBefore = JSON.stringify([]);
});
beforeEach(() => upstream.reset());
afterAll(async () => {
  await stopAll();
  await upstream.close();
});

describe('bad input gets an OpenAI-shaped error, and nothing is lost', () => {
  test.each([
    { name: 'malformed JSON', body: '{"model": "gpt-4o", "messages": [', status: 400, code: 'invalid_json' },
    { name: 'body is not an object', body: '[1,2]', status: 400, code: 'invalid_request' },
    { name: 'messages missing', body: { model: 'gpt-4o' }, status: 400, code: 'missing_required_parameter' },
    { name: 'messages not an array', body: { model: 'gpt-4o', messages: 'hi' }, status: 400, code: 'invalid_type' },
    { name: 'unknown role', body: { model: 'gpt-4o', messages: [{ role: 'wizard', content: 'hi' }] }, status: 400, code: 'invalid_value' },
    { name: 'message not an object', body: { model: 'gpt-4o', messages: ['hi'] }, status: 400, code: 'invalid_type' },
  ])('$name → $status', async ({ body, status, code }) => {
    expectOpenAIError(await chat(body), status, code);
    expect(upstream.chatRequests()).toHaveLength(0);
    await expectStillServingAndIntact();
  });

  test('a body over body_limit → 413', async () => {
    const big = JSON.stringify({ model: 'gpt-4o', messages: [{ role: 'user', content: 'x'.repeat(300 * 1024) }] });
    expectOpenAIError(await chat(big), 413, 'request_too_large');
    await expectStillServingAndIntact();
  });

  test.each(['has space', 'a'.repeat(129), 'semi;colon', ''])('conversation id %j → 400 invalid_conversation_id', async (id) => {
    expectOpenAIError(await chat({ model: 'gpt-4o', messages: [{ role: 'user', content: 'hi' }] }, { 'x-conversation-id': id }), 400, 'invalid_conversation_id');
    await expectStillServingAndIntact();
  });

  test('upstream error responses pass through unchanged and store nothing', async () => {
    upstream.enqueue({ kind: 'error', status: 429, message: 'Rate limit reached', type: 'requests', code: 'rate_limit_exceeded', headers: { 'x-request-id': 'req_upstream_1', 'retry-after': '7' } });
    const res = await chat({ model: 'gpt-4o', messages: [{ role: 'user', content: 'will fail' }] });
    expect(res.status).toBe(429);
    expect(res.headers['x-request-id']).toBe('req_upstream_1');
    expect(res.headers['retry-after']).toBe('7');
    expect(JSON.parse(res.body.toString())).toEqual({ error: { message: 'Rate limit reached', type: 'requests', param: null, code: 'rate_limit_exceeded' } });
    await expectStillServingAndIntact();
  });

  test('a stream cut off mid-way reaches the client as cut, and stores nothing', async () => {
    upstream.enqueue({ kind: 'text', content: 'this reply will never finish properly', chunkCount: 8, cutAfterChunks: 3 });
    const client = clientFor(contextd, CONVERSATION);
    const consume = async (): Promise<string> => {
      let text = '';
      const stream = await client.chat.completions.create({ model: 'gpt-4o', stream: true, messages: [{ role: 'user', content: 'cut me' }] });
      for await (const chunk of stream) text += chunk.choices[0]?.delta.content ?? '';
      return text;
    };
    await expect(consume()).rejects.toThrow();
    await contextd.waitForLog((l) => l.msg === 'request' && l.stored === 'not_stored' && l.notStoredReason === 'upstream_interrupted');
    await expectStillServingAndIntact();
  });

  test('a client that disconnects mid-stream aborts the upstream request and stores nothing', async () => {
    upstream.enqueue({ kind: 'text', content: 'long answer in many pieces', chunkCount: 6, holdAfterChunks: 2 });
    const controller = new AbortController();
    const client = clientFor(contextd, CONVERSATION);
    const stream = await client.chat.completions.create({ model: 'gpt-4o', stream: true, messages: [{ role: 'user', content: 'abandon me' }] }, { signal: controller.signal });
    const reading = (async () => {
      for await (const chunk of stream) void chunk;
    })();
    await upstream.waitForHeld(1);
    controller.abort();
    await reading.catch(() => undefined); // the SDK ends an aborted stream quietly or with an abort error
    await waitFor(() => upstream.chatRequests()[0]!.outcome === 'client_closed', { message: 'upstream saw the abort' });
    upstream.release();
    await contextd.waitForLog((l) => l.msg === 'request' && l.clientAborted === true);
    await expectStillServingAndIntact();
  });

  test('upstream timeout → 504', async () => {
    upstream.enqueue({ kind: 'text', delayBeforeHeadersMs: 2000 });
    expectOpenAIError(await chat({ model: 'gpt-4o', messages: [{ role: 'user', content: 'slow' }] }), 504, 'upstream_timeout');
    await expectStillServingAndIntact();
  });

  test('upstream connection reset → 502', async () => {
    upstream.enqueue({ kind: 'reset' });
    expectOpenAIError(await chat({ model: 'gpt-4o', messages: [{ role: 'user', content: 'reset' }] }), 502, 'upstream_unreachable');
    await expectStillServingAndIntact();
  });

  test('gzip from the upstream reaches the client as sent, and the stored reply is right', async () => {
    upstream.enqueue({ kind: 'text', content: 'compressed answer', compression: 'gzip', chunkCount: 4 });
    const res = await chat({ model: 'gpt-4o', stream: true, messages: [{ role: 'user', content: 'zip it' }] }, { 'accept-encoding': 'gzip, br, zstd' });
    expect(res.status).toBe(200);
    expect(res.headers['content-encoding']).toBe('gzip');
    expect(upstream.chatRequests()[0]!.headers['accept-encoding']).toBe('gzip, br');
    const text = gunzipSync(res.body).toString();
    expect(text).toContain('data: [DONE]');
    await waitFor(async () => (await storedMessages(contextd, CONVERSATION)).some((r) => r.message.content === 'compressed answer'), { message: 'gzip reply stored' });
    storedBefore = JSON.stringify(await storedMessages(contextd, CONVERSATION));
    await expectStillServingAndIntact();
  });
});

describe('an unreachable upstream', () => {
  test('→ 502 in OpenAI shape, and the process keeps serving', async () => {
    const port = await new Promise<number>((resolve) => {
      const probe = createServer().listen(0, '127.0.0.1', () => {
        const { port } = probe.address() as { port: number };
        probe.close(() => resolve(port));
      });
    });
    const lonely = await startContextd({ config: { server: { host: '127.0.0.1' }, upstream: { base_url: `http://127.0.0.1:${port}/v1`, connect_timeout: '1s' } } });
    const body = JSON.stringify({ model: 'gpt-4o', messages: [{ role: 'user', content: 'anyone?' }] });
    for (let i = 0; i < 2; i++) expectOpenAIError(await send('/v1/chat/completions', body, { 'x-conversation-id': 'c1' }, lonely.url), 502, 'upstream_unreachable');
    expect((await fetch(`${lonely.url}/healthz`)).status).toBe(200);
  });
});
