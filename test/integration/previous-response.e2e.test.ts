// previous_response_id for any upstream (routes with responses.state: emulate):
// the official openai client chains responses through a real contextd process
// with no conversation header and no upstream state; contextd sends the
// history itself and the fake upstream (which keeps no state) receives it
// without previous_response_id. On every store: the embedded one, Redis,
// MongoDB and Redis + MongoDB (real servers).
import { randomUUID } from 'node:crypto';
import { createServer } from 'node:net';
import OpenAI from 'openai';
import { afterAll, beforeAll, beforeEach, describe, expect, test } from 'vitest';
import { ensureBuilt, startContextd, stopAll, type ContextdProcess } from '../support/contextd-process.js';
import { startFakeUpstream, type Behaviour, type FakeUpstream } from '../support/fake-upstream.js';
import { startMongo, type MongoServer } from '../support/mongo-server.js';
import { startRedis, type RedisServer } from '../support/redis-server.js';
import { serviceAvailability, servicesRequired } from '../support/services.js';
import { waitFor } from '../support/wait-for.js';
import { API_KEY, clientFor, contextdConfig, storedMessages } from './harness.js';

type Item = Record<string, unknown>;
const available = serviceAvailability();
const hasRedis = available.redis.isAvailable || servicesRequired;
const hasMongo = available.mongo.isAvailable || servicesRequired;

let upstream: FakeUpstream;
let redisServer: RedisServer | undefined;
let mongoServer: MongoServer | undefined;

beforeAll(async () => {
  await ensureBuilt();
  upstream = await startFakeUpstream();
  [redisServer, mongoServer] = await Promise.all([hasRedis ? startRedis() : undefined, hasMongo ? startMongo() : undefined]);
}, 120_000);
beforeEach(() => upstream.reset());
afterAll(async () => {
  await stopAll();
  await Promise.allSettled([upstream?.close(), redisServer?.stop(), mongoServer?.stop()]);
});

const stores: { name: string; isAvailable: boolean; storage: () => Record<string, unknown> }[] = [
  { name: 'the embedded store', isAvailable: true, storage: () => ({}) },
  { name: 'Redis', isAvailable: hasRedis, storage: () => ({ redis: { url: redisServer!.url } }) },
  { name: 'MongoDB', isAvailable: hasMongo, storage: () => ({ mongodb: { url: mongoServer!.url, database: `${mongoServer!.database}_prm`, timeout: '5s' } }) },
  {
    name: 'Redis + MongoDB',
    isAvailable: hasRedis && hasMongo,
    storage: () => ({ redis: { url: redisServer!.url }, mongodb: { url: mongoServer!.url, database: `${mongoServer!.database}_prrm`, timeout: '5s' } }),
  },
];

/** What the upstream received on its n-th Responses request. */
const received = (n: number): { input: Item[]; previous_response_id?: unknown } => upstream.responsesRequests()[n]!.json as { input: Item[]; previous_response_id?: unknown };
/** Each item as role:text (messages) or type:call_id (function items). */
const shape = (items: readonly Item[]): string[] =>
  items.map((item) => {
    if (item.type === 'function_call' || item.type === 'function_call_output') return `${String(item.type)}:${String(item.call_id)}`;
    const content = item.content;
    const text = typeof content === 'string' ? content : Array.isArray(content) ? content.map((part: Item) => String(part.text)).join('') : '';
    return `${String(item.role)}:${text}`;
  });

async function create(client: OpenAI, input: string, previous?: string): Promise<{ id: string; conversation: string | null; text: string }> {
  const { data, response } = await client.responses.create({ model: 'gpt-4.1-mini', input, ...(previous !== undefined ? { previous_response_id: previous } : {}) }).withResponse();
  return { id: data.id, conversation: response.headers.get('x-contextd-conversation-id'), text: data.output_text };
}

/** A whole JSON `Response` with the given output items, as an upstream that ran hosted tools answers. */
function responseWithOutput(output: Item[]): Behaviour {
  const response = { id: `resp_${randomUUID().replaceAll('-', '')}`, object: 'response', created_at: 1, status: 'completed', error: null, model: 'gpt-4.1-mini', output, usage: { input_tokens: 10, output_tokens: 5, total_tokens: 15 } };
  return { kind: 'raw', chunks: [JSON.stringify(response)], headers: { 'content-type': 'application/json' } };
}

