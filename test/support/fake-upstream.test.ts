import { once } from 'node:events';
import { request as httpRequest, type ClientRequest, type IncomingMessage } from 'node:http';
import { createBrotliDecompress, createGunzip } from 'node:zlib';
import { APIConnectionError, APIConnectionTimeoutError, APIError, OpenAI } from 'openai';
import type { ChatCompletionChunk, ChatCompletionMessageParam } from 'openai/resources/chat/completions';
import { afterAll, afterEach, beforeAll, describe, expect, test } from 'vitest';
import { WebSocket } from 'ws';
import { startFakeUpstream, type FakeUpstream } from './fake-upstream.js';
import { waitFor } from './wait-for.js';

let fake: FakeUpstream;
let client: OpenAI;

beforeAll(async () => {
  fake = await startFakeUpstream();
  client = new OpenAI({ baseURL: fake.url, apiKey: 'sk-test', maxRetries: 0 });
});

afterEach(() => fake.reset());

afterAll(async () => {
  await fake.close();
});

const MODEL = 'gpt-4o-mini';
const hello: ChatCompletionMessageParam[] = [{ role: 'user', content: 'hello there' }];

async function collect(stream: AsyncIterable<ChatCompletionChunk>): Promise<ChatCompletionChunk[]> {
  const chunks: ChatCompletionChunk[] = [];
  for await (const chunk of stream) chunks.push(chunk);
  return chunks;
}

function contentOf(chunks: readonly ChatCompletionChunk[]): string {
  return chunks.map((chunk) => chunk.choices[0]?.delta.content ?? '').join('');
}

async function errorOf(promise: Promise<unknown>): Promise<unknown> {
  try {
    await promise;
  } catch (error) {
    return error;
  }
  throw new Error('expected the promise to reject');
}

/** A raw HTTP request, so tests can see the exact bytes and headers the fake sends. */
async function rawPost(path: string, body: unknown, headers: Record<string, string> = {}): Promise<IncomingMessage> {
  const url = new URL(`${fake.url}${path}`);
  const req = httpRequest(url, { method: 'POST', headers: { 'content-type': 'application/json', ...headers } });
  req.end(JSON.stringify(body));
  const [res] = (await once(req, 'response')) as [IncomingMessage];
  return res;
}

async function textOf(stream: NodeJS.ReadableStream): Promise<string> {
  let text = '';
  for await (const part of stream) text += typeof part === 'string' ? part : (part as Buffer).toString('utf8');
  return text;
}

