// Fuzzing from outside (issue 12): random methods, paths, headers, ids and
// bodies, chat-shaped and not, against the running process. The fake upstream
// never answers a 5xx here, so any 5xx is contextd's own and fails the run, as
// does a request that hangs, a process that dies, or any change to a sentinel
// conversation of another tenant (whose id the fuzzer also uses).
import fc from 'fast-check';
import { afterAll, beforeAll, expect, test } from 'vitest';
import { ensureBuilt, startContextd, stopAll, type ContextdProcess } from '../support/contextd-process.js';
import { startFakeUpstream, type FakeUpstream } from '../support/fake-upstream.js';
import { waitFor } from '../support/wait-for.js';
import { contextdConfig, storedMessages } from './harness.js';

const SENTINEL_KEY = 'sk-fuzz-sentinel-tenant-0123456789';
const SENTINEL = `fuzz-sentinel-${process.pid}`;
/** Bounded by work: this many requests, each with a 10 s deadline. */
const RUNS = 1500;

let upstream: FakeUpstream;
let contextd: ContextdProcess;
let sentinelRows: string;

beforeAll(async () => {
  await ensureBuilt();
  upstream = await startFakeUpstream({ enforceToolRules: false });
  contextd = await startContextd({ config: contextdConfig(upstream, { defaults: { summary: { enabled: false } } }) });
  for (const content of ['the sentinel remembers', 'and keeps remembering']) {
    const res = await fetch(`${contextd.baseURL}/chat/completions`, {
      method: 'POST',
      headers: { authorization: `Bearer ${SENTINEL_KEY}`, 'content-type': 'application/json', 'x-conversation-id': SENTINEL },
      body: JSON.stringify({ model: 'gpt-4o-mini', messages: [{ role: 'user', content }] }),
    });
    expect(res.status).toBe(200);
    await res.arrayBuffer();
  }
  await waitFor(async () => (await storedMessages(contextd, SENTINEL, SENTINEL_KEY)).length === 4, { message: 'sentinel stored' });
  sentinelRows = JSON.stringify(await storedMessages(contextd, SENTINEL, SENTINEL_KEY));
});
afterAll(async () => {
  await stopAll();
  await upstream.close();
});

// Visible ASCII only: fetch refuses other header bytes before they leave the client.
const headerText = fc.string({ unit: fc.integer({ min: 0x20, max: 0x7e }).map((c) => String.fromCharCode(c)), maxLength: 40 });
const pathText = fc.string({ unit: fc.constantFrom(...'abcXYZ019-._~%:/?#&=+ é漢'.split('')), maxLength: 24 });
const conversationId = fc.oneof(fc.constant(SENTINEL), fc.constantFrom('c-1', 'c-2', 'fuzz.a:b'), headerText);

