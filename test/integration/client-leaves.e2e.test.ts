// A reply the client received whole is stored, whatever the client does next:
// httpx-based clients (the Python SDK, LangChain, LiteLLM) close the connection
// as soon as they read `data: [DONE]`, often before the upstream's own end of
// stream reaches contextd. A client that leaves before the terminal event
// still cancels the upstream call, and nothing is stored.
import { request as httpRequest, type IncomingHttpHeaders } from 'node:http';
import { createGunzip } from 'node:zlib';
import { afterAll, beforeAll, beforeEach, expect, test } from 'vitest';
import { ensureBuilt, stopAll, type ContextdProcess } from '../support/contextd-process.js';
import { startFakeUpstream, type FakeUpstream } from '../support/fake-upstream.js';
import { waitFor } from '../support/wait-for.js';
import { API_KEY, startInFrontOf, storedMessages } from './harness.js';

let upstream: FakeUpstream;
let contextd: ContextdProcess;
let conversationNo = 0;
const newConversation = (): string => `leaves-${process.pid}-${++conversationNo}`;

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

/**
 * Sends a chat request and closes the socket the moment `until` says so of
 * what has been received (as httpx does at [DONE]). Resolves with that text.
 */
function requestAndLeave(
  conversation: string,
  body: Record<string, unknown>,
  until: (received: string, headers: IncomingHttpHeaders) => boolean,
  extraHeaders: Record<string, string> = {},
): Promise<string> {
  return new Promise((resolve, reject) => {
    const req = httpRequest(`${contextd.baseURL}/chat/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${API_KEY}`, 'x-conversation-id': conversation, ...extraHeaders },
    });
    req.on('response', (response) => {
      let received = '';
      // A compressed reply is read as the client reads it: decoded.
      const res = response.headers['content-encoding'] === 'gzip' ? response.pipe(createGunzip()) : response;
      res.setEncoding('utf8');
      res.on('data', (text: string) => {
        received += text;
        if (until(received, response.headers)) {
          req.destroy();
          resolve(received);
        }
      });
      res.on('end', () => reject(new Error(`the response ended before the client left: ${received}`)));
    });
    req.on('error', (error) => {
      if (!req.destroyed) reject(error);
    });
    req.end(JSON.stringify({ model: 'gpt-4o-mini', ...body }));
  });
}

const streamAndLeave = (
  conversation: string,
  body: Record<string, unknown>,
  until: (received: string) => boolean,
  extraHeaders: Record<string, string> = {},
): Promise<string> => requestAndLeave(conversation, { stream: true, ...body }, until, extraHeaders);

/** The stored rows once there are `count` of them. */
async function storedWhen(conversation: string, count: number): Promise<Awaited<ReturnType<typeof storedMessages>>> {
  let rows: Awaited<ReturnType<typeof storedMessages>> = [];
  await waitFor(async () => (rows = await storedMessages(contextd, conversation)).length === count, { message: `${count} stored messages` });
  return rows;
}

/** The client's leaving cancelled the turn: a 499, the upstream call aborted, nothing stored. */
async function expectCancelled(conversation: string): Promise<void> {
  const log = await requestLog(conversation);
  expect(log).toMatchObject({ status: 499, stored: 'not_stored', clientAborted: true });
  await waitFor(() => upstream.chatRequests()[0]!.outcome === 'client_closed', { message: 'upstream call aborted' });
  upstream.release();
  expect(await storedMessages(contextd, conversation)).toEqual([]);
}

async function requestLog(conversation: string): Promise<Record<string, unknown>> {
  return contextd.waitForLog((line) => line.msg === 'request' && line.conversation === conversation);
}

test('a client that closes right after [DONE] while the upstream holds the end back: the turn is stored', async () => {
  const conversation = newConversation();
  upstream.enqueue({ kind: 'text', content: 'the whole answer', chunkCount: 3, holdEnd: true });
  const received = await streamAndLeave(conversation, { messages: [{ role: 'user', content: 'hello' }] }, (text) => text.includes('data: [DONE]'));
  expect(received).toContain('data: [DONE]');

  const rows = await storedWhen(conversation, 2);
  expect(rows.map((row) => [row.message.role, row.message.content])).toEqual([
    ['user', 'hello'],
    ['assistant', 'the whole answer'],
  ]);
  const log = await requestLog(conversation);
  expect(log).toMatchObject({ status: 200, stored: 'queued' });
  expect(log.clientAborted).toBeUndefined();
  // The rest of the upstream body, which nobody will read, was dropped rather than waited for.
  await waitFor(() => upstream.chatRequests()[0]!.outcome === 'client_closed', { message: 'upstream call ended' });
  expect(upstream.heldCount()).toBe(0);
});

