import OpenAI from 'openai';
import { WebSocket } from 'ws';
import { afterAll, beforeAll, beforeEach, expect, test } from 'vitest';
import { ensureBuilt, stopAll, type ContextdProcess } from '../support/contextd-process.js';
import { startFakeUpstream, type FakeUpstream } from '../support/fake-upstream.js';
import { API_KEY, startInFrontOf } from './harness.js';

let upstream: FakeUpstream;
let contextd: ContextdProcess;

beforeAll(async () => {
  await ensureBuilt();
  upstream = await startFakeUpstream();
  contextd = await startInFrontOf(upstream);
});
beforeEach(() => upstream.reset());
afterAll(async () => {
  await stopAll();
  await upstream.close();
});

test('chat without the conversation header is passed through byte for byte, and nothing is stored', async () => {
  const body = '{"model":"gpt-4o","messages":[{"role":"system","content":"sys"},{"role":"user","content":"hi"}],  "temperature":0.2}';
  const res = await fetch(`${contextd.baseURL}/chat/completions?trace=1`, {
    method: 'POST',
    headers: { authorization: `Bearer ${API_KEY}`, 'content-type': 'application/json', 'x-custom': 'kept' },
    body,
  });
  expect(res.status).toBe(200);
  expect(res.headers.get('x-contextd-context-tokens')).toBeNull();
  const received = upstream.chatRequests()[0]!;
  expect(received.rawBody.toString()).toBe(body);
  expect(received.url).toBe('/v1/chat/completions?trace=1');
  expect(received.headers.authorization).toBe(`Bearer ${API_KEY}`);
  expect(received.headers['x-custom']).toBe('kept');
});

test('other /v1 paths go to the upstream unchanged: models, embeddings, arbitrary methods', async () => {
  const client = new OpenAI({ baseURL: contextd.baseURL, apiKey: API_KEY, maxRetries: 0 });
  const models = await client.models.list();
  expect(models.data.map((m) => m.id)).toContain('gpt-4o-mini');
  const embedding = await client.embeddings.create({ model: 'text-embedding-3-small', input: 'hello' });
  expect(embedding.data[0]!.embedding.length).toBeGreaterThan(0);

  const res = await fetch(`${contextd.baseURL}/files/file-123?x=1`, { method: 'DELETE', headers: { authorization: `Bearer ${API_KEY}` } });
  expect(res.status).toBe(200);
  const echoed = (await res.json()) as { method: string; path: string };
  expect(echoed).toMatchObject({ method: 'DELETE' });
  expect(upstream.requests.map((r) => `${r.method} ${r.url}`)).toEqual(['GET /v1/models', 'POST /v1/embeddings', 'DELETE /v1/files/file-123?x=1']);
});

test('a large upload streams through without the body limit of the memory path', async () => {
  const payload = Buffer.alloc(2 * 1024 * 1024, 7);
  const res = await fetch(`${contextd.baseURL}/files`, { method: 'POST', headers: { authorization: `Bearer ${API_KEY}`, 'content-type': 'application/octet-stream' }, body: payload });
  expect(res.status).toBe(200);
  expect(upstream.requests[0]!.rawBody.equals(payload)).toBe(true);
});

test('a WebSocket under /v1/ passes through both ways, without the conversation header', async () => {
  const ws = new WebSocket(`ws://127.0.0.1:${contextd.port}/v1/realtime?model=gpt-4o-realtime`, {
    headers: { authorization: `Bearer ${API_KEY}`, 'x-conversation-id': 'realtime-1' },
  });
  const echoed = await new Promise<string>((resolve, reject) => {
    ws.on('open', () => ws.send(JSON.stringify({ type: 'session.update' })));
    ws.on('message', (data) => resolve(String(data)));
    ws.on('error', reject);
  });
  ws.close();
  expect(echoed).toContain('session.update');
  const upgrade = upstream.requests.find((r) => r.path === '/v1/realtime');
  expect(upgrade?.headers.authorization).toBe(`Bearer ${API_KEY}`);
  expect(upgrade?.headers['x-conversation-id']).toBeUndefined();
});

test('unknown paths outside /v1 are a 404 in OpenAI shape', async () => {
  const res = await fetch(`${contextd.url}/nope`);
  expect(res.status).toBe(404);
  expect(((await res.json()) as { error: { code: string } }).error.code).toBe('not_found');
});
