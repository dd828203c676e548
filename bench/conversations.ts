// The conversations the side-by-side pass measures contextd on: planned
// (short and long histories), created through contextd as a client creates
// them (on either API: contextd stores one form), counted back, and dealt out
// to the load's workers so that each conversation belongs to one.

import { request, type Pool } from 'undici';
import { openPool } from './load.js';
import type { Child } from './processes.js';
import { API_KEY, type ApiClient, type RequestSpec, type Turn, type Workload } from './workload.js';

const SETUP_CONCURRENCY = 8;

export interface ConversationPlan {
  id: string;
  turns: () => Turn[];
}

async function sendSetupTurn(pool: Pool, spec: RequestSpec, expected: string): Promise<void> {
  const res = await pool.request({ path: spec.path, method: 'POST', headers: spec.headers, body: spec.body });
  const text = await res.body.text();
  if (res.statusCode !== 200 || !text.includes(JSON.stringify(expected).slice(1, 40))) {
    throw new Error(`set-up turn failed: ${res.statusCode} ${text.slice(0, 300)}`);
  }
}

/**
 * Each plan's turns sent through contextd, as a client creates its conversations:
 * first every conversation's first turn (each a new conversation, a miss in
 * every store), then the rest, one conversation per worker at a time, its turns
 * in order. First turns go first because FerretDB on SQLite reads a whole collection per
 * query: a first turn costs what MongoDB holds by then.
 */
export async function createConversations(contextd: Child, client: ApiClient, plans: readonly ConversationPlan[]): Promise<void> {
  const pool = openPool(contextd.url, SETUP_CONCURRENCY);
  const turns = plans.map((plan) => plan.turns());
  const inParallel = async (work: (index: number) => Promise<void>): Promise<void> => {
    let next = 0;
    const worker = async (): Promise<void> => {
      for (let index = next++; index < plans.length; index = next++) await work(index);
    };
    await Promise.all(Array.from({ length: SETUP_CONCURRENCY }, () => worker()));
  };
  await inParallel(async (index) => {
    const first = turns[index]![0];
    if (first !== undefined) await sendSetupTurn(pool, client.setupTurn(plans[index]!.id, first), first.assistant);
  });
  await inParallel(async (index) => {
    for (const turn of turns[index]!.slice(1)) await sendSetupTurn(pool, client.setupTurn(plans[index]!.id, turn), turn.assistant);
  });
  await pool.close();
}

export async function storedMessageCount(contextd: Child, conversation: string): Promise<number> {
  let count = 0;
  let after = 0;
  for (;;) {
    const res = await request(`${contextd.url}/contextd/v1/conversations/${conversation}/messages?after=${after}&limit=500`, {
      headers: { authorization: `Bearer ${API_KEY}` },
    });
    const page = (await res.body.json()) as { data: unknown[]; has_more: boolean; next_after: number };
    count += page.data.length;
    if (!page.has_more) return count;
    after = page.next_after;
  }
}

/** How many conversations of how many turns. */
export interface PlanSize {
  conversations: number;
  turns: number;
}

/** Conversations of budget-sized turns. */
export function shortPlans(workload: Workload, size: PlanSize, prefix: string): ConversationPlan[] {
  return Array.from({ length: size.conversations }, (_, n) => ({
    id: `${prefix}-short-${n}`,
    turns: () => workload.bigTurns(n + 1).slice(0, size.turns),
  }));
}

/** Conversations of many short exchanges, ending with `shortTurns` budget-sized turns. */
export function longPlans(workload: Workload, size: PlanSize, shortTurns: number, prefix: string): ConversationPlan[] {
  const big = Math.min(shortTurns, size.turns);
  return Array.from({ length: size.conversations }, (_, n) => ({
    id: `${prefix}-long-${n}`,
    // Older turns are short exchanges; the last ones are the size of a short conversation's, so both windows start budget-full.
    turns: () => [
      ...Array.from({ length: size.turns - big }, (_, t) => workload.smallTurn(n * 100_000 + t)),
      ...workload.bigTurns(10_000 + n).slice(0, big),
    ],
  }));
}

export interface ConversationCursor {
  next: (worker: number, concurrency: number) => RequestSpec;
  /** Requests handed out so far, warm-ups included: each stored one more turn. */
  issued: () => number;
}

/**
 * Conversations dealt out so that each belongs to one worker: turns of one
 * conversation never race. Every `newEvery`-th request (see
 * ApiClient.startsConversation) starts a conversation of its own instead
 * (`<newPrefix>-<n>`), its first turn.
 */
export function conversationCursor(client: ApiClient, ids: readonly string[], stream: boolean, newPrefix: string): ConversationCursor {
  const positions = new Map<string, number>();
  let issued = 0;
  let started = 0;
  return {
    issued: () => issued,
    next: (worker, concurrency) => {
      if (ids.length < concurrency) throw new Error(`${ids.length} conversations cannot serve ${concurrency} workers`);
      if (client.startsConversation(issued++)) return client.withMemory(`${newPrefix}-${started++}`, stream);
      const key = `${concurrency}:${worker}`;
      const position = positions.get(key) ?? 0;
      positions.set(key, position + 1);
      const mine = Math.floor((ids.length - worker - 1) / concurrency) + 1;
      return client.withMemory(ids[worker + concurrency * (position % mine)]!, stream);
    },
  };
}
