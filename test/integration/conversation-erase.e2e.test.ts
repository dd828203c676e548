// Erasure through the conversation API, end to end: a real contextd process in
// front of the fake upstream, driven by the official openai client, on the
// embedded store, Redis alone and Redis + MongoDB. A message erased (with the
// rest of its tool exchange) is in no later upstream request, no listing and no
// summary made afterwards; one a summary already covered takes the summary with
// it (also where the store no longer holds the message) and the summary is
// folded again from what remains; on the servers it is in no Redis key and no
// MongoDB document, also when it is erased before it was flushed. Receipts
// (summary_refold's values), and tenants: another API key's caller finds
// nothing, the admin token reaches it with ?tenant=.

import type { Db } from 'mongodb';
import type OpenAI from 'openai';
import { afterAll, beforeAll, beforeEach, describe, expect, test } from 'vitest';
import { DEFAULT_SUMMARY_PROMPT } from '../../src/config/schema.js';
import type { ChatMessage, ConversationId } from '../../src/domain.js';
import { resolveTenant } from '../../src/http/conversation-identity.js';
import { hashTag } from '../../src/store/redis/keys.js';
import { ensureBuilt, startContextd, stopAll, type ContextdProcess } from '../support/contextd-process.js';
import { startFakeUpstream, type Behaviour, type FakeUpstream, type RecordedRequest } from '../support/fake-upstream.js';
import { describeWithService, serviceAvailability } from '../support/services.js';
import { useRedis, useTwoServers } from '../support/tiered-stack.js';
import { waitFor } from '../support/wait-for.js';
import { API_KEY, clientFor, contextdConfig, storedMessages } from './harness.js';
import { redisDump } from '../support/redis-watch.js';

const OTHER_KEY = 'sk-another-tenant-for-erasure-0123456789';
const ADMIN_TOKEN = 'admin-token-for-erasure-0123456789abcdef';
const TENANT = resolveTenant({ authorization: `Bearer ${API_KEY}` }, { kind: 'authorization' });
const SECRET = 'SECRET-launch-code-4711-tango';
const SECRET_FOLDED = 'SECRET-pin-9931-foxtrot';

type Body = { model: string; messages: ChatMessage[] };
const bodyOf = (r: RecordedRequest): Body => r.json as Body;
const isSummaryCall = (r: RecordedRequest): boolean => bodyOf(r).messages[0]?.content === DEFAULT_SUMMARY_PROMPT;
const chatCalls = (upstream: FakeUpstream): RecordedRequest[] => upstream.chatRequests().filter((r) => !isSummaryCall(r));

/**
 * Summary calls answer with what they were given: the previous summary, then the messages to fold,
 * oldest first. Cut to summary_max_tokens, a summary keeps the start of the conversation, so it holds
 * whatever the earliest history held: a summary without the secret means that history had none.
 */
function echoingSummaries(request: RecordedRequest): Behaviour {
  if (!isSummaryCall(request)) return { kind: 'text' };
  return { kind: 'text', content: `SUMMARY ${String(bodyOf(request).messages[1]?.content ?? '')}` };
}

/** Budget room for the first turns whole; long filler turns overflow it and start summaries. */
const config = (upstream: FakeUpstream, storage: Record<string, unknown> | undefined): Record<string, unknown> =>
  contextdConfig(upstream, {
    admin: { token: ADMIN_TOKEN },
    defaults: { budget: { max_context_tokens: 500, summary_max_tokens: 260 }, summary: { model: 'gpt-4o-mini', trigger_tokens: 60 } },
    ...(storage === undefined ? {} : { storage }),
  });

const filler = (n: number, extra = ''): string =>
  `filler ${n}: ${extra}${' the quick brown fox jumps over the lazy dog while the committee reviews the quarterly figures'.repeat(3)}`;

interface Receipt {
  id: string;
  object: string;
  deleted: boolean;
  seq?: number;
  seqs?: number[];
  tiers: Record<string, { messages: number; summary_dropped: boolean }>;
  summary_dropped: boolean;
  summary_refold?: string | null;
}

