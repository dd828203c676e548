// GET /contextd/v1/conversations end to end: a real contextd process in front
// of the fake upstream, conversations made with the official openai client
// (x-conversation-id), listed through the conversation API. On the embedded
// store and on Redis + MongoDB (listed from MongoDB once the flusher has
// written them); tenancy, the admin token, tenant: none, paging and the
// errors of the query parameters.

import { setTimeout as delay } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { resolveTenant } from '../../src/http/conversation-identity.js';
import { ensureBuilt, startContextd, stopAll, type ContextdProcess } from '../support/contextd-process.js';
import { startFakeUpstream, type FakeUpstream } from '../support/fake-upstream.js';
import { describeWithService, serviceAvailability } from '../support/services.js';
import { useTwoServers } from '../support/tiered-stack.js';
import { waitFor } from '../support/wait-for.js';
import { API_KEY, clientFor, contextdConfig, storedMessages } from './harness.js';

const ADMIN_TOKEN = 'admin-token-for-the-listing-0123456789';
const OTHER_KEY = 'sk-other-tenant-for-listing-9876543210zyx';
const SUMMARY_KEY = 'sk-summarised-tenant-for-listing-13579bdf';
const TENANT = resolveTenant({ authorization: `Bearer ${API_KEY}` }, { kind: 'authorization' });

interface Listed {
  id: string;
  message_count: number;
  last_activity_at: string;
  summary: { covers_seq: number; tokens: number } | null;
}

interface ListPage {
  object: string;
  data: Listed[];
  has_more: boolean;
  next_after: string | null;
}

async function getList(contextd: ContextdProcess, query: string, bearer: string | undefined): Promise<{ status: number; body: unknown }> {
  const res = await fetch(`${contextd.url}/contextd/v1/conversations${query}`, { headers: bearer === undefined ? {} : { authorization: `Bearer ${bearer}` } });
  return { status: res.status, body: await res.json() };
}

async function listPage(contextd: ContextdProcess, query = '', bearer: string = API_KEY): Promise<ListPage> {
  const { status, body } = await getList(contextd, query, bearer);
  expect(status, JSON.stringify(body)).toBe(200);
  return body as ListPage;
}

/** Every page, followed with next_after. */
async function listAll(contextd: ContextdProcess, limit: number, bearer: string = API_KEY, extra = ''): Promise<Listed[]> {
  const all: Listed[] = [];
  let after: string | null = null;
  for (let pages = 0; pages < 100; pages++) {
    const page = await listPage(contextd, `?limit=${limit}${after === null ? '' : `&after=${encodeURIComponent(after)}`}${extra}`, bearer);
    expect(page.object).toBe('list');
    expect(page.data.length).toBeLessThanOrEqual(limit);
    all.push(...page.data);
    if (!page.has_more) {
      expect(page.next_after).toBeNull();
      return all;
    }
    expect(typeof page.next_after).toBe('string');
    after = page.next_after;
  }
  throw new Error('the cursor never ended');
}

const counts = (listed: readonly Listed[]): [string, number][] => listed.map((entry) => [entry.id, entry.message_count]);

