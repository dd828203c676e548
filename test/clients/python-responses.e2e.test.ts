// The Responses API with memory (docs/responses.md) from the Python clients
// people use, against a real contextd in front of the fake upstream: the
// official openai SDK (responses.create, responses.stream, create(stream=True);
// sync and async) and the Agents SDK on its default model, which is the
// Responses API. Each test checks what the upstream received (the history as
// items, within the budget, function calls paired with their outputs and in
// order) and what contextd stored (each item once).
import { afterAll, beforeAll, beforeEach, expect, test } from 'vitest';
import type { ChatMessage } from '../../src/domain.js';
import { expectStoredOnce, textOf } from '../support/compat-checks.js';
import { ensureBuilt, stopAll, type ContextdProcess } from '../support/contextd-process.js';
import { startFakeUpstream, type FakeUpstream, type RecordedRequest } from '../support/fake-upstream.js';
import { PARALLEL_PREAMBLE, countRoles, expectCallsPaired, inputOf, linesOfItems, linesOfMessages, lookupSteps, responsesToolRoundTrip } from '../support/responses-checks.js';
import { waitFor } from '../support/wait-for.js';
import { API_KEY, startInFrontOf, storedMessages, type StoredRow } from '../integration/harness.js';
import { SYSTEM, describeWithPythonClients, expectNoConversationHeader, expectWithinBudget, lookupResult, runDriver } from './python/support.js';

const BUDGET = 2_000;
/** The budget of the route a request with `x-route: tight` takes: two or three turns of the tight conversation. */
const TIGHT_BUDGET = 300;
const MODES = ['sync', 'async'] as const;

/** What openai_responses.py saw of each request. */
interface SdkStep {
  style: 'create' | 'stream' | 'create_stream';
  status: string;
  output: string[];
  text: string;
  streamed: string | null;
}

/** One HTTP exchange of a driver's client (common.py's Exchanges). */
interface Exchange {
  path: string;
  headers: Record<string, string>;
  /** A Responses request's input as the client sent it: each item's role, else its type. */
  sent_input?: string[];
}

interface SdkSeen {
  replies: string[];
  steps: SdkStep[];
  exchanges: Exchange[];
}

interface AgentRun {
  text: string;
  streamed: boolean;
}

interface AgentsSeen {
  runs: { reply: string; items: string[]; model_calls: number }[];
  exchanges: Exchange[];
}

const expectedReply = (text: string): string => {
  const last = lookupSteps(text).at(-1);
  return last === undefined ? `echo: ${text}` : `found: ${last.map((n) => lookupResult(`item ${n}`)).join(' & ')}`;
};

/**
 * The conversation the fake's tool loop (responsesToolRoundTrip, with the
 * drivers' lookup tool) makes of these turns, as lines (responses-checks.ts):
 * the input each upstream request carries when the whole history fits, and the
 * conversation once every turn is stored.
 */
function expectedExchange(turns: readonly string[]): { requests: string[][]; conversation: string[] } {
  const conversation: string[] = [];
  const requests: string[][] = [];
  for (const text of turns) {
    conversation.push(`user: ${text}`);
    requests.push([...conversation]);
    for (const step of lookupSteps(text)) {
      const outputs = step.map((n) => `output call_item_${n}: ${lookupResult(`item ${n}`)}`);
      conversation.push(...(step.length > 1 ? [`assistant: ${PARALLEL_PREAMBLE}`] : []), ...step.map((n) => `call call_item_${n} lookup {"q":"item ${n}"}`));
      requests.push([...conversation, ...outputs]);
      conversation.push(...outputs);
    }
    conversation.push(`assistant: ${expectedReply(text)}`);
  }
  return { requests, conversation };
}