describe.each(stores)('previous_response_id emulation on $name', ({ isAvailable, storage }) => {
  let contextd: ContextdProcess;
  let client: OpenAI;
  beforeAll(async () => {
    if (!isAvailable) return;
    contextd = await startContextd({ config: contextdConfig(upstream, { storage: storage(), defaults: { summary: { enabled: false }, responses: { state: 'emulate' } } }) });
    client = clientFor(contextd, undefined);
  }, 60_000);

  test.runIf(isAvailable)('a chain of 8 responses, each sent the moment the last ended: every one sees all before it; nothing upstream names previous_response_id', async () => {
    const first = await create(client, 'turn 0');
    expect(first.conversation).toMatch(/^[0-9a-f-]{36}$/);
    let previous = first.id;
    for (let turn = 1; turn < 8; turn++) {
      const next = await create(client, `turn ${turn}`, previous);
      expect(next.conversation).toBe(first.conversation);
      expect(next.text).toBe(`echo: turn ${turn}`);
      previous = next.id;
    }
    const requests = upstream.responsesRequests();
    expect(requests).toHaveLength(8);
    for (const [n] of requests.entries()) {
      expect(received(n).previous_response_id).toBeUndefined();
      const history = Array.from({ length: n }, (_, turn) => [`user:turn ${turn}`, `assistant:echo: turn ${turn}`]).flat();
      expect(shape(received(n).input)).toEqual([...history, `user:turn ${n}`]);
    }
    await waitFor(async () => (await storedMessages(contextd, first.conversation!)).length === 16, { message: '16 stored messages' });
  });

  test.runIf(isAvailable)('streaming (responses.stream) continues the chain too', async () => {
    const first = await create(client, 'stream start');
    upstream.enqueue({ kind: 'text', content: 'streamed', chunkCount: 3 });
    const stream = client.responses.stream({ model: 'gpt-4.1-mini', input: 'go on', previous_response_id: first.id });
    const streamed = await stream.finalResponse();
    expect(streamed.output_text).toBe('streamed');
    const third = await create(client, 'and then', streamed.id);
    expect(third.conversation).toBe(first.conversation);
    expect(shape(received(2).input)).toEqual(['user:stream start', 'assistant:echo: stream start', 'user:go on', 'assistant:streamed', 'user:and then']);
  });

  test.runIf(isAvailable)('an older response starts a branch: a new conversation with the history up to it; the original is unchanged and both go on', async () => {
    const r1 = await create(client, 'a');
    const r2 = await create(client, 'b', r1.id);
    const r3 = await create(client, 'c', r2.id);
    const original = r1.conversation!;
    await waitFor(async () => (await storedMessages(contextd, original)).length === 6, { message: '6 stored messages' });

    const branch = await create(client, 'b2', r1.id);
    expect(branch.conversation).not.toBe(original);
    expect(shape(received(3).input)).toEqual(['user:a', 'assistant:echo: a', 'user:b2']);
    const onBranch = await create(client, 'c2', branch.id);
    expect(onBranch.conversation).toBe(branch.conversation);
    expect(shape(received(4).input)).toEqual(['user:a', 'assistant:echo: a', 'user:b2', 'assistant:echo: b2', 'user:c2']);

    // The original goes on from its newest response, as it was.
    const onOriginal = await create(client, 'd', r3.id);
    expect(onOriginal.conversation).toBe(original);
    expect(shape(received(5).input)).toEqual(['user:a', 'assistant:echo: a', 'user:b', 'assistant:echo: b', 'user:c', 'assistant:echo: c', 'user:d']);
    await waitFor(async () => (await storedMessages(contextd, branch.conversation!)).length === 6, { message: 'the branch holds 6 messages' });
    const branchRows = await storedMessages(contextd, branch.conversation!);
    expect(branchRows.map((row) => row.message.content)).toEqual(['a', 'echo: a', 'b2', 'echo: b2', 'c2', 'echo: c2']);
    await waitFor(async () => (await storedMessages(contextd, original)).length === 8, { message: 'the original holds 8 messages' });
  });

  test.runIf(isAvailable)('a function-call loop over previous_response_id: the call and its output go upstream together, each stored once', async () => {
    upstream.enqueue({ kind: 'tool_calls', toolCalls: [{ id: 'call_w1', name: 'weather', arguments: { city: 'Oslo' } }] }, { kind: 'text', content: 'It is 3 degrees in Oslo.' });
    const tools = [{ type: 'function' as const, name: 'weather', parameters: { type: 'object', properties: { city: { type: 'string' } } }, strict: false }];
    const first = await client.responses.create({ model: 'gpt-4.1-mini', input: 'Weather in Oslo?', tools });
    const call = first.output.find((item) => item.type === 'function_call');
    expect(call).toMatchObject({ call_id: 'call_w1' });
    const second = await client.responses.create({
      model: 'gpt-4.1-mini',
      previous_response_id: first.id,
      input: [{ type: 'function_call_output', call_id: 'call_w1', output: '{"temp":3}' }],
      tools,
    });
    expect(shape(received(1).input)).toEqual(['user:Weather in Oslo?', 'function_call:call_w1', 'function_call_output:call_w1']);
    const third = await create(client, 'Thanks', second.id);
    expect(shape(received(2).input)).toEqual(['user:Weather in Oslo?', 'function_call:call_w1', 'function_call_output:call_w1', `assistant:${second.output_text}`, 'user:Thanks']);
    await waitFor(async () => (await storedMessages(contextd, third.conversation!)).length === 6, { message: '6 stored messages' });
    const rows = await storedMessages(contextd, third.conversation!);
    expect(rows.map((row) => row.message.role)).toEqual(['user', 'assistant', 'tool', 'assistant', 'user', 'assistant']);
  });

  test.runIf(isAvailable)("a response whose output is only a hosted tool's call is linked: previous_response_id to it continues, the user's input of that turn in the history", async () => {
    const computerCall = { type: 'computer_call', id: 'cu_1', call_id: 'call_cu1', action: { type: 'screenshot' }, pending_safety_checks: [], status: 'completed' };
    upstream.enqueue(responseWithOutput([computerCall]));
    const first = await create(client, 'Take a screenshot');
    expect(first.text).toBe('');
    // The client answers the hosted call, whose call contextd does not keep: the output goes nowhere (an upstream refuses an orphan).
    const second = await client.responses
      .create({
        model: 'gpt-4.1-mini',
        previous_response_id: first.id,
        input: [{ type: 'computer_call_output', call_id: 'call_cu1', output: { type: 'computer_screenshot', image_url: 'data:image/png;base64,AAAA' } }, { role: 'user', content: 'What did you see?' }] as never,
      })
      .withResponse();
    expect(second.response.status).toBe(200);
    expect(second.response.headers.get('x-contextd-conversation-id')).toBe(first.conversation);
    expect(received(1).previous_response_id).toBeUndefined();
    expect(shape(received(1).input)).toEqual(['user:Take a screenshot', 'user:What did you see?']);
    await waitFor(async () => (await storedMessages(contextd, first.conversation!)).length === 3, { message: '3 stored messages' });
    const rows = await storedMessages(contextd, first.conversation!);
    expect(rows.map((row) => [row.message.role, row.message.content])).toEqual([
      ['user', 'Take a screenshot'],
      ['user', 'What did you see?'],
      ['assistant', 'echo: What did you see?'],
    ]);
  });

  test.runIf(isAvailable)('text, a function call, then more text in one output: stored as one assistant message; its output continues with the pair intact', async () => {
    const text = (id: string, words: string) => ({ type: 'message', id, role: 'assistant', status: 'completed', content: [{ type: 'output_text', text: words, annotations: [] }] });
    upstream.enqueue(responseWithOutput([text('msg_a', 'Let me check.'), { type: 'function_call', id: 'fc_1', call_id: 'call_m1', name: 'lookup', arguments: '{}', status: 'completed' }, text('msg_b', 'One moment.')]));
    const first = await create(client, 'Look it up');
    const second = await client.responses.create({ model: 'gpt-4.1-mini', previous_response_id: first.id, input: [{ type: 'function_call_output', call_id: 'call_m1', output: 'found' }] });
    expect(second.output_text).not.toBe('');
    expect(shape(received(1).input)).toEqual(['user:Look it up', 'assistant:Let me check.One moment.', 'function_call:call_m1', 'function_call_output:call_m1']);
    expect(upstream.toolRuleViolations).toEqual([]);
    await waitFor(async () => (await storedMessages(contextd, first.conversation!)).length === 4, { message: '4 stored messages' });
    const rows = await storedMessages(contextd, first.conversation!);
    expect(rows.map((row) => row.message.role)).toEqual(['user', 'assistant', 'tool', 'assistant']);
    expect(rows[1]!.message).toMatchObject({ content: [{ type: 'text', text: 'Let me check.' }, { type: 'text', text: 'One moment.' }], tool_calls: [{ id: 'call_m1' }] });
  });
});

