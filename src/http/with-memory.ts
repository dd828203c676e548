import { randomUUID } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { performance } from 'node:perf_hooks';
import type { Logger } from 'pino';
import type { Metrics } from '../ops/metrics.js';
import type { PersistQueue, TurnReservation } from '../background/persist-queue.js';
import type { LinkTicket, ResponseLinkBook } from '../background/response-link-book.js';
import type { Summarizer } from '../background/summarizer.js';
import type { Config } from '../config/config-types.js';
import { CountedRequest } from '../context/counted-request.js';
import type { ConversationId, ConversationSnapshot, TenantId } from '../domain.js';
import { ContextdError, ContextLengthExceededError, ConversationStateConflictError, StoreUnavailableError } from '../errors.js';
import type { RouteMatcher } from '../routing/match-route.js';
import { assemblyBudget, type Route } from '../routing/route.js';
import { encodingForModel } from '../tokens/encoding-for-model.js';
import { tokenCounterFor } from '../tokens/count-tokens.js';
import type { TokenCountCache } from '../tokens/token-count-cache.js';
import type { ForwardOutcome } from '../upstream/forward.js';
import type { UpstreamClient } from '../upstream/upstream-client.js';
import { conversationKey, resolveTenant } from './conversation-identity.js';
import { forwardWithMemory, type MemoryForward } from './forward-with-memory.js';
import { loadWindow, type WindowSource } from './load-window.js';
import { parseMemoryRequest, type MemoryApi } from './memory-request.js';
import { checkTokenCount } from './check-token-count.js';
import { planPrompt, type PromptPlan } from './plan-prompt.js';
import type { SentPrefixes } from './sent-prefixes.js';
import { continueFromResponse, type ContinuedConversation, type PreviousResponseDeps } from './previous-response.js';
import { readBody } from './read-body.js';
import { credentialHeaders, firstHeader } from './request-headers.js';
import type { RequestLog } from './request-log.js';
import { storeTurn } from './store-turn.js';

export interface MemoryPathDeps {
  config: Pick<Config, 'server' | 'conversation' | 'upstream'>;
  routes: RouteMatcher;
  /** The store's windows with this instance's unstored turns (read-your-writes). */
  windows: WindowSource;
  /** Where a branch (previous_response_id naming an older response) is read and written. */
  store: PreviousResponseDeps['store'];
  /** previous_response_id emulation: response id → conversation, with read-your-writes. */
  links: Pick<ResponseLinkBook, 'expect' | 'find' | 'forget'>;
  persist: Pick<PersistQueue, 'offer' | 'reserve'>;
  upstream: UpstreamClient;
  logger: Logger;
  now: () => number;
  /** Counts of pinned instructions, which repeat on every turn. */
  instructionCounts: TokenCountCache;
  /** The summary this process last sent per conversation (x-contextd-prefix-stable). */
  sentPrefixes: SentPrefixes;
  /** Where the token-count drift and window evictions go. */
  metrics: Pick<Metrics, 'observeTokenDrift' | 'windowEvictions'>;
  /** Background summary jobs; offered after the reply, never waited for. */
  summarizer: Pick<Summarizer, 'offer'>;
}

/** A request with memory: which API, whose conversation, and where it goes. */
export interface MemoryTarget {
  api: MemoryApi;
  /** The header's conversation; absent only on /v1/responses when a route emulates previous_response_id. */
  conversation: ConversationId | undefined;
  /** The path the client used (routes match on it): /v1/chat/completions, /v1/responses, or an Azure path. */
  path: string;
  /** Path and query relative to the upstream's base URL. */
  upstreamPath: string;
  /** The Azure deployment the path names: it stands for the model in routing and counting. */
  deployment: string | undefined;
}

/**
 * A chat completion or a Responses API request with a conversation id (read
 * into the same messages by memory-request.ts): the request path of DESIGN §1 and
 * docs/request-path.md, its six steps in order. Each step lives in the module
 * that owns it; what the request did goes into `log`, which is written out
 * (log line and metrics) once, when the request ends.
 */
