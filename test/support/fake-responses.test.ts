import { once } from 'node:events';
import { request as httpRequest, type IncomingMessage } from 'node:http';
import { APIError, OpenAI } from 'openai';
import type { Response, ResponseInputItem, ResponseStreamEvent } from 'openai/resources/responses/responses';
import { afterAll, afterEach, beforeAll, describe, expect, test } from 'vitest';
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
const weatherTool = {
  type: 'function' as const,
  name: 'get_weather',
  description: 'The weather in a city.',
  parameters: { type: 'object', properties: { city: { type: 'string' } }, required: ['city'], additionalProperties: false },
  strict: null,
};

async function collect(stream: AsyncIterable<ResponseStreamEvent>): Promise<ResponseStreamEvent[]> {
  const events: ResponseStreamEvent[] = [];
  for await (const event of stream) events.push(event);
  return events;
}

async function errorOf(promise: Promise<unknown>): Promise<unknown> {
  try {
    await promise;
  } catch (error) {
    return error;
  }
  throw new Error('expected the promise to reject');
}

/** Output items with their per-request ids blanked and without what the SDK's stream helper adds (`parsed`, `parsed_arguments`). */
function comparable(output: Response['output']): unknown {
  const replacer = (key: string, value: unknown): unknown => (key === 'id' ? '<id>' : key === 'parsed' || key === 'parsed_arguments' ? undefined : value);
  return JSON.parse(JSON.stringify(output, replacer));
}

/** A raw HTTP request, so tests can see the exact bytes the fake sends. */
async function rawPost(path: string, body: unknown): Promise<{ res: IncomingMessage; text: string }> {
  const req = httpRequest(new URL(`${fake.origin}${path}`), { method: 'POST', headers: { 'content-type': 'application/json' } });
  req.end(JSON.stringify(body));
  const [res] = (await once(req, 'response')) as [IncomingMessage];
  let text = '';
  for await (const part of res) text += (part as Buffer).toString('utf8');
  return { res, text };
}

