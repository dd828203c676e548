// The Responses API with memory, for what has no chat form and what crosses
// APIs: reasoning items in a tool loop, item_references in re-sent history,
// summaries as a `developer` item,
// failed and cut streams, and a tool loop begun on the Responses API and
// continued on chat completions. The official openai client through a real
// contextd process to the fake upstream, which records what it received.
import { randomUUID } from 'node:crypto';
import type OpenAI from 'openai';
import { afterAll, beforeAll, beforeEach, describe, expect, test } from 'vitest';
import { DEFAULT_SUMMARY_PROMPT } from '../../src/config/schema.js';
import { ensureBuilt, stopAll, type ContextdProcess } from '../support/contextd-process.js';
import { startFakeUpstream, type Behaviour, type FakeUpstream, type RecordedRequest } from '../support/fake-upstream.js';
import { waitFor } from '../support/wait-for.js';
import { clientFor, startInFrontOf, storedMessages } from './harness.js';

type Item = Record<string, unknown>;

let upstream: FakeUpstream;
let contextd: ContextdProcess;
const newConversation = (): string => `responses-items-${randomUUID()}`;

beforeAll(async () => {
  await ensureBuilt();
  upstream = await startFakeUpstream();
  contextd = await startInFrontOf(upstream, { defaults: { summary: { enabled: false }, responses: { state: 'emulate' } } });
});
beforeEach(() => upstream.reset());
afterAll(async () => {
  await stopAll();
  await upstream.close();
});

/** The `input` items the upstream received on its n-th Responses request (of the non-summary ones). */
const receivedInput = (n: number): Item[] => (upstream.responsesRequests()[n]!.json as { input: Item[] }).input;
const kinds = (items: readonly Item[]): string[] => items.map((item) => (item.type === 'message' || item.type === undefined ? String(item.role) : String(item.type)));

/** A whole JSON `Response` with these output items. */
function responseWithOutput(output: Item[]): Behaviour {
  const response = { id: `resp_${randomUUID().replaceAll('-', '')}`, object: 'response', created_at: 1, status: 'completed', error: null, model: 'o4-mini', output, usage: { input_tokens: 10, output_tokens: 5, total_tokens: 15 } };
  return { kind: 'raw', chunks: [JSON.stringify(response)], headers: { 'content-type': 'application/json' } };
}

async function storedWhen(conversation: string, count: number) {
  let rows: Awaited<ReturnType<typeof storedMessages>> = [];
  await waitFor(async () => (rows = await storedMessages(contextd, conversation)).length === count, { message: `${count} stored messages` });
  return rows;
}

const tools = [{ type: 'function' as const, name: 'weather', parameters: { type: 'object', properties: { city: { type: 'string' } } }, strict: false }];

describe('reasoning items in a tool loop (the Agents SDK with store: false)', () => {
  test('step 2 re-sends [user, reasoning, function_call, function_call_output]: the upstream receives them as sent, reasoning included; each message is stored once', async () => {
    const conversation = newConversation();
    const client = clientFor(contextd, conversation);
    const reasoning = { type: 'reasoning', id: 'rs_1', summary: [], encrypted_content: `gAAAAB${'x'.repeat(400)}` };
    const call = { type: 'function_call', id: 'fc_1', call_id: 'call_r1', name: 'weather', arguments: '{"city":"Oslo"}', status: 'completed' };
    upstream.enqueue(responseWithOutput([reasoning, call]), { kind: 'text', content: 'It rains in Oslo.' });
    const input: Item[] = [{ role: 'user', content: 'Weather in Oslo?' }];
    const first = await client.responses.create({ model: 'o4-mini', input: input as never, tools, store: false, include: ['reasoning.encrypted_content'] });
    input.push(...(first.output as unknown as Item[]), { type: 'function_call_output', call_id: 'call_r1', output: 'rain' });

    const { data: second, response } = await client.responses.create({ model: 'o4-mini', input: input as never, tools, store: false }).withResponse();

    expect(second.output_text).toBe('It rains in Oslo.');
    expect(receivedInput(1)).toEqual(input);
    expect(upstream.toolRuleViolations).toEqual([]);
    // The reasoning item is counted (roughly, by its JSON's length ÷ 4): the prompt costs more than the same loop without it.
    expect(Number(response.headers.get('x-contextd-context-tokens'))).toBeGreaterThan(Math.ceil(JSON.stringify(reasoning).length / 4));
    const rows = await storedWhen(conversation, 4);
    expect(rows.map((row) => row.message.role)).toEqual(['user', 'assistant', 'tool', 'assistant']);
  });
});

