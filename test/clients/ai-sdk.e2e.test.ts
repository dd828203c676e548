// Client compatibility: the Vercel AI SDK (`ai` + `@ai-sdk/openai`, chat
// completions model) against a real contextd in front of the fake upstream.
// The AI SDK needs Node >= 22, so it lives in test/clients/ai-sdk with its own
// node_modules and its own Node binary (ai-sdk/support.ts); each test runs the
// driver run-turns.mjs with that Node and reads its JSON result.
// Each test checks what the upstream received (history present, budget held,
// tool pairs valid, pinned instructions first) and what was stored (each message once).
import { beforeAll, expect, test } from 'vitest';
import { expectStoredOnce, expectValidPrompt, promptOf, textOf } from '../support/compat-checks.js';
import type { ContextdProcess } from '../support/contextd-process.js';
import type { FakeUpstream, RecordedRequest } from '../support/fake-upstream.js';
import { waitFor } from '../support/wait-for.js';
import { API_KEY, storedMessages, type StoredRow } from '../integration/harness.js';
import { describeWithAiSdk, runTurns as runDriver, useAiSdkSuite, type AiSdkSuite, type DriverResult, type Scenario } from './ai-sdk/support.js';

const SYSTEM = 'You are a terse assistant. Answer in one line.';
/** Small enough that the longer conversations below are trimmed. */
const BUDGET = 300;

// ---- the driver ----

let suite: AiSdkSuite;

async function runTurns(conversation: string, scenario: Scenario): Promise<DriverResult> {
  const result = await runDriver({ contextd, conversation, apiKey: API_KEY }, scenario);
  suite.sdkVersions ??= result.sdk;
  return result;
}

// ---- checks ----

let upstream: FakeUpstream;
let contextd: ContextdProcess;
let conversationNo = 0;
const newConversation = (): string => `ai-sdk-${process.pid}-${++conversationNo}`;

function chatRequest(i: number): RecordedRequest {
  const request = upstream.chatRequests()[i];
  if (request === undefined) throw new Error(`the upstream received ${upstream.chatRequests().length} chat requests, not ${i + 1}`);
  return request;
}

/** Every model call of the run was within the budget, as contextd reported it. */
function expectWithinBudget(result: DriverResult): void {
  for (const step of result.turns.flatMap((turn) => turn.steps)) {
    expect(step.contextTokens, 'x-contextd-context-tokens').not.toBeNull();
    expect(Number(step.contextTokens)).toBeLessThanOrEqual(BUDGET);
  }
}

/** Every upstream prompt keeps the tool rules and starts with the pinned instructions; the conversation header stays behind. */
function expectEveryPromptValid(instructions: readonly string[]): void {
  expect(upstream.chatRequests().length).toBeGreaterThan(0);
  for (const request of upstream.chatRequests()) {
    const prompt = expectValidPrompt(request, { instructions });
    expect(prompt.filter((m) => m.role === 'system')).toHaveLength(instructions.length);
  }
}

async function storedOnce(conversation: string, count: number): Promise<StoredRow[]> {
  let rows: StoredRow[] = [];
  await waitFor(async () => (rows = await storedMessages(contextd, conversation)).length >= count, {
    message: () => `${count} stored messages (have ${rows.length}: ${JSON.stringify(rows.map((r) => r.message))})`,
  });
  rows = await storedMessages(contextd, conversation);
  expect(rows, JSON.stringify(rows.map((r) => r.message))).toHaveLength(count);
  expectStoredOnce(rows);
  return rows;
}

const rolesOf = (messages: readonly { role: string }[]): string[] => messages.map((m) => m.role);
const hasToolCalls = (message: object): boolean => {
  const calls = (message as { tool_calls?: unknown }).tool_calls;
  return Array.isArray(calls) && calls.length > 0;
};