async function erase(contextd: ContextdProcess, path: string, bearer: string): Promise<{ status: number; body: Receipt & { error?: { code: string; param: string | null } } }> {
  const res = await fetch(`${contextd.url}/contextd/v1/conversations/${path}`, { method: 'DELETE', headers: { authorization: `Bearer ${bearer}` } });
  return { status: res.status, body: (await res.json()) as Receipt & { error?: { code: string; param: string | null } } };
}

async function summaryOf(contextd: ContextdProcess, conversation: string): Promise<{ covers_seq: number; text: string } | null> {
  const res = await fetch(`${contextd.url}/contextd/v1/conversations/${conversation}/messages?limit=1`, { headers: { authorization: `Bearer ${API_KEY}` } });
  if (res.status === 404) return null;
  return ((await res.json()) as { summary: { covers_seq: number; text: string } | null }).summary;
}

/** Raw views of the servers, for the two-tier store; nothing for the embedded one. */
interface ServerViews {
  /** Every Redis value and MongoDB document, as text. */
  dump(): Promise<string>;
  /** Resolves when Redis has nothing left to flush. */
  flushed(): Promise<void>;
  /** Resolves when MongoDB holds a summary of the conversation covering at least `coversSeq`. */
  summaryStored(conversation: string, coversSeq: number): Promise<void>;
}

let upstream: FakeUpstream;

beforeAll(async () => {
  await ensureBuilt();
  upstream = await startFakeUpstream();
}, 180_000);
beforeEach(() => {
  upstream.reset();
  upstream.setDefault(echoingSummaries);
});
afterAll(async () => {
  await stopAll();
  await upstream?.close();
});