/** The same checks on each store: `start` runs contextd with admin.token set and the given storage. */
function listingSuite(storage: () => Record<string, unknown>): void {
  let upstream: FakeUpstream;
  let contextd: ContextdProcess;
  const prefix = `list-${process.pid}-${Date.now().toString(36)}`;

  /** One turn through the proxy, then wait until it is stored (so turns get distinct, ordered activity times). */
  async function chat(conversation: string, text: string, apiKey = API_KEY): Promise<void> {
    const before = (await storedMessages(contextd, conversation, apiKey)).length;
    await clientFor(contextd, conversation, apiKey).chat.completions.create({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: text }] });
    await waitFor(async () => (await storedMessages(contextd, conversation, apiKey)).length === before + 2, { timeoutMs: 10_000, message: `${conversation}: turn stored` });
    await delay(5);
  }

  beforeAll(async () => {
    await ensureBuilt();
    upstream = await startFakeUpstream();
    contextd = await startContextd({
      config: contextdConfig(upstream, {
        admin: { token: ADMIN_TOKEN },
        storage: storage(),
        // Long turns on this route overflow a small budget and are folded into a summary.
        routes: [{ name: 'summarised', match: { model: 'summarised-*' }, budget: { max_context_tokens: 400, summary_max_tokens: 60 }, summary: { enabled: true, trigger_tokens: 100, model: 'gpt-4o-mini' } }],
      }),
    });
    await chat(`${prefix}-a`, 'first of a');
    await chat(`${prefix}-b`, 'first of b');
    await chat(`${prefix}-b`, 'second of b');
    await chat(`${prefix}-c`, 'first of c');
    await chat(`${prefix}-a`, 'second of a');
    await chat(`${prefix}-a`, 'mine too', OTHER_KEY);
  }, 120_000);
  afterAll(async () => {
    await stopAll();
    await upstream?.close();
  });

  test('newest activity first, with message counts and no summary', async () => {
    // Redis + MongoDB lists from MongoDB: the flusher's last round may still be on its way.
    await waitFor(async () => JSON.stringify(counts((await listPage(contextd)).data)) === JSON.stringify([[`${prefix}-a`, 4], [`${prefix}-c`, 2], [`${prefix}-b`, 4]]), {
      timeoutMs: 10_000,
      message: 'a, c, b listed with their counts',
    });
    const page = await listPage(contextd);
    expect(page).toMatchObject({ object: 'list', has_more: false, next_after: null });
    const times = page.data.map((entry) => Date.parse(entry.last_activity_at));
    for (const entry of page.data) {
      expect(entry.last_activity_at).toBe(new Date(Date.parse(entry.last_activity_at)).toISOString());
      expect(entry.summary).toBeNull();
      expect(Object.keys(entry).sort()).toEqual(['id', 'last_activity_at', 'message_count', 'summary']);
    }
    expect(times[0]).toBeGreaterThan(times[1]!);
    expect(times[1]).toBeGreaterThan(times[2]!);
    expect(times[0]).toBeLessThanOrEqual(Date.now());
  });

  test('a conversation with a summary lists what the summary covers and its tokens, as its messages say', async () => {
    // Its own tenant, so the other tests' listings stay as they are.
    const conversation = `${prefix}-summarised`;
    const client = clientFor(contextd, conversation, SUMMARY_KEY);
    type Messages = { summary: { covers_seq: number; tokens: number } | null; last_seq: number };
    const summaryOf = async (): Promise<Messages> => {
      const res = await fetch(`${contextd.url}/contextd/v1/conversations/${conversation}/messages?limit=1`, { headers: { authorization: `Bearer ${SUMMARY_KEY}` } });
      return res.status === 404 ? { summary: null, last_seq: 0 } : ((await res.json()) as Messages);
    };
    for (let n = 1; n <= 12 && (await summaryOf()).summary === null; n++) {
      await client.chat.completions.create({ model: 'summarised-model', messages: [{ role: 'user', content: `item ${n} ${'ships in a box of cedar wood with a long note about the weather '.repeat(4)}` }] });
    }
    await waitFor(async () => (await summaryOf()).summary !== null, { timeoutMs: 10_000, message: 'a summary' });
    // Redis + MongoDB lists from MongoDB, which the flusher brings up to date (turns, then the summary that covers
    // them), and a summary job may still be folding more: wait until the listing says what the messages say.
    let listed: Listed[] = [];
    let held: Messages = { summary: null, last_seq: 0 };
    await waitFor(
      async () => {
        [held, listed] = [await summaryOf(), (await listPage(contextd, '', SUMMARY_KEY)).data];
        expect(listed).toEqual([{ id: conversation, message_count: held.last_seq, last_activity_at: expect.any(String), summary: held.summary && { covers_seq: held.summary.covers_seq, tokens: held.summary.tokens } }]);
        return true;
      },
      { timeoutMs: 10_000, message: () => `the listing to agree with the messages: ${JSON.stringify({ held, listed })}` },
    );
    expect(listed[0]!.summary!.covers_seq).toBeGreaterThan(0);
    expect(listed[0]!.summary!.tokens).toBeGreaterThan(0);
  });

  test('another API key sees only its own conversations, though it used the same id', async () => {
    await waitFor(async () => (await listPage(contextd, '', OTHER_KEY)).data.length === 1, { timeoutMs: 10_000, message: "the other key's conversation listed" });
    expect(counts((await listPage(contextd, '', OTHER_KEY)).data)).toEqual([[`${prefix}-a`, 2]]);
  });

  test('the admin token lists a tenant named by ?tenant=, and must name one', async () => {
    const asAdmin = await listPage(contextd, `?tenant=${TENANT}`, ADMIN_TOKEN);
    expect(asAdmin).toEqual(await listPage(contextd));
    const withoutTenant = await getList(contextd, '', ADMIN_TOKEN);
    expect(withoutTenant.status).toBe(400);
    expect(withoutTenant.body).toMatchObject({ error: { code: 'missing_tenant', param: 'tenant' } });
  });

  test('paging: limit and next_after cover every conversation once, in the order of one page', async () => {
    const whole = (await listPage(contextd, '?limit=500')).data;
    expect(whole).toHaveLength(3);
    const first = await listPage(contextd, '?limit=2');
    expect(first.data).toEqual(whole.slice(0, 2));
    expect(first.has_more).toBe(true);
    for (const limit of [1, 2, 3]) expect(await listAll(contextd, limit)).toEqual(whole);
    // The admin's pages are the tenant's pages.
    expect(await listAll(contextd, 1, ADMIN_TOKEN, `&tenant=${TENANT}`)).toEqual(whole);
  });

  test('bad query parameters are 400 invalid_value', async () => {
    for (const query of ['?limit=0', '?limit=-1', '?limit=two', `?after=${'x'.repeat(513)}`, '?after=not-a-cursor']) {
      const { status, body } = await getList(contextd, query, API_KEY);
      expect(status, query).toBe(400);
      expect(body, query).toMatchObject({ error: { code: 'invalid_value', type: 'invalid_request_error' } });
    }
    // Above the maximum is the maximum, as for a conversation's messages.
    expect((await listPage(contextd, '?limit=100000')).data).toHaveLength(3);
  });

  test('only GET: another method is a 404', async () => {
    const res = await fetch(`${contextd.url}/contextd/v1/conversations`, { method: 'DELETE', headers: { authorization: `Bearer ${API_KEY}` } });
    expect(res.status).toBe(404);
  });
}

