// Token counts that check themselves: whenever the upstream reports the
// prompt's tokens (usage.prompt_tokens on chat, JSON or a stream that asked
// for usage; input_tokens on the Responses API), contextd compares its own
// count of the prompt it sent and exports the relative difference as
// contextd_token_count_drift_ratio{route,model}, with a warning line beyond
// the route's budget.drift_warning. The fake upstream counts with the same
// rule as contextd (exact), or with a known different one (10% more).
// budget.safety_margin keeps part of the budget free.
import { afterAll, beforeAll, beforeEach, describe, expect, test } from 'vitest';
import type { ChatMessage } from '../../src/domain.js';
import { tokenCounterFor } from '../../src/tokens/count-tokens.js';
import { ensureBuilt, startContextd, stopAll, type ContextdProcess } from '../support/contextd-process.js';
import { startFakeUpstream, type Behaviour, type FakeUpstream, type RecordedRequest } from '../support/fake-upstream.js';
import { clientFor, contextdConfig } from './harness.js';

const counter = tokenCounterFor('o200k_base');
/** The prompt as contextd's rule counts it: each message, the reply priming, the tools. */
const exactCount = (request: RecordedRequest): number => {
  const body = request.json as { messages?: ChatMessage[]; tools?: unknown };
  return (body.messages ?? []).reduce((sum, m) => sum + counter.countMessage(m), 0) + counter.replyPrimingTokens + counter.countTools(body.tools);
};

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
  upstream.setDefault((request): Behaviour => {
    const exact = exactCount(request);
    return { kind: 'text', usage: { prompt_tokens: rule === 'exact' ? exact : Math.round(exact * 1.1) } };
  });
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

async function turns(model: string, count: number, stream = false): Promise<void> {
  const client = clientFor(contextd, newConversation());
  for (let n = 0; n < count; n++) {
    const request = { model, messages: [{ role: 'system' as const, content: 'Be brief.' }, { role: 'user' as const, content: `turn ${n}: tell me about item ${n}` }] };
    if (stream) {
      const chunks = await client.chat.completions.create({ ...request, stream: true, stream_options: { include_usage: true } });
      for await (const _chunk of chunks) void _chunk;
    } else {
      await client.chat.completions.create(request);
    }
  }
}

describe('contextd_token_count_drift_ratio', () => {
  test('an upstream that counts as contextd does: every observation is 0 (JSON and streamed with usage), and no warning', async () => {
    rule = 'exact';
    await turns('exact-model', 4);
    await turns('exact-model', 3, true);
    await expect.poll(() => drift('exact', 'exact-model')).toEqual({ sum: 0, count: 7 });
    expect(contextd.logs.filter((l) => l.route === 'exact' && typeof l.drift === 'number')).toEqual([]);
  });

  test('an upstream that counts 10% more: the metric shows the drift, and each request logs a warning with both counts', async () => {
    rule = 'ten-percent-more';
    await turns('drifting-model', 5);
    await expect.poll(async () => (await drift('drifting', 'drifting-model')).count).toBe(5);
    const { sum, count } = await drift('drifting', 'drifting-model');
    const warnings = contextd.logs.filter((l) => l.route === 'drifting' && typeof l.drift === 'number');
    expect(warnings).toHaveLength(5);
    let expected = 0;
    for (const w of warnings) {
      const [counted, reported] = [Number(w.countedTokens), Number(w.reportedTokens)];
      expect(w.level).toBe(40);
      expect(reported).toBe(Math.round(counted * 1.1));
      expected += (counted - reported) / reported;
    }
    expect(sum).toBeCloseTo(expected, 9);
    // counted / (1.1 counted) - 1 = -0.0909…, give or take the rounding of small reported counts.
    expect(sum / count).toBeGreaterThan(-0.1);
    expect(sum / count).toBeLessThan(-0.07);
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
