// The official openai Python SDK, sync and async, against a real contextd in
// front of the fake upstream. Each test runs one driver scenario
// (test/clients/python/openai_sdk.py) on a new conversation, then checks what
// the upstream received and what contextd stored.
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
/** The budget of the route a request with `x-route: tight` takes (openai_sdk.py's tight scenario). */
const TIGHT_BUDGET = 200;
const MODES = ['sync', 'async'] as const;
type Mode = (typeof MODES)[number];

interface Seen {
  replies: (string | null)[];
}

describeWithPythonClients('openai Python SDK through contextd', () => {
  let upstream: FakeUpstream;
  let contextd: ContextdProcess;
  let conversationNo = 0;
  const newConversation = (label: string): string => `py-openai-${label}-${process.pid}-${++conversationNo}`;

  const drive = <T extends Seen>(scenario: string, mode: Mode, conversation: string): Promise<T> =>
    runDriver<T>('openai_sdk.py', [scenario, mode], { contextd, conversation, apiKey: API_KEY });

  const storedRows = async (conversation: string, count: number): Promise<StoredRow[]> => {
    let rows: StoredRow[] = [];
    await waitFor(async () => (rows = await storedMessages(contextd, conversation)).length >= count, {
      message: () => `${count} stored messages (have ${rows.length}: ${JSON.stringify(rows.map((row) => row.message))})`,
    });
    return rows;
  };

  const contents = (rows: readonly StoredRow[]): string[] => rows.map((row) => textOf(row.message as ChatMessage));

  beforeAll(async () => {
    await ensureBuilt();
    upstream = await startFakeUpstream();
    contextd = await startInFrontOf(upstream, {
      defaults: { budget: { max_context_tokens: BUDGET, summary_max_tokens: 200 } },
      routes: [
        {
          name: 'tight',
          match: { header: { 'x-route': 'tight' } },
          budget: { max_context_tokens: TIGHT_BUDGET, summary_max_tokens: 50 },
          summary: { enabled: false },
        },
      ],
    });
  });
  beforeEach(() => upstream.reset());
  afterAll(async () => {
    await stopAll();
    await upstream?.close();
  });

  test.each(MODES)('%s: plain chat sending only the new message; each prompt carries the earlier turns', async (mode) => {
    const conversation = newConversation(`plain-${mode}`);
    const seen = await drive('plain', mode, conversation);
    expect(seen.replies).toEqual(['echo: plain turn 1', 'echo: plain turn 2', 'echo: plain turn 3']);

    const requests = upstream.chatRequests();
    expect(requests).toHaveLength(3);
    expectNoConversationHeader(requests);
    requests.forEach((request, i) => {
      const earlier = Array.from({ length: i }, (_, j) => [`plain turn ${j + 1}`, `echo: plain turn ${j + 1}`]).flat();
      const prompt = expectValidPrompt(request, { instructions: [SYSTEM], contains: earlier });
      expect(prompt.map(textOf)).toEqual([SYSTEM, ...earlier, `plain turn ${i + 1}`]);
    });

    const rows = await storedRows(conversation, 6);
    expectStoredOnce(rows);
    expect(contents(rows)).toEqual(['plain turn 1', 'echo: plain turn 1', 'plain turn 2', 'echo: plain turn 2', 'plain turn 3', 'echo: plain turn 3']);
  });

  test.each(MODES)('%s: with_raw_response shows the x-contextd-* headers, the budget held', async (mode) => {
    const conversation = newConversation(`raw-${mode}`);
    const seen = await drive<Seen & { headers: Record<string, string>[]; embedding_headers: Record<string, string> }>('raw', mode, conversation);
    expect(seen.replies).toEqual(['echo: raw turn 1', 'echo: raw turn 2']);
    expect(seen.headers.map((headers) => headers['x-contextd-history-messages'])).toEqual(['0', '2']);
    for (const headers of seen.headers) expectWithinBudget(headers, BUDGET);
    // The second prompt carries more than the first: the first turn is in it.
    expect(Number(seen.headers[1]!['x-contextd-context-tokens'])).toBeGreaterThan(Number(seen.headers[0]!['x-contextd-context-tokens']));

    // An embeddings call with the conversation header is passed through, says memory does not apply, and keeps the header to itself.
    expect(seen.embedding_headers['x-contextd-memory']).toBe('unsupported');
    const embeddings = upstream.requests.filter((request) => request.path === '/v1/embeddings');
    expect(embeddings).toHaveLength(1);
    expectNoConversationHeader([...upstream.chatRequests(), ...embeddings]);

    expectValidPrompt(upstream.chatRequests()[1]!, { instructions: [SYSTEM], contains: ['raw turn 1', 'echo: raw turn 1'] });
    expectStoredOnce(await storedRows(conversation, 4));
  });

  test.each(MODES)('%s: a route with a tight budget: the window holds the newest turns within it, every turn stored', async (mode) => {
    const conversation = newConversation(`tight-${mode}`);
    const seen = await drive<Seen & { headers: Record<string, string>[] }>('tight', mode, conversation);
    const texts = [1, 2, 3, 4, 5, 6].map((turn) => `tight turn ${turn}: ${'lorem ipsum dolor sit amet '.repeat(6)}`);
    expect(seen.replies).toEqual(texts.map((text) => `echo: ${text}`));
    for (const headers of seen.headers) expectWithinBudget(headers, TIGHT_BUDGET);
    const historyCounts = seen.headers.map((headers) => Number(headers['x-contextd-history-messages']));
    // Some history fits, and the budget keeps the last turn from carrying all ten earlier messages.
    expect(historyCounts[5]).toBeGreaterThanOrEqual(2);
    expect(historyCounts[5]).toBeLessThan(10);

    const requests = upstream.chatRequests();
    expect(requests).toHaveLength(6);
    requests.forEach((request, i) => {
      const conversationSoFar = texts.slice(0, i).flatMap((text) => [text, `echo: ${text}`]);
      const prompt = expectValidPrompt(request, { instructions: [SYSTEM] }).map(textOf);
      // System first, then the newest history the budget allows, then the new message.
      expect(prompt).toEqual([SYSTEM, ...conversationSoFar.slice(conversationSoFar.length - historyCounts[i]!), texts[i]]);
    });

    const rows = await storedRows(conversation, 12);
    expectStoredOnce(rows);
    expect(contents(rows)).toEqual(texts.flatMap((text) => [text, `echo: ${text}`]));
  });

  test.each(MODES)('%s: streaming with include_usage, two turns', async (mode) => {
    const conversation = newConversation(`stream-${mode}`);
    const seen = await drive<Seen & { usage: ({ total_tokens: number } | null)[] }>('stream_usage', mode, conversation);
    expect(seen.replies).toEqual(['echo: stream turn 1', 'echo: stream turn 2']);
    for (const usage of seen.usage) expect(usage?.total_tokens).toBeGreaterThan(0);

    const requests = upstream.chatRequests();
    expect(requests).toHaveLength(2);
    expectNoConversationHeader(requests);
    for (const request of requests) expect(request.json).toMatchObject({ stream: true, stream_options: { include_usage: true } });
    expectValidPrompt(requests[1]!, { instructions: [SYSTEM], contains: ['stream turn 1', 'echo: stream turn 1'] });

    const rows = await storedRows(conversation, 4);
    expectStoredOnce(rows);
    expect(contents(rows)).toEqual(['stream turn 1', 'echo: stream turn 1', 'stream turn 2', 'echo: stream turn 2']);
  });

  test.each(MODES)('%s: a stream whose upstream holds its end after [DONE] is stored once the SDK has closed at [DONE]', async (mode) => {
    const conversation = newConversation(`held-${mode}`);
    upstream.enqueue({ kind: 'text', holdEnd: true });
    try {
      const seen = await drive<Seen & { closed_after_done: boolean }>('stream_hold_end', mode, conversation);
      expect(seen.replies).toEqual(['echo: held turn 1', 'echo: held turn 2']);
      expect(seen.closed_after_done).toBe(true);
      const requests = upstream.chatRequests();
      expect(requests).toHaveLength(2);
      // The upstream never ended the held response (the hold is released only below): storing did not wait for its end.
      expect(requests[0]!.outcome).not.toBe('completed');
      expectValidPrompt(requests[1]!, { instructions: [SYSTEM], contains: ['held turn 1', 'echo: held turn 1'] });
      const rows = await storedRows(conversation, 4);
      expectStoredOnce(rows);
      expect(contents(rows)).toEqual(['held turn 1', 'echo: held turn 1', 'held turn 2', 'echo: held turn 2']);
    } finally {
      upstream.release();
    }
  });

  test.each(MODES)("%s: tools: the SDK's own assistant message re-sent with the tool result is recognised, stored once", async (mode) => {
    const conversation = newConversation(`tools-${mode}`);
    upstream.setDefault(toolRoundTrip);
    const seen = await drive<Seen & { tool_calls: { id: string; function: { name: string; arguments: string } }[] }>('tools', mode, conversation);
    expect(seen.tool_calls).toMatchObject([{ id: 'call_item_5', function: { name: 'lookup', arguments: '{"q":"item 5"}' } }]);
    expect(seen.replies).toEqual([`found: ${lookupResult('item 5')}`, 'echo: tools: thanks']);

    const requests = upstream.chatRequests();
    expect(requests).toHaveLength(3);
    expectNoConversationHeader(requests);
    for (const request of requests) {
      expectValidPrompt(request, { instructions: [SYSTEM] });
      expectNoDuplicateToolCalls(promptOf(request));
    }
    // After the first request, exactly one assistant tool_calls message with that id, followed by its result.
    for (const request of requests.slice(1)) {
      const prompt = promptOf(request);
      expect(toolCallIds(prompt)).toEqual(['call_item_5']);
      const at = prompt.findIndex((message) => message.tool_calls !== undefined);
      expect(prompt[at + 1]).toMatchObject({ role: 'tool', tool_call_id: 'call_item_5', content: lookupResult('item 5') });
    }
    expect(rolesOf(promptOf(requests[2]!))).toEqual(['system', 'user', 'assistant(tool_calls)', 'tool', 'assistant', 'user']);

    const rows = await storedRows(conversation, 6);
    expectStoredOnce(rows);
    expect(rolesOf(rows.map((row) => row.message as ChatMessage))).toEqual(['user', 'assistant(tool_calls)', 'tool', 'assistant', 'user', 'assistant']);
    expect(toolCallIds(rows.map((row) => row.message as ChatMessage))).toEqual(['call_item_5']);
  });

  test.each(MODES)('%s: a stream closed mid-way aborts the upstream request and stores nothing of that turn', async (mode) => {
    const conversation = newConversation(`cancel-${mode}`);
    upstream.enqueue({ kind: 'text' }, { kind: 'text', holdAfterChunks: 2 }, { kind: 'text' });
    const seen = await drive<Seen & { chunks_read: number }>('cancel', mode, conversation);
    expect(seen.replies).toEqual(['echo: cancel turn 1', 'echo: cancel turn 3']);
    expect(seen.chunks_read).toBe(2);

    const requests = upstream.chatRequests();
    expect(requests).toHaveLength(3);
    await waitFor(() => requests[1]!.outcome === 'client_closed', { message: () => `the abandoned upstream request to end client_closed (is ${requests[1]!.outcome})` });
    expect(requests[2]!.outcome).toBe('completed');
    const third = expectValidPrompt(requests[2]!, { instructions: [SYSTEM], contains: ['cancel turn 1', 'echo: cancel turn 1'] });
    expect(third.map(textOf).join('\n')).not.toContain('abandoned');

    const rows = await storedRows(conversation, 4);
    expectStoredOnce(rows);
    expect(contents(rows)).toEqual(['cancel turn 1', 'echo: cancel turn 1', 'cancel turn 3', 'echo: cancel turn 3']);
  });
});