describeWithPythonClients('the Responses API from Python clients through contextd', () => {
  let upstream: FakeUpstream;
  let contextd: ContextdProcess;
  let conversationNo = 0;
  const newConversation = (label: string): string => `py-responses-${label}-${process.pid}-${++conversationNo}`;

  const storedRows = async (conversation: string, count: number): Promise<StoredRow[]> => {
    let rows: StoredRow[] = [];
    await waitFor(async () => (rows = await storedMessages(contextd, conversation)).length >= count, {
      message: () => `${count} stored messages (have ${rows.length}: ${JSON.stringify(rows.map((row) => row.message))})`,
    });
    rows = await storedMessages(contextd, conversation);
    expect(rows, JSON.stringify(rows.map((row) => row.message))).toHaveLength(count);
    expectStoredOnce(rows);
    return rows;
  };
  const messagesOf = (rows: readonly StoredRow[]): ChatMessage[] => rows.map((row) => row.message as ChatMessage);
  /** The client's exchanges with contextd's /v1/responses. */
  const responsesExchanges = (exchanges: readonly Exchange[]): Exchange[] => exchanges.filter((exchange) => exchange.path === '/v1/responses');
  const headersOf = (exchanges: readonly Exchange[]): Record<string, string>[] => responsesExchanges(exchanges).map((exchange) => exchange.headers);

  /** Every request went to /v1/responses with the pinned instructions and the tool, kept the header to contextd, and paired its calls. */
  const expectEveryRequestValid = (requests: readonly RecordedRequest[]): void => {
    expect(requests.length).toBeGreaterThan(0);
    expectNoConversationHeader(requests);
    expect(upstream.chatRequests()).toEqual([]);
    requests.forEach((request, i) => {
      expect(request.path).toBe('/v1/responses');
      const body = request.json as { instructions?: unknown; tools?: { name?: string }[] };
      expect(body.instructions).toBe(SYSTEM);
      expect(body.tools?.map((tool) => tool.name)).toEqual(['lookup']);
      expectCallsPaired(inputOf(request), `request ${i} input`);
    });
    expect(upstream.toolRuleViolations).toEqual([]);
  };

  /**
   * On the tight route: each request carried its new input after the newest
   * part of the history the budget allows (a suffix of it: what is left out is
   * the oldest, and it never starts at an output), and by the end most of the
   * history is left out.
   */
  const expectNewestHistoryWithinBudget = (requests: readonly RecordedRequest[], expected: readonly string[][], headers: readonly Record<string, string>[]): void => {
    expect(requests).toHaveLength(expected.length);
    for (const h of headers) expectWithinBudget(h, TIGHT_BUDGET);
    const historyLengths = requests.map((request, i) => {
      const got = linesOfItems(inputOf(request));
      const wanted = expected[i]!;
      expect(got.at(-1), `request ${i}: the new input`).toBe(wanted.at(-1));
      const history = got.slice(0, -1);
      expect(history, `request ${i}: the newest history`).toEqual(wanted.slice(wanted.length - 1 - history.length, -1));
      expect(history[0] ?? '', `request ${i} starts at an output`).not.toMatch(/^output /);
      return history.length;
    });
    // No assistant message here has both text and calls, so a line is a stored message.
    expect(historyLengths.map(String)).toEqual(headers.map((h) => h['x-contextd-history-messages']));
    for (const length of historyLengths.slice(1)) expect(length).toBeGreaterThanOrEqual(1);
    expect(historyLengths.at(-1)!).toBeGreaterThanOrEqual(2);
    expect(historyLengths.at(-1)!).toBeLessThan((expected.at(-1)!.length - 1) / 2);
  };

  beforeAll(async () => {
    await ensureBuilt();
    upstream = await startFakeUpstream();
    contextd = await startInFrontOf(upstream, {
      // No summaries: a summary call would be one more request at the upstream, and a summary would stand for history.
      defaults: { budget: { max_context_tokens: BUDGET, summary_max_tokens: 200 }, summary: { enabled: false } },
      routes: [
        {
          name: 'tight',
          match: { header: { 'x-route': 'tight' } },
          budget: { max_context_tokens: TIGHT_BUDGET, summary_max_tokens: 50 },
          summary: { enabled: false },
        },
        { name: 'emulate', match: { header: { 'x-route': 'emulate' } }, responses: { state: 'emulate' } },
      ],
    });
  });
  beforeEach(() => {
    upstream.reset();
    upstream.setDefault(responsesToolRoundTrip);
  });
  afterAll(async () => {
    await stopAll();
    await upstream?.close();
  });

  // ---- the openai SDK ----

  const SDK_TURNS = ['py responses: my name is Ada', 'py responses: look up item 5', 'py responses: what is my name?'];

  test.each(MODES)(
    '%s: responses.create, each turn sending only its new input (a tool result: only the function_call_output); the history reaches the upstream as items',
    async (mode) => {
      const conversation = newConversation(`create-${mode}`);
      const seen = await runDriver<SdkSeen>('openai_responses.py', ['converse', mode, JSON.stringify({ turns: SDK_TURNS, calls: ['create'] })], {
        contextd,
        conversation,
        apiKey: API_KEY,
      });
      expect(seen.replies).toEqual(SDK_TURNS.map(expectedReply));
      expect(seen.steps.map((step) => step.output)).toEqual([['message'], ['function_call'], ['message'], ['message']]);
      // Only the new input: a turn's text, then the tool's output alone.
      expect(responsesExchanges(seen.exchanges).map((exchange) => exchange.sent_input)).toEqual([['user'], ['user'], ['function_call_output'], ['user']]);
      const headers = headersOf(seen.exchanges);
      expect(headers.map((h) => h['x-contextd-history-messages'])).toEqual(['0', '2', '4', '6']);
      for (const h of headers) expectWithinBudget(h, BUDGET);

      const { requests: expected, conversation: lines } = expectedExchange(SDK_TURNS);
      const requests = upstream.responsesRequests();
      expectEveryRequestValid(requests);
      expect(requests.map((request) => linesOfItems(inputOf(request)))).toEqual(expected);
      // History goes as typed items; the new turn as the client sent it.
      expect(inputOf(requests[1]!).slice(0, 2)).toEqual([
        { type: 'message', role: 'user', content: SDK_TURNS[0] },
        { type: 'message', role: 'assistant', content: [{ type: 'output_text', text: `echo: ${SDK_TURNS[0]}` }] },
      ]);
      expect(inputOf(requests[2]!).slice(2)).toEqual([
        { type: 'message', role: 'user', content: SDK_TURNS[1] },
        { type: 'function_call', call_id: 'call_item_5', name: 'lookup', arguments: '{"q":"item 5"}' },
        { type: 'function_call_output', call_id: 'call_item_5', output: lookupResult('item 5') },
      ]);

      const rows = await storedRows(conversation, 8);
      expect(linesOfMessages(messagesOf(rows))).toEqual(lines);
      expect(countRoles(messagesOf(rows))).toEqual({ user: 3, assistant: 4, tool: 1 });
    },
  );

  test.each(MODES)('%s: streaming (responses.stream and create(stream=True), alternating): relayed whole, rebuilt and stored; history as items', async (mode) => {
    const conversation = newConversation(`stream-${mode}`);
    const turns = ['py stream: the sky is green', 'py stream: look up item 6', 'py stream: and the grass?', 'py stream: look up item 7'];
    const seen = await runDriver<SdkSeen>('openai_responses.py', ['converse', mode, JSON.stringify({ turns, calls: ['stream', 'create_stream'] })], {
      contextd,
      conversation,
      apiKey: API_KEY,
    });
    expect(seen.replies).toEqual(turns.map(expectedReply));
    expect(seen.steps.map((step) => step.style)).toEqual(['stream', 'create_stream', 'stream', 'create_stream', 'stream', 'create_stream']);
    for (const step of seen.steps) {
      expect(step.status).toBe('completed');
      expect(step.streamed).toBe(step.text);
    }
    for (const h of headersOf(seen.exchanges)) expectWithinBudget(h, BUDGET);

    const { requests: expected, conversation: lines } = expectedExchange(turns);
    const requests = upstream.responsesRequests();
    expectEveryRequestValid(requests);
    for (const request of requests) expect(request.json).toMatchObject({ stream: true });
    expect(requests.map((request) => linesOfItems(inputOf(request)))).toEqual(expected);

    const rows = await storedRows(conversation, lines.length);
    expect(linesOfMessages(messagesOf(rows))).toEqual(lines);
    expect(countRoles(messagesOf(rows))).toEqual({ user: 4, assistant: 6, tool: 2 });
  });

  test.each(MODES)(
    "%s: re-sending the whole list every time (the user message, each response.output as the SDK's objects, the outputs): recognised and replaced by the window, stored once",
    async (mode) => {
      const conversation = newConversation(`full-${mode}`);
      const turns = ['py full: my name is Ada', 'py full: look up item 8', 'py full: what is my name?', 'py full: look up item 9'];
      const scenario = { turns, calls: ['create', 'stream', 'create_stream'], history: 'full' };
      const seen = await runDriver<SdkSeen>('openai_responses.py', ['converse', mode, JSON.stringify(scenario)], { contextd, conversation, apiKey: API_KEY });
      expect(seen.replies).toEqual(turns.map(expectedReply));
      const { requests: expected, conversation: lines } = expectedExchange(turns);
      // The client sent everything so far every time: as many items as the upstream received.
      expect(responsesExchanges(seen.exchanges).map((exchange) => exchange.sent_input!.length)).toEqual(expected.map((input) => input.length));
      for (const h of headersOf(seen.exchanges)) expectWithinBudget(h, BUDGET);

      const requests = upstream.responsesRequests();
      expectEveryRequestValid(requests);
      expect(requests.map((request) => linesOfItems(inputOf(request)))).toEqual(expected);

      const rows = await storedRows(conversation, lines.length);
      expect(linesOfMessages(messagesOf(rows))).toEqual(lines);
      expect(countRoles(messagesOf(rows))).toEqual({ user: 4, assistant: 6, tool: 2 });
    },
  );

  test.each(MODES)(
    '%s: a route with a tight budget: the oldest history is left out, the newest kept within the budget, calls never parted from their outputs',
    async (mode) => {
      const conversation = newConversation(`tight-${mode}`);
      const filler = 'lorem ipsum dolor sit amet '.repeat(4);
      const turns = Array.from({ length: 8 }, (_, i) => (i % 3 === 1 ? `tight turn ${i + 1}: look up item ${i + 1}, ${filler}` : `tight turn ${i + 1}: ${filler}`));
      const scenario = { turns, calls: ['create', 'create_stream'], headers: { 'x-route': 'tight' } };
      const seen = await runDriver<SdkSeen>('openai_responses.py', ['converse', mode, JSON.stringify(scenario)], { contextd, conversation, apiKey: API_KEY });
      expect(seen.replies).toEqual(turns.map(expectedReply));
      const { requests: expected, conversation: lines } = expectedExchange(turns);
      const requests = upstream.responsesRequests();
      expectEveryRequestValid(requests);
      expectNewestHistoryWithinBudget(requests, expected, headersOf(seen.exchanges));

      // Everything is stored, though the windows left most of it out.
      const rows = await storedRows(conversation, lines.length);
      expect(linesOfMessages(messagesOf(rows))).toEqual(lines);
    },
  );

  // ---- the Agents SDK ----

  /** `count` runs; every third (from the first) asks for a lookup; Runner.run and Runner.run_streamed alternate. */
  const agentRuns = (count: number, label: string, filler = ''): AgentRun[] =>
    Array.from({ length: count }, (_, i) => {
      const n = i + 1;
      return { text: n % 3 === 1 ? `${label} ${n}: look up item ${n}${filler}` : `${label} ${n}: remember the number ${n}${filler}`, streamed: n % 2 === 0 };
    });
  const isToolRun = (run: AgentRun): boolean => lookupSteps(run.text).length > 0;
  /** The kinds of the items the SDK sends on each step of a run: the user message, then on each later step the run's items so far. */
  const sentByStep = (run: AgentRun): string[][] => {
    const kinds = ['user'];
    const sent = [[...kinds]];
    for (const step of lookupSteps(run.text)) {
      kinds.push(...(step.length > 1 ? ['assistant'] : []), ...step.map(() => 'function_call'), ...step.map(() => 'function_call_output'));
      sent.push([...kinds]);
    }
    return sent;
  };
  const runAgents = (conversation: string, scenario: { runs: AgentRun[]; history?: 'new-only' | 'full'; route?: string; state?: 'header' | 'previous_response_id' }): Promise<AgentsSeen> =>
    runDriver<AgentsSeen>('openai_agents_responses_driver.py', ['runs', JSON.stringify(scenario)], { contextd, conversation, apiKey: API_KEY });

  test('openai-agents: 15 runs on one conversation (Runner.run and Runner.run_streamed), each sending only its new message; the re-sent run items are stored once', async () => {
    const conversation = newConversation('agents');
    // Of the five tool runs, one makes two calls at once (after a line of text) and one calls the tool twice in a row.
    const runs = agentRuns(15, 'agents run').map((run, i) => {
      if (i === 3) return { ...run, text: `agents run 4: look up items 4 and 34` };
      if (i === 9) return { ...run, text: `agents run 10: look up item 10 then item 40` };
      return run;
    });
    const toolRuns = runs.filter(isToolRun);
    expect(toolRuns.map((run) => [run.streamed, lookupSteps(run.text)])).toEqual([
      [false, [['1']]],
      [true, [['4', '34']]],
      [false, [['7']]],
      [true, [['10'], ['40']]],
      [false, [['13']]],
    ]);

    const seen = await runAgents(conversation, { runs });
    expect(seen.runs.map((run) => run.reply)).toEqual(runs.map((run) => expectedReply(run.text)));
    expect(seen.runs.map((run) => run.model_calls)).toEqual(runs.map((run) => 1 + lookupSteps(run.text).length));
    expect(seen.runs.map((run) => run.items)).toEqual(
      runs.map((run) => [
        ...lookupSteps(run.text).flatMap((step) => [
          ...(step.length > 1 ? ['message_output_item'] : []),
          ...step.map(() => 'tool_call_item'),
          ...step.map(() => 'tool_call_output_item'),
        ]),
        'message_output_item',
      ]),
    );
    const headers = headersOf(seen.exchanges);
    expect(headers).toHaveLength(21);
    for (const h of headers) expectWithinBudget(h, BUDGET);
    // The SDK sent only each run's new message, and on each later step of its tool loop the run's items so far.
    expect(responsesExchanges(seen.exchanges).map((exchange) => exchange.sent_input)).toEqual(runs.flatMap(sentByStep));

    // Every step of every run: all the earlier runs' history, then the run's own items once each.
    const { requests: expected, conversation: lines } = expectedExchange(runs.map((run) => run.text));
    const requests = upstream.responsesRequests();
    expectEveryRequestValid(requests);
    expect(requests.map((request) => linesOfItems(inputOf(request)))).toEqual(expected);
    const streamed = runs.flatMap((run) => Array<boolean>(1 + lookupSteps(run.text).length).fill(run.streamed));
    expect(requests.map((request) => (request.json as { stream?: boolean }).stream === true)).toEqual(streamed);

    // Each turn once: 15 user messages; an answer per run and a message per tool step; an output per call.
    const rows = await storedRows(conversation, 43);
    const messages = messagesOf(rows);
    expect(linesOfMessages(messages)).toEqual(lines);
    expect(countRoles(messages)).toEqual({ user: 15, assistant: 21, tool: 7 });
    // Each tool exchange once: the message making the calls, then one output per call, in order.
    const exchanges = messages.flatMap((message, i) => {
      if ((message.tool_calls ?? []).length === 0) return [];
      const outputs = messages.slice(i + 1, i + 1 + message.tool_calls!.length);
      return [{ text: textOf(message), calls: message.tool_calls!.map((call) => call.id), outputs: outputs.map((output) => output.role === 'tool' && output.tool_call_id) }];
    });
    expect(exchanges).toEqual(
      toolRuns.flatMap((run) =>
        lookupSteps(run.text).map((step) => {
          const ids = step.map((n) => `call_item_${n}`);
          return { text: step.length > 1 ? PARALLEL_PREAMBLE : '', calls: ids, outputs: ids };
        }),
      ),
    );
  });

  test('openai-agents chaining responses (previous_response_id, auto_previous_response_id) on a route that emulates it: 8 runs, no header; the upstream keeps no state and gets the whole history', async () => {
    const runs = agentRuns(8, 'agents chained run').map((run, i) => (i === 3 ? { ...run, text: 'agents chained run 4: look up items 4 and 34' } : run));
    const seen = await runAgents('unused', { runs, route: 'emulate', state: 'previous_response_id' });
    expect(seen.runs.map((run) => run.reply)).toEqual(runs.map((run) => expectedReply(run.text)));
    const headers = headersOf(seen.exchanges);
    const conversations = new Set(headers.map((h) => h['x-contextd-conversation-id']));
    expect(conversations.size, JSON.stringify(headers)).toBe(1);
    const [conversation] = [...conversations];
    expect(conversation).toMatch(/^[0-9a-f-]{36}$/);
    // The SDK sent each run's new message, and on each later step only the step's new items (the state was named by id).
    expect(responsesExchanges(seen.exchanges).map((exchange) => exchange.sent_input)).toEqual(
      runs.flatMap((run) => [['user'], ...lookupSteps(run.text).map((step) => step.map(() => 'function_call_output'))]),
    );
    // The upstream saw no previous_response_id, and every step carried all the history before it.
    const requests = upstream.responsesRequests();
    expectEveryRequestValid(requests);
    for (const request of requests) expect((request.json as { previous_response_id?: unknown }).previous_response_id).toBeUndefined();
    const { requests: expected, conversation: lines } = expectedExchange(runs.map((run) => run.text));
    expect(requests.map((request) => linesOfItems(inputOf(request)))).toEqual(expected);
    // Each run: its user message and answer; each tool step: the message making the calls, and an output per call.
    const count = runs.reduce((sum, run) => sum + 2 + lookupSteps(run.text).reduce((steps, step) => steps + 1 + step.length, 0), 0);
    const rows = await storedRows(conversation!, count);
    expect(linesOfMessages(messagesOf(rows))).toEqual(lines);
  });

  test("openai-agents, continuing with the last run's to_input_list() (no session): the re-sent history is recognised, stored once", async () => {
    const conversation = newConversation('agents-full');
    const runs = agentRuns(6, 'agents full run').map((run, i) => (i === 3 ? { ...run, text: 'agents full run 4: look up item 4 then item 44' } : run));
    const seen = await runAgents(conversation, { runs, history: 'full' });
    expect(seen.runs.map((run) => run.reply)).toEqual(runs.map((run) => expectedReply(run.text)));
    // The SDK sent everything so far every time.
    const sent = responsesExchanges(seen.exchanges).map((exchange) => exchange.sent_input!.length);
    expect(sent).toEqual(expectedExchange(runs.map((run) => run.text)).requests.map((lines) => lines.length));
    for (const h of headersOf(seen.exchanges)) expectWithinBudget(h, BUDGET);

    const { requests: expected, conversation: lines } = expectedExchange(runs.map((run) => run.text));
    const requests = upstream.responsesRequests();
    expectEveryRequestValid(requests);
    expect(requests.map((request) => linesOfItems(inputOf(request)))).toEqual(expected);

    const rows = await storedRows(conversation, lines.length);
    expect(linesOfMessages(messagesOf(rows))).toEqual(lines);
    expect(countRoles(messagesOf(rows))).toEqual({ user: 6, assistant: 9, tool: 3 });
  });

  test('openai-agents on a route with a tight budget: 8 runs; each step gets the newest history that fits, the run items re-sent on its tool loop stored once', async () => {
    const conversation = newConversation('agents-tight');
    const runs = agentRuns(8, 'agents tight run', `, ${'lorem ipsum dolor sit amet '.repeat(4)}`);
    const seen = await runAgents(conversation, { runs, route: 'tight' });
    expect(seen.runs.map((run) => run.reply)).toEqual(runs.map((run) => expectedReply(run.text)));
    expect(responsesExchanges(seen.exchanges).map((exchange) => exchange.sent_input)).toEqual(runs.flatMap(sentByStep));

    const { requests: expected, conversation: lines } = expectedExchange(runs.map((run) => run.text));
    const requests = upstream.responsesRequests();
    expectEveryRequestValid(requests);
    expectNewestHistoryWithinBudget(requests, expected, headersOf(seen.exchanges));

    const rows = await storedRows(conversation, lines.length);
    expect(linesOfMessages(messagesOf(rows))).toEqual(lines);
    expect(countRoles(messagesOf(rows))).toEqual({ user: 8, assistant: 11, tool: 3 });
  });
});