describe('chat completions, non-streaming', () => {
  test('the default reply echoes the last user message and reports usage', async () => {
    const completion = await client.chat.completions.create({
      model: MODEL,
      messages: [
        { role: 'system', content: 'be brief' },
        { role: 'user', content: 'first question' },
        { role: 'assistant', content: 'first answer' },
        { role: 'user', content: [{ type: 'text', text: 'second question' }] },
      ],
    });

    expect(completion.object).toBe('chat.completion');
    expect(completion.model).toBe(MODEL);
    expect(completion.choices).toHaveLength(1);
    expect(completion.choices[0]?.message).toMatchObject({ role: 'assistant', content: 'echo: second question', refusal: null });
    expect(completion.choices[0]?.finish_reason).toBe('stop');
    const usage = completion.usage;
    expect(usage?.prompt_tokens).toBeGreaterThan(0);
    expect(usage?.completion_tokens).toBeGreaterThan(0);
    expect(usage?.total_tokens).toBe((usage?.prompt_tokens ?? 0) + (usage?.completion_tokens ?? 0));
  });

  test('given content, finish reason and usage are returned as given', async () => {
    fake.enqueue({ kind: 'text', content: 'Paris.', finishReason: 'length', usage: { prompt_tokens: 11, completion_tokens: 2 } });
    const completion = await client.chat.completions.create({ model: MODEL, messages: hello });
    expect(completion.choices[0]?.message.content).toBe('Paris.');
    expect(completion.choices[0]?.finish_reason).toBe('length');
    expect(completion.usage).toMatchObject({ prompt_tokens: 11, completion_tokens: 2, total_tokens: 13 });
  });

  test('tool calls come whole, with content null and finish_reason tool_calls', async () => {
    fake.enqueue({
      kind: 'tool_calls',
      toolCalls: [
        { id: 'call_a', name: 'get_weather', arguments: { city: 'Paris' } },
        { name: 'get_time', arguments: '{"tz":"Europe/Paris"}' },
      ],
    });
    const completion = await client.chat.completions.create({ model: MODEL, messages: hello });
    const choice = completion.choices[0];
    expect(choice?.finish_reason).toBe('tool_calls');
    expect(choice?.message.content).toBeNull();
    expect(choice?.message.tool_calls).toEqual([
      { id: 'call_a', type: 'function', function: { name: 'get_weather', arguments: '{"city":"Paris"}' } },
      { id: expect.stringMatching(/^call_/), type: 'function', function: { name: 'get_time', arguments: '{"tz":"Europe/Paris"}' } },
    ]);
  });

  test('a refusal comes in the refusal field', async () => {
    fake.enqueue({ kind: 'refusal', refusal: "I can't help with that." });
    const completion = await client.chat.completions.create({ model: MODEL, messages: hello });
    expect(completion.choices[0]?.message).toMatchObject({ content: null, refusal: "I can't help with that." });
  });

  test('queued behaviours answer in order, then the default; setDefault and functions choose replies', async () => {
    fake.enqueue({ kind: 'text', content: 'one' }, { kind: 'text', content: 'two' });
    const ask = async (text: string): Promise<string | null | undefined> =>
      (await client.chat.completions.create({ model: MODEL, messages: [{ role: 'user', content: text }] })).choices[0]?.message.content;

    expect(await ask('a')).toBe('one');
    expect(await ask('b')).toBe('two');
    expect(await ask('c')).toBe('echo: c');
    fake.setDefault((request) => ({ kind: 'text', content: `saw ${request.rawBody.length} bytes` }));
    expect(await ask('d')).toMatch(/^saw \d+ bytes$/);
    fake.reset();
    expect(await ask('e')).toBe('echo: e');
  });

  test('a body that is not JSON is a 400 and does not use up a queued behaviour', async () => {
    fake.enqueue({ kind: 'text', content: 'kept' });
    const res = await fetch(`${fake.url}/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{nope' });
    expect(res.status).toBe(400);
    expect(((await res.json()) as { error: { type: string } }).error.type).toBe('invalid_request_error');
    const completion = await client.chat.completions.create({ model: MODEL, messages: hello });
    expect(completion.choices[0]?.message.content).toBe('kept');
  });
});

describe("OpenAI's tool-message rules", () => {
  test('a prompt that breaks them is a 400, as OpenAI answers it, and is listed', async () => {
    const before = fake.toolRuleViolations.length;
    const orphan: ChatCompletionMessageParam[] = [{ role: 'user', content: 'q' }, { role: 'tool', tool_call_id: 'call_x', content: 'r' }];
    const error = await errorOf(client.chat.completions.create({ model: MODEL, messages: orphan }));
    expect(error).toBeInstanceOf(APIError);
    expect((error as APIError).status).toBe(400);
    expect(fake.toolRuleViolations).toHaveLength(before + 1);
    expect(fake.toolRuleViolations.at(-1)!.toolRuleViolation).toMatch(/answers no tool_call/);
  });

  test('an answered call is accepted, also at the Azure deployment path', async () => {
    const answered: ChatCompletionMessageParam[] = [
      { role: 'user', content: 'q' },
      { role: 'assistant', content: null, tool_calls: [{ id: 'call_1', type: 'function', function: { name: 'f', arguments: '{}' } }] },
      { role: 'tool', tool_call_id: 'call_1', content: 'r' },
    ];
    const res = await fetch(`${fake.origin}/openai/deployments/d/chat/completions?api-version=2024-10-21`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ messages: answered }),
    });
    expect(res.status).toBe(200);
    expect(fake.chatRequests().at(-1)!.url).toBe('/openai/deployments/d/chat/completions?api-version=2024-10-21');
  });
});

describe('chat completions, streaming', () => {
  test('text arrives in several content deltas between a role chunk, a finish chunk and a usage chunk', async () => {
    const content = 'The quick brown fox jumps over the lazy dog.';
    fake.enqueue({ kind: 'text', content });
    const chunks = await collect(
      await client.chat.completions.create({ model: MODEL, messages: hello, stream: true, stream_options: { include_usage: true } }),
    );

    expect(chunks.every((chunk) => chunk.object === 'chat.completion.chunk' && chunk.id === chunks[0]?.id)).toBe(true);
    expect(chunks[0]?.choices[0]?.delta).toMatchObject({ role: 'assistant', content: '' });
    const contentChunks = chunks.filter((chunk) => (chunk.choices[0]?.delta.content ?? '') !== '');
    expect(contentChunks.length).toBeGreaterThan(1);
    expect(contentOf(chunks)).toBe(content);

    const finish = chunks.at(-2);
    expect(finish?.choices[0]).toMatchObject({ delta: {}, finish_reason: 'stop' });
    const usageChunk = chunks.at(-1);
    expect(usageChunk?.choices).toEqual([]);
    expect(usageChunk?.usage?.total_tokens).toBe((usageChunk?.usage?.prompt_tokens ?? 0) + (usageChunk?.usage?.completion_tokens ?? 0));
    expect(chunks.slice(0, -1).every((chunk) => chunk.usage === null)).toBe(true);
  });

  test('without include_usage there is no usage chunk, and content given as an array is sent delta by delta', async () => {
    fake.enqueue({ kind: 'text', content: ['Hel', 'lo', ' wor', 'ld'] });
    const chunks = await collect(await client.chat.completions.create({ model: MODEL, messages: hello, stream: true }));
    expect(chunks.map((chunk) => chunk.choices[0]?.delta.content)).toEqual(['', 'Hel', 'lo', ' wor', 'ld', undefined]);
    expect(chunks.at(-1)?.choices[0]?.finish_reason).toBe('stop');
    expect(chunks.some((chunk) => 'usage' in chunk)).toBe(false);
  });

  test('the wire format is OpenAI SSE: data events, then data: [DONE]', async () => {
    fake.enqueue({ kind: 'text', content: 'hi', chunkCount: 2 });
    const res = await rawPost('/chat/completions', { model: MODEL, messages: hello, stream: true });
    expect(res.statusCode).toBe(200);
    expect(res.headers['content-type']).toBe('text/event-stream; charset=utf-8');
    expect(res.headers['x-request-id']).toMatch(/^req_fake_\d+$/);

    const events = (await textOf(res)).split('\n\n');
    expect(events.pop()).toBe('');
    expect(events.pop()).toBe('data: [DONE]');
    expect(events).toHaveLength(4); // role, 'h', 'i', finish
    for (const event of events) expect(event).toMatch(/^data: \{.*\}$/);
  });

  test('parallel tool calls stream per index: id and name first, then arguments in several fragments', async () => {
    const weatherArgs = { city: 'Paris', unit: 'celsius', days: 3 };
    fake.enqueue({
      kind: 'tool_calls',
      toolCalls: [
        { id: 'call_weather', name: 'get_weather', arguments: weatherArgs },
        { id: 'call_time', name: 'get_time', arguments: '{"tz":"Europe/Paris"}' },
      ],
    });
    const fragmentsPerIndex = new Map<number, number>();
    const stream = client.chat.completions.stream({ model: MODEL, messages: hello });
    stream.on('chunk', (chunk) => {
      for (const call of chunk.choices[0]?.delta.tool_calls ?? []) {
        if (call.function?.arguments) fragmentsPerIndex.set(call.index, (fragmentsPerIndex.get(call.index) ?? 0) + 1);
      }
    });
    const completion = await stream.finalChatCompletion();

    expect(fragmentsPerIndex.get(0)).toBeGreaterThan(1);
    expect(fragmentsPerIndex.get(1)).toBeGreaterThan(1);
    const choice = completion.choices[0];
    expect(choice?.finish_reason).toBe('tool_calls');
    expect(choice?.message.content).toBeNull();
    expect(choice?.message.tool_calls).toEqual([
      { id: 'call_weather', type: 'function', function: { name: 'get_weather', arguments: JSON.stringify(weatherArgs) } },
      { id: 'call_time', type: 'function', function: { name: 'get_time', arguments: '{"tz":"Europe/Paris"}' } },
    ]);
    expect(JSON.parse((choice?.message.tool_calls?.[0] as { function: { arguments: string } }).function.arguments)).toEqual(weatherArgs);
  });

  test('a refusal streams as refusal deltas', async () => {
    fake.enqueue({ kind: 'refusal', refusal: "I'm sorry, I can't help with that." });
    const chunks: ChatCompletionChunk[] = [];
    const stream = client.chat.completions.stream({ model: MODEL, messages: hello });
    stream.on('chunk', (chunk) => chunks.push(chunk));
    const completion = await stream.finalChatCompletion();
    expect(chunks.filter((chunk) => chunk.choices[0]?.delta.refusal).length).toBeGreaterThan(1);
    expect(completion.choices[0]?.message).toMatchObject({ content: null, refusal: "I'm sorry, I can't help with that." });
  });

  test('a held stream has sent its first chunks and finishes after release', async () => {
    fake.enqueue({ kind: 'text', content: 'one two three four', holdAfterChunks: 2 });
    const stream = await client.chat.completions.create({ model: MODEL, messages: hello, stream: true });
    const iterator = stream[Symbol.asyncIterator]();
    const first = [await iterator.next(), await iterator.next()];
    expect(first.map((step) => step.done)).toEqual([false, false]);

    await fake.waitForHeld(1);
    expect(fake.chatRequests()[0]?.outcome).toBe('pending');
    fake.release();

    const rest: ChatCompletionChunk[] = [];
    for (let step = await iterator.next(); !step.done; step = await iterator.next()) rest.push(step.value);
    const all = [...first.map((step) => step.value as ChatCompletionChunk), ...rest];
    expect(contentOf(all)).toBe('one two three four');
    await waitFor(() => fake.chatRequests()[0]?.outcome === 'completed', { message: 'the reply to complete' });
    expect(fake.heldCount()).toBe(0);
  });

  test('a client that disconnects mid-stream is seen as client_closed', async () => {
    fake.enqueue({ kind: 'text', content: 'never finished', holdAfterChunks: 1 });
    const abort = new AbortController();
    const stream = await client.chat.completions.create({ model: MODEL, messages: hello, stream: true }, { signal: abort.signal });
    const iterator = stream[Symbol.asyncIterator]();
    await iterator.next();
    await fake.waitForHeld(1);

    abort.abort();
    // The SDK ends an aborted stream quietly or with an abort error, depending on where the abort lands.
    const afterAbort = await iterator.next().catch(() => ({ done: true as const, value: undefined }));
    expect(afterAbort.done).toBe(true);
    await waitFor(() => fake.chatRequests()[0]?.outcome === 'client_closed', {
      message: () => `outcome client_closed (is ${fake.chatRequests()[0]?.outcome})`,
    });
    expect(fake.heldCount()).toBe(0);
  });

  test('with a delay between chunks the client has the first chunk while the reply is still going', async () => {
    fake.enqueue({ kind: 'text', content: 'slow and steady', chunkCount: 4, delayBetweenChunksMs: 40 });
    const stream = await client.chat.completions.create({ model: MODEL, messages: hello, stream: true });
    const iterator = stream[Symbol.asyncIterator]();
    await iterator.next();
    expect(fake.chatRequests()[0]?.outcome).toBe('pending');
    const rest: ChatCompletionChunk[] = [];
    for (let step = await iterator.next(); !step.done; step = await iterator.next()) rest.push(step.value);
    expect(contentOf(rest)).toBe('slow and steady');
  });
});

describe('failures', () => {
  test('an error reply surfaces as the SDK APIError with the status, the OpenAI error body and the headers', async () => {
    fake.enqueue({ kind: 'error', status: 429, message: 'Slow down.', headers: { 'retry-after': '7' } });
    const error = await errorOf(client.chat.completions.create({ model: MODEL, messages: hello }));

    expect(error).toBeInstanceOf(APIError);
    const apiError = error as APIError;
    expect(apiError.status).toBe(429);
    expect(apiError.error).toEqual({ message: 'Slow down.', type: 'requests', param: null, code: 'rate_limit_exceeded' });
    expect(apiError.requestID).toMatch(/^req_fake_\d+$/);
    expect(apiError.headers?.get('retry-after')).toBe('7');
  });

  test.each([
    [400, 'invalid_request_error'],
    [401, 'invalid_request_error'],
    [500, 'server_error'],
    [503, 'server_error'],
  ])('status %i has error type %s, also for a streaming request', async (status, type) => {
    fake.enqueue({ kind: 'error', status, param: 'messages', code: 'some_code' });
    const error = await errorOf(client.chat.completions.create({ model: MODEL, messages: hello, stream: true }));
    expect(error).toBeInstanceOf(APIError);
    expect((error as APIError).status).toBe(status);
    expect((error as APIError).error).toMatchObject({ type, param: 'messages', code: 'some_code' });
  });

  test('a stream cut after a few chunks makes the SDK iteration throw after those chunks', async () => {
    fake.enqueue({ kind: 'text', content: 'this will not finish', chunkCount: 5, cutAfterChunks: 3 });
    const stream = await client.chat.completions.create({ model: MODEL, messages: hello, stream: true });
    const received: ChatCompletionChunk[] = [];
    await expect(
      (async () => {
        for await (const chunk of stream) received.push(chunk);
      })(),
    ).rejects.toThrow();
    expect(received).toHaveLength(3);
    expect(fake.chatRequests()[0]?.outcome).toBe('cut');
  });

  test('a non-streaming reply cut mid-body fails the SDK call', async () => {
    fake.enqueue({ kind: 'text', content: 'half of this', cutAfterChunks: 0 });
    await expect(client.chat.completions.create({ model: MODEL, messages: hello })).rejects.toThrow();
  });

  test('a reset before headers is a connection error', async () => {
    fake.enqueue({ kind: 'reset' });
    const error = await errorOf(client.chat.completions.create({ model: MODEL, messages: hello }));
    expect(error).toBeInstanceOf(APIConnectionError);
    expect(fake.chatRequests()[0]?.outcome).toBe('reset');
  });

  test('a delay before headers longer than the client timeout is a timeout', async () => {
    fake.enqueue({ kind: 'text', delayBeforeHeadersMs: 10_000 });
    const error = await errorOf(client.chat.completions.create({ model: MODEL, messages: hello }, { timeout: 200 }));
    expect(error).toBeInstanceOf(APIConnectionTimeoutError);
  });
});

describe('compression', () => {
  test('a gzip JSON reply decodes in the SDK', async () => {
    fake.enqueue({ kind: 'text', content: 'squeezed', compression: 'gzip' });
    const { data, response } = await client.chat.completions.create({ model: MODEL, messages: hello }).withResponse();
    expect(response.headers.get('content-encoding')).toBe('gzip');
    expect(data.choices[0]?.message.content).toBe('squeezed');
  });

  test('a gzip stream decodes in the SDK', async () => {
    fake.enqueue({ kind: 'text', content: 'squeezed all the way', compression: 'gzip' });
    const { data: stream, response } = await client.chat.completions.create({ model: MODEL, messages: hello, stream: true }).withResponse();
    expect(response.headers.get('content-encoding')).toBe('gzip');
    expect(contentOf(await collect(stream))).toBe('squeezed all the way');
  });

  test('br is sent only to a client that accepts it (Node 20 fetch, under the SDK, accepts gzip and deflate)', async () => {
    fake.enqueue({ kind: 'text', content: 'not brotli', compression: 'br' });
    const { data, response } = await client.chat.completions.create({ model: MODEL, messages: hello }).withResponse();
    expect(fake.chatRequests()[0]?.headers['accept-encoding']).not.toMatch(/\bbr\b/);
    expect(response.headers.get('content-encoding')).toBeNull();
    expect(data.choices[0]?.message.content).toBe('not brotli');
  });

  test.each(['gzip', 'br'] as const)('a %s stream is flushed per event, so events decode before the stream ends', async (encoding) => {
    fake.enqueue({ kind: 'text', content: 'abcdefgh', chunkCount: 4, compression: encoding, holdAfterChunks: 2 });
    const res = await rawPost('/chat/completions', { model: MODEL, messages: hello, stream: true }, { 'accept-encoding': encoding });
    expect(res.headers['content-encoding']).toBe(encoding);
    const decoded = res.pipe(encoding === 'gzip' ? createGunzip() : createBrotliDecompress());
    let text = '';
    decoded.on('data', (part: Buffer) => (text += part.toString('utf8')));

    await fake.waitForHeld(1);
    await waitFor(() => text.split('\n\n').length === 3, { message: () => `two decoded events, have: ${text}` });
    fake.release();
    await once(decoded, 'end');
    expect(text.endsWith('data: [DONE]\n\n')).toBe(true);
  });

  test('compression is not used when the client does not accept it', async () => {
    fake.enqueue({ kind: 'text', content: 'plain', compression: 'gzip' });
    const res = await rawPost('/chat/completions', { model: MODEL, messages: hello }, { 'accept-encoding': 'identity' });
    expect(res.headers['content-encoding']).toBeUndefined();
    expect(JSON.parse(await textOf(res))).toMatchObject({ choices: [{ message: { content: 'plain' } }] });
  });
});

describe('recording and other endpoints', () => {
  test('every request is recorded with its headers and body, in order', async () => {
    await client.chat.completions.create({ model: MODEL, messages: hello }, { headers: { 'x-conversation-id': 'c-42' } });
    await client.models.list();

    expect(fake.requests.map((request) => `${request.method} ${request.path}`)).toEqual(['POST /v1/chat/completions', 'GET /v1/models']);
    const [chat] = fake.chatRequests();
    expect(chat?.headers.authorization).toBe('Bearer sk-test');
    expect(chat?.headers['x-conversation-id']).toBe('c-42');
    expect(chat?.json).toEqual({ model: MODEL, messages: hello });
    expect(JSON.parse(chat?.rawBody.toString('utf8') ?? '')).toEqual(chat?.json);
    expect(chat?.receivedAtMs).toBeGreaterThan(0);
    await fake.waitForRequests(2);
    await fake.waitForChatRequests(1);
  });

  test('models and embeddings answer like OpenAI', async () => {
    const models = await client.models.list();
    expect(models.data.map((model) => model.id)).toContain(MODEL);

    const embedded = await client.embeddings.create({ model: 'text-embedding-3-small', input: ['alpha', 'beta'] });
    expect(embedded.data).toHaveLength(2);
    expect(embedded.data[0]?.embedding).toHaveLength(8);
    expect(embedded.data[0]?.embedding.every((value) => Number.isFinite(value))).toBe(true);

    const floats = await client.embeddings.create({ model: 'text-embedding-3-small', input: 'alpha', encoding_format: 'float', dimensions: 4 });
    expect(floats.data[0]?.embedding).toHaveLength(4);
  });

  test('any other path echoes what arrived', async () => {
    const res = await fetch(`${fake.url}/files?purpose=batch`, {
      method: 'PUT',
      headers: { authorization: 'Bearer sk-other', 'content-type': 'text/plain' },
      body: 'file contents',
    });
    expect(res.status).toBe(200);
    expect(await res.json()).toMatchObject({
      method: 'PUT',
      path: '/v1/files',
      url: '/v1/files?purpose=batch',
      headers: { authorization: 'Bearer sk-other' },
      body: 'file contents',
      json: null,
    });
    expect(fake.requests[0]?.rawBody.toString('utf8')).toBe('file contents');
  });

  test('with recording off, requests are counted but not kept', async () => {
    const quiet = await startFakeUpstream({ recordRequests: false });
    try {
      const quietClient = new OpenAI({ baseURL: quiet.url, apiKey: 'sk-test', maxRetries: 0 });
      await quietClient.chat.completions.create({ model: MODEL, messages: hello });
      await quiet.waitForChatRequests(1);
      expect(quiet.requests).toEqual([]);
    } finally {
      await quiet.close();
    }
  });
});

describe('websocket', () => {
  test('/v1/realtime echoes text and binary messages and records the upgrade', async () => {
    const ws = new WebSocket(`ws://127.0.0.1:${fake.port}/v1/realtime?model=gpt-realtime`, { headers: { authorization: 'Bearer sk-test' } });
    await once(ws, 'open');
    const replies: { data: string; isBinary: boolean }[] = [];
    ws.on('message', (data: Buffer, isBinary: boolean) => replies.push({ data: data.toString('utf8'), isBinary }));

    ws.send('{"type":"session.update"}');
    ws.send(Buffer.from('raw bytes'));
    await waitFor(() => replies.length === 2, { message: 'two echoed messages' });
    expect(replies).toEqual([
      { data: '{"type":"session.update"}', isBinary: false },
      { data: 'raw bytes', isBinary: true },
    ]);
    ws.close();
    await once(ws, 'close');

    const [upgrade] = fake.requests;
    expect(upgrade).toMatchObject({ method: 'GET', path: '/v1/realtime', url: '/v1/realtime?model=gpt-realtime' });
    expect(upgrade?.headers.authorization).toBe('Bearer sk-test');
  });

  test('other websocket paths are refused with 404', async () => {
    const ws = new WebSocket(`ws://127.0.0.1:${fake.port}/v1/elsewhere`);
    const [req, res] = (await once(ws, 'unexpected-response')) as [ClientRequest, IncomingMessage];
    expect(res.statusCode).toBe(404);
    req.destroy();
  });
});

describe('waitFor', () => {
  test('resolves once the condition holds, and times out with the message otherwise', async () => {
    let calls = 0;
    await waitFor(() => ++calls >= 3, { intervalMs: 1 });
    expect(calls).toBe(3);
    await expect(waitFor(() => false, { timeoutMs: 20, message: () => 'the impossible' })).rejects.toThrow(/the impossible/);
  });
});
