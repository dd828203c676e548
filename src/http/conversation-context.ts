// What the model would be sent, without sending it (docs/conversation-api.md):
//   GET  …/:id/context?model=…  the context a request with that model would get now
//                               (its route, budget, summary, window, what is left out);
//   POST …/:id/context          a dry run of a request body: the same, with the exact
//                               body contextd would send upstream. Nothing is called or stored.
// Both run the memory path's own steps (load-window.ts, plan-prompt.ts).

import type { IncomingMessage, ServerResponse } from 'node:http';
import type { CountedMessage } from '../context/assemble-prompt.js';
import { CountedRequest } from '../context/counted-request.js';
import type { ChatMessage, ConversationKey, ConversationSnapshot, StoredMessage } from '../domain.js';
import { ConversationStateConflictError, NotFoundError } from '../errors.js';
import { assemblyBudget } from '../routing/route.js';
import { encodingForModel } from '../tokens/encoding-for-model.js';
import { tokenCounterFor } from '../tokens/count-tokens.js';
import { upstreamBody } from '../upstream/upstream-body.js';
import type { ConversationApiDeps } from './conversation-api.js';
import { loadWindow } from './load-window.js';
import { parseMemoryRequest, type MemoryApi, type MemoryRequest } from './memory-request.js';
import { planPrompt, type PromptPlan } from './plan-prompt.js';
import { readBody } from './read-body.js';
import { firstHeader } from './request-headers.js';
import { sendJson } from './send-json.js';

/** Most left-out messages a context lists; `left_out_truncated` says when there were more. */
const MAX_LEFT_OUT = 1_000;

type LeftOutReason = 'covered_by_summary' | 'over_budget' | 'unsendable_tool_sequence' | 'evicted';

export async function showContext(req: IncomingMessage, res: ServerResponse, url: URL, key: ConversationKey, deps: ConversationApiDeps): Promise<void> {
  const memory = deps.memory;
  const body = req.method === 'POST' ? dryRunRequest(await readBody(req, memory.config.server.maxBodyBytes), url) : emptyRequest(url.searchParams.get('model') ?? undefined);
  if (body.previousResponseId !== undefined) throw new ConversationStateConflictError('previous_response_id', 'the conversation in the path');
  if (body.serverState !== undefined) throw new ConversationStateConflictError(body.serverState, 'the conversation in the path');

  const model = body.model;
  const route = memory.routes.match({ path: body.api === 'responses' ? '/v1/responses' : '/v1/chat/completions', model, headers: req.headers });
  const counter = tokenCounterFor(encodingForModel(model ?? '', route.budget.encoding), model);
  const budgetTokens = assemblyBudget(route.budget);
  const snapshot = await loadWindow(memory.windows, key, budgetTokens);
  // Another tenant's conversation is simply not found, as everywhere in this API.
  if (snapshot.lastSeq === 0 && snapshot.summary === undefined) throw new NotFoundError(`Conversation ${key.conversation}`);

  const plan = await planPrompt({
    body,
    request: new CountedRequest(body.messages, counter, memory.instructionCounts),
    counter,
    route,
    snapshot,
    idempotencyKey: firstHeader(req.headers, 'idempotency-key'),
    nowMs: memory.now(),
    retryWindowMs: memory.config.conversation.retryWindowMs,
    conversationHeader: 'the conversation in the path',
    // Read only: a dry run's x-contextd-prefix-stable is the real request's, and leaves it unchanged.
    prefixChanged: (prefix) => memory.sentPrefixes.peek(key, prefix),
  });
  const { prompt, window } = plan;
  const tokens = {
    instructions: sum(plan.instructions),
    summary: prompt.summaryUsed ? (snapshot.summary?.tokens ?? 0) : 0,
    window: sum(window),
    turn: sum(plan.turn),
    fixed: plan.fixedTokens,
  };
  const { leftOut, truncated } = await leftOutMessages(deps, key, snapshot, plan, budgetTokens);
  sendJson(res, 200, {
    object: 'conversation.context',
    conversation: key.conversation,
    api: body.api,
    model: model ?? null,
    route: route.name,
    encoding: counter.encoding,
    budget: {
      max_context_tokens: route.budget.maxContextTokens,
      safety_margin_tokens: route.budget.safetyMarginTokens,
      summary_max_tokens: route.budget.summaryMaxTokens,
      used_tokens: prompt.contextTokens,
      free_tokens: Math.max(0, budgetTokens - prompt.contextTokens),
    },
    tokens,
    overflow: prompt.isOverflow,
    memory: plan.toolProblem === undefined ? 'applied' : 'bypassed',
    cache: snapshot.cache,
    summary:
      snapshot.summary === undefined
        ? null
        : { covers_seq: snapshot.summary.coversSeq, tokens: snapshot.summary.tokens, text: snapshot.summary.text, sent: prompt.summaryUsed },
    window: {
      first_seq: window[0]?.seq ?? null,
      last_seq: window.at(-1)?.seq ?? null,
      messages: window.map((m) => ({ seq: m.seq, role: m.message.role, tokens: m.tokens })),
    },
    turn: plan.turn.map((m) => ({ role: m.message.role, tokens: m.tokens })),
    left_out: leftOut,
    left_out_truncated: truncated,
    headers: plan.headers,
    upstream_body: plan.upstreamBody,
  });
}

