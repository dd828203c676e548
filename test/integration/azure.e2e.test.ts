// Azure OpenAI as an upstream kind: the deployment paths get memory exactly
// like /v1/chat/completions; the deployment stands for the model in routing
// and counting; api-key and Authorization identify the same tenant; query
// parameters pass through; contextd's own summary calls go to a deployment.
import { AzureOpenAI } from 'openai';
import { afterAll, beforeAll, beforeEach, describe, expect, test } from 'vitest';
import { DEFAULT_SUMMARY_PROMPT } from '../../src/config/schema.js';
import type { ChatMessage } from '../../src/domain.js';
import { tokenCounterFor } from '../../src/tokens/count-tokens.js';
import { expectValidPrompt, promptOf } from '../support/compat-checks.js';
import { ensureBuilt, startContextd, stopAll, type ContextdProcess } from '../support/contextd-process.js';
import { startFakeUpstream, type FakeUpstream, type RecordedRequest } from '../support/fake-upstream.js';
import { waitFor } from '../support/wait-for.js';
import { API_KEY, contextdConfig, storedMessages } from './harness.js';

const API_VERSION = '2024-10-21';
let upstream: FakeUpstream;
let contextd: ContextdProcess;
let conversationNo = 0;
const newConversation = (): string => `azure-${process.pid}-${++conversationNo}`;

const isSummaryCall = (r: RecordedRequest): boolean => promptOf(r)[0]?.content === DEFAULT_SUMMARY_PROMPT;

beforeAll(async () => {
  await ensureBuilt();
  upstream = await startFakeUpstream();
  contextd = await startContextd({
    config: contextdConfig(upstream, {
      upstream: { kind: 'azure', base_url: `${upstream.origin}/openai`, api_version: '2025-01-01-preview', timeout: '5s', connect_timeout: '2s' },
      defaults: { budget: { max_context_tokens: 250, summary_max_tokens: 80 }, summary: { model: 'summarizer-deployment', trigger_tokens: 60 } },
      routes: [{ name: 'gpt4-deployments', match: { model: 'legacy-*' }, budget: { max_context_tokens: 5000, encoding: 'cl100k_base' } }],
    }),
  });
});
beforeEach(() => upstream.reset());
afterAll(async () => {
  await stopAll();
  await upstream.close();
});

function azureClient(conversation: string, deployment = 'my-deployment'): AzureOpenAI {
  return new AzureOpenAI({
    endpoint: contextd.url,
    apiKey: API_KEY,
    apiVersion: API_VERSION,
    deployment,
    maxRetries: 0,
    defaultHeaders: { 'x-conversation-id': conversation },
  });
}

