import type { IncomingHttpHeaders } from 'node:http';
import type { ConversationKey, ConversationSnapshot } from '../domain.js';
import type { RouteMatcher } from '../routing/match-route.js';
import type { Route } from '../routing/route.js';
import type { LoadLimits } from '../store/conversation-store.js';

/** Where windows are read from: the store, with this instance's unstored turns (ReadYourWrites). */
export interface WindowSource {
  load(key: ConversationKey, limits: LoadLimits): Promise<ConversationSnapshot>;
}

/** More results than one assistant message has calls: a second read that finds the call. */
const MAX_PARALLEL_CALLS = 128;

/** The stored window a route with this budget can use: everything after the summary that can fit it. */
export async function loadWindow(source: WindowSource, key: ConversationKey, budgetTokens: number): Promise<ConversationSnapshot> {
  // Every message costs at least 4 tokens (3 of overhead and its role), so no more can ever fit.
  const loaded = await source.load(key, { maxTokens: budgetTokens, maxMessages: Math.ceil(budgetTokens / 4) + 1 });
  // A tool exchange larger than the budget came back without its call: read on
  // to the call, whose unanswered ids the new turn may have to answer.
  if (loaded.messages.length > 0 && loaded.messages.every((m) => m.message.role === 'tool')) {
    return source.load(key, { maxTokens: Number.MAX_SAFE_INTEGER, maxMessages: loaded.messages.length + MAX_PARALLEL_CALLS });
  }
  return loaded;
}

/**
 * Window prefetch: the store is asked while the request body arrives and is
 * parsed, when the path and headers alone settle what to ask (every route the
 * request can match loads alike). Otherwise the load starts once the route is
 * known. A prefetch the request never uses (it failed first) is left to settle.
 */
export class WindowPrefetch {
  readonly #early: { route: Route; window: Promise<ConversationSnapshot> } | undefined;
  readonly #load: (budgetTokens: number) => Promise<ConversationSnapshot>;

  constructor(routes: RouteMatcher, request: { path: string; headers: IncomingHttpHeaders }, load: (budgetTokens: number) => Promise<ConversationSnapshot>) {
    this.#load = load;
    const [first, ...others] = routes.candidates(request);
    if (first === undefined || !others.every((route) => loadsAlike(first, route))) return;
    const window = load(first.budget.maxContextTokens);
    window.catch(() => undefined);
    this.#early = { route: first, window };
  }

  /** The window for the route the request matched. */
  forRoute(route: Route): Promise<ConversationSnapshot> {
    const early = this.#early;
    return early !== undefined && loadsAlike(early.route, route) ? early.window : this.#load(route.budget.maxContextTokens);
  }
}

/** Whether two routes ask the store the same (its failure is the matched route's to handle). */
function loadsAlike(a: Route, b: Route): boolean {
  return a.budget.maxContextTokens === b.budget.maxContextTokens;
}
