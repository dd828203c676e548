// Issue 15: an output format and a forced tool_choice are part of the prompt's fixed tokens, so
// planPrompt leaves less room for history when a request carries them, and the budget holds.
import { describe, expect, test } from 'vitest';
import { CountedRequest } from '../../../src/context/counted-request.js';
import { digestMessage } from '../../../src/context/message-digest.js';
import type { ChatMessage, ConversationSnapshot, StoredMessage } from '../../../src/domain.js';
import { parseMemoryRequest } from '../../../src/http/memory-request.js';
import { planPrompt, type PromptPlan } from '../../../src/http/plan-prompt.js';
import type { Route } from '../../../src/routing/route.js';
import { tokenCounterFor } from '../../../src/tokens/count-tokens.js';
import { TokenCountCache } from '../../../src/tokens/token-count-cache.js';

const counter = tokenCounterFor('o200k_base');
const schema = { type: 'object', properties: { answer: { type: 'string' }, sources: { type: 'array', items: { type: 'string' } } }, required: ['answer', 'sources'] };
const tools = [{ type: 'function', function: { name: 'lookup', description: 'Finds a harbour fact.', parameters: { type: 'object', properties: { q: { type: 'string' } } } } }];

/** 120 stored messages, question and answer in turn, of varied lengths, each with its real count and the running total. */
const history: StoredMessage[] = (() => {
  let cumTokens = 0;
  return Array.from({ length: 120 }, (_, i): StoredMessage => {
    const message: ChatMessage =
      i % 2 === 0 ? { role: 'user', content: `question ${i / 2}: when does the ferry leave?${' And back?'.repeat(i % 5)}` } : { role: 'assistant', content: `answer ${(i - 1) / 2}: at nine, from quay ${i}.` };
    const tokens = counter.countMessage(message);
    cumTokens += tokens;
    return { message, tokens, digest: digestMessage(message), seq: i + 1, createdAtMs: 1_700_000_000_000 + i, cumTokens };
  });
})();
const snapshot: ConversationSnapshot = { summary: undefined, messages: history, lastSeq: history.length, cache: 'none' };

const route = (eviction: Route['window']['eviction'], maxContextTokens: number): Route => ({
  name: 'extras',
  match: { path: undefined, model: undefined, headers: {} },
  budget: { maxContextTokens, summaryMaxTokens: 100, onOverflow: 'forward', encoding: 'auto', safetyMarginTokens: 0, driftWarning: 0.02 },
  summary: { enabled: false, model: 'gpt-4o-mini', triggerTokens: 1_000, maxTokens: 100, prompt: 'Summarize.', apiKey: undefined, timeoutMs: 10_000 },
  onStoreDown: 'passthrough',
  responses: { state: 'pass' },
  window: { eviction, lowWatermark: 0.6 },
});

function plan(extras: Record<string, unknown>, onRoute: Route, stored: ConversationSnapshot = snapshot): Promise<PromptPlan> {
  const body = parseMemoryRequest(
    'chat',
    Buffer.from(JSON.stringify({ model: 'gpt-4o', messages: [{ role: 'system', content: 'You are a harbour guide.' }, { role: 'user', content: 'and on Sundays?' }], tools, ...extras })),
  );
  return planPrompt({
    body,
    request: new CountedRequest(body.messages, counter, new TokenCountCache(16)),
    counter,
    route: onRoute,
    snapshot: stored,
    idempotencyKey: undefined,
    nowMs: 1_800_000_000_000,
    conversationHeader: 'x-conversation-id',
    retryWindowMs: 60_000,
  });
}

const extrasCases: { name: string; extras: Record<string, unknown> }[] = [
  { name: 'a json_schema response_format', extras: { response_format: { type: 'json_schema', json_schema: { name: 'answer', schema, strict: true } } } },
  { name: 'a json_object response_format', extras: { response_format: { type: 'json_object' } } },
  { name: 'tool_choice required', extras: { tool_choice: 'required' } },
  { name: 'tool_choice naming a function', extras: { tool_choice: { type: 'function', function: { name: 'lookup' } } } },
  { name: 'both', extras: { response_format: { type: 'json_schema', json_schema: { name: 'answer', schema } }, tool_choice: 'required' } },
];

describe('planPrompt: response_format and tool_choice take room from history', () => {
  test.each(extrasCases)('sliding, $name: fixed tokens grow by its count, fewer history messages fit, within budget', async ({ extras }) => {
    // A budget the plain request fills exactly: any fixed token more leaves a turn out.
    const loose = await plan({}, route('sliding', 600));
    const budget = loose.prompt.contextTokens;
    const plain = await plan({}, route('sliding', budget));
    expect(plain.prompt.historyMessages).toBe(loose.prompt.historyMessages);
    expect(plain.prompt.historyMessages).toBeLessThan(history.length);

    const withExtras = await plan(extras, route('sliding', budget));
    const extraTokens = counter.countRequestExtras({ responseFormat: extras.response_format, toolChoice: extras.tool_choice });
    expect(extraTokens).toBeGreaterThan(0);
    expect(withExtras.fixedTokens - plain.fixedTokens).toBe(extraTokens);
    expect(withExtras.prompt.historyMessages).toBeLessThan(plain.prompt.historyMessages);
    expect(withExtras.prompt.contextTokens).toBeLessThanOrEqual(budget);
    expect(withExtras.prompt.isOverflow).toBe(false);
  });

  // A chunked window's size moves its steps too, so it need not keep fewer messages at every length; it must fit whole.
  test.each(extrasCases)('chunked, $name: the window is sized without the room they take, at every length of history; within budget, no extra cut', async ({ extras }) => {
    const budget = 600;
    const extraTokens = counter.countRequestExtras({ responseFormat: extras.response_format, toolChoice: extras.tool_choice });
    let tight = 0;
    for (let length = 2; length <= history.length; length += 2) {
      const stored = { ...snapshot, messages: history.slice(0, length), lastSeq: length };
      const plain = await plan({}, route('chunked', budget), stored);
      const withExtras = await plan(extras, route('chunked', budget), stored);
      // Where the plain request leaves less room than the extras take, a window sized without them would need a further cut.
      if (budget - plain.prompt.contextTokens < extraTokens) tight++;
      expect(withExtras.prompt.contextTokens, `${length} messages`).toBeLessThanOrEqual(budget);
      expect(withExtras.prompt.droppedMessages, `${length} messages`).toBe(0);
      expect(withExtras.droppedMessages, `${length} messages`).toBe(withExtras.evictedMessages);
    }
    expect(tight).toBeGreaterThan(0);
  });
});
