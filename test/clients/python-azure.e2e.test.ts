// The openai Python SDK's AzureOpenAI client against a real contextd: with
// azure_endpoint (Azure's /openai/deployments/... paths, to an Azure-kind
// upstream) and with base_url (/v1/deployments/..., to the default upstream).
// Azure authenticates with the `api-key` header; the same key as a bearer token
// is the same tenant.
import { afterAll, beforeAll, beforeEach, expect, onTestFinished, test } from 'vitest';
import type { ChatMessage } from '../../src/domain.js';
import { expectStoredOnce, expectValidPrompt, textOf } from '../support/compat-checks.js';
import { ensureBuilt, startContextd, stopAll, type ContextdProcess } from '../support/contextd-process.js';
import { startFakeUpstream, type FakeUpstream } from '../support/fake-upstream.js';
import { waitFor } from '../support/wait-for.js';
import { API_KEY, contextdConfig, storedMessages, type StoredRow } from '../integration/harness.js';
import { SYSTEM, describeWithPythonClients, expectNoConversationHeader, expectWithinBudget, runDriver } from './python/support.js';

const BUDGET = 2_000;
const DEPLOYMENT = 'my-deployment';
const API_VERSION = '2024-10-21';
const budget = { defaults: { budget: { max_context_tokens: BUDGET, summary_max_tokens: 200 } } };

interface Seen {
  replies: string[];
  headers: Record<string, string>[];
}

describeWithPythonClients('AzureOpenAI (Python) through contextd', () => {
  let upstream: FakeUpstream;
  let conversationNo = 0;
  const newConversation = (label: string): string => `py-azure-${label}-${process.pid}-${++conversationNo}`;

  /** The conversation API's rows, authenticated the Azure way (`api-key`) or the OpenAI way (bearer). */
  const rowsWith = async (contextd: ContextdProcess, conversation: string, auth: 'api-key' | 'bearer'): Promise<StoredRow[]> => {
    const headers: Record<string, string> = auth === 'api-key' ? { 'api-key': API_KEY } : { authorization: `Bearer ${API_KEY}` };
    const res = await fetch(`${contextd.url}/contextd/v1/conversations/${conversation}/messages?limit=500`, { headers });
    if (res.status === 404) return [];
    if (!res.ok) throw new Error(`conversation API answered ${res.status}: ${await res.text()}`);
    return ((await res.json()) as { data: StoredRow[] }).data;
  };

  const storedRows = async (contextd: ContextdProcess, conversation: string, count: number): Promise<StoredRow[]> => {
    let rows: StoredRow[] = [];
    await waitFor(async () => (rows = await storedMessages(contextd, conversation)).length >= count, {
      message: () => `${count} stored messages (have ${rows.length}: ${JSON.stringify(rows.map((row) => row.message))})`,
    });
    return rows;
  };

  beforeAll(async () => {
    await ensureBuilt();
    upstream = await startFakeUpstream();
  });
  beforeEach(() => upstream.reset());
  afterAll(async () => {
    await stopAll();
    await upstream?.close();
  });

  test('azure_endpoint: /openai/deployments/<deployment>/chat/completions reaches an Azure upstream as is, with memory; api-key forwarded', async () => {
    const contextd = await startContextd({
      config: contextdConfig(upstream, { ...budget, upstream: { kind: 'azure', base_url: `${upstream.origin}/openai`, timeout: '5s', connect_timeout: '2s' } }),
    });
    onTestFinished(async () => {
      await contextd.stop();
    });
    const conversation = newConversation('endpoint');
    const seen = await runDriver<Seen>('azure_openai_driver.py', ['endpoint', DEPLOYMENT], { contextd, conversation, apiKey: API_KEY });
    expect(seen.replies).toEqual(['echo: azure endpoint turn 1', 'echo: azure endpoint turn 2']);
    expect(seen.headers.map((headers) => headers['x-contextd-history-messages'])).toEqual(['0', '2']);
    for (const headers of seen.headers) expectWithinBudget(headers, BUDGET);

    const requests = upstream.chatRequests();
    expect(requests).toHaveLength(2);
    for (const request of requests) {
      expect(request.url).toBe(`/openai/deployments/${DEPLOYMENT}/chat/completions?api-version=${API_VERSION}`);
      expect(request.headers['api-key']).toBe(API_KEY);
    }
    expectNoConversationHeader(requests);
    const second = expectValidPrompt(requests[1]!, { instructions: [SYSTEM] });
    expect(second.map(textOf)).toEqual([SYSTEM, 'azure endpoint turn 1', 'echo: azure endpoint turn 1', 'azure endpoint turn 2']);

    const rows = await storedRows(contextd, conversation, 4);
    expectStoredOnce(rows);
    // `api-key: K` and `Authorization: Bearer K` are one tenant.
    expect(await rowsWith(contextd, conversation, 'api-key')).toEqual(rows);
    expect(rows.map((row) => textOf(row.message as ChatMessage))).toEqual([
      'azure endpoint turn 1',
      'echo: azure endpoint turn 1',
      'azure endpoint turn 2',
      'echo: azure endpoint turn 2',
    ]);
  });

  test('base_url: /v1/deployments/<deployment>/chat/completions gets memory from the default upstream; a bearer request with the same key continues it', async () => {
    const contextd = await startContextd({ config: contextdConfig(upstream, budget) });
    onTestFinished(async () => {
      await contextd.stop();
    });
    const conversation = newConversation('base-url');
    const seen = await runDriver<Seen>('azure_openai_driver.py', ['base_url', DEPLOYMENT], { contextd, conversation, apiKey: API_KEY });
    const turns = ['azure base_url turn 1', 'azure base_url turn 2', 'bearer turn 1'];
    expect(seen.replies).toEqual(turns.map((text) => `echo: ${text}`));
    expect(seen.headers.map((headers) => headers['x-contextd-history-messages'])).toEqual(['0', '2', '4']);
    for (const headers of seen.headers) expectWithinBudget(headers, BUDGET);

    const requests = upstream.chatRequests();
    expect(requests).toHaveLength(3);
    expect(requests.map((request) => request.path)).toEqual([
      `/v1/deployments/${DEPLOYMENT}/chat/completions`,
      `/v1/deployments/${DEPLOYMENT}/chat/completions`,
      '/v1/chat/completions',
    ]);
    expect(requests[0]!.url).toContain(`api-version=${API_VERSION}`);
    expect(requests[0]!.headers['api-key']).toBe(API_KEY);
    expect(requests[2]!.headers.authorization).toBe(`Bearer ${API_KEY}`);
    expectNoConversationHeader(requests);
    requests.forEach((request, i) => {
      const earlier = turns.slice(0, i).flatMap((text) => [text, `echo: ${text}`]);
      expect(expectValidPrompt(request, { instructions: [SYSTEM] }).map(textOf)).toEqual([SYSTEM, ...earlier, turns[i]]);
    });

    const rows = await storedRows(contextd, conversation, 6);
    expectStoredOnce(rows);
    expect(rows.map((row) => textOf(row.message as ChatMessage))).toEqual(turns.flatMap((text) => [text, `echo: ${text}`]));
    expect(await rowsWith(contextd, conversation, 'api-key')).toEqual(await rowsWith(contextd, conversation, 'bearer'));
  });
});