const anyJson = fc.jsonValue({ maxDepth: 6 });
const content = fc.oneof(fc.string(), anyJson, fc.array(fc.oneof(fc.record({ type: fc.constant('text'), text: fc.oneof(fc.string(), anyJson) }), anyJson), { maxLength: 3 }));
const toolCall = fc.oneof(
  fc.record({ id: fc.string({ maxLength: 8 }), type: fc.constant('function'), function: fc.record({ name: fc.string({ maxLength: 8 }), arguments: fc.oneof(fc.json(), fc.string(), anyJson) }) }),
  anyJson,
);
const message = fc.oneof(
  fc.record({ role: fc.constantFrom('system', 'developer', 'user'), content }),
  fc.record({ role: fc.constant('assistant'), content: fc.oneof(content, fc.constant(null)), tool_calls: fc.option(fc.array(toolCall, { maxLength: 3 }), { nil: undefined }) }, { requiredKeys: ['role'] }),
  fc.record({ role: fc.constant('tool'), tool_call_id: fc.oneof(fc.string({ maxLength: 8 }), anyJson), content }),
  fc.record({ role: fc.oneof(fc.string({ maxLength: 10 }), anyJson), content }),
  anyJson,
);
const chatBody = fc.record(
  {
    model: fc.oneof(fc.constantFrom('gpt-4o', 'gpt-4o-mini', 'o3'), anyJson),
    messages: fc.oneof(fc.array(message, { maxLength: 6 }), anyJson),
    stream: fc.boolean(),
    stream_options: fc.option(fc.record({ include_usage: fc.boolean() }), { nil: undefined }),
    tools: fc.option(anyJson, { nil: undefined }),
    metadata: fc.option(anyJson, { nil: undefined }),
  },
  { requiredKeys: ['messages'] },
);
const body = fc.oneof(
  { weight: 6, arbitrary: chatBody.map((b) => JSON.stringify(b)) },
  { weight: 1, arbitrary: fc.json() },
  { weight: 1, arbitrary: fc.string({ maxLength: 200 }) },
  { weight: 1, arbitrary: fc.integer({ min: 1, max: 400 }).map((depth) => `{"messages":[{"role":"user","content":${'['.repeat(depth)}${']'.repeat(depth)}}]}`) },
);
const path = fc.oneof(
  { weight: 6, arbitrary: fc.constant('/v1/chat/completions') },
  { weight: 1, arbitrary: pathText.map((q) => `/v1/chat/completions?${q}`) },
  { weight: 1, arbitrary: pathText.map((d) => `/openai/deployments/${d}/chat/completions?api-version=2024-10-21`) },
  { weight: 1, arbitrary: fc.tuple(pathText, fc.constantFrom('', '/messages', '/nope')).map(([id, rest]) => `/contextd/v1/conversations/${id}${rest}`) },
  { weight: 1, arbitrary: pathText.map((p) => `/v1/${p}`) },
  { weight: 1, arbitrary: pathText.map((p) => `/${p}`) },
);
const request = fc.record({
  method: fc.oneof({ weight: 8, arbitrary: fc.constant('POST') }, { weight: 1, arbitrary: fc.constantFrom('GET', 'DELETE', 'PUT', 'PATCH', 'OPTIONS') }),
  path,
  conversation: fc.option(conversationId, { nil: undefined }),
  authorization: fc.option(fc.oneof(fc.constantFrom('Bearer sk-fuzz-a', 'Bearer sk-fuzz-b'), headerText), { nil: undefined }),
  idempotencyKey: fc.option(headerText, { nil: undefined }),
  body,
});

test(`${RUNS} random requests: never a 5xx of contextd's own, never a hang, the process lives, the sentinel is untouched`, async () => {
  const seen = new Map<number, number>();
  await fc.assert(
    fc.asyncProperty(request, async (r) => {
      const headers: Record<string, string> = { 'content-type': 'application/json' };
      if (r.conversation !== undefined) headers['x-conversation-id'] = r.conversation;
      if (r.authorization !== undefined) headers.authorization = r.authorization;
      if (r.idempotencyKey !== undefined) headers['idempotency-key'] = r.idempotencyKey;
      const hasBody = r.method !== 'GET' && r.method !== 'OPTIONS';
      const res = await fetch(`${contextd.url}${r.path}`, { method: r.method, headers, body: hasBody ? r.body : undefined, signal: AbortSignal.timeout(10_000) });
      await res.arrayBuffer();
      seen.set(res.status, (seen.get(res.status) ?? 0) + 1);
      expect(res.status, `${r.method} ${r.path}`).toBeLessThan(500);
    }),
    { numRuns: RUNS, endOnFailure: true },
  );
  expect((await fetch(`${contextd.url}/healthz`)).status).toBe(200);
  expect(JSON.stringify(await storedMessages(contextd, SENTINEL, SENTINEL_KEY))).toBe(sentinelRows);
  // The fuzzer must reach both sides: requests that got memory and requests that were refused.
  expect(seen.get(200) ?? 0).toBeGreaterThan(RUNS / 20);
  expect([...seen.keys()].filter((status) => status >= 400).length).toBeGreaterThan(0);
}, 120_000);