describe('AzureOpenAI against contextd with an azure upstream', () => {
  test('the deployment path gets memory; the path and api-version reach Azure unchanged; api-key goes along, the conversation header does not', async () => {
    const conversation = newConversation();
    const client = azureClient(conversation);
    await client.chat.completions.create({ model: 'my-deployment', messages: [{ role: 'system', content: 'pinned' }, { role: 'user', content: 'My name is Ana.' }] });
    const { data, response } = await client.chat.completions
      .create({ model: 'my-deployment', messages: [{ role: 'system', content: 'pinned' }, { role: 'user', content: 'What is my name?' }] })
      .withResponse();
    expect(data.choices[0]!.message.content).toBe('echo: What is my name?');
    expect(response.headers.get('x-contextd-history-messages')).toBe('2');

    await upstream.waitForChatRequests(2);
    const [first, second] = upstream.chatRequests();
    for (const request of [first!, second!]) {
      expect(request.url).toBe(`/openai/deployments/my-deployment/chat/completions?api-version=${API_VERSION}`);
      expect(request.headers['api-key']).toBe(API_KEY);
      expect(request.headers['x-conversation-id']).toBeUndefined();
    }
    expectValidPrompt(second!, { instructions: ['pinned'], contains: ['My name is Ana.', 'echo: My name is Ana.'] });
    await waitFor(async () => (await storedMessages(contextd, conversation)).length === 4, { message: 'both turns stored' });
  });

  test('the same key as api-key or as a bearer token is the same tenant', async () => {
    const conversation = newConversation();
    await azureClient(conversation).chat.completions.create({ model: 'my-deployment', messages: [{ role: 'user', content: 'remember me' }] });
    await waitFor(async () => (await storedMessages(contextd, conversation)).length === 2, { message: 'the turn is stored' });
    // The conversation API, authenticated with the api-key header instead of Authorization.
    const res = await fetch(`${contextd.url}/contextd/v1/conversations/${conversation}/messages`, { headers: { 'api-key': API_KEY } });
    expect(res.status).toBe(200);
    expect(((await res.json()) as { data: unknown[] }).data).toHaveLength(2);
  });

  test('the deployment name stands for the model in routing and in the tokenizer choice', async () => {
    const conversation = newConversation();
    const messages: ChatMessage[] = [{ role: 'user', content: 'Привет, как дела? Всё хорошо. 数据库管理系统的性能优化和索引设计' }];
    const { response } = await azureClient(conversation, 'legacy-gpt4')
      .chat.completions.create({ model: 'legacy-gpt4', messages: messages as never })
      .withResponse();
    // The route for legacy-* deployments counts with cl100k_base (its budget.encoding).
    const cl100k = tokenCounterFor('cl100k_base');
    const o200k = tokenCounterFor('o200k_base');
    const expected = (counter: typeof cl100k): number => counter.countMessage(messages[0]!) + counter.replyPrimingTokens;
    expect(expected(cl100k)).not.toBe(expected(o200k));
    expect(Number(response.headers.get('x-contextd-context-tokens'))).toBe(expected(cl100k));
    const log = await contextd.waitForLog((line) => line.msg === 'request' && line.conversation === conversation);
    expect(log.route).toBe('gpt4-deployments');
  });

  test("contextd's own summary call goes to the summary model's deployment with the configured api-version", async () => {
    const conversation = newConversation();
    upstream.setDefault((request) => (isSummaryCall(request) ? { kind: 'text', content: 'SUMMARY of the early questions' } : { kind: 'text' }));
    const client = azureClient(conversation);
    for (let turn = 1; turn <= 12; turn++) {
      await client.chat.completions.create({ model: 'my-deployment', messages: [{ role: 'user', content: `question ${turn}: item ${turn} costs ${turn * 7} euros` }] });
    }
    await waitFor(() => upstream.chatRequests().some(isSummaryCall), {
      message: () => `a summary call; contextd said: ${contextd.logs.filter((l) => String(l.msg).includes('summar')).map((l) => JSON.stringify(l)).join('\n')}`,
    });
    const call = upstream.chatRequests().find(isSummaryCall)!;
    expect(call.url).toBe('/openai/deployments/summarizer-deployment/chat/completions?api-version=2025-01-01-preview');
    // No summary key configured: the triggering request's own credential, as it came.
    expect(call.headers['api-key']).toBe(API_KEY);
  });
});

describe('AzureOpenAI given base_url=<contextd>/v1, in front of an OpenAI-style upstream', () => {
  let plain: ContextdProcess;
  beforeAll(async () => {
    plain = await startContextd({ config: contextdConfig(upstream) });
  });

  test('/v1/deployments/{deployment}/chat/completions gets memory and goes to <base_url>/deployments/…', async () => {
    const conversation = newConversation();
    const client = new AzureOpenAI({ baseURL: plain.baseURL, apiKey: API_KEY, apiVersion: API_VERSION, maxRetries: 0, defaultHeaders: { 'x-conversation-id': conversation } });
    await client.chat.completions.create({ model: 'dep-a', messages: [{ role: 'user', content: 'first' }] });
    await client.chat.completions.create({ model: 'dep-a', messages: [{ role: 'user', content: 'second' }] });
    await upstream.waitForChatRequests(2);
    const second = upstream.chatRequests()[1]!;
    expect(second.url).toBe(`/v1/deployments/dep-a/chat/completions?api-version=${API_VERSION}`);
    expectValidPrompt(second, { contains: ['first', 'echo: first'] });
  });
});
