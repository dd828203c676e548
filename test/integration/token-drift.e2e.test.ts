// Token counts that check themselves: whenever the upstream reports the
// prompt's tokens (usage.prompt_tokens on chat, JSON or a stream that asked
// for usage; input_tokens on the Responses API), contextd compares its own
// count of the prompt it sent and exports the relative difference as
// contextd_token_count_drift_ratio{route,model}, with a warning line beyond
// the route's budget.drift_warning. The fake upstream counts with the same
// rule as contextd (exact), or with a known different one (10% more), on both
// APIs, JSON and streamed; a reply contextd does not store (empty, a failed
// Response) is still checked. budget.safety_margin keeps part of the budget free.
import { afterAll, beforeAll, beforeEach, describe, expect, test } from 'vitest';
import type { ChatMessage } from '../../src/domain.js';
import { parseResponsesRequest } from '../../src/http/parse-responses-request.js';
import { tokenCounterFor } from '../../src/tokens/count-tokens.js';
import { ensureBuilt, startContextd, stopAll, type ContextdProcess } from '../support/contextd-process.js';
import { startFakeUpstream, type Behaviour, type FakeUpstream, type RecordedRequest } from '../support/fake-upstream.js';
import { clientFor, contextdConfig } from './harness.js';

const counter = tokenCounterFor('o200k_base');
/**
 * The prompt as contextd's rule counts it: each message, the reply priming, the tools. A Responses body counts
 * as the chat messages its instructions and items map to (docs/responses.md, "Counting").
 */
const exactCount = (request: RecordedRequest): number => {
  const body = request.path.endsWith('/responses') ? parseResponsesRequest(request.rawBody) : (request.json as { messages?: ChatMessage[]; tools?: unknown });
  return (body.messages ?? []).reduce((sum, m) => sum + counter.countMessage(m), 0) + counter.replyPrimingTokens + counter.countTools(body.tools);
};
/** What the fake reports for a prompt: exactly contextd's count, or 10% more. */
const reported = (request: RecordedRequest): number => (rule === 'exact' ? exactCount(request) : Math.round(exactCount(request) * 1.1));

let upstream: FakeUpstream;
let contextd: ContextdProcess;
let conversationNo = 0;
const newConversation = (): string => `drift-${process.pid}-${++conversationNo}`;
/** How the fake reports prompt tokens: exactly as contextd counts, or 10% more. */
let rule: 'exact' | 'ten-percent-more' = 'exact';

beforeAll(async () => {
  await ensureBuilt();
  upstream = await startFakeUpstream();
  contextd = await startContextd({
    config: contextdConfig(upstream, {
      defaults: { budget: { max_context_tokens: 2000, summary_max_tokens: 100, drift_warning: '5%' }, summary: { enabled: false } },
      routes: [
        { name: 'exact', match: { model: 'exact-*' } },
        { name: 'drifting', match: { model: 'drifting-*' } },
        { name: 'margin', match: { model: 'margin-*' }, budget: { max_context_tokens: 400, safety_margin: '25%' } },
        { name: 'no-margin', match: { model: 'no-margin-*' }, budget: { max_context_tokens: 400 } },
      ],
    }),
  });
}, 60_000);
beforeEach(() => {
  upstream.reset();
  upstream.setDefault((request): Behaviour => ({ kind: 'text', usage: { prompt_tokens: reported(request) } }));
});
afterAll(async () => {
  await stopAll();
  await upstream.close();
});

/** The drift histogram's sum and count for a route and model, from /metrics. */
async function drift(route: string, model: string): Promise<{ sum: number; count: number }> {
  const text = await (await fetch(`${contextd.url}/metrics`)).text();
  const value = (suffix: string): number => {
    const line = text.split('\n').find((l) => l.startsWith(`contextd_token_count_drift_ratio_${suffix}{`) && l.includes(`route="${route}"`) && l.includes(`model="${model}"`));
    return line === undefined ? 0 : Number(line.split(' ').at(-1));
  };
  return { sum: value('sum'), count: value('count') };
}