describe('item_references (the AI SDK with store on)', () => {
  test("earlier replies re-sent by reference: contextd's stored copies go upstream in their place, no reference does; each message stored once", async () => {
    const conversation = newConversation();
    const client = clientFor(contextd, conversation);
    const first = await client.responses.create({ model: 'gpt-4.1-mini', input: 'My name is Ana.' });
    const reply = (first.output as unknown as Item[]).find((item) => item.type === 'message')!;
    expect(String(reply.id)).not.toBe('');
    await storedWhen(conversation, 2);

    const input: Item[] = [{ role: 'user', content: 'My name is Ana.' }, { type: 'item_reference', id: reply.id }, { role: 'user', content: 'What is my name?' }];
    const second = await client.responses.create({ model: 'gpt-4.1-mini', input: input as never });

    expect(second.output_text).toBe('echo: What is my name?');
    const sent = receivedInput(1);
    expect(kinds(sent)).toEqual(['user', 'assistant', 'user']);
    expect(sent[1]).toMatchObject({ role: 'assistant', content: [{ type: 'output_text', text: first.output_text }] });
    const rows = await storedWhen(conversation, 4);
    expect(rows.map((row) => row.message.content)).toEqual(['My name is Ana.', first.output_text, 'What is my name?', second.output_text]);
  });

  test('a reference in the new turn, after the re-sent history: a 400 conversation_state_conflict naming it; nothing goes upstream, nothing is stored', async () => {
    const conversation = newConversation();
    const client = clientFor(contextd, conversation);
    const first = await client.responses.create({ model: 'gpt-4.1-mini', input: 'My name is Ana.' });
    await storedWhen(conversation, 2);
    const input: Item[] = [
      { role: 'user', content: 'My name is Ana.' },
      { role: 'assistant', content: first.output_text },
      { role: 'user', content: 'And this?' },
      { type: 'item_reference', id: 'msg_only_the_upstream_knows' },
    ];

    const error = await client.responses.create({ model: 'gpt-4.1-mini', input: input as never }).catch((e: unknown) => e);

    expect(error).toMatchObject({ status: 400, code: 'conversation_state_conflict', param: 'input[3]' });
    expect(upstream.responsesRequests()).toHaveLength(1);
    expect(await storedMessages(contextd, conversation)).toHaveLength(2);
  });
});

describe('nothing stored, nothing linked', () => {
  /** Streams a request on the conversation and returns the response id the stream named, however it ended. */
  async function streamFailing(client: OpenAI, behaviour: Behaviour): Promise<string> {
    upstream.enqueue(behaviour);
    let responseId = '';
    const stream = client.responses.stream({ model: 'gpt-4.1-mini', input: 'this one fails' });
    stream.on('response.created', (event) => (responseId = event.response.id));
    await stream.finalResponse().catch(() => undefined);
    return responseId;
  }

  test.each<[string, Behaviour]>([
    ['an `error` event', { kind: 'error_event', partialContent: 'half an ans' }],
    ['a stream cut mid-way', { kind: 'text', content: 'a long answer cut short', chunkCount: 6, cutAfterChunks: 5 }],
  ])('%s on /v1/responses: nothing is stored and previous_response_id to it is a 404', async (_name, behaviour) => {
    const conversation = newConversation();
    const client = clientFor(contextd, conversation);
    const responseId = await streamFailing(client, behaviour);
    expect(responseId).toMatch(/^resp_/);
    await contextd.waitForLog((line) => line.msg === 'request' && line.conversation === conversation && line.stored === 'not_stored');
    expect(await storedMessages(contextd, conversation)).toEqual([]);

    const error = await clientFor(contextd, undefined).responses.create({ model: 'gpt-4.1-mini', input: 'go on', previous_response_id: responseId }).catch((e: unknown) => e);
    expect(error).toMatchObject({ status: 404, code: 'previous_response_not_found' });
    expect(upstream.responsesRequests()).toHaveLength(1);
  });
});

describe('one conversation, either API: begun on the Responses API', () => {
  test('a function_call loop begun on the Responses API, continued on chat completions (assistant tool_calls + tool message upstream), then back', async () => {
    const conversation = newConversation();
    const client = clientFor(contextd, conversation);
    upstream.enqueue({ kind: 'tool_calls', toolCalls: [{ id: 'call_x1', name: 'weather', arguments: { city: 'Rome' } }] });
    const first = await client.responses.create({ model: 'gpt-4.1-mini', input: 'Weather in Rome?', tools });
    expect(first.output.find((item) => item.type === 'function_call')).toMatchObject({ call_id: 'call_x1' });
    await storedWhen(conversation, 2);

    // Chat completions answers the call with a tool message.
    upstream.enqueue({ kind: 'text', content: 'Sunny in Rome.' });
    await client.chat.completions.create({ model: 'gpt-4.1-mini', messages: [{ role: 'tool', tool_call_id: 'call_x1', content: 'sun' }] });
    const chat = (upstream.chatRequests().at(-1)!.json as { messages: Record<string, unknown>[] }).messages;
    expect(chat).toEqual([
      { role: 'user', content: 'Weather in Rome?' },
      { role: 'assistant', content: null, tool_calls: [{ id: 'call_x1', type: 'function', function: { name: 'weather', arguments: '{"city":"Rome"}' } }] },
      { role: 'tool', tool_call_id: 'call_x1', content: 'sun' },
    ]);
    await storedWhen(conversation, 4);

    // And back on the Responses API: the pair as items, then chat's answer.
    await client.responses.create({ model: 'gpt-4.1-mini', input: 'Thanks!' });
    expect(receivedInput(1)).toEqual([
      { type: 'message', role: 'user', content: 'Weather in Rome?' },
      { type: 'function_call', call_id: 'call_x1', name: 'weather', arguments: '{"city":"Rome"}' },
      { type: 'function_call_output', call_id: 'call_x1', output: 'sun' },
      { type: 'message', role: 'assistant', content: [{ type: 'output_text', text: 'Sunny in Rome.' }] },
      { role: 'user', content: 'Thanks!' },
    ]);
    expect(upstream.toolRuleViolations).toEqual([]);
    await storedWhen(conversation, 6);
  });
});