/** `tiers`: the tiers a receipt names; `dropsCovered`: the store no longer holds what a summary covers (the embedded store, Redis alone). */
function erasureSuite(name: string, storage: () => Record<string, unknown> | undefined, views: () => ServerViews | undefined, tiers: string[], dropsCovered: boolean): void {
  describe(name, () => {
    test('an erased tool exchange is in no later request, listing or summary; receipts; another tenant finds nothing', async () => {
      const contextd = await startContextd({ config: config(upstream, storage()) });
      const conversation = `erase-${Math.random().toString(36).slice(2, 10)}`;
      const client = clientFor(contextd, conversation);
      const ask = (messages: OpenAI.ChatCompletionMessageParam[]) => client.chat.completions.create({ model: 'gpt-4o', messages });

      await ask([{ role: 'user', content: 'Hello, my name is Ada.' }]);
      upstream.enqueue({ kind: 'tool_calls', toolCalls: [{ id: 'call_vault', name: 'vault', arguments: { who: 'Ada' } }] });
      const call = await ask([{ role: 'user', content: 'Please look up my launch code.' }]);
      expect(call.choices[0]!.message.tool_calls?.[0]?.id).toBe('call_vault');
      await ask([{ role: 'tool', tool_call_id: 'call_vault', content: SECRET }]);
      await ask([{ role: 'user', content: 'Thanks.' }]);
      let rows = await storedMessages(contextd, conversation);
      await waitFor(async () => (rows = await storedMessages(contextd, conversation)).length === 8, { message: 'four turns stored' });
      const secretSeq = rows.find((row) => row.message.content === SECRET)!.seq;
      const callSeq = rows.find((row) => row.message.tool_calls !== undefined)!.seq;
      expect(secretSeq).toBe(callSeq + 1);

      // Not the caller's conversation: another tenant's key finds nothing; the admin token must name the tenant.
      expect((await erase(contextd, `${conversation}/messages/${secretSeq}`, OTHER_KEY)).status).toBe(404);
      expect((await erase(contextd, conversation, OTHER_KEY)).status).toBe(404);
      expect((await erase(contextd, `${conversation}/messages/${secretSeq}`, ADMIN_TOKEN)).body.error).toMatchObject({ code: 'missing_tenant' });
      for (const bad of ['abc', '0', '-3', '1.5', '01']) {
        const refused = await erase(contextd, `${conversation}/messages/${bad}`, API_KEY);
        expect([refused.status, refused.body.error?.code, refused.body.error?.param], bad).toEqual([400, 'invalid_value', 'seq']);
      }
      expect((await erase(contextd, `${conversation}/messages/999`, API_KEY)).status).toBe(404);
      expect((await storedMessages(contextd, conversation)).length).toBe(8);

      // Naming the tool result takes its call with it: no call is left unanswered, no result without its call.
      // Every tier holds the exchange first (a flush round may not have run yet), so the receipt is the same every run.
      await views()?.flushed();
      const requestsBefore = upstream.chatRequests().length;
      const receipt = await erase(contextd, `${conversation}/messages/${secretSeq}?tenant=${TENANT}`, ADMIN_TOKEN);
      expect(receipt.status).toBe(200);
      expect(receipt.body).toMatchObject({ id: conversation, object: 'conversation.message.deleted', deleted: true, seq: secretSeq, seqs: [callSeq, secretSeq], summary_dropped: false, summary_refold: null });
      for (const tier of Object.values(receipt.body.tiers)) expect(tier).toEqual({ messages: 2, summary_dropped: false });
      expect(Object.keys(receipt.body.tiers).sort()).toEqual(tiers);
      // Gone: erasing it again finds nothing.
      expect((await erase(contextd, `${conversation}/messages/${secretSeq}`, API_KEY)).status).toBe(404);

      const listed = await storedMessages(contextd, conversation);
      expect(listed.map((row) => row.seq)).toEqual(rows.map((row) => row.seq).filter((seq) => seq !== callSeq && seq !== secretSeq));
      expect(JSON.stringify(listed)).not.toContain(SECRET);
      await ask([{ role: 'user', content: 'What do you remember?' }]);
      const next = bodyOf(chatCalls(upstream).at(-1)!);
      expect(JSON.stringify(next)).not.toContain(SECRET);
      expect(JSON.stringify(next)).not.toContain('call_vault');
      expect(next.messages.map((m) => m.content)).toContain('Hello, my name is Ada.');
      expect(upstream.toolRuleViolations).toEqual([]);

      // Long turns overflow the budget: a summary folds the start of the conversation, where the secret was.
      for (let n = 1; n <= 12 && (await summaryOf(contextd, conversation)) === null; n++) await ask([{ role: 'user', content: filler(n) }]);
      await waitFor(async () => (await summaryOf(contextd, conversation)) !== null, { timeoutMs: 10_000, message: 'a summary' });
      const summary = (await summaryOf(contextd, conversation))!;
      expect(summary.text).toContain('Hello, my name is Ada.');
      expect(summary.text).not.toContain(SECRET);
      const after = upstream.chatRequests().slice(requestsBefore);
      expect(after.filter(isSummaryCall).length).toBeGreaterThan(0);
      for (const request of after) expect(JSON.stringify(request.json)).not.toContain(SECRET);
      await views()?.flushed();
      const dump = (await views()?.dump()) ?? '';
      if (views() !== undefined) expect(dump).toContain('Hello, my name is Ada.');
      expect(dump).not.toContain(SECRET);

      // The whole conversation: a receipt per tier, then nothing.
      const deleted = await erase(contextd, conversation, API_KEY);
      expect(deleted.status).toBe(200);
      expect(deleted.body).toMatchObject({ id: conversation, object: 'conversation.deleted', deleted: true, summary_dropped: true });
      for (const tier of Object.values(deleted.body.tiers)) expect(tier.messages).toBeGreaterThan(0);
      expect(await storedMessages(contextd, conversation)).toEqual([]);
      expect((await views()?.dump()) ?? '').not.toContain('Hello, my name is Ada.');
      await contextd.stop();
    });

    test('a message a summary covers: the summary goes and is folded again from what remains (where the store no longer holds it, the summary goes alone)', async () => {
      const contextd = await startContextd({ config: config(upstream, storage()) });
      const conversation = `erase-folded-${Math.random().toString(36).slice(2, 10)}`;
      const client = clientFor(contextd, conversation);
      const ask = (content: string) => client.chat.completions.create({ model: 'gpt-4o', messages: [{ role: 'user', content }] });
      // The reply does not repeat it (the fake echoes by default): only the erased message holds the PIN.
      upstream.enqueue({ kind: 'text', content: 'Noted.' });
      await ask(`My PIN is ${SECRET_FOLDED}, keep it.`);
      await ask('Hello again, I am Ada.');
      for (let n = 1; n <= 12 && ((await summaryOf(contextd, conversation))?.covers_seq ?? 0) < 2; n++) await ask(filler(n));
      await waitFor(async () => ((await summaryOf(contextd, conversation))?.covers_seq ?? 0) >= 2, { timeoutMs: 10_000, message: 'a summary covering the PIN' });
      const before = (await summaryOf(contextd, conversation))!;
      // The summary holds the PIN: erasing it must take the summary with it.
      expect(before.text).toContain(SECRET_FOLDED);
      const summaryCallsBefore = upstream.chatRequests().filter(isSummaryCall).length;
      // The API reads Redis, which has the summary before MongoDB's write returns: every tier holds it first, so the receipt is the same every run.
      await views()?.summaryStored(conversation, 2);
      // A seq beyond anything the conversation had is not found, summary or not; the summary stays.
      const lastSeq = (await storedMessages(contextd, conversation)).at(-1)!.seq;
      expect((await erase(contextd, `${conversation}/messages/${lastSeq + 1000}`, API_KEY)).status).toBe(404);
      expect((await summaryOf(contextd, conversation))?.text).toContain(SECRET_FOLDED);
      const requestsBefore = upstream.chatRequests().length;

      const erased = await erase(contextd, `${conversation}/messages/1`, API_KEY);
      expect(erased.status).toBe(200);
      if (dropsCovered) {
        // The store dropped what the summary covers: no message left to erase, but the summary holding it goes.
        expect(erased.body).toEqual({
          id: conversation, object: 'conversation.message.deleted', deleted: true, seq: 1, seqs: [],
          tiers: Object.fromEntries(tiers.map((tier) => [tier, { messages: 0, summary_dropped: true }])), summary_dropped: true, summary_refold: 'scheduled',
        });
        expect((await summaryOf(contextd, conversation))?.text ?? '').not.toContain(SECRET_FOLDED);
        // The summary that follows is folded from what the store still holds, which never had the PIN.
        for (let n = 13; n <= 30 && ((await summaryOf(contextd, conversation))?.covers_seq ?? 0) <= before.covers_seq; n++) await ask(filler(n));
        await waitFor(async () => ((await summaryOf(contextd, conversation))?.covers_seq ?? 0) > before.covers_seq, { timeoutMs: 10_000, message: 'a summary folded after the erasure' });
        const after = (await summaryOf(contextd, conversation))!;
        expect(after.text).toContain('filler');
        expect(after.text).not.toContain(SECRET_FOLDED);
        const since = upstream.chatRequests().slice(requestsBefore);
        expect(since.filter(isSummaryCall).length).toBeGreaterThan(0);
        for (const request of since) expect(JSON.stringify(request.json)).not.toContain(SECRET_FOLDED);
        expect(JSON.stringify(await storedMessages(contextd, conversation))).not.toContain(SECRET_FOLDED);
        expect((await views()?.dump()) ?? '').not.toContain(SECRET_FOLDED);
        await contextd.stop();
        return;
      }
      expect(erased.body).toMatchObject({ seqs: [1], summary_dropped: true, summary_refold: 'scheduled' });
      expect(erased.body.tiers.mongodb).toEqual({ messages: 1, summary_dropped: true });
      expect(erased.body.tiers.redis?.summary_dropped).toBe(true);
      // Folded again in the background, with the caller's own key, from what remains.
      await waitFor(async () => ((await summaryOf(contextd, conversation))?.covers_seq ?? 0) >= 2, { timeoutMs: 10_000, message: 'the summary folded again' });
      const after = (await summaryOf(contextd, conversation))!;
      expect(after.text).toContain('Hello again, I am Ada.');
      expect(after.text).not.toContain(SECRET_FOLDED);
      const refold = upstream.chatRequests().filter(isSummaryCall).slice(summaryCallsBefore);
      expect(refold.length).toBeGreaterThan(0);
      for (const request of refold) {
        expect(request.headers.authorization).toBe(`Bearer ${API_KEY}`);
        expect(JSON.stringify(request.json)).not.toContain(SECRET_FOLDED);
      }
      await ask('And now?');
      expect(JSON.stringify(bodyOf(chatCalls(upstream).at(-1)!))).not.toContain(SECRET_FOLDED);
      expect(JSON.stringify(await storedMessages(contextd, conversation))).not.toContain(SECRET_FOLDED);
      await views()?.flushed();
      expect(await views()!.dump()).not.toContain(SECRET_FOLDED);
      await contextd.stop();
    });
  });
}