describe('GET /contextd/v1/conversations on the embedded store', () => {
  listingSuite(() => ({}));
});

const available = serviceAvailability();
describeWithService(!available.redis.isAvailable ? available.redis : available.mongo, 'GET /contextd/v1/conversations on Redis + MongoDB', () => {
  const servers = useTwoServers();
  // Registered after the servers' hooks, so it runs before they stop (vitest runs after-hooks as a stack).
  afterAll(() => stopAll());
  // FerretDB on SQLite scans a whole collection per query, so MongoDB gets a generous timeout here.
  listingSuite(() => ({
    redis: { url: servers.redisServer.url, ttl: '1h', timeout: '500ms' },
    mongodb: { url: servers.mongoServer.url, database: servers.mongoServer.database, timeout: '5s' },
  }));
});

describe('GET /contextd/v1/conversations with tenant: none', () => {
  let upstream: FakeUpstream;
  let contextd: ContextdProcess;
  beforeAll(async () => {
    await ensureBuilt();
    upstream = await startFakeUpstream();
    contextd = await startContextd({ config: contextdConfig(upstream, { admin: { token: ADMIN_TOKEN }, conversation: { tenant: 'none' } }) });
    await clientFor(contextd, 'single-tenant').chat.completions.create({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'hello' }] });
  }, 60_000);
  afterAll(async () => {
    await stopAll();
    await upstream?.close();
  });

  test('only the admin token may list: an API key gets a 401', async () => {
    const asKey = await getList(contextd, '', API_KEY);
    expect(asKey.status).toBe(401);
    expect(asKey.body).toMatchObject({ error: { code: 'admin_token_required' } });
    expect((await getList(contextd, '', undefined)).status).toBe(401);
    await waitFor(async () => (await listPage(contextd, '', ADMIN_TOKEN)).data.length === 1, { message: 'the conversation listed for the admin' });
    expect(counts((await listPage(contextd, '', ADMIN_TOKEN)).data)).toEqual([['single-tenant', 2]]);
  });
});

/** One endpoint of the conversation API, and how it shows that it reached a conversation or did not. */
interface Endpoint {
  name: string;
  method: 'GET' | 'POST' | 'DELETE';
  /** Below /contextd/v1/conversations. */
  path: (conversation: string) => string;
  body?: unknown;
  /** The listing answers every tenant (its own conversations); the rest are a 404 for a conversation the tenant does not hold. */
  isListing?: boolean;
}

const ENDPOINTS: Endpoint[] = [
  { name: 'GET the listing', method: 'GET', path: () => '', isListing: true },
  { name: 'GET …/:id/context', method: 'GET', path: (c) => `/${c}/context?model=gpt-4o-mini` },
  { name: 'POST …/:id/context', method: 'POST', path: (c) => `/${c}/context`, body: { model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'dry run' }] } },
  { name: 'DELETE …/:id/messages/:seq', method: 'DELETE', path: (c) => `/${c}/messages/1` },
  { name: 'DELETE …/:id', method: 'DELETE', path: (c) => `/${c}` },
];

