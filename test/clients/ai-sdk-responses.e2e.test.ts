// Client compatibility: the Vercel AI SDK (`ai` + `@ai-sdk/openai`) on its
// default OpenAI model, `openai(model)`, which is the Responses API, against a
// real contextd in front of the fake upstream (the driver is run-turns.mjs, on
// the AI SDK's own Node: ai-sdk/support.ts). Each test checks what the upstream
// received (the history as items, within the budget, function calls paired
// with their outputs and in order) and what was stored (each item once).
//
// By default the AI SDK treats the response as stored at OpenAI and sends
// earlier assistant text as an `item_reference`: in re-sent history contextd's
// stored copy takes its place (docs/responses.md); most tests set
// `store: false`, which sends the items themselves.
import { beforeAll, expect, test } from 'vitest';
import type { ChatMessage } from '../../src/domain.js';
import { expectStoredOnce } from '../support/compat-checks.js';
import type { ContextdProcess } from '../support/contextd-process.js';
import type { FakeUpstream, RecordedRequest } from '../support/fake-upstream.js';
import { countRoles, expectCallsPaired, inputOf, linesOfItems, linesOfMessages } from '../support/responses-checks.js';
import { waitFor } from '../support/wait-for.js';
import { API_KEY, storedMessages, type StoredRow } from '../integration/harness.js';
import { describeWithAiSdk, runTurns, useAiSdkSuite, type AiSdkSuite, type DriverFailure, type DriverResult, type DriverTurn, type Scenario } from './ai-sdk/support.js';

const SYSTEM = 'You are a terse assistant. Answer in one line.';
/** Small enough that the longer conversations below are trimmed. */
const BUDGET = 300;
const STORE_OFF = { openai: { store: false } };
/** What run-turns.mjs's lookup tool answers for item 5, as the output the AI SDK sends. */
const LOOKUP_OUTPUT = JSON.stringify({ item: 'item 5', colour: 'blue' });
const CALL_LINE = 'call call_1 lookup {"q":"item 5"}';
const OUTPUT_LINE = `output call_1: ${LOOKUP_OUTPUT}`;

let upstream: FakeUpstream;
let contextd: ContextdProcess;
let conversationNo = 0;
let suite: AiSdkSuite;
const newConversation = (): string => `ai-sdk-responses-${process.pid}-${++conversationNo}`;

async function drive<Turn = DriverTurn>(conversation: string, scenario: Omit<Scenario, 'api' | 'instructions'>): Promise<DriverResult<Turn>> {
  const result = await runTurns<Turn>({ contextd, conversation, apiKey: API_KEY }, { ...scenario, api: 'responses', instructions: SYSTEM });
  suite.sdkVersions ??= result.sdk;
  return result;
}

// ---- checks ----

function responsesRequest(i: number): RecordedRequest {
  const request = upstream.responsesRequests()[i];
  if (request === undefined) throw new Error(`the upstream received ${upstream.responsesRequests().length} Responses requests, not ${i + 1}`);
  return request;
}

const linesOf = (i: number): string[] => linesOfItems(inputOf(responsesRequest(i)));

/** Every model call of the run was within the budget, as contextd reported it. */
function expectWithinBudget(result: DriverResult): void {
  for (const step of result.turns.flatMap((turn) => turn.steps)) {
    expect(step.contextTokens, 'x-contextd-context-tokens').not.toBeNull();
    expect(Number(step.contextTokens)).toBeLessThanOrEqual(BUDGET);
  }
}

/**
 * Every request went to /v1/responses (nothing to chat completions), with the
 * pinned instructions first (the AI SDK sends them as a system item), its calls
 * paired with their outputs, and the conversation header kept to contextd.
 */
function expectEveryRequestValid(body: Record<string, unknown> = {}): void {
  const requests = upstream.responsesRequests();
  expect(requests.length).toBeGreaterThan(0);
  expect(upstream.chatRequests()).toEqual([]);
  for (const [i, request] of requests.entries()) {
    expect(request.path).toBe('/v1/responses');
    expect(request.headers['x-conversation-id']).toBeUndefined();
    expect(request.json).toMatchObject(body);
    const items = inputOf(request);
    expect(linesOfItems(items).filter((line) => line.startsWith('system: '))).toEqual([`system: ${SYSTEM}`]);
    expect(linesOfItems(items)[0]).toBe(`system: ${SYSTEM}`);
    expectCallsPaired(items, `request ${i} input`);
  }
  expect(upstream.toolRuleViolations).toEqual([]);
}

async function storedOnce(conversation: string, count: number): Promise<ChatMessage[]> {
  let rows: StoredRow[] = [];
  await waitFor(async () => (rows = await storedMessages(contextd, conversation)).length >= count, {
    message: () => `${count} stored messages (have ${rows.length}: ${JSON.stringify(rows.map((r) => r.message))})`,
  });
  rows = await storedMessages(contextd, conversation);
  expect(rows, JSON.stringify(rows.map((r) => r.message))).toHaveLength(count);
  expectStoredOnce(rows);
  return rows.map((row) => row.message as ChatMessage);
}