describe('summaries on the Responses API', () => {
  const SUMMARY_PREFIX = 'Summary of the earlier conversation';
  const isSummaryCall = (r: RecordedRequest): boolean => (r.json as { messages?: { content?: unknown }[] }).messages?.[0]?.content === DEFAULT_SUMMARY_PROMPT;

  test('a tight budget: one `developer` item right after the leading instruction items, x-contextd-summary: yes, call/output pairs intact', async () => {
    const summarising = await startInFrontOf(upstream, {
      defaults: { budget: { max_context_tokens: 400, summary_max_tokens: 80 }, summary: { model: 'gpt-4o-mini', trigger_tokens: 150 } },
    });
    upstream.setDefault((request) => (isSummaryCall(request) ? { kind: 'text', content: 'SUMMARY: the user asks numbered questions about the weather.' } : { kind: 'text' }));
    const client = clientFor(summarising, newConversation());
    const instructions: Item[] = [{ role: 'developer', content: 'Be brief.' }];
    let summaryTurn: { input: Item[]; header: string | null } | undefined;
    /** Sends one request; notes the first whose upstream input carried a summary. */
    const send = async (input: Item[], withTools: boolean): Promise<void> => {
      const { response } = await client.responses.create({ model: 'gpt-4o', input: [...instructions, ...input] as never, ...(withTools ? { tools } : {}) }).withResponse();
      const sent = (upstream.responsesRequests().at(-1)!.json as { input: Item[] }).input;
      if (summaryTurn === undefined && sent.some((item) => String(item.content).startsWith(SUMMARY_PREFIX))) summaryTurn = { input: sent, header: response.headers.get('x-contextd-summary') };
    };
    for (let turn = 1; turn <= 40 && summaryTurn === undefined; turn++) {
      // Every third turn is a tool loop, so the window holds call/output pairs to keep whole.
      const callId = `call_s${turn}`;
      if (turn % 3 === 0) upstream.enqueue({ kind: 'tool_calls', toolCalls: [{ id: callId, name: 'weather', arguments: { city: `city ${turn}` } }] });
      await send([{ role: 'user', content: `question ${turn}: what is the weather in city ${turn}, and please remember it` }], true);
      if (turn % 3 === 0) await send([{ type: 'function_call_output', call_id: callId, output: 'mild' }], true);
    }
    expect(summaryTurn, 'a request carried a summary within 40 turns').toBeDefined();
    const { input, header } = summaryTurn!;
    expect(header).toBe('yes');
    expect(input[0]).toEqual({ role: 'developer', content: 'Be brief.' });
    expect(input[1]).toMatchObject({ type: 'message', role: 'developer' });
    expect(String(input[1]!.content)).toMatch(/^Summary of the earlier conversation.*SUMMARY: the user asks/s);
    expect(input.filter((item) => String(item.content).startsWith(SUMMARY_PREFIX))).toHaveLength(1);
    // Every output follows its call: the window never starts with an output.
    const calls = new Set<unknown>();
    for (const item of input) {
      if (item.type === 'function_call') calls.add(item.call_id);
      if (item.type === 'function_call_output') expect(calls.has(item.call_id), String(item.call_id)).toBe(true);
    }
    expect(upstream.toolRuleViolations).toEqual([]);

    // The header says so, on a plain turn too.
    const { response } = await client.responses.create({ model: 'gpt-4o', input: [...instructions, { role: 'user', content: 'one more question' }] as never }).withResponse();
    expect(response.headers.get('x-contextd-summary')).toBe('yes');
    expect(kinds((upstream.responsesRequests().at(-1)!.json as { input: Item[] }).input).slice(0, 2)).toEqual(['developer', 'developer']);
    await summarising.stop();
  });
});