type Api = 'chat' | 'responses';

/** `count` turns of one conversation on `api`, JSON or streamed (a chat stream asks for usage; a Responses stream always ends with it). */
async function turns(model: string, count: number, { api = 'chat', stream = false }: { api?: Api; stream?: boolean } = {}): Promise<void> {
  const client = clientFor(contextd, newConversation());
  for (let n = 0; n < count; n++) {
    const text = `turn ${n}: tell me about item ${n}`;
    if (api === 'responses') {
      const request = { model, instructions: 'Be brief.', input: text };
      if (stream) for await (const _event of await client.responses.create({ ...request, stream: true })) void _event;
      else await client.responses.create(request);
      continue;
    }
    const request = { model, messages: [{ role: 'system' as const, content: 'Be brief.' }, { role: 'user' as const, content: text }] };
    if (stream) for await (const _chunk of await client.chat.completions.create({ ...request, stream: true, stream_options: { include_usage: true } })) void _chunk;
    else await client.chat.completions.create(request);
  }
}

const warningsFor = (route: string, model: string) => contextd.logs.filter((l) => l.route === route && l.model === model && typeof l.drift === 'number');

/**
 * Once `count` requests of `model` were checked: each logged a warning whose reported count is 1.1x contextd's,
 * and the histogram holds their ratios, (contextd − upstream) ÷ upstream: about −0.091, below 0 as contextd counted low.
 */
async function expectTenPercentLow(route: string, model: string, count: number): Promise<void> {
  await expect.poll(async () => (await drift(route, model)).count).toBe(count);
  await expect.poll(() => warningsFor(route, model).length).toBe(count);
  let expected = 0;
  for (const w of warningsFor(route, model)) {
    const [counted, reportedTokens] = [Number(w.countedTokens), Number(w.reportedTokens)];
    expect(w.level).toBe(40);
    expect(counted).toBeGreaterThan(0);
    expect(reportedTokens).toBe(Math.round(counted * 1.1));
    expected += (counted - reportedTokens) / reportedTokens;
  }
  const { sum } = await drift(route, model);
  expect(sum).toBeCloseTo(expected, 9);
  // counted / (1.1 counted) - 1 = -0.0909…, give or take the rounding of small reported counts.
  expect(sum / count).toBeGreaterThan(-0.1);
  expect(sum / count).toBeLessThan(-0.07);
}

describe('contextd_token_count_drift_ratio', () => {
  test('an upstream that counts as contextd does: every observation is 0 (JSON and streamed with usage), and no warning', async () => {
    rule = 'exact';
    await turns('exact-model', 4);
    await turns('exact-model', 3, { stream: true });
    await expect.poll(() => drift('exact', 'exact-model')).toEqual({ sum: 0, count: 7 });
    expect(contextd.logs.filter((l) => l.route === 'exact' && typeof l.drift === 'number')).toEqual([]);
  });

  test('an upstream that counts 10% more: the metric shows the drift, and each request logs a warning with both counts', async () => {
    rule = 'ten-percent-more';
    await turns('drifting-model', 5);
    await expectTenPercentLow('drifting', 'drifting-model', 5);
  });

  test('an upstream that counts 10% more, streamed with stream_options.include_usage: the same drift and warnings', async () => {
    rule = 'ten-percent-more';
    await turns('drifting-streamed', 4, { stream: true });
    await expectTenPercentLow('drifting', 'drifting-streamed', 4);
  });

  test('the Responses API (usage.input_tokens), JSON and streamed, history included: an exact upstream gives 0 and no warning', async () => {
    rule = 'exact';
    await turns('exact-responses', 4, { api: 'responses' });
    await turns('exact-responses', 3, { api: 'responses', stream: true });
    expect(upstream.responsesRequests()).toHaveLength(7);
    await expect.poll(() => drift('exact', 'exact-responses')).toEqual({ sum: 0, count: 7 });
    expect(warningsFor('exact', 'exact-responses')).toEqual([]);
  });

  test('the Responses API, JSON and streamed: an upstream that counts 10% more shows the drift', async () => {
    rule = 'ten-percent-more';
    await turns('drifting-responses', 3, { api: 'responses' });
    await turns('drifting-responses', 3, { api: 'responses', stream: true });
    await expectTenPercentLow('drifting', 'drifting-responses', 6);
  });

  test('the request log line carries the reported count beside contextd’s', async () => {
    rule = 'exact';
    const client = clientFor(contextd, newConversation());
    const { response } = await client.chat.completions.create({ model: 'exact-model', messages: [{ role: 'user', content: 'hello' }] }).withResponse();
    const line = await contextd.waitForLog((l) => l.msg === 'request' && l.requestId === response.headers.get('x-contextd-request-id'));
    expect(line.promptTokensReported).toBe(line.contextTokens);
    expect(line.contextTokens).toBe(Number(response.headers.get('x-contextd-context-tokens')));
  });
});