erasureSuite('erasure on the embedded store', () => undefined, () => undefined, ['embedded'], true);

test('summary_refold says how the dropped summary comes back: next_request for the admin token without summary.api_key, disabled on a route without summaries', async () => {
  const contextd = await startContextd({
    config: { ...config(upstream, undefined), routes: [{ name: 'no-summaries', match: { model: 'plain-*' }, summary: { enabled: false } }] },
  });
  const conversation = `erase-refold-${Math.random().toString(36).slice(2, 10)}`;
  const client = clientFor(contextd, conversation);
  const ask = (content: string) => client.chat.completions.create({ model: 'gpt-4o', messages: [{ role: 'user', content }] });
  /** Long turns until a summary covers more than `seq`. */
  async function summaryBeyond(seq: number): Promise<void> {
    for (let n = 1; n <= 20 && ((await summaryOf(contextd, conversation))?.covers_seq ?? 0) <= seq; n++) await ask(filler(n));
    await waitFor(async () => ((await summaryOf(contextd, conversation))?.covers_seq ?? 0) > seq, { timeoutMs: 10_000, message: `a summary covering more than seq ${seq}` });
  }

  // The admin token is no credential for a summary call, and the default route has no summary.api_key:
  // no job is offered; the next request with memory that leaves history out folds it, with its own key.
  await summaryBeyond(1);
  const asAdmin = await erase(contextd, `${conversation}/messages/1?tenant=${TENANT}&model=gpt-4o`, ADMIN_TOKEN);
  expect([asAdmin.status, asAdmin.body.summary_dropped, asAdmin.body.summary_refold]).toEqual([200, true, 'next_request']);
  // That next request (and its summary) comes; then the route ?model= names writes no summaries.
  await summaryBeyond(1);
  const onPlainRoute = await erase(contextd, `${conversation}/messages/2?model=plain-model`, API_KEY);
  expect([onPlainRoute.status, onPlainRoute.body.summary_dropped, onPlainRoute.body.summary_refold]).toEqual([200, true, 'disabled']);
  // And with the caller's own key on a route with summaries, a job.
  await summaryBeyond(2);
  const asCaller = await erase(contextd, `${conversation}/messages/2?model=gpt-4o`, API_KEY);
  expect([asCaller.status, asCaller.body.summary_dropped, asCaller.body.summary_refold]).toEqual([200, true, 'scheduled']);
  await contextd.stop();
});