export async function handleWithMemory(req: IncomingMessage, res: ServerResponse, target: MemoryTarget, deps: MemoryPathDeps, log: RequestLog): Promise<void> {
  const startedAt = performance.now();
  const tenant = resolveTenant(req.headers, deps.config.conversation.tenant);
  const bodyBytes = await readBody(req, deps.config.server.maxBodyBytes);
  const parsed = parseMemoryRequest(target.api, bodyBytes);
  const forward = (upstreamBodyText: string, responseHeaders: Record<string, string>, tee?: MemoryForward['tee']): Promise<ForwardOutcome> => {
    log.addedMs = performance.now() - startedAt;
    return forwardWithMemory(req, res, deps.upstream, deps.config.conversation.header, {
      upstreamPath: target.upstreamPath,
      body: upstreamBodyText,
      responseHeaders,
      ...(tee !== undefined ? { tee } : {}),
      onClientCancelled: () => (log.clientAborted = true),
    }).then((outcome) => recordForward(outcome, log));
  };

  // 1. Match the route: its budget, encoding, summary, failure and state policies.
  const model = target.deployment ?? parsed.model;
  const route = deps.routes.match({ path: target.path, model, headers: req.headers });
  log.route = route.name;
  const emulates = parsed.api === 'responses' && route.responses.state === 'emulate';
  if (target.conversation === undefined && (!emulates || parsed.serverState !== undefined || parsed.itemReference !== undefined)) {
    // No header, and no emulated state to keep (or the request names the upstream's own): as the client sent it.
    log.kind = 'passthrough';
    delete log.api;
    await forward(bodyBytes.toString('utf8'), {});
    return;
  }
  if (parsed.serverState !== undefined) throw new ConversationStateConflictError(parsed.serverState, deps.config.conversation.header);
  if (parsed.previousResponseId !== undefined && !emulates) throw new ConversationStateConflictError('previous_response_id', deps.config.conversation.header);
  const body = emulates ? parsed.withoutPreviousResponseId() : parsed;
  const counter = tokenCounterFor(encodingForModel(model ?? '', route.budget.encoding), model);
  const request = new CountedRequest(body.messages, counter, deps.instructionCounts);

  // 2. Load the recent window (+ this instance's unstored turns); previous_response_id names the conversation, or a branch of it.
  const previousResponseId = emulates ? parsed.previousResponseId : undefined;
  // Nothing but a store can answer previous_response_id: without one it is a 503, whatever on_store_down says.
  const onStoreDown = previousResponseId !== undefined ? 'reject' : route.onStoreDown;
  const opened = await openConversation(deps, { tenant, target, previousResponseId, route }).catch((error: unknown) => whenStoreDown(error, onStoreDown, deps.logger, log));
  if (opened === undefined) {
    // No store answered and the route says pass through: the request goes as the client sent it.
    log.memory = 'unavailable';
    await forward(body.asSent(), { 'x-contextd-cache': 'none', 'x-contextd-memory': 'unavailable' });
    notStored(log, 'no store answered');
    return;
  }
  const { key, snapshot } = opened;
  log.conversation = key.conversation;
  if (opened.branchedFrom !== undefined) log.branchedFrom = opened.branchedFrom;
  // On an emulating route the client may not have named the conversation: the reply names it.
  const conversationHeaders: Record<string, string> = emulates ? { 'x-contextd-conversation-id': key.conversation } : {};

  // Every turn carries a key: the client's Idempotency-Key, else one of ours, so a write
  // retried after a timeout (that in fact succeeded) is stored once; response links name it.
  const idempotencyKey = firstHeader(req.headers, 'idempotency-key');
  const turnKey = idempotencyKey ?? `auto:${randomUUID()}`;

  // 3, 4. Split the request (instructions | re-sent history | new turn) and assemble within the budget.
  const plan = await planPrompt({
    body,
    request,
    counter,
    route,
    snapshot,
    idempotencyKey,
    nowMs: deps.now(),
    retryWindowMs: deps.config.conversation.retryWindowMs,
    conversationHeader: deps.config.conversation.header,
    prefixChanged: (prefix) => deps.sentPrefixes.record(key, prefix),
  });
  const { split, turn, prompt, toolProblem } = plan;
  if (toolProblem !== undefined) {
    log.memory = 'bypassed';
    log.memorySkipped = toolProblem.whose === 'client' ? 'invalid_tool_sequence' : 'unsendable_history';
    if (toolProblem.whose === 'contextd') deps.logger.warn({ requestId: log.requestId, problem: toolProblem }, 'the assembled prompt breaks the tool-message rules; forwarded as the client sent it');
  } else {
    recordAssembly(plan, snapshot, route, deps.logger, log);
    if (plan.evicts) deps.metrics.windowEvictions.inc({ route: route.name });
    if (prompt.isOverflow && route.budget.onOverflow === 'reject') throw new ContextLengthExceededError(prompt.contextTokens, assemblyBudget(route.budget), route.name);
  }

  // 5. Forward; relay the bytes as they arrive; the tee rebuilds the reply on the side.
  // The turn is announced the moment the client has the whole reply, so that
  // a follow-up, however fast, waits for it rather than missing it.
  let reservation: TurnReservation | undefined;
  let linkTicket: LinkTicket | undefined;
  try {
    const outcome = await forward(
      plan.upstreamBody,
      { ...conversationHeaders, ...plan.headers },
      {
        api: body.api,
        usageRequested: body.usageRequested,
        onClientHasAll: () => {
          reservation = deps.persist.reserve(key);
          if (emulates) linkTicket = deps.links.expect(tenant);
        },
      },
    );
    if (outcome.tee === undefined) {
      // An upstream error answer, or a client that left: nothing to remember.
      notStored(log, log.clientAborted === true ? 'client disconnected' : `upstream status ${outcome.status}`);
      return;
    }

    // 6. After the last byte: queue the turn for the store.
    const stored = await storeTurn(deps, {
      key,
      route,
      counter,
      split,
      turn,
      promptProblem: plan.promptProblem,
      foldBeforeSeq: plan.foldBeforeSeq,
      tee: outcome.tee,
      reservation,
      turnKey,
      link: linkTicket === undefined ? undefined : { ticket: linkTicket, conversation: key.conversation },
      credentialHeaders: credentialHeaders(req.headers),
    });
    log.stored = stored.stored;
    if (stored.stored === 'not_stored') log.notStoredReason = stored.reason;
    // So a reader of the log can pair the turn with its summary job's own line.
    if (stored.summaryOffered === true) log.summaryOffered = true;
    // The prompt sent is contextd's own (not the client's, bypassed): its count can be checked.
    if (stored.promptTokens !== undefined && toolProblem === undefined) {
      log.promptTokensReported = stored.promptTokens;
      checkTokenCount({ route, model, countedTokens: prompt.contextTokens, reportedTokens: stored.promptTokens, requestId: log.requestId }, deps.metrics, deps.logger);
    }
  } finally {
    reservation?.cancel();
    linkTicket?.cancel();
  }
}

