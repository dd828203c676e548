// Issue 11: the window-cut rule is written once, in src/context/window-cut.ts,
// and the Lua LOAD script (src/store/redis/lua-reads.ts), which cannot call it,
// mirrors it. This holds the two equal on random conversations in a real Redis,
// built two ways:
//   - through RedisStore (cache mode): WARM from MongoDB with gaps or without,
//     new turns, a summary of turns MongoDB lacks (so covered messages stay in
//     the list), the flusher's progress and the cap's trims;
//   - written to the keys directly, in the layout scripts.ts describes: gaps and
//     summaries anywhere, which the store's own writes never combine (a summary
//     drops the flushed messages, and only those can border a gap), so that both
//     of LOAD's ways to the window (by position, and by walking) meet each of
//     the rule's three conditions.
// Token counts run from 0 to billions; limits sit around the conversation's
// own counts, and some are not whole numbers.
//
// The expected window is the pure walk over the list as LIST reads it back. A
// store with its local cache off answers every load by LOAD alone; one with it
// on by LOAD with a held range, or by the fast load's walk.

import { randomUUID } from 'node:crypto';
import fc from 'fast-check';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, expect, test } from 'vitest';
import { startWindowWalk, type WindowLimits } from '../../src/context/window-cut.js';
import type { ConversationId, ConversationKey, NewMessage, StoredMessage, Summary, TenantId } from '../../src/domain.js';
import { encodeEntry } from '../../src/store/redis/entry-codec.js';
import { conversationKeys, hashTag } from '../../src/store/redis/keys.js';
import { RedisStore } from '../../src/store/redis/redis-store.js';
import { startRedis, type RedisServer } from '../support/redis-server.js';
import { describeWithRedis } from '../support/services.js';

const HOUR_MS = 3_600_000;
const RUNS = 250;
/** Tokens a missing seq stands for (the cumTokens across a gap count the missing messages). */
const TOKENS_PER_MISSING_MESSAGE = 7;

const arbTokens = fc.oneof(
  { weight: 2, arbitrary: fc.constant(0) },
  { weight: 6, arbitrary: fc.integer({ min: 1, max: 60 }) },
  { weight: 2, arbitrary: fc.integer({ min: 1_000, max: 2 ** 36 }) },
);
/** Entries oldest first: how many seqs are missing before each, and its tokens. */
const arbEntries = fc.array(
  fc.record({ gap: fc.oneof({ weight: 2, arbitrary: fc.constant(0) }, { weight: 1, arbitrary: fc.integer({ min: 1, max: 3 }) }), tokens: arbTokens }),
  { maxLength: 24 },
);
/** A share of something, in ‰. */
const arbShare = fc.integer({ min: 0, max: 1_000 });

/** A limit: a share (‰) of the conversation's own count plus a nudge, or a value that is not a whole number. */
type LimitSpec = { kind: 'share'; permille: number; nudge: number } | { kind: 'raw'; value: number };
const arbLimit: fc.Arbitrary<LimitSpec> = fc.oneof(
  { weight: 8, arbitrary: fc.record({ kind: fc.constant('share' as const), permille: fc.integer({ min: 0, max: 1_100 }), nudge: fc.integer({ min: -1, max: 1 }) }) },
  {
    weight: 2,
    arbitrary: fc.record({
      kind: fc.constant('raw' as const),
      value: fc.constantFrom(0, 1, 2.5, -1, Number.NaN, Number.POSITIVE_INFINITY, Number.MAX_SAFE_INTEGER),
    }),
  },
);

const arbThroughStore = fc.record({
  kind: fc.constant('store' as const),
  /** The seq of WARM's first entry. */
  firstSeq: fc.integer({ min: 1, max: 4 }),
  warmed: arbEntries,
  /** The summary MongoDB had, as a share of lastSeq. */
  warmSummary: fc.option(arbShare),
  /** New turns after WARM; often none, so that WARM's gaps are among the newest messages. */
  turns: fc.oneof(fc.constant([]), fc.array(fc.array(arbTokens, { minLength: 1, maxLength: 4 }), { minLength: 1, maxLength: 6 })),
  /** A summary written after the turns, covering this share of the seqs above the stored one. */
  laterSummary: fc.option(arbShare),
  /** The flusher's progress afterwards, as a share of lastSeq. */
  flushed: fc.option(arbShare),
  cap: fc.oneof({ weight: 1, arbitrary: fc.integer({ min: 2, max: 12 }) }, { weight: 2, arbitrary: fc.constant(1_000) }),
});
const arbWrittenDirectly = fc.record({
  kind: fc.constant('keys' as const),
  firstSeq: fc.integer({ min: 1, max: 4 }),
  entries: arbEntries,
  /** The summary, as a share of lastSeq: anywhere, the list's covered entries kept. */
  summary: fc.option(arbShare),
});
const arbScenario = fc.record({
  conversation: fc.oneof(arbThroughStore, arbWrittenDirectly),
  loads: fc.array(fc.record({ maxMessages: arbLimit, maxTokens: arbLimit }), { minLength: 1, maxLength: 3 }),
});
type Infer<A> = A extends fc.Arbitrary<infer T> ? T : never;