describe('a reply that is not stored is still checked', () => {
  test('an empty chat reply with usage: not stored, and its count is checked against the upstream’s', async () => {
    rule = 'ten-percent-more';
    upstream.enqueue((request) => ({ kind: 'text', content: '', usage: { prompt_tokens: reported(request) } }));
    const client = clientFor(contextd, newConversation());
    const { response } = await client.chat.completions.create({ model: 'drifting-empty', messages: [{ role: 'user', content: `say nothing about ${'the harbour and its boats '.repeat(8)}` }] }).withResponse();
    const line = await contextd.waitForLog((l) => l.msg === 'request' && l.requestId === response.headers.get('x-contextd-request-id'));
    expect([line.stored, line.notStoredReason]).toEqual(['not_stored', 'empty reply']);
    expect(line.promptTokensReported).toBe(Math.round(Number(response.headers.get('x-contextd-context-tokens')) * 1.1));
    await expectTenPercentLow('drifting', 'drifting-empty', 1);
  });

  test('a Responses stream that ends in response.failed with usage: not stored, and its count is checked', async () => {
    rule = 'exact';
    upstream.enqueue({ kind: 'response_failed', partialContent: 'half an ans' });
    const client = clientFor(contextd, newConversation());
    const { response, data } = await client.responses.create({ model: 'exact-failed', instructions: 'Be brief.', input: 'answer me', stream: true }).withResponse();
    for await (const _event of data) void _event;
    const line = await contextd.waitForLog((l) => l.msg === 'request' && l.requestId === response.headers.get('x-contextd-request-id'));
    expect([line.stored, line.notStoredReason]).toEqual(['not_stored', 'upstream sent an error']);
    // The fake reports a failed response's prompt as its body's bytes ÷ 4, not a count: a known, different figure.
    const reportedTokens = Math.ceil(upstream.responsesRequests().at(-1)!.rawBody.length / 4);
    expect(line.promptTokensReported).toBe(reportedTokens);
    const counted = Number(response.headers.get('x-contextd-context-tokens'));
    await expect.poll(() => drift('exact', 'exact-failed')).toEqual({ sum: expect.closeTo((counted - reportedTokens) / reportedTokens, 9), count: 1 });
  });
});

describe('budget.safety_margin', () => {
  test('the prompt is assembled within max_context_tokens less the margin; without one it fills the budget', async () => {
    rule = 'exact';
    const fill = async (model: string): Promise<number[]> => {
      const client = clientFor(contextd, newConversation());
      const sizes: number[] = [];
      for (let n = 0; n < 12; n++) {
        const { response } = await client.chat.completions.create({ model, messages: [{ role: 'user', content: `question ${n}: ${'what is the weather like on the coast '.repeat(3)}` }] }).withResponse();
        sizes.push(Number(response.headers.get('x-contextd-context-tokens')));
      }
      return sizes;
    };
    const withMargin = await fill('margin-model');
    const without = await fill('no-margin-model');
    expect(Math.max(...withMargin)).toBeLessThanOrEqual(300);
    expect(Math.max(...without)).toBeGreaterThan(300);
    expect(Math.max(...without)).toBeLessThanOrEqual(400);
  });
});