test('a gzip-compressed stream: the terminal event counts once decoded, and the turn is stored', async () => {
  const conversation = newConversation();
  upstream.enqueue({ kind: 'text', content: 'compressed answer', chunkCount: 3, holdEnd: true, compression: 'gzip' });
  await streamAndLeave(conversation, { messages: [{ role: 'user', content: 'zip it' }] }, (text) => text.includes('data: [DONE]'), { 'accept-encoding': 'gzip' });
  const rows = await storedWhen(conversation, 2);
  expect(rows[1]!.message.content).toBe('compressed answer');
  expect(upstream.chatRequests()[0]!.headers['accept-encoding']).toContain('gzip');
});

test('with usage asked for, the usage chunk after finish_reason is the terminal event (no [DONE] needed)', async () => {
  const conversation = newConversation();
  const event = (payload: unknown): string => `data: ${JSON.stringify(payload)}\n\n`;
  const meta = { id: 'chatcmpl-x', object: 'chat.completion.chunk', created: 1, model: 'gpt-4o-mini' };
  upstream.enqueue({
    kind: 'raw',
    holdEnd: true,
    chunks: [
      event({ ...meta, choices: [{ index: 0, delta: { role: 'assistant', content: 'usage last' }, finish_reason: null }] }),
      event({ ...meta, choices: [{ index: 0, delta: {}, finish_reason: 'stop' }] }),
      event({ ...meta, choices: [], usage: { prompt_tokens: 9, completion_tokens: 2, total_tokens: 11 } }),
    ],
  });
  await streamAndLeave(conversation, { stream_options: { include_usage: true }, messages: [{ role: 'user', content: 'count' }] }, (text) => text.includes('"usage"'));
  const rows = await storedWhen(conversation, 2);
  expect(rows[1]!.message.content).toBe('usage last');
});

test('a client that leaves after finish_reason but before the usage it asked for cancels: nothing stored', async () => {
  const conversation = newConversation();
  upstream.enqueue({ kind: 'text', content: 'almost', chunkCount: 2, holdAfterChunks: 4 });
  // Chunks: role, two of content, finish_reason; the usage chunk and [DONE] are held back.
  await streamAndLeave(conversation, { stream_options: { include_usage: true }, messages: [{ role: 'user', content: 'wait for usage' }] }, (text) =>
    text.includes('"finish_reason":"stop"'),
  );
  await expectCancelled(conversation);
});

test('a client that leaves while the model is still thinking (before the response head) cancels: the upstream call is aborted, nothing stored', async () => {
  const conversation = newConversation();
  // Far beyond the test's own timeout: only the client's leaving can end this call.
  upstream.enqueue({ kind: 'text', content: 'never seen', delayBeforeHeadersMs: 120_000 });
  const req = httpRequest(`${contextd.baseURL}/chat/completions`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${API_KEY}`, 'x-conversation-id': conversation },
  });
  req.on('error', () => undefined);
  req.end(JSON.stringify({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'think long' }] }));
  await waitFor(() => upstream.chatRequests().length === 1, { message: 'the upstream has the request' });
  req.destroy();
  await expectCancelled(conversation);
});

test('a client that leaves before the terminal event aborts the upstream call and nothing is stored', async () => {
  const conversation = newConversation();
  upstream.enqueue({ kind: 'text', content: 'never finished', chunkCount: 4, holdAfterChunks: 2 });
  await streamAndLeave(conversation, { messages: [{ role: 'user', content: 'leave early' }] }, (text) => text.includes('data: '));
  await expectCancelled(conversation);
});

test('a JSON reply whose body was written whole is stored even if the client closes at once', async () => {
  const conversation = newConversation();
  const received = await requestAndLeave(
    conversation,
    { messages: [{ role: 'user', content: 'json please' }] },
    (text, headers) => text.length >= Number(headers['content-length']),
  );
  expect(JSON.parse(received).choices[0].message.content).toBe('echo: json please');
  const rows = await storedWhen(conversation, 2);
  expect(rows[1]!.message.content).toBe('echo: json please');
});