describe('tenant scoping of every conversation API endpoint', () => {
  let upstream: FakeUpstream;
  let perTenant: ContextdProcess;
  let singleTenant: ContextdProcess;
  let conversationNo = 0;

  beforeAll(async () => {
    await ensureBuilt();
    upstream = await startFakeUpstream();
    [perTenant, singleTenant] = await Promise.all([
      startContextd({ config: contextdConfig(upstream, { admin: { token: ADMIN_TOKEN } }) }),
      startContextd({ config: contextdConfig(upstream, { admin: { token: ADMIN_TOKEN }, conversation: { tenant: 'none' } }) }),
    ]);
  }, 60_000);
  afterAll(async () => {
    await stopAll();
    await upstream?.close();
  });

  /** A new conversation of API_KEY's tenant with one stored turn (every endpoint's success needs one; the deletes use theirs up). */
  async function conversationOn(contextd: ContextdProcess, bearerForReads: string): Promise<string> {
    const conversation = `scoped-${process.pid}-${++conversationNo}`;
    await clientFor(contextd, conversation).chat.completions.create({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'hello' }] });
    await waitFor(async () => (await heldBy(contextd, conversation, bearerForReads)) === 2, { message: `${conversation}: turn stored` });
    return conversation;
  }

  /** How many messages the conversation holds, as its owner (or the admin) reads them. */
  async function heldBy(contextd: ContextdProcess, conversation: string, bearer: string): Promise<number> {
    const res = await fetch(`${contextd.url}/contextd/v1/conversations/${conversation}/messages${bearer === ADMIN_TOKEN ? `?tenant=${TENANT}` : ''}`, { headers: { authorization: `Bearer ${bearer}` } });
    return res.status === 404 ? 0 : ((await res.json()) as { data: unknown[] }).data.length;
  }

  async function call(contextd: ContextdProcess, endpoint: Endpoint, conversation: string, bearer: string, tenant?: string): Promise<{ status: number; body: { data?: Listed[]; error?: { code: string } } }> {
    const url = new URL(`${contextd.url}/contextd/v1/conversations${endpoint.path(conversation)}`);
    if (tenant !== undefined) url.searchParams.set('tenant', tenant);
    const res = await fetch(url, {
      method: endpoint.method,
      headers: { authorization: `Bearer ${bearer}`, 'content-type': 'application/json' },
      ...(endpoint.body === undefined ? {} : { body: JSON.stringify(endpoint.body) }),
    });
    return { status: res.status, body: (await res.json()) as { data?: Listed[]; error?: { code: string } } };
  }

  /** Did the call reach the conversation? The listing lists it; the others answer 200. */
  function expectReached(endpoint: Endpoint, answer: Awaited<ReturnType<typeof call>>, conversation: string): void {
    expect(answer.status, JSON.stringify(answer.body)).toBe(200);
    if (endpoint.isListing === true) expect(answer.body.data?.map((entry) => entry.id)).toContain(conversation);
  }

  test.each(ENDPOINTS)("$name: another tenant's key finds nothing; the admin token reaches it with ?tenant= and must name one", async (endpoint) => {
    const conversation = await conversationOn(perTenant, API_KEY);

    const asOther = await call(perTenant, endpoint, conversation, OTHER_KEY);
    if (endpoint.isListing === true) {
      expect(asOther.status).toBe(200);
      expect(asOther.body.data?.map((entry) => entry.id)).not.toContain(conversation);
    } else {
      expect([asOther.status, asOther.body.error?.code]).toEqual([404, 'not_found']);
    }
    const adminWithoutTenant = await call(perTenant, endpoint, conversation, ADMIN_TOKEN);
    expect([adminWithoutTenant.status, adminWithoutTenant.body.error?.code]).toEqual([400, 'missing_tenant']);
    // Neither touched it.
    expect(await heldBy(perTenant, conversation, API_KEY)).toBe(2);

    expectReached(endpoint, await call(perTenant, endpoint, conversation, ADMIN_TOKEN, TENANT), conversation);
    if (endpoint.method === 'DELETE') expect(await heldBy(perTenant, conversation, API_KEY)).toBeLessThan(2);
  });

  test.each(ENDPOINTS)('$name with tenant: none: only the admin token, which needs no ?tenant=', async (endpoint) => {
    const conversation = await conversationOn(singleTenant, ADMIN_TOKEN);

    for (const bearer of [API_KEY, OTHER_KEY]) {
      const asKey = await call(singleTenant, endpoint, conversation, bearer);
      expect([asKey.status, asKey.body.error?.code]).toEqual([401, 'admin_token_required']);
    }
    expect(await heldBy(singleTenant, conversation, ADMIN_TOKEN)).toBe(2);

    expectReached(endpoint, await call(singleTenant, endpoint, conversation, ADMIN_TOKEN), conversation);
    if (endpoint.method === 'DELETE') expect(await heldBy(singleTenant, conversation, ADMIN_TOKEN)).toBeLessThan(2);
  });
});