const exchange = (text: string): string[] => [`user: ${text}`, `assistant: echo: ${text}`];

describeWithAiSdk('Vercel AI SDK (@ai-sdk/openai Responses model)', () => {
  suite = useAiSdkSuite(BUDGET);
  // Registered after the suite's own beforeAll, so it runs after it (vitest runs before-hooks in order).
  beforeAll(() => {
    ({ upstream, contextd } = suite);
  });

  test('generateText (store: false), each turn sending only its new message: the history reaches the upstream as items within budget; stored once', async () => {
    const conversation = newConversation();
    const turns = ['first: the sky is green', 'second: the grass is blue', 'what colour is the sky?'];
    const result = await drive(conversation, { call: 'generate', history: 'new-only', turns, providerOptions: STORE_OFF });
    expect(result.turns.map((t) => t.text)).toEqual(turns.map((t) => `echo: ${t}`));
    expectWithinBudget(result);

    expect(upstream.responsesRequests()).toHaveLength(3);
    expectEveryRequestValid({ store: false });
    turns.forEach((text, i) => expect(linesOf(i)).toEqual([`system: ${SYSTEM}`, ...turns.slice(0, i).flatMap(exchange), `user: ${text}`]));
    // The history as typed items; the new turn as the AI SDK sent it.
    expect(inputOf(responsesRequest(1)).slice(1)).toEqual([
      { type: 'message', role: 'user', content: [{ type: 'input_text', text: turns[0] }] },
      { type: 'message', role: 'assistant', content: [{ type: 'output_text', text: `echo: ${turns[0]}` }] },
      { role: 'user', content: [{ type: 'input_text', text: turns[1] }] },
    ]);

    const stored = await storedOnce(conversation, 6);
    expect(linesOfMessages(stored)).toEqual(turns.flatMap(exchange));
  });

  test('streamText (store: false): the stream is relayed whole and stored; the next turn has it as history', async () => {
    const conversation = newConversation();
    upstream.enqueue({ kind: 'text', content: ['Streamed ', 'through ', 'contextd.'] });
    const turns = ['stream me something', 'and again'];
    const result = await drive(conversation, { call: 'stream', history: 'new-only', turns, providerOptions: STORE_OFF });
    expect(result.turns.map((t) => t.streamedText)).toEqual(['Streamed through contextd.', 'echo: and again']);
    expect(result.turns.map((t) => t.finishReason)).toEqual(['stop', 'stop']);
    expect(result.turns[0]!.usage?.outputTokens).toBeGreaterThan(0);
    expectWithinBudget(result);

    expectEveryRequestValid({ store: false, stream: true });
    expect(linesOf(1)).toEqual([`system: ${SYSTEM}`, 'user: stream me something', 'assistant: Streamed through contextd.', 'user: and again']);

    const stored = await storedOnce(conversation, 4);
    expect(linesOfMessages(stored)).toEqual(['user: stream me something', 'assistant: Streamed through contextd.', ...exchange('and again')]);
  });

  test.each(['generate', 'stream'] as const)(
    'multi-step tools (%s, store: false): the function_call and its output go back in the next step, paired; each stored once',
    async (call) => {
      const conversation = newConversation();
      upstream.enqueue(
        // Spaces in the arguments: the AI SDK sends them back as {"q":"item 5"}.
        { kind: 'tool_calls', toolCalls: [{ id: 'call_1', name: 'lookup', arguments: '{ "q": "item 5" }' }], chunkCount: 3 },
        { kind: 'text', content: 'Item 5 is blue.' },
      );
      const result = await drive(conversation, { call, history: 'new-only', turns: ['What colour is item 5?'], tools: true, providerOptions: STORE_OFF });
      const [turn] = result.turns;
      expect(turn!.text).toBe('Item 5 is blue.');
      expect(turn!.steps.map((s) => s.finishReason)).toEqual(['tool-calls', 'stop']);
      expect(turn!.steps[0]!.toolCalls).toEqual([{ toolCallId: 'call_1', toolName: 'lookup', input: { q: 'item 5' } }]);
      expectWithinBudget(result);

      expect(upstream.responsesRequests()).toHaveLength(2);
      expectEveryRequestValid({ store: false });
      expect(linesOf(1)).toEqual([`system: ${SYSTEM}`, 'user: What colour is item 5?', CALL_LINE, OUTPUT_LINE]);

      const stored = await storedOnce(conversation, 4);
      expect(linesOfMessages(stored)).toEqual(['user: What colour is item 5?', CALL_LINE, OUTPUT_LINE, 'assistant: Item 5 is blue.']);
      expect(stored[1]!.tool_calls).toEqual([{ id: 'call_1', type: 'function', function: { name: 'lookup', arguments: '{ "q": "item 5" }' } }]);
      expect(stored[2]).toMatchObject({ role: 'tool', tool_call_id: 'call_1', content: LOOKUP_OUTPUT });
    },
  );

  // The app appends each result's response messages to its own history and sends all of it
  // every turn: the AI SDK re-serialises the tool call's arguments and sends user text as
  // input_text parts, so the re-sent history is not byte-identical to what contextd stored.
  // It must still be recognised and replaced by the window, never stored twice.
  test.each(['generate', 'stream'] as const)(
    're-sending the growing messages array (%s, store: false): recognised, stored once; calls paired, within budget; the oldest left out by the end',
    async (call) => {
      const conversation = newConversation();
      upstream.enqueue(
        { kind: 'tool_calls', toolCalls: [{ id: 'call_1', name: 'lookup', arguments: '{ "q": "item 5" }' }] },
        { kind: 'text', content: 'Item 5 is blue.' },
      );
      const filler = 'and a few more words so that the small budget trims the oldest turns';
      const turns = ['What colour is item 5?', ...Array.from({ length: 5 }, (_, i) => `follow-up ${i + 1}, ${filler}`)];
      const result = await drive(conversation, { call, history: 'full', turns, tools: true, providerOptions: STORE_OFF });
      expect(result.turns.map((t) => t.text)).toEqual(['Item 5 is blue.', ...turns.slice(1).map((t) => `echo: ${t}`)]);
      expectWithinBudget(result);
      expect(result.history.map((m) => m.role)).toEqual(['user', 'assistant', 'tool', 'assistant', ...turns.slice(1).flatMap(() => ['user', 'assistant'])]);

      // Two model calls for the first turn, one for each follow-up.
      expect(upstream.responsesRequests()).toHaveLength(turns.length + 1);
      expectEveryRequestValid({ store: false });
      const conversationLines = ['user: What colour is item 5?', CALL_LINE, OUTPUT_LINE, 'assistant: Item 5 is blue.', ...turns.slice(1).flatMap(exchange)];
      // The first follow-up has the whole tool exchange as history, once.
      expect(linesOf(2)).toEqual([`system: ${SYSTEM}`, ...conversationLines.slice(0, 4), `user: ${turns[1]}`]);
      for (let i = 2; i <= turns.length; i++) {
        const lines = linesOf(i);
        expect(lines.at(-1)).toBe(`user: ${turns[i - 1]}`);
        // The newest history that fits: a suffix of the conversation before this turn.
        const before = conversationLines.slice(0, 4 + 2 * (i - 2));
        const history = lines.slice(1, -1);
        expect(history, `request ${i}`).toEqual(before.slice(before.length - history.length));
        expect(history[0] ?? '', `request ${i} starts at an output`).not.toMatch(/^output /);
      }
      // By the last turn the budget has left the tool exchange out.
      expect(linesOf(turns.length)).not.toContain(CALL_LINE);

      const stored = await storedOnce(conversation, result.history.length);
      expect(linesOfMessages(stored)).toEqual(conversationLines);
      expect(countRoles(stored)).toEqual({ user: 6, assistant: 7, tool: 1 });
    },
  );

  test('the default (store on): earlier assistant text goes as an item_reference, which contextd takes as re-sent history: its stored copy goes upstream, no reference does; stored once', async () => {
    const conversation = newConversation();
    upstream.enqueue(
      { kind: 'tool_calls', toolCalls: [{ id: 'call_1', name: 'lookup', arguments: { q: 'item 5' } }] },
      { kind: 'text', content: 'Item 5 is blue.' },
    );
    const result = await drive<DriverTurn | DriverFailure>(conversation, { call: 'generate', history: 'full', turns: ['What colour is item 5?', 'thanks'], tools: true, reportErrors: true });
    const [first, second] = result.turns;
    expect(first).toMatchObject({ text: 'Item 5 is blue.' });
    expect(second).toMatchObject({ text: 'echo: thanks' });

    // The second turn re-sent the first's items: [system, user, function_call, function_call_output, item_reference, user].
    expect(upstream.responsesRequests()).toHaveLength(3);
    expectEveryRequestValid();
    const sent = inputOf(responsesRequest(2));
    expect(sent.filter((item) => (item as { type?: unknown }).type === 'item_reference')).toEqual([]);
    expect(linesOf(2)).toEqual([`system: ${SYSTEM}`, 'user: What colour is item 5?', CALL_LINE, OUTPUT_LINE, 'assistant: Item 5 is blue.', 'user: thanks']);
    const stored = await storedOnce(conversation, 6);
    expect(linesOfMessages(stored)).toEqual(['user: What colour is item 5?', CALL_LINE, OUTPUT_LINE, 'assistant: Item 5 is blue.', ...exchange('thanks')]);
  });
});