describe('previous_response_id emulation: ids, tenants, routes', () => {
  let contextd: ContextdProcess;
  beforeAll(async () => {
    contextd = await startContextd({
      config: contextdConfig(upstream, {
        defaults: { summary: { enabled: false }, responses: { state: 'emulate' } },
        routes: [{ name: 'upstream-state', match: { model: 'stateful-*' }, responses: { state: 'pass' } }],
      }),
    });
  }, 60_000);

  test("an id contextd never relayed is a 404 in OpenAI's shape, and nothing goes upstream", async () => {
    const error = await create(clientFor(contextd, undefined), 'hi', 'resp_never_seen').catch((e: unknown) => e);
    expect(error).toBeInstanceOf(OpenAI.NotFoundError);
    expect((error as InstanceType<typeof OpenAI.NotFoundError>).error).toMatchObject({ code: 'previous_response_not_found', param: 'previous_response_id', type: 'invalid_request_error' });
    expect(upstream.responsesRequests()).toHaveLength(0);
  });

  test("another tenant's response id is a 404: links are tenant-scoped", async () => {
    const mine = await create(clientFor(contextd, undefined), 'secret plan');
    const theirs = clientFor(contextd, undefined, 'sk-another-tenant-0123456789abcdef');
    const error = await create(theirs, 'what was the plan?', mine.id).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(OpenAI.NotFoundError);
    expect(upstream.responsesRequests()).toHaveLength(1);
  });

  test('with the header: the same conversation continues; another conversation is a 400', async () => {
    const withHeader = clientFor(contextd, 'prm-header-1');
    const first = await create(withHeader, 'one');
    expect(first.conversation).toBe('prm-header-1');
    const second = await create(withHeader, 'two', first.id);
    expect(second.conversation).toBe('prm-header-1');
    expect(shape(received(1).input)).toEqual(['user:one', 'assistant:echo: one', 'user:two']);
    const error = await create(clientFor(contextd, 'prm-header-2'), 'three', second.id).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(OpenAI.BadRequestError);
    expect((error as InstanceType<typeof OpenAI.BadRequestError>).error).toMatchObject({ code: 'conversation_state_conflict', param: 'previous_response_id' });
  });

  test('a deleted conversation takes its links with it', async () => {
    const client = clientFor(contextd, undefined);
    const first = await create(client, 'forget me');
    const second = await create(client, 'and me', first.id);
    await waitFor(async () => (await storedMessages(contextd, second.conversation!)).length === 4, { message: '4 stored messages' });
    const deleted = await fetch(`${contextd.url}/contextd/v1/conversations/${second.conversation}`, { method: 'DELETE', headers: { authorization: `Bearer ${API_KEY}` } });
    expect(deleted.status).toBe(200);
    for (const id of [first.id, second.id]) {
      const error = await create(client, 'still there?', id).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(OpenAI.NotFoundError);
    }
  });

  test('a route with state: pass forwards previous_response_id untouched and adds nothing', async () => {
    const client = clientFor(contextd, undefined);
    const first = await client.responses.create({ model: 'stateful-model', input: 'hello' });
    const { data, response } = await client.responses.create({ model: 'stateful-model', input: 'hi', previous_response_id: first.id }).withResponse();
    expect(data.output_text).toBe('echo: hi');
    expect(response.headers.get('x-contextd-conversation-id')).toBeNull();
    expect(response.headers.get('x-contextd-history-messages')).toBeNull();
    expect(received(1)).toMatchObject({ previous_response_id: first.id, input: 'hi' });
  });

  test("a request naming the upstream's own conversation passes through untouched on an emulating route", async () => {
    const { response } = await clientFor(contextd, undefined).responses.create({ model: 'gpt-4.1-mini', input: 'hi', conversation: 'conv_upstream_1' }).withResponse();
    expect(response.headers.get('x-contextd-conversation-id')).toBeNull();
    expect(received(0)).toMatchObject({ conversation: 'conv_upstream_1', input: 'hi' });
  });
});