const share = (permille: number, of: number): number => Math.floor((permille * of) / 1_000);
const limitOf = (spec: LimitSpec, count: number): number => (spec.kind === 'raw' ? spec.value : share(spec.permille, count) + spec.nudge);
const summaryOf = (coversSeq: number): Summary => ({ text: `up to ${coversSeq}`, tokens: 3, coversSeq, createdAtMs: 0 });

/** Stored messages with the seqs and running totals `entries` describe, from firstSeq on. */
function storedMessages(firstSeq: number, entries: Infer<typeof arbEntries>): StoredMessage[] {
  let seq = firstSeq - 1;
  let cum = seq * TOKENS_PER_MISSING_MESSAGE;
  return entries.map(({ gap, tokens }) => {
    seq += gap + 1;
    cum += gap * TOKENS_PER_MISSING_MESSAGE + tokens;
    return { message: { role: 'user', content: `m${seq}` }, tokens, digest: `d${seq}`, seq, createdAtMs: seq, cumTokens: cum };
  });
}

/** The window the pure walk picks from `list` (oldest first): its seqs, oldest first. */
function pureWindow(list: readonly StoredMessage[], limits: WindowLimits, coversSeq: number): number[] {
  const walk = startWindowWalk(limits, coversSeq);
  let first = list.length;
  while (first > 0 && walk.takes(list[first - 1]!)) first--;
  return list.slice(first).map((m) => m.seq);
}