const available = serviceAvailability();

describeWithService(!available.redis.isAvailable ? available.redis : available.mongo, 'erasure on Redis in front of MongoDB', () => {
  const servers = useTwoServers();
  const database = (): Db => servers.mongoClient.db(servers.mongoServer.database);

  const views: ServerViews = {
    dump: async () => {
      const parts: string[] = [await redisDump(servers.redis)];
      const db = database();
      for (const { name } of await db.listCollections().toArray()) parts.push(name, JSON.stringify(await db.collection(name).find({}).toArray()));
      return parts.join('\n');
    },
    flushed: () => waitFor(async () => (await servers.redis.zcard('contextd:dirty')) === 0, { timeoutMs: 10_000, message: 'every turn flushed to MongoDB' }),
    summaryStored: (conversation, coversSeq) =>
      waitFor(
        async () => (await database().collection('messages').countDocuments({ conversation, summaryText: { $exists: true }, coversSeq: { $gte: coversSeq } })) > 0,
        { timeoutMs: 10_000, message: `MongoDB holding a summary of ${conversation} covering seq ${coversSeq}` },
      ),
  };

  test('a turn erased before it was flushed: the receipt says Redis held it, and once the flusher has run no tier holds it', async () => {
    const SECRET_PENDING = 'SECRET-pending-5521-whiskey';
    const contextd = await startContextd({
      config: config(upstream, {
        redis: { url: servers.redisServer.url, ttl: '1h', timeout: '2s' },
        mongodb: { url: servers.mongoServer.url, database: servers.mongoServer.database, timeout: '10s', flush_delay: '2s' },
      }),
    });
    const conversation = `erase-pending-${Math.random().toString(36).slice(2, 10)}`;
    const client = clientFor(contextd, conversation);
    // flush_delay holds back only the round a new turn asks for: the idle round (every 250 ms) takes any turn that
    // is due. So the conversation's flush is leased for 3 s first, as another instance's round would hold it (the
    // append's ZADD NX keeps the lease): the erasure surely meets the turn still waiting for MongoDB.
    await servers.redis.zadd('contextd:dirty', Date.now() + 3_000, hashTag({ tenant: TENANT, conversation: conversation as ConversationId }));
    // The reply does not repeat it (the fake echoes by default): only the erased message holds the secret.
    upstream.enqueue({ kind: 'text', content: 'Noted.' });
    await client.chat.completions.create({ model: 'gpt-4o', messages: [{ role: 'user', content: `Remember ${SECRET_PENDING}.` }] });
    const messageDocuments = () => database().collection('messages').find({ conversation, summaryText: { $exists: false }, role: { $ne: 'summary' } }).toArray();
    expect(await messageDocuments()).toEqual([]);

    const erased = await erase(contextd, `${conversation}/messages/1`, API_KEY);
    expect(erased.status).toBe(200);
    // MongoDB held none of the turn: it takes the seq, so that no flush stores the message there later.
    expect(erased.body).toEqual({
      id: conversation, object: 'conversation.message.deleted', deleted: true, seq: 1, seqs: [1],
      tiers: { redis: { messages: 1, summary_dropped: false }, mongodb: { messages: 0, summary_dropped: false } }, summary_dropped: false, summary_refold: null,
    });

    // The flusher has run once MongoDB holds the reply, and Redis has nothing left to flush.
    await waitFor(async () => (await messageDocuments()).some((d) => d.seq === 2 && String(d.messageJson).includes('Noted.')), { timeoutMs: 10_000, message: 'the reply flushed to MongoDB' });
    await views.flushed();
    expect((await storedMessages(contextd, conversation)).map((row) => [row.seq, row.message.content])).toEqual([[2, 'Noted.']]);
    const dump = await views.dump();
    expect(dump).toContain(conversation);
    expect(dump).not.toContain(SECRET_PENDING);
    await contextd.stop();
  });

  erasureSuite(
    'Redis + MongoDB',
    () => ({
      redis: { url: servers.redisServer.url, ttl: '1h', timeout: '2s' },
      mongodb: { url: servers.mongoServer.url, database: servers.mongoServer.database, timeout: '10s' },
    }),
    () => views,
    ['mongodb', 'redis'],
    false,
  );
});

describeWithService(available.redis, 'erasure on Redis alone', () => {
  const redis = useRedis();
  const views: ServerViews = {
    dump: () => redisDump(redis.client),
    flushed: async () => undefined,
    summaryStored: async () => undefined,
  };
  erasureSuite('Redis', () => ({ redis: { url: redis.server.url, ttl: '1h', timeout: '2s' } }), () => views, ['redis'], true);
});
