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
    contextd = await startContextd({ config: contextdConfig(upstream, { admin: { token: ADMIN_TOKEN }, storage: storage() }) });
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