describe('previous_response_id emulation with no store answering', () => {
  let contextd: ContextdProcess;
  beforeAll(async () => {
    // A port nothing listens on: Redis is down from the start.
    const port = await new Promise<number>((resolve) => {
      const probe = createServer().listen(0, '127.0.0.1', () => {
        const { port: free } = probe.address() as { port: number };
        probe.close(() => resolve(free));
      });
    });
    contextd = await startContextd({
      config: contextdConfig(upstream, {
        storage: { redis: { url: `redis://127.0.0.1:${port}`, timeout: '200ms' } },
        defaults: { summary: { enabled: false }, responses: { state: 'emulate' }, on_store_down: 'passthrough' },
      }),
    });
  }, 60_000);

  test('previous_response_id is a 503 whatever on_store_down says (nothing else can answer it); a request without it passes through', async () => {
    const client = clientFor(contextd, undefined);
    const error = await create(client, 'go on', 'resp_somewhere').catch((e: unknown) => e);
    expect(error).toBeInstanceOf(OpenAI.InternalServerError);
    expect((error as InstanceType<typeof OpenAI.InternalServerError>).status).toBe(503);
    expect((error as InstanceType<typeof OpenAI.InternalServerError>).error).toMatchObject({ code: 'contextd_store_unavailable' });
    expect(upstream.responsesRequests()).toHaveLength(0);

    const { data, response } = await client.responses.create({ model: 'gpt-4.1-mini', input: 'hello' }).withResponse();
    expect(data.output_text).toBe('echo: hello');
    expect(response.headers.get('x-contextd-memory')).toBe('unavailable');
    expect(upstream.responsesRequests()).toHaveLength(1);
  });
});
