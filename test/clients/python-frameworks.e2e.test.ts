// Python frameworks that sit on an OpenAI-compatible API, against a real
// contextd in front of the fake upstream: langchain-openai, litellm (as a
// client library) and openai-agents. Each re-sends history its own way; each
// test checks what the upstream received and what contextd stored.
import { afterAll, beforeAll, beforeEach, expect, test } from 'vitest';
import type { ChatMessage } from '../../src/domain.js';
import { expectStoredOnce, expectValidPrompt, promptOf, textOf } from '../support/compat-checks.js';
import { ensureBuilt, stopAll, type ContextdProcess } from '../support/contextd-process.js';
import { startFakeUpstream, type FakeUpstream } from '../support/fake-upstream.js';
import { waitFor } from '../support/wait-for.js';
import { API_KEY, startInFrontOf, storedMessages, type StoredRow } from '../integration/harness.js';
import {
  SYSTEM,
  describeWithPythonClients,
  expectNoConversationHeader,
  expectNoDuplicateToolCalls,
  expectWithinBudget,
  lookupResult,
  rolesOf,
  runDriver,
  toolCallIds,
  toolRoundTrip,
} from './python/support.js';

const BUDGET = 2_000;

describeWithPythonClients('Python frameworks through contextd', () => {
  let upstream: FakeUpstream;
  let contextd: ContextdProcess;
  let conversationNo = 0;
  const newConversation = (label: string): string => `py-frameworks-${label}-${process.pid}-${++conversationNo}`;

  const storedRows = async (conversation: string, count: number): Promise<StoredRow[]> => {
    let rows: StoredRow[] = [];
    await waitFor(async () => (rows = await storedMessages(contextd, conversation)).length >= count, {
      message: () => `${count} stored messages (have ${rows.length}: ${JSON.stringify(rows.map((row) => row.message))})`,
    });
    return rows;
  };
  const messagesOf = (rows: readonly StoredRow[]): ChatMessage[] => rows.map((row) => row.message as ChatMessage);

  beforeAll(async () => {
    await ensureBuilt();
    upstream = await startFakeUpstream();
    contextd = await startInFrontOf(upstream, { defaults: { budget: { max_context_tokens: BUDGET, summary_max_tokens: 200 } } });
  });
  beforeEach(() => upstream.reset());
  afterAll(async () => {
    await stopAll();
    await upstream?.close();
  });

  test.each(['invoke', 'stream'])(
    'langchain-openai (%s): bind_tools round trip re-sending its own messages; re-serialised tool arguments are recognised',
    async (mode) => {
      const conversation = newConversation(`langchain-${mode}`);
      upstream.setDefault(toolRoundTrip);
      const seen = await runDriver<{ tool_calls: unknown[]; resent_arguments: string[]; replies: string[] }>('langchain_openai_driver.py', ['tools', mode], {
        contextd,
        conversation,
        apiKey: API_KEY,
      });
      expect(seen.tool_calls).toEqual([{ id: 'call_item_5', name: 'lookup', args: { q: 'item 5' } }]);
      // The fake sent the arguments as {"q":"item 5"}; LangChain re-sends its own serialisation.
      expect(seen.resent_arguments).toEqual(['{"q": "item 5"}']);
      expect(seen.replies).toEqual([`found: ${lookupResult('item 5')}`, 'echo: langchain: thanks']);

      const requests = upstream.chatRequests();
      expect(requests).toHaveLength(3);
      expectNoConversationHeader(requests);
      for (const request of requests) {
        expect(request.path).toBe('/v1/chat/completions');
        if (mode === 'stream') expect(request.json).toMatchObject({ stream: true });
        expectValidPrompt(request, { instructions: [SYSTEM] });
        expectNoDuplicateToolCalls(promptOf(request));
      }
      expect(rolesOf(promptOf(requests[1]!))).toEqual(['system', 'user', 'assistant(tool_calls)', 'tool']);
      expect(rolesOf(promptOf(requests[2]!))).toEqual(['system', 'user', 'assistant(tool_calls)', 'tool', 'assistant', 'user']);

      const rows = await storedRows(conversation, 6);
      expectStoredOnce(rows);
      expect(rolesOf(messagesOf(rows))).toEqual(['user', 'assistant(tool_calls)', 'tool', 'assistant', 'user', 'assistant']);
      expect(toolCallIds(messagesOf(rows))).toEqual(['call_item_5']);
    },
  );

  test.each(['plain', 'stream'])('litellm.completion (%s): memory across three turns, each sending only the new message', async (mode) => {
    const conversation = newConversation(`litellm-${mode}`);
    const seen = await runDriver<{ replies: string[]; headers: Record<string, string>[] }>('litellm_driver.py', ['chat', mode], { contextd, conversation, apiKey: API_KEY });
    const turns = [1, 2, 3].map((turn) => `litellm ${mode} turn ${turn}`);
    expect(seen.replies).toEqual(turns.map((text) => `echo: ${text}`));
    // litellm hands the upstream's response headers on (_hidden_params): contextd's are among them.
    expect(seen.headers.map((headers) => headers['x-contextd-history-messages'])).toEqual(['0', '2', '4']);
    for (const headers of seen.headers) expectWithinBudget(headers, BUDGET);

    const requests = upstream.chatRequests();
    expect(requests).toHaveLength(3);
    expectNoConversationHeader(requests);
    requests.forEach((request, i) => {
      expect(request.path).toBe('/v1/chat/completions');
      expect(request.headers.authorization).toBe(`Bearer ${API_KEY}`);
      const earlier = turns.slice(0, i).flatMap((text) => [text, `echo: ${text}`]);
      expect(expectValidPrompt(request, { instructions: [SYSTEM] }).map(textOf)).toEqual([SYSTEM, ...earlier, turns[i]]);
    });

    const rows = await storedRows(conversation, 6);
    expectStoredOnce(rows);
    expect(messagesOf(rows).map(textOf)).toEqual(turns.flatMap((text) => [text, `echo: ${text}`]));
  });

  test('openai-agents: two runs with a function tool (Runner.run, then Runner.run_streamed); the re-sent run items are stored once', async () => {
    const conversation = newConversation('agents');
    upstream.setDefault(toolRoundTrip);
    const seen = await runDriver<{ replies: string[] }>('openai_agents_driver.py', ['runs'], { contextd, conversation, apiKey: API_KEY });
    expect(seen.replies).toEqual([`found: ${lookupResult('item 5')}`, `found: ${lookupResult('item 6')}`]);

    // Each run: a step that calls the tool, then one that answers with its result.
    const requests = upstream.chatRequests();
    expect(requests).toHaveLength(4);
    expectNoConversationHeader(requests);
    for (const request of requests) {
      expectValidPrompt(request, { instructions: [SYSTEM] });
      expectNoDuplicateToolCalls(promptOf(request));
    }
    expect(toolCallIds(promptOf(requests[1]!))).toEqual(['call_item_5']);
    expect(toolCallIds(promptOf(requests[3]!))).toEqual(['call_item_5', 'call_item_6']);
    expect(rolesOf(promptOf(requests[3]!))).toEqual(['system', 'user', 'assistant(tool_calls)', 'tool', 'assistant', 'user', 'assistant(tool_calls)', 'tool']);
    expect(requests[3]!.json).toMatchObject({ stream: true });

    const rows = await storedRows(conversation, 8);
    expectStoredOnce(rows);
    expect(rolesOf(messagesOf(rows))).toEqual(['user', 'assistant(tool_calls)', 'tool', 'assistant', 'user', 'assistant(tool_calls)', 'tool', 'assistant']);
    expect(toolCallIds(messagesOf(rows))).toEqual(['call_item_5', 'call_item_6']);
  });
});