describeWithRedis('the window rule: the Lua LOAD script against context/window-cut.ts', () => {
  let server: RedisServer;
  let writerClient: Redis;
  let plainClient: Redis;
  let cachedClient: Redis;

  beforeAll(async () => {
    server = await startRedis();
    [writerClient, plainClient, cachedClient] = [0, 1, 2].map(() => new Redis(server.url, { maxRetriesPerRequest: 1 })) as [Redis, Redis, Redis];
  });

  afterAll(async () => {
    await Promise.all([writerClient, plainClient, cachedClient].map((client) => client?.quit()));
    await server?.stop();
  });

  /** Builds the conversation through the store; returns its coversSeq and lastSeq. */
  async function throughStore(writer: RedisStore, key: ConversationKey, scenario: Infer<typeof arbThroughStore>): Promise<{ coversSeq: number; lastSeq: number }> {
    const warmed = storedMessages(scenario.firstSeq, scenario.warmed);
    const newest = warmed.at(-1);
    let lastSeq = newest?.seq ?? 0;
    let coversSeq = scenario.warmSummary === null || lastSeq === 0 ? 0 : Math.max(1, share(scenario.warmSummary, lastSeq));
    await writer.warm(key, { lastSeq, lastCum: newest?.cumTokens ?? 0, summary: coversSeq === 0 ? undefined : summaryOf(coversSeq), messages: warmed });
    for (const turn of scenario.turns) {
      const messages: NewMessage[] = turn.map((tokens, index) => ({ message: { role: 'assistant', content: `t${lastSeq + index + 1}` }, tokens, digest: `t${lastSeq + index + 1}` }));
      lastSeq = (await writer.append(key, messages)).seqs.at(-1) ?? lastSeq;
    }
    if (scenario.laterSummary !== null && lastSeq > coversSeq) {
      const next = coversSeq + Math.max(1, share(scenario.laterSummary, lastSeq - coversSeq));
      expect(await writer.replaceSummary(key, summaryOf(next))).toBe(true);
      coversSeq = next;
    }
    if (scenario.flushed !== null) await writer.markFlushed(key, share(scenario.flushed, lastSeq));
    return { coversSeq, lastSeq };
  }

  /** Writes the conversation's keys directly (keys.ts, scripts.ts); returns its coversSeq and lastSeq. */
  async function writtenDirectly(prefix: string, key: ConversationKey, scenario: Infer<typeof arbWrittenDirectly>): Promise<{ coversSeq: number; lastSeq: number }> {
    const messages = storedMessages(scenario.firstSeq, scenario.entries);
    const lastSeq = messages.at(-1)?.seq ?? 0;
    const coversSeq = scenario.summary === null || lastSeq === 0 ? 0 : Math.max(1, share(scenario.summary, lastSeq));
    const [meta, msgs] = conversationKeys(prefix, hashTag(key));
    const state = { lastSeq, lastCum: messages.at(-1)?.cumTokens ?? 0, flushedSeq: lastSeq, inc: randomUUID() };
    const transaction = writerClient.multi().hset(meta, state);
    if (coversSeq > 0) transaction.hset(meta, { summary: JSON.stringify(summaryOf(coversSeq)), coversSeq });
    if (messages.length > 0) transaction.rpush(msgs, ...messages.map((m) => encodeEntry(m, m.cumTokens!)));
    await transaction.pexpire(meta, HOUR_MS).pexpire(msgs, HOUR_MS).exec();
    return { coversSeq, lastSeq };
  }

  test(`LOAD returns exactly the window the pure walk picks (${RUNS} random conversations)`, async () => {
    const keyPrefix = `window-cut:${randomUUID()}:`;
    // What the runs reached: LOAD's two ways, and each of the rule's conditions ending a window on each.
    const seen = { byPosition: 0, byWalk: 0, coveredInList: 0, cutBySummary: 0, cutBySummaryOnWalk: 0, cutByMessages: 0, cutByTokens: 0, cutByTokensOnWalk: 0 };
    let run = 0;

    await fc.assert(
      fc.asyncProperty(arbScenario, async ({ conversation, loads }) => {
        const key: ConversationKey = { tenant: 't' as TenantId, conversation: `c${run++}` as ConversationId };
        const options = { ttlMs: HOUR_MS, maxCachedMessages: conversation.kind === 'store' ? conversation.cap : 1_000, mode: 'cache' as const, keyPrefix };
        const plain = new RedisStore({ ...options, client: plainClient, localCacheMaxEntries: 0 });
        const cached = new RedisStore({ ...options, client: cachedClient });
        const { coversSeq, lastSeq } =
          conversation.kind === 'store'
            ? await throughStore(new RedisStore({ ...options, client: writerClient, localCacheMaxEntries: 0 }), key, conversation)
            : await writtenDirectly(keyPrefix, key, conversation);

        const list = await plain.listMessages(key, { afterSeq: 0, limit: 100_000 });
        const listTokens = list.reduce((sum, m) => sum + m.tokens, 0);
        if (list.some((m) => m.seq <= coversSeq)) seen.coveredInList++;

        for (const load of loads) {
          const limits = { maxMessages: limitOf(load.maxMessages, list.length), maxTokens: limitOf(load.maxTokens, listTokens) };
          const expected = pureWindow(list, limits, coversSeq);
          const why = JSON.stringify({ limits, coversSeq, list: list.map((m) => [m.seq, m.tokens]) });

          const byScript = await plain.load(key, limits);
          expect(byScript.summary?.coversSeq ?? 0).toBe(coversSeq);
          expect(byScript.lastSeq).toBe(lastSeq);
          expect(byScript.messages.map((m) => m.seq), why).toEqual(expected);
          expect((await cached.load(key, limits)).messages.map((m) => m.seq), why).toEqual(expected);

          // LOAD walks when the newest maxMessages have gaps (lua-reads.ts), and goes by position otherwise.
          const walk = startWindowWalk(limits, coversSeq);
          const reachable = list.slice(Math.max(0, list.length - walk.maxMessages));
          if (reachable.length === 0) continue;
          const isWalked = reachable.at(-1)!.seq - reachable[0]!.seq !== reachable.length - 1;
          seen[isWalked ? 'byWalk' : 'byPosition']++;
          for (let i = list.length - 1; i >= list.length - expected.length; i--) walk.takes(list[i]!);
          const next = list[list.length - 1 - expected.length];
          if (next === undefined) continue;
          if (next.seq <= coversSeq) {
            seen.cutBySummary++;
            if (isWalked) seen.cutBySummaryOnWalk++;
          } else if (walk.taken >= walk.maxMessages) {
            seen.cutByMessages++;
          } else {
            seen.cutByTokens++;
            if (isWalked) seen.cutByTokensOnWalk++;
          }
        }
      }),
      { numRuns: RUNS },
    );

    // Each is reached a dozen times or more in a usual run; fewer than 3 means the generator no longer reaches it.
    for (const [what, count] of Object.entries(seen)) expect(count, `${what} in ${RUNS} runs`).toBeGreaterThanOrEqual(3);
  });
});