/** The conversation the request continues, and its window: the header's, a previous response's (or a branch of it), or a new one. */
async function openConversation(
  deps: MemoryPathDeps,
  request: { tenant: TenantId; target: MemoryTarget; previousResponseId: string | undefined; route: Route },
): Promise<ContinuedConversation> {
  const budgetTokens = assemblyBudget(request.route.budget);
  if (request.previousResponseId !== undefined) {
    return continueFromResponse(deps, {
      tenant: request.tenant,
      responseId: request.previousResponseId,
      headerConversation: request.target.conversation,
      conversationHeader: deps.config.conversation.header,
      budgetTokens,
    });
  }
  // Only an emulating route comes here without the header: the conversation starts now, named in the reply.
  const key = conversationKey(request.tenant, request.target.conversation ?? (randomUUID() as ConversationId));
  return { key, snapshot: await loadWindow(deps.windows, key, budgetTokens) };
}

/** A store that did not answer: on_store_down rejects the request, or lets it through without memory (undefined). contextd's answers to the client's own mistakes (4xx: an unknown previous response) go to it as they are. */
function whenStoreDown(error: unknown, onStoreDown: Route['onStoreDown'], logger: Logger, log: RequestLog): undefined {
  if (error instanceof ContextdError && error.status < 500) throw error;
  log.storeDegraded = true;
  logger.warn({ err: error, requestId: log.requestId }, 'conversation store did not answer');
  if (onStoreDown === 'reject') throw new StoreUnavailableError(error);
  return undefined;
}

function recordForward(outcome: ForwardOutcome, log: RequestLog): ForwardOutcome {
  log.upstreamMs = outcome.upstreamMs;
  log.upstreamStatus = outcome.status;
  if (outcome.error !== undefined) throw outcome.error;
  return outcome;
}

function recordAssembly({ prompt, window, split, droppedMessages, evictedMessages }: PromptPlan, snapshot: ConversationSnapshot, route: Route, logger: Logger, log: RequestLog): void {
  log.contextTokens = prompt.contextTokens;
  log.historyMessages = prompt.historyMessages;
  log.summary = prompt.summaryUsed;
  if (window.length > 0) log.window = `${window[0]!.seq}-${window.at(-1)!.seq}`;
  if (prompt.summaryUsed && snapshot.summary !== undefined) log.summaryCovers = snapshot.summary.coversSeq;
  log.cache = snapshot.cache;
  log.droppedMessages = droppedMessages;
  // The assembly counted what it left out; a chunked window's evicted messages come before that.
  log.droppedTokens = prompt.droppedTokens + split.history.slice(0, evictedMessages).reduce((sum, m) => sum + m.tokens, 0);
  if (!prompt.isOverflow) return;
  log.overflow = route.budget.onOverflow === 'reject' ? 'rejected' : 'forwarded';
  logger.warn(
    { requestId: log.requestId, route: route.name, contextTokens: prompt.contextTokens, budgetTokens: assemblyBudget(route.budget), action: log.overflow },
    'instructions and new turn exceed the route budget; no history sent',
  );
}

function notStored(log: RequestLog, reason: string): void {
  log.stored = 'not_stored';
  log.notStoredReason = reason;
}