describeWithAiSdk('Vercel AI SDK (@ai-sdk/openai chat model)', () => {
  suite = useAiSdkSuite(BUDGET);
  // Registered after the suite's own beforeAll, so it runs after it (vitest runs before-hooks in order).
  beforeAll(() => {
    ({ upstream, contextd } = suite);
  });

  test('generateText, each turn sending only its new message: history reaches the upstream within budget; stored once', async () => {
    const conversation = newConversation();
    const turns = ['first: the sky is green', 'second: the grass is blue', 'what colour is the sky?'];
    const result = await runTurns(conversation, { call: 'generate', history: 'new-only', turns, instructions: SYSTEM });
    expect(result.turns.map((t) => t.text)).toEqual(turns.map((t) => `echo: ${t}`));
    expectWithinBudget(result);

    expect(upstream.chatRequests()).toHaveLength(3);
    expectEveryPromptValid([SYSTEM]);
    const last = expectValidPrompt(chatRequest(2), { instructions: [SYSTEM], contains: [turns[0]!, `echo: ${turns[0]}`, turns[1]!, `echo: ${turns[1]}`] });
    expect(last.at(-1)).toEqual({ role: 'user', content: turns[2] });
    for (const request of upstream.chatRequests()) expect(request.headers['x-conversation-id']).toBeUndefined();

    const rows = await storedOnce(conversation, 6);
    expect(rows.map((r) => textOf(r.message))).toEqual(turns.flatMap((t) => [t, `echo: ${t}`]));
  });

  test('streamText with usage: the stream is relayed whole and stored; the next turn has it as history', async () => {
    const conversation = newConversation();
    upstream.enqueue({ kind: 'text', content: ['Streamed ', 'through ', 'contextd.'] });
    const turns = ['stream me something', 'and again'];
    const result = await runTurns(conversation, { call: 'stream', history: 'new-only', turns, instructions: SYSTEM });
    expect(result.turns.map((t) => t.streamedText)).toEqual(['Streamed through contextd.', 'echo: and again']);
    expect(result.turns.map((t) => t.finishReason)).toEqual(['stop', 'stop']);
    expect(result.turns[0]!.usage?.outputTokens).toBeGreaterThan(0);
    expectWithinBudget(result);

    const first = chatRequest(0).json as { stream?: boolean; stream_options?: { include_usage?: boolean } };
    expect(first.stream).toBe(true);
    expect(first.stream_options?.include_usage).toBe(true);
    expectEveryPromptValid([SYSTEM]);
    expectValidPrompt(chatRequest(1), { instructions: [SYSTEM], contains: ['stream me something', 'Streamed through contextd.'] });

    const rows = await storedOnce(conversation, 4);
    expect(rows.map((r) => textOf(r.message))).toEqual(['stream me something', 'Streamed through contextd.', 'and again', 'echo: and again']);
  });

  test.each(['generate', 'stream'] as const)(
    'multi-step tools (%s): the tool call and its result go back in the same call; every prompt valid, the call stored once',
    async (call) => {
      const conversation = newConversation();
      upstream.enqueue(
        { kind: 'tool_calls', toolCalls: [{ id: 'call_1', name: 'lookup', arguments: { q: 'item 5' } }], chunkCount: 3 },
        { kind: 'text', content: 'Item 5 is blue.' },
      );
      const result = await runTurns(conversation, { call, history: 'new-only', turns: ['What colour is item 5?'], instructions: SYSTEM, tools: true });
      const [turn] = result.turns;
      expect(turn!.text).toBe('Item 5 is blue.');
      expect(turn!.steps.map((s) => s.finishReason)).toEqual(['tool-calls', 'stop']);
      expect(turn!.steps[0]!.toolCalls).toEqual([{ toolCallId: 'call_1', toolName: 'lookup', input: { q: 'item 5' } }]);
      expect(turn!.steps[0]!.toolResults).toEqual([{ toolCallId: 'call_1', output: { item: 'item 5', colour: 'blue' } }]);
      expectWithinBudget(result);

      expect(upstream.chatRequests()).toHaveLength(2);
      expectEveryPromptValid([SYSTEM]);
      const second = promptOf(chatRequest(1));
      expect(rolesOf(second)).toEqual(['system', 'user', 'assistant', 'tool']);
      expect(second.filter(hasToolCalls)).toHaveLength(1);

      const rows = await storedOnce(conversation, 4);
      expect(rolesOf(rows.map((r) => r.message))).toEqual(['user', 'assistant', 'tool', 'assistant']);
      expect(rows[1]!.message.tool_calls).toEqual([{ id: 'call_1', type: 'function', function: { name: 'lookup', arguments: JSON.stringify({ q: 'item 5' }) } }]);
      expect(rows[2]!.message).toMatchObject({ role: 'tool', tool_call_id: 'call_1' });
      expect(JSON.parse(textOf(rows[2]!.message))).toEqual({ item: 'item 5', colour: 'blue' });
    },
  );

  // The app appends each result's response messages to its own history and sends all of it
  // every turn. The AI SDK re-serialises the tool call's arguments (JSON.stringify of the
  // parsed input) and sends the assistant's text as its own shape, so the re-sent history is
  // not byte-identical to what contextd stored: it must still be recognised, never stored twice.
  test.each(['generate', 'stream'] as const)(
    're-sending the result messages as history (%s): recognised, stored once, every prompt valid and within budget',
    async (call) => {
      const conversation = newConversation();
      upstream.enqueue(
        // Spaces in the arguments: the AI SDK sends them back as {"q":"item 5"}.
        { kind: 'tool_calls', toolCalls: [{ id: 'call_1', name: 'lookup', arguments: '{ "q": "item 5" }' }] },
        { kind: 'text', content: 'Item 5 is blue.' },
      );
      const filler = 'and a few more words so that the small budget trims the oldest turns';
      const turns = ['What colour is item 5?', ...Array.from({ length: 5 }, (_, i) => `follow-up ${i + 1}, ${filler}`)];
      const result = await runTurns(conversation, { call, history: 'full', turns, instructions: SYSTEM, tools: true });
      expect(result.turns.map((t) => t.text)).toEqual(['Item 5 is blue.', ...turns.slice(1).map((t) => `echo: ${t}`)]);
      expectWithinBudget(result);
      // The app's history: user, assistant (tool call), tool, assistant, then a user/assistant pair per follow-up.
      expect(rolesOf(result.history)).toEqual(['user', 'assistant', 'tool', 'assistant', ...turns.slice(1).flatMap(() => ['user', 'assistant'])]);

      // Two model calls for the first turn, one for each follow-up.
      expect(upstream.chatRequests()).toHaveLength(turns.length + 1);
      expectEveryPromptValid([SYSTEM]);
      for (const [i, request] of upstream.chatRequests().entries()) {
        const prompt = promptOf(request);
        expect(prompt.filter(hasToolCalls).length, `prompt ${i} repeats the tool call`).toBeLessThanOrEqual(1);
        if (i >= 2) expect(prompt.at(-1)).toEqual({ role: 'user', content: turns[i - 1] });
      }
      // The first follow-up still has the whole tool exchange as history; by the last, the budget has trimmed it.
      expect(rolesOf(promptOf(chatRequest(2)))).toEqual(['system', 'user', 'assistant', 'tool', 'assistant', 'user']);
      expect(promptOf(chatRequest(turns.length)).length).toBeLessThan(1 + result.history.length - 1);

      const rows = await storedOnce(conversation, result.history.length);
      expect(rolesOf(rows.map((r) => r.message))).toEqual(rolesOf(result.history));
      expect(rows.filter((r) => hasToolCalls(r.message))).toHaveLength(1);
      expect(rows.map((r) => textOf(r.message)).filter((text) => text !== '')).toEqual([
        'What colour is item 5?',
        JSON.stringify({ item: 'item 5', colour: 'blue' }),
        'Item 5 is blue.',
        ...turns.slice(1).flatMap((t) => [t, `echo: ${t}`]),
      ]);
    },
  );
});