/** A POST's body: a chat-completions body, or a Responses API one (`?api=responses`, or a body with `input` and no `messages`). */
function dryRunRequest(bytes: Buffer, url: URL): MemoryRequest {
  const api: MemoryApi = url.searchParams.get('api') === 'responses' || looksLikeResponses(bytes) ? 'responses' : 'chat';
  return parseMemoryRequest(api, bytes);
}

function looksLikeResponses(bytes: Buffer): boolean {
  try {
    const json = JSON.parse(bytes.toString('utf8')) as Record<string, unknown> | null;
    return json !== null && typeof json === 'object' && 'input' in json && !('messages' in json);
  } catch {
    return false; // parseMemoryRequest says what is wrong with it
  }
}

/** A GET's request: no instructions, no new turn; what the stored conversation alone would take. */
function emptyRequest(model: string | undefined): MemoryRequest {
  const raw = { ...(model !== undefined ? { model } : {}), messages: [] as ChatMessage[] };
  const request: MemoryRequest = {
    api: 'chat',
    model,
    messages: [],
    usageRequested: false,
    tools: undefined,
    previousResponseId: undefined,
    serverState: undefined,
    withPrompt: (layout) => upstreamBody(raw, layout.messages),
    asSent: () => JSON.stringify(raw),
    withoutPreviousResponseId: () => request,
  };
  return request;
}

/**
 * The stored messages that do not go out, oldest first, and why: covered by the
 * summary (when the store still holds them), or before the window (over the
 * budget, or a tool exchange that cannot be sent whole).
 */
async function leftOutMessages(
  deps: ConversationApiDeps,
  key: ConversationKey,
  snapshot: ConversationSnapshot,
  plan: PromptPlan,
  budgetTokens: number,
): Promise<{ leftOut: { seq: number; role: string; tokens: number; reason: LeftOutReason }[]; truncated: boolean }> {
  const coversSeq = snapshot.summary?.coversSeq ?? 0;
  const dropped = plan.split.history.slice(0, plan.droppedMessages);
  const firstLoaded = snapshot.messages[0]?.seq ?? snapshot.lastSeq + 1;
  // Older than the loaded window, newer than the summary: the load left them out, as they could not fit.
  const beforeLoaded = firstLoaded - coversSeq - 1;
  const [covered, unloaded] = await Promise.all([
    coversSeq > 0 ? deps.store.listMessages(key, { afterSeq: 0, limit: Math.min(coversSeq, MAX_LEFT_OUT + 1) }) : [],
    beforeLoaded > 0 ? deps.store.listMessages(key, { afterSeq: coversSeq, limit: Math.min(beforeLoaded, MAX_LEFT_OUT + 1) }) : [],
  ]);
  const boundary = dropped.slice(plan.evictedMessages).at(-1);
  // The window stops at the first unit that does not fit, or at one that cannot be sent whole.
  const beforeWindow: LeftOutReason =
    plan.prompt.isOverflow || boundary === undefined || plan.prompt.contextTokens + boundary.tokens > budgetTokens ? 'over_budget' : 'unsendable_tool_sequence';
  const all = [
    ...covered.filter((m) => m.seq <= coversSeq).map((m) => entry(m, 'covered_by_summary')),
    ...unloaded.filter((m) => m.seq > coversSeq && m.seq < firstLoaded).map((m) => entry(m, 'over_budget')),
    ...dropped.map((m, i) => entry(m, i < plan.evictedMessages ? 'evicted' : beforeWindow)),
  ];
  return { leftOut: all.slice(0, MAX_LEFT_OUT), truncated: all.length > MAX_LEFT_OUT };
}

function entry(m: StoredMessage, reason: LeftOutReason): { seq: number; role: string; tokens: number; reason: LeftOutReason } {
  return { seq: m.seq, role: m.message.role, tokens: m.tokens, reason };
}

const sum = (messages: readonly CountedMessage[]): number => messages.reduce((total, m) => total + m.tokens, 0);