function sseEvents(text: string): { event: string; data: Record<string, unknown> }[] {
  return text
    .split('\n\n')
    .filter((block) => block !== '')
    .map((block) => {
      const [eventLine = '', dataLine = '', ...rest] = block.split('\n');
      expect(rest).toEqual([]);
      expect(eventLine).toMatch(/^event: /);
      expect(dataLine).toMatch(/^data: \{/);
      return { event: eventLine.slice('event: '.length), data: JSON.parse(dataLine.slice('data: '.length)) as Record<string, unknown> };
    });
}

describe('responses, non-streaming', () => {
  test('the default reply echoes the input string in a Response object, with usage', async () => {
    const response = await client.responses.create({ model: MODEL, input: 'hello there', instructions: 'be brief', tools: [weatherTool] });

    expect(response).toMatchObject({
      id: expect.stringMatching(/^resp_/),
      object: 'response',
      status: 'completed',
      model: MODEL,
      error: null,
      incomplete_details: null,
      instructions: 'be brief',
      parallel_tool_calls: true,
      tool_choice: 'auto',
      temperature: 1,
      top_p: 1,
      text: { format: { type: 'text' } },
      store: true,
      previous_response_id: null,
      metadata: {},
    });
    // OpenAI echoes a function tool with its defaults filled in: strict is on unless turned off.
    expect(response.tools).toEqual([{ ...weatherTool, strict: true }]);
    expect(response.output).toEqual([
      {
        type: 'message',
        id: expect.stringMatching(/^msg_/),
        status: 'completed',
        role: 'assistant',
        content: [{ type: 'output_text', text: 'echo: hello there', annotations: [], logprobs: [] }],
      },
    ]);
    expect(response.output_text).toBe('echo: hello there');
    const usage = response.usage!;
    expect(usage.input_tokens).toBeGreaterThan(0);
    expect(usage.output_tokens).toBeGreaterThan(0);
    expect(usage.total_tokens).toBe(usage.input_tokens + usage.output_tokens);
    expect(usage.input_tokens_details.cached_tokens).toBe(0);
    expect(usage.output_tokens_details.reasoning_tokens).toBe(0);
  });

  test('the echo is the last user message item, whatever shape the items come in', async () => {
    const input: ResponseInputItem[] = [
      { role: 'developer', content: 'be brief' },
      { role: 'user', content: 'first question' },
      { type: 'message', role: 'assistant', id: 'msg_old', status: 'completed', content: [{ type: 'output_text', text: 'first answer', annotations: [] }] },
      { type: 'reasoning', id: 'rs_1', summary: [] },
      { type: 'message', role: 'user', content: [{ type: 'input_text', text: 'second' }, { type: 'input_image', detail: 'auto', image_url: 'data:image/png;base64,AA==' }, { type: 'input_text', text: 'question' }] },
      { role: 'system', content: 'and a late system note' },
    ];
    const response = await client.responses.create({ model: MODEL, input });
    expect(response.output_text).toBe('echo: second question');
  });

  test('ids are unique per request, and given content and usage are returned as given', async () => {
    fake.enqueue({ kind: 'text', content: 'Paris.', usage: { prompt_tokens: 11, completion_tokens: 2 } });
    const first = await client.responses.create({ model: MODEL, input: 'capital of France?' });
    const second = await client.responses.create({ model: MODEL, input: 'again' });
    expect(first.output_text).toBe('Paris.');
    expect(first.usage).toMatchObject({ input_tokens: 11, output_tokens: 2, total_tokens: 13 });
    expect(second.id).not.toBe(first.id);
    expect(second.output[0]?.id).not.toBe(first.output[0]?.id);
  });

  test('a reply cut short by length is incomplete, as OpenAI reports max_output_tokens', async () => {
    fake.enqueue({ kind: 'text', content: 'Once upon a', finishReason: 'length' });
    const response = await client.responses.create({ model: MODEL, input: 'a story', max_output_tokens: 16 });
    expect(response.status).toBe('incomplete');
    expect(response.incomplete_details).toEqual({ reason: 'max_output_tokens' });
    expect(response.max_output_tokens).toBe(16);
    expect(response.output[0]).toMatchObject({ type: 'message', status: 'incomplete' });
  });

  test('a refusal is a message item with a refusal part', async () => {
    fake.enqueue({ kind: 'refusal', refusal: "I can't help with that." });
    const response = await client.responses.create({ model: MODEL, input: 'something bad' });
    expect(response.output).toEqual([
      { type: 'message', id: expect.stringMatching(/^msg_/), status: 'completed', role: 'assistant', content: [{ type: 'refusal', refusal: "I can't help with that." }] },
    ]);
    expect(response.output_text).toBe('');
  });

  test('tool calls are function_call items after the optional text, with call_id, name and arguments', async () => {
    fake.enqueue({
      kind: 'tool_calls',
      content: 'Let me check.',
      toolCalls: [
        { id: 'call_a', name: 'get_weather', arguments: { city: 'Paris' } },
        { name: 'get_time', arguments: '{"tz":"Europe/Paris"}' },
      ],
    });
    const response = await client.responses.create({ model: MODEL, input: 'weather and time in Paris?', tools: [weatherTool] });
    expect(response.status).toBe('completed');
    expect(response.output).toEqual([
      expect.objectContaining({ type: 'message', content: [expect.objectContaining({ type: 'output_text', text: 'Let me check.' })] }),
      { type: 'function_call', id: expect.stringMatching(/^fc_/), status: 'completed', call_id: 'call_a', name: 'get_weather', arguments: '{"city":"Paris"}' },
      { type: 'function_call', id: expect.stringMatching(/^fc_/), status: 'completed', call_id: expect.stringMatching(/^call_/), name: 'get_time', arguments: '{"tz":"Europe/Paris"}' },
    ]);
    expect(response.output[1]?.id).not.toBe(response.output[2]?.id);
  });
});

describe('responses, streaming', () => {
  test('events come in OpenAI order, numbered from 0, with the text in several deltas', async () => {
    const content = 'The quick brown fox jumps over the lazy dog.';
    fake.enqueue({ kind: 'text', content });
    const events = await collect(await client.responses.create({ model: MODEL, input: 'hello', stream: true }));

    expect(events.map((event) => event.sequence_number)).toEqual(events.map((_, index) => index));
    const types = events.map((event) => event.type);
    const deltas = events.filter((event) => event.type === 'response.output_text.delta');
    expect(deltas.length).toBeGreaterThan(1);
    expect(types).toEqual([
      'response.created',
      'response.in_progress',
      'response.output_item.added',
      'response.content_part.added',
      ...deltas.map(() => 'response.output_text.delta'),
      'response.output_text.done',
      'response.content_part.done',
      'response.output_item.done',
      'response.completed',
    ]);
    expect(deltas.map((event) => event.delta).join('')).toBe(content);
    expect(events[0]).toMatchObject({ type: 'response.created', response: { status: 'in_progress', output: [], usage: null } });

    const completed = events.at(-1) as Extract<ResponseStreamEvent, { type: 'response.completed' }>;
    expect(completed.response.status).toBe('completed');
    expect(completed.response.id).toBe((events[0] as Extract<ResponseStreamEvent, { type: 'response.created' }>).response.id);
    expect(completed.response.output).toEqual([(events.at(-2) as Extract<ResponseStreamEvent, { type: 'response.output_item.done' }>).item]);
  });

  test('responses.stream() yields the same output and usage as the JSON reply', async () => {
    // Input tokens count the request's bytes (as for chat), and `stream: true` adds some: the usage is given.
    const behaviour = { kind: 'tool_calls', content: 'Checking.', toolCalls: [{ id: 'call_1', name: 'get_weather', arguments: { city: 'Paris' } }], usage: { prompt_tokens: 20 } } as const;
    fake.enqueue(behaviour, behaviour);
    const json = await client.responses.create({ model: MODEL, input: 'weather?', tools: [weatherTool] });
    const streamed = await client.responses.stream({ model: MODEL, input: 'weather?', tools: [weatherTool] }).finalResponse();

    expect(streamed.status).toBe('completed');
    expect(comparable(streamed.output)).toEqual(comparable(json.output));
    expect(streamed.output.map((item) => item.type)).toEqual(['message', 'function_call']);
    expect(streamed.usage).toEqual(json.usage);
    expect(streamed.output_text).toBe(json.output_text);
  });

  test('function call arguments stream in several deltas, item by item', async () => {
    fake.enqueue({ kind: 'tool_calls', toolCalls: [{ id: 'call_w', name: 'get_weather', arguments: { city: 'Paris', unit: 'celsius', days: 3 } }, { id: 'call_t', name: 'get_time', arguments: '{"tz":"Europe/Paris"}' }] });
    const stream = client.responses.stream({ model: MODEL, input: 'weather and time?' });
    const argumentDeltas = new Map<number, number>();
    stream.on('response.function_call_arguments.delta', (event) => argumentDeltas.set(event.output_index, (argumentDeltas.get(event.output_index) ?? 0) + 1));
    const response = await stream.finalResponse();

    expect(argumentDeltas.get(0)).toBeGreaterThan(1);
    expect(argumentDeltas.get(1)).toBeGreaterThan(1);
    expect(response.output.map((item) => item.type === 'function_call' && [item.call_id, item.name, JSON.parse(item.arguments)])).toEqual([
      ['call_w', 'get_weather', { city: 'Paris', unit: 'celsius', days: 3 }],
      ['call_t', 'get_time', { tz: 'Europe/Paris' }],
    ]);
  });

  test('a refusal streams as refusal deltas', async () => {
    fake.enqueue({ kind: 'refusal', refusal: "I'm sorry, I can't help with that." });
    const events = await collect(await client.responses.create({ model: MODEL, input: 'bad', stream: true }));
    expect(events.filter((event) => event.type === 'response.refusal.delta').length).toBeGreaterThan(1);
    expect(events.find((event) => event.type === 'response.refusal.done')).toMatchObject({ refusal: "I'm sorry, I can't help with that." });
  });

  test('a length-limited stream ends with response.incomplete', async () => {
    fake.enqueue({ kind: 'text', content: 'Once upon a', finishReason: 'length' });
    const events = await collect(await client.responses.create({ model: MODEL, input: 'a story', stream: true }));
    expect(events.at(-1)).toMatchObject({ type: 'response.incomplete', response: { status: 'incomplete', incomplete_details: { reason: 'max_output_tokens' } } });
  });

  test('on the wire: an event line naming each data type, obfuscation on deltas, no [DONE]', async () => {
    fake.enqueue({ kind: 'text', content: 'hi there', chunkCount: 2 });
    const { res, text } = await rawPost('/v1/responses', { model: MODEL, input: 'hello', stream: true });
    expect(res.statusCode).toBe(200);
    expect(res.headers['content-type']).toBe('text/event-stream; charset=utf-8');
    expect(text).not.toContain('[DONE]');
    const events = sseEvents(text);
    for (const { event, data } of events) expect(data.type).toBe(event);
    const deltas = events.filter(({ event }) => event === 'response.output_text.delta');
    expect(deltas.map(({ data }) => data.delta)).toEqual(['hi t', 'here']);
    expect(deltas.every(({ data }) => typeof data.obfuscation === 'string')).toBe(true);

    fake.enqueue({ kind: 'text', content: 'hi there', chunkCount: 2 });
    const plain = await rawPost('/v1/responses', { model: MODEL, input: 'hello', stream: true, stream_options: { include_obfuscation: false } });
    expect(sseEvents(plain.text).some(({ data }) => 'obfuscation' in data)).toBe(false);
  });

  test('a gzip stream decodes in the SDK', async () => {
    fake.enqueue({ kind: 'text', content: 'squeezed all the way', compression: 'gzip' });
    const { data: stream, response } = await client.responses.create({ model: MODEL, input: 'hello', stream: true }).withResponse();
    expect(response.headers.get('content-encoding')).toBe('gzip');
    const events = await collect(stream);
    expect(events.at(-1)).toMatchObject({ type: 'response.completed', response: { output: [{ content: [{ text: 'squeezed all the way' }] }] } });
  });

  test('a held stream has sent its first events and finishes after release', async () => {
    fake.enqueue({ kind: 'text', content: 'one two three four', holdAfterChunks: 3 });
    const stream = client.responses.stream({ model: MODEL, input: 'hello' });
    await fake.waitForHeld(1);
    expect(fake.responsesRequests()[0]?.outcome).toBe('pending');
    fake.release();
    expect((await stream.finalResponse()).output_text).toBe('one two three four');
  });
});

describe('tool loops and OpenAI tool rules', () => {
  test('a two-step loop sends back the function_call and its function_call_output', async () => {
    fake.enqueue({ kind: 'tool_calls', toolCalls: [{ name: 'get_weather', arguments: { city: 'Paris' } }] }, { kind: 'text', content: 'Sunny in Paris.' });
    const input: ResponseInputItem[] = [{ role: 'user', content: 'weather in Paris?' }];
    const first = await client.responses.create({ model: MODEL, input, tools: [weatherTool] });
    const call = first.output.find((item) => item.type === 'function_call');
    expect(call).toBeDefined();

    const followUp: ResponseInputItem[] = [...input, ...(first.output as ResponseInputItem[]), { type: 'function_call_output', call_id: call!.call_id, output: '{"sky":"clear"}' }];
    const second = await client.responses.create({ model: MODEL, input: followUp, tools: [weatherTool] });
    expect(second.output_text).toBe('Sunny in Paris.');

    const sent = fake.responsesRequests()[1]?.json as { input: Record<string, unknown>[] };
    expect(sent.input.map((item) => item.type ?? item.role)).toEqual(['user', 'function_call', 'function_call_output']);
    expect(sent.input[1]).toMatchObject({ type: 'function_call', call_id: call!.call_id, name: 'get_weather', id: call!.id });
    expect(sent.input[2]).toEqual({ type: 'function_call_output', call_id: call!.call_id, output: '{"sky":"clear"}' });
  });

  test('a function_call_output answering no earlier function_call is a 400 in OpenAI shape, and is listed', async () => {
    const before = fake.toolRuleViolations.length;
    const error = await errorOf(
      client.responses.create({
        model: MODEL,
        input: [{ role: 'user', content: 'q' }, { type: 'function_call_output', call_id: 'call_x', output: 'r' }],
      }),
    );
    expect(error).toBeInstanceOf(APIError);
    expect((error as APIError).status).toBe(400);
    expect((error as APIError).error).toEqual({
      message: 'No tool call found for function call output with call_id call_x.',
      type: 'invalid_request_error',
      param: 'input',
      code: null,
    });
    expect(fake.toolRuleViolations).toHaveLength(before + 1);
    expect(fake.toolRuleViolations.at(-1)!.toolRuleViolation).toMatch(/answers no function_call .*call_x/);
  });

  test('with enforceToolRules off an orphaned output is answered', async () => {
    const lenient = await startFakeUpstream({ enforceToolRules: false });
    try {
      const lenientClient = new OpenAI({ baseURL: lenient.url, apiKey: 'sk-test', maxRetries: 0 });
      const response = await lenientClient.responses.create({ model: MODEL, input: [{ type: 'function_call_output', call_id: 'call_x', output: 'r' }] });
      expect(response.status).toBe('completed');
    } finally {
      await lenient.close();
    }
  });
});

describe('previous_response_id', () => {
  test('an id the fake never issued is a 400 previous_response_not_found', async () => {
    const error = await errorOf(client.responses.create({ model: MODEL, input: 'more', previous_response_id: 'resp_unknown' }));
    expect(error).toBeInstanceOf(APIError);
    expect((error as APIError).status).toBe(400);
    expect((error as APIError).error).toEqual({
      message: "Previous response with id 'resp_unknown' not found.",
      type: 'invalid_request_error',
      param: 'previous_response_id',
      code: 'previous_response_not_found',
    });
  });

  test('an id it issued is accepted, also with only the outputs of its calls as input; the request is recorded as sent', async () => {
    fake.enqueue({ kind: 'tool_calls', toolCalls: [{ id: 'call_p', name: 'get_weather', arguments: { city: 'Oslo' } }] }, { kind: 'text', content: 'Snow.' });
    const first = await client.responses.create({ model: MODEL, input: 'weather in Oslo?', tools: [weatherTool] });
    const second = await client.responses.create({
      model: MODEL,
      previous_response_id: first.id,
      input: [{ type: 'function_call_output', call_id: 'call_p', output: '{"sky":"snow"}' }],
    });
    expect(second.output_text).toBe('Snow.');
    expect(second.previous_response_id).toBe(first.id);
    expect(fake.responsesRequests()[1]?.json).toMatchObject({ previous_response_id: first.id });
  });

  test('a response made with store: false cannot be continued, as on OpenAI; neither can another fake’s', async () => {
    const unstored = await client.responses.create({ model: MODEL, input: 'hi', store: false });
    expect(unstored).toMatchObject({ store: false }); // OpenAI echoes store, though the SDK type leaves it out
    const error = await errorOf(client.responses.create({ model: MODEL, input: 'more', previous_response_id: unstored.id }));
    expect((error as APIError).status).toBe(400);

    const other = await startFakeUpstream();
    try {
      const otherClient = new OpenAI({ baseURL: other.url, apiKey: 'sk-test', maxRetries: 0 });
      const stored = await client.responses.create({ model: MODEL, input: 'hi' });
      expect(((await errorOf(otherClient.responses.create({ model: MODEL, input: 'more', previous_response_id: stored.id }))) as APIError).status).toBe(400);
    } finally {
      await other.close();
    }
  });
});

describe('failures', () => {
  test('an error reply is the SDK APIError with the OpenAI error body, streaming or not', async () => {
    fake.enqueue({ kind: 'error', status: 429, message: 'Slow down.', headers: { 'retry-after': '7' } }, { kind: 'error', status: 500 });
    const limited = (await errorOf(client.responses.create({ model: MODEL, input: 'hi' }))) as APIError;
    expect(limited).toBeInstanceOf(APIError);
    expect(limited.status).toBe(429);
    expect(limited.error).toEqual({ message: 'Slow down.', type: 'requests', param: null, code: 'rate_limit_exceeded' });
    expect(limited.headers?.get('retry-after')).toBe('7');

    const broken = (await errorOf(client.responses.create({ model: MODEL, input: 'hi', stream: true }))) as APIError;
    expect(broken.status).toBe(500);
    expect(broken.error).toMatchObject({ type: 'server_error' });
  });

  test('response_failed: the stream ends cleanly with response.failed, which the JS SDK does not throw on', async () => {
    fake.enqueue({ kind: 'response_failed', message: 'The model crashed.', partialContent: 'Half an ans', chunkCount: 2 });
    const stream = client.responses.stream({ model: MODEL, input: 'hi' });
    const types: string[] = [];
    stream.on('event', (event) => types.push(event.type));
    const response = await stream.finalResponse();

    expect(types).toEqual([
      'response.created',
      'response.in_progress',
      'response.output_item.added',
      'response.content_part.added',
      'response.output_text.delta',
      'response.output_text.delta',
      'response.failed',
    ]);
    expect(response.status).toBe('failed');
    expect(response.error).toEqual({ code: 'server_error', message: 'The model crashed.' });
    expect(response.output[0]).toMatchObject({ type: 'message', status: 'incomplete', content: [{ text: 'Half an ans' }] });
    await waitFor(() => fake.responsesRequests()[0]?.outcome === 'completed', { message: 'the stream to end' });
  });

  test('error_event: OpenAI’s nested error event makes the SDK throw an APIError', async () => {
    fake.enqueue({ kind: 'error_event', type: 'too_many_requests', code: 'too_many_requests', message: 'Too Many Requests' });
    const events: ResponseStreamEvent[] = [];
    const error = await errorOf(
      (async () => {
        for await (const event of await client.responses.create({ model: MODEL, input: 'hi', stream: true })) events.push(event);
      })(),
    );
    expect(error).toBeInstanceOf(APIError);
    expect((error as APIError).message).toMatch(/Too Many Requests/);
    expect((error as APIError).error).toEqual({ type: 'too_many_requests', code: 'too_many_requests', message: 'Too Many Requests', param: null });
    expect(events.map((event) => event.type)).toEqual(['response.created', 'response.in_progress']);
  });

  test('error_event with the flat shape the API reference documents: the JS SDK passes it on as an event', async () => {
    fake.enqueue({ kind: 'error_event', shape: 'flat', code: 'server_error', message: 'Boom.' });
    const events = await collect(await client.responses.create({ model: MODEL, input: 'hi', stream: true }));
    expect(events.at(-1)).toEqual({ type: 'error', sequence_number: 2, code: 'server_error', message: 'Boom.', param: null });
  });

  test('the stream failure behaviours answer a non-streaming request with an HTTP 500', async () => {
    fake.enqueue({ kind: 'response_failed' }, { kind: 'error_event', code: 'server_error', message: 'Boom.' });
    expect(((await errorOf(client.responses.create({ model: MODEL, input: 'hi' }))) as APIError).status).toBe(500);
    const error = (await errorOf(client.responses.create({ model: MODEL, input: 'hi' }))) as APIError;
    expect(error.status).toBe(500);
    expect(error.error).toMatchObject({ message: 'Boom.', code: 'server_error' });
  });

  test('a stream cut after a few events makes the SDK throw, with no response.completed seen', async () => {
    fake.enqueue({ kind: 'text', content: 'this will not finish', chunkCount: 5, cutAfterChunks: 5 });
    const received: ResponseStreamEvent[] = [];
    const stream = await client.responses.create({ model: MODEL, input: 'hi', stream: true });
    await expect(
      (async () => {
        for await (const event of stream) received.push(event);
      })(),
    ).rejects.toThrow();
    expect(received).toHaveLength(5);
    expect(received.some((event) => event.type === 'response.completed')).toBe(false);
    expect(fake.responsesRequests()[0]?.outcome).toBe('cut');

    fake.enqueue({ kind: 'text', content: 'nor this', cutAfterChunks: 3 });
    await expect(client.responses.stream({ model: MODEL, input: 'hi' }).finalResponse()).rejects.toThrow();
  });

  test('a reset before headers is a connection error, and raw replays bytes verbatim', async () => {
    fake.enqueue({ kind: 'reset' });
    await expect(client.responses.create({ model: MODEL, input: 'hi' })).rejects.toThrow(/Connection error/);

    const chunks = ['event: response.created\ndata: {"type":"response.created","sequence_number":0}\n\n'];
    fake.enqueue({ kind: 'raw', chunks });
    expect((await rawPost('/v1/responses', { model: MODEL, input: 'hi', stream: true })).text).toBe(chunks[0]);
  });
});

describe('routing and recording', () => {
  test.each(['/openai/responses?api-version=2025-04-01-preview', '/openai/v1/responses'])('Azure path %s is answered as Responses', async (path) => {
    const res = await fetch(`${fake.origin}${path}`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ model: 'my-deployment', input: 'hi' }) });
    expect(res.status).toBe(200);
    expect(await res.json()).toMatchObject({ object: 'response', model: 'my-deployment', output: [{ content: [{ text: 'echo: hi' }] }] });
    expect(fake.responsesRequests().at(-1)!.url).toBe(path);
    await fake.waitForResponsesRequests(1);
  });

  test('requests are recorded with headers and body; chat completions answer as before, each in its own list', async () => {
    await client.responses.create({ model: MODEL, input: 'via responses' }, { headers: { 'x-conversation-id': 'c-7' } });
    const chat = await client.chat.completions.create({ model: MODEL, messages: [{ role: 'user', content: 'via chat' }] });
    const other = await fetch(`${fake.url}/responses/resp_1`);

    expect(chat.choices[0]?.message.content).toBe('echo: via chat');
    expect(other.status).toBe(200); // anything else is echoed, as before
    expect(fake.requests.map((request) => `${request.method} ${request.path}`)).toEqual(['POST /v1/responses', 'POST /v1/chat/completions', 'GET /v1/responses/resp_1']);
    const [recorded] = fake.responsesRequests();
    expect(fake.responsesRequests()).toHaveLength(1);
    expect(fake.chatRequests()).toHaveLength(1);
    expect(recorded?.headers['x-conversation-id']).toBe('c-7');
    expect(recorded?.json).toEqual({ model: MODEL, input: 'via responses' });
    await fake.waitForResponsesRequests(1);
  });

  test('a Responses-only behaviour sent to chat completions is a 500 saying so', async () => {
    fake.enqueue({ kind: 'response_failed' });
    const error = (await errorOf(client.chat.completions.create({ model: MODEL, messages: [{ role: 'user', content: 'hi' }] }))) as APIError;
    expect(error.status).toBe(500);
    expect(error.message).toMatch(/answers Responses requests only/);
  });
});
