import { randomUUID } from 'node:crypto';
import { setImmediate as yieldToEventLoop } from 'node:timers/promises';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { performance } from 'node:perf_hooks';
import type { Logger } from 'pino';
import type { Config } from '../config/config-types.js';
import type { Route } from '../routing/route.js';
import { assemblePrompt, type AssembledPrompt, type CountedMessage } from '../context/assemble-prompt.js';
import { digestMessage } from '../context/message-digest.js';
import { splitRequest } from '../context/split-request.js';
import { describeToolSequenceProblem, findStoreProblem, findToolSequenceProblem, type ToolSequenceProblem } from '../context/tool-sequence.js';
import { resultsForUnansweredCalls } from '../context/unanswered-calls.js';
import type { ChatMessage, ConversationKey, ConversationSnapshot, NewMessage } from '../domain.js';
import { ContextLengthExceededError, StoreUnavailableError } from '../errors.js';
import type { PersistQueue, TurnReservation } from '../background/persist-queue.js';
import type { Summarizer } from '../background/summarizer.js';
import type { Metrics } from '../ops/metrics.js';
import type { RouteMatcher } from '../routing/match-route.js';
import type { ConversationStore } from '../store/conversation-store.js';
import { teeReply, type ReplyTee } from '../streaming/tee-reply.js';
import { encodingForModel } from '../tokens/encoding-for-model.js';
import { tokenCounterFor, type TokenCounter } from '../tokens/count-tokens.js';
import type { TokenCountCache } from '../tokens/token-count-cache.js';
import { countMessageYielding } from '../tokens/count-message-yielding.js';
import { upstreamBody } from '../upstream/upstream-body.js';
import { decodableAcceptEncoding } from '../streaming/decode-body.js';
import { endToEndHeaders, type UpstreamClient } from '../upstream/upstream-client.js';
import { forwardAndRelay } from '../upstream/forward.js';
import { conversationKey, resolveTenant } from './conversation-identity.js';
import { firstHeader } from './request-headers.js';
import { parseChatRequest } from './parse-chat-request.js';
import { readBody } from './read-body.js';
import type { RequestLog } from './request-log.js';
import type { ConversationId } from '../domain.js';

export interface ChatCompletionsDeps {
  config: Pick<Config, 'server' | 'conversation' | 'upstream'>;
  routes: RouteMatcher;
  store: ConversationStore;
  persist: PersistQueue;
  upstream: UpstreamClient;
  metrics: Metrics;
  logger: Logger;
  now: () => number;
  /** Counts of pinned instructions, which repeat on every turn. */
  instructionCounts: TokenCountCache;
  /** Background summary jobs; offered after the reply, never waited for. */
  summarizer: Pick<Summarizer, 'offer'>;
}

/** A chat-completions request with memory: whose conversation, and where it goes. */
export interface ChatTarget {
  conversation: ConversationId;
  /** The path the client used (routes match on it): /v1/chat/completions, or an Azure path. */
  path: string;
  /** Path and query relative to the upstream's base URL. */
  upstreamPath: string;
  /** The Azure deployment the path names: it stands for the model in routing and counting. */
  deployment: string | undefined;
}

/**
 * Chat completions with a conversation id: the request path of DESIGN §1,
 * step by step. Each step lives in the module that owns it.
 */
export async function handleChatWithMemory(req: IncomingMessage, res: ServerResponse, target: ChatTarget, deps: ChatCompletionsDeps, log: RequestLog): Promise<void> {
  const startedAt = performance.now();
  const key = conversationKey(resolveTenant(req.headers, deps.config.conversation.tenant), target.conversation);
  // The store is asked while the body arrives and is parsed, when the headers
  // alone settle what to ask (every route this request can get loads alike).
  const early = routeBeforeBody(deps.routes, req, target);
  const earlyLoad = early === undefined ? undefined : loadConversation(deps, key, early, log);
  // Awaited below unless the request fails first; then its outcome is of no interest.
  earlyLoad?.catch(() => undefined);
  const body = parseChatRequest(await readBody(req, deps.config.server.maxBodyBytes));
  const model = target.deployment ?? body.model;
  const route = deps.routes.match({ path: target.path, model, headers: req.headers });
  log.route = route.name;
  const counter = tokenCounterFor(encodingForModel(model ?? '', route.budget.encoding));
  const loading = earlyLoad !== undefined && early !== undefined && loadsAlike(early, route) ? earlyLoad : loadConversation(deps, key, route, log);
  loading.catch(() => undefined);

  // While the store answers: count the request's trailing user and tool
  // messages, which are the new turn unless the split finds them stored.
  const turnTokens = new Map<number, number>();
  for (let i = body.messages.length - 1; i >= 0; i--) {
    const message = body.messages[i]!;
    if (message.role !== 'user' && message.role !== 'tool') break;
    turnTokens.set(i, await countMessageYielding(counter, message));
  }

  const snapshot = await loading;
  if (snapshot === undefined) {
    // Both stores down and the route says pass through: the request goes as the client sent it.
    log.memory = 'unavailable';
    await forward(req, res, deps, log, {
      upstreamPath: target.upstreamPath,
      body: JSON.stringify(body.raw),
      contextdHeaders: { 'x-contextd-cache': 'none', 'x-contextd-memory': 'unavailable' },
      startedAt,
    });
    return;
  }
  const digests = new Map<number, string>();
  const digestAt = (i: number): string => {
    let digest = digests.get(i);
    if (digest === undefined) digests.set(i, (digest = digestMessage(body.messages[i]!)));
    return digest;
  };
  const split = splitRequest({
    messages: body.messages,
    digestAt,
    stored: snapshot.messages,
    idempotencyKey: firstHeader(req.headers, 'idempotency-key'),
    nowMs: deps.now(),
    retryWindowMs: deps.config.conversation.retryWindowMs,
  });
  // Counted without holding the event loop for long, however big a message is.
  const instructions: CountedMessage[] = [];
  for (let i = 0; i < split.instructionCount; i++) {
    const message = body.messages[i]!;
    instructions.push({ message, tokens: await deps.instructionCounts.count(counter, message, digestAt(i)) });
  }
  const turn: NewMessage[] = [];
  for (const message of resultsForUnansweredCalls(split.history, body.messages.slice(split.turnStart))) {
    turn.push({ message, tokens: await countMessageYielding(counter, message), digest: digestMessage(message) });
  }
  for (let i = split.turnStart; i < body.messages.length; i++) {
    const message = body.messages[i]!;
    turn.push({ message, tokens: turnTokens.get(i) ?? (await countMessageYielding(counter, message)), digest: digestAt(i) });
  }

  const prompt = assemblePrompt({
    instructions,
    summary: snapshot.summary,
    history: split.history,
    turn,
    fixedTokens: counter.replyPrimingTokens + counter.countTools(body.tools),
    budgetTokens: route.budget.maxContextTokens,
    summaryMaxTokens: route.budget.summaryMaxTokens,
  });
  // A request that breaks OpenAI's tool-message rules goes as it came: the upstream's
  // answer (a 400 from OpenAI) is the client's. The turn is stored only if the state stays valid.
  const promptProblem = findToolSequenceProblem(prompt.messages);
  const toolProblem = toolSequenceProblemOf(body.messages.slice(split.instructionCount), promptProblem, prompt.messages.length - turn.length);
  if (toolProblem !== undefined) {
    log.memory = 'bypassed';
    deps.metrics.memorySkipped.inc({ reason: toolProblem.whose === 'client' ? 'invalid_tool_sequence' : 'unsendable_history' });
    if (toolProblem.whose === 'contextd') deps.logger.warn({ requestId: log.requestId, problem: toolProblem }, 'the assembled prompt breaks the tool-message rules; forwarded as the client sent it');
  } else {
    recordAssembly(deps, route, prompt, snapshot, log);
    if (prompt.isOverflow && route.budget.onOverflow === 'reject') {
      throw new ContextLengthExceededError(prompt.contextTokens, route.budget.maxContextTokens, route.name);
    }
  }
  const headers: Record<string, string> =
    toolProblem !== undefined
      ? { 'x-contextd-cache': snapshot.cache, 'x-contextd-memory': 'bypassed' }
      : {
          'x-contextd-context-tokens': String(prompt.contextTokens),
          'x-contextd-history-messages': String(prompt.historyMessages),
          'x-contextd-summary': prompt.summaryUsed ? 'yes' : 'no',
          'x-contextd-cache': snapshot.cache,
        };
  if (toolProblem === undefined && prompt.isOverflow) headers['x-contextd-overflow'] = 'forwarded';

  // The turn is announced the moment the client has the whole reply, so that
  // a follow-up, however fast, waits for it rather than missing it.
  let reservation: TurnReservation | undefined;
  try {
    const tee = await forward(req, res, deps, log, {
      upstreamPath: target.upstreamPath,
      body: toolProblem !== undefined ? JSON.stringify(body.raw) : upstreamBody(body.raw, prompt.messages),
      contextdHeaders: headers,
      startedAt,
      tee: {
        usageRequested: isUsageRequested(body.raw),
        onClientHasAll: () => {
          reservation = deps.persist.reserve(key);
        },
      },
    });
    if (tee === undefined) {
      // An upstream error answer, or a client that left: nothing to remember.
      log.stored = 'not_stored';
      log.notStoredReason = log.clientAborted ? 'client disconnected' : `upstream status ${log.upstreamStatus}`;
      deps.metrics.turnsStored.inc({ outcome: 'not_stored' });
      return;
    }

    // What follows is bookkeeping: let the last bytes reach the socket first
    // (measured: without this yield, a turn that starts a summary job was 1.4x slower).
    await yieldToEventLoop();
    const reply = await tee.finish();
    if (reply.kind === 'not_stored') {
      log.stored = 'not_stored';
      log.notStoredReason = reply.reason;
      deps.metrics.turnsStored.inc({ outcome: 'not_stored' });
      return;
    }
    if (split.isRetry) {
      log.stored = 'retry';
      deps.metrics.turnsStored.inc({ outcome: 'retry_skipped' });
      return;
    }
    // The stored state must keep the rules (a lenient upstream may answer what OpenAI refuses).
    const storeProblem = findStoreProblem(
      promptProblem,
      split.history.map((m) => m.message),
      turn.map((m) => m.message),
      reply.message,
    );
    if (storeProblem !== undefined) {
      log.stored = 'not_stored';
      log.notStoredReason = `tool messages: ${describeToolSequenceProblem(storeProblem)}`;
      deps.metrics.turnsStored.inc({ outcome: 'not_stored' });
      return;
    }
    const replyMessage: NewMessage = {
      message: reply.message,
      tokens: await replyTokens(counter, reply.message, reply.completionTokens),
      digest: digestMessage(reply.message),
    };
    // Every turn carries a key: the client's Idempotency-Key, else one of ours, so
    // a write retried after a timeout (that in fact succeeded) is stored once.
    const turnKey = firstHeader(req.headers, 'idempotency-key') ?? `auto:${randomUUID()}`;
    const messages = [...turn, replyMessage];
    const queued = reservation === undefined ? deps.persist.offer(key, messages, { turnKey }, deps.now()) : reservation.fill(messages, { turnKey }, deps.now());
    log.stored = queued ? 'queued' : 'dropped';
    deps.metrics.turnsStored.inc({ outcome: queued ? 'queued' : 'dropped' });

    // History left out of this window, not yet in a summary: fold it (the job
    // checks trigger_tokens against the store, so this offer costs nothing here).
    if (route.summary.enabled && prompt.droppedMessages > 0) {
      deps.summarizer.offer({
        key,
        route,
        foldBeforeSeq: split.history[prompt.droppedMessages]?.seq ?? snapshot.lastSeq + 1,
        credentialHeaders: credentialHeaders(req),
        counter,
      });
    }
  } finally {
    reservation?.cancel();
  }
}

/**
 * Whether the request breaks OpenAI's tool-message rules, and whose doing it
 * is: the client's when its own messages break them (a tool result after a
 * user message, a call left unanswered) or when the assembled prompt breaks
 * them within the new turn (a result for a call the store never held);
 * contextd's when its history does (a state written by an older version).
 */
function toolSequenceProblemOf(
  requestMessages: readonly ChatMessage[],
  promptProblem: ToolSequenceProblem | undefined,
  /** Where the new turn starts in the prompt. */
  turnStart: number,
): (ToolSequenceProblem & { whose: 'client' | 'contextd' }) | undefined {
  const own = findToolSequenceProblem(requestMessages, { allowLeadingResults: true });
  if (own !== undefined) return { ...own, whose: 'client' };
  if (promptProblem === undefined) return undefined;
  return { ...promptProblem, whose: promptProblem.index >= turnStart ? 'client' : 'contextd' };
}

/** The caller's own credential, for a summary job that has no key of its own. */
function credentialHeaders(req: IncomingMessage): Record<string, string> {
  const headers: Record<string, string> = {};
  const authorization = firstHeader(req.headers, 'authorization');
  const apiKey = firstHeader(req.headers, 'api-key');
  if (authorization !== undefined) headers.authorization = authorization;
  if (apiKey !== undefined) headers['api-key'] = apiKey;
  return headers;
}

/** The route to load with before the body is read: the one every route this request can get loads alike with, if any. */
function routeBeforeBody(routes: RouteMatcher, req: IncomingMessage, target: ChatTarget): Route | undefined {
  const [first, ...others] = routes.candidates({ path: target.path, headers: req.headers });
  return first !== undefined && others.every((route) => loadsAlike(first, route)) ? first : undefined;
}

/** Whether two routes ask the store the same and treat its failure the same. */
function loadsAlike(a: Route, b: Route): boolean {
  return a.budget.maxContextTokens === b.budget.maxContextTokens && a.onStoreDown === b.onStoreDown;
}

async function loadConversation(
  deps: ChatCompletionsDeps,
  key: ConversationKey,
  route: Route,
  log: RequestLog,
): Promise<ConversationSnapshot | undefined> {
  const pending = await deps.persist.pendingFor(key);
  const budgetTokens = route.budget.maxContextTokens;
  try {
    // Every message costs at least 4 tokens (3 of overhead and its role), so no more can ever fit.
    let loaded = await deps.store.load(key, { maxTokens: budgetTokens, maxMessages: Math.ceil(budgetTokens / 4) + 1 });
    // A tool exchange larger than the budget came back without its call: read on
    // to the call, whose unanswered ids the new turn may have to answer.
    if (loaded.messages.length > 0 && loaded.messages.every((m) => m.message.role === 'tool')) {
      loaded = await deps.store.load(key, { maxTokens: Number.MAX_SAFE_INTEGER, maxMessages: loaded.messages.length + MAX_PARALLEL_CALLS });
    }
    return deps.persist.overlay(key, loaded, pending);
  } catch (error) {
    deps.metrics.storeErrors.inc({ operation: 'load' });
    log.storeDegraded = true;
    deps.logger.warn({ err: error, requestId: log.requestId }, 'conversation store did not answer');
    if (route.onStoreDown === 'reject') throw new StoreUnavailableError(error);
    return undefined;
  }
}

function recordAssembly(deps: ChatCompletionsDeps, route: Route, prompt: AssembledPrompt, snapshot: ConversationSnapshot, log: RequestLog): void {
  log.contextTokens = prompt.contextTokens;
  log.historyMessages = prompt.historyMessages;
  log.summary = prompt.summaryUsed;
  log.cache = snapshot.cache;
  log.droppedMessages = prompt.droppedMessages;
  log.droppedTokens = prompt.droppedTokens;
  deps.metrics.cacheLookups.inc({ outcome: snapshot.cache });
  deps.metrics.contextTokens.observe({ route: route.name }, prompt.contextTokens);
  if (prompt.droppedMessages > 0) deps.metrics.droppedHistoryMessages.inc({ route: route.name }, prompt.droppedMessages);
  if (prompt.isOverflow) {
    const action = route.budget.onOverflow === 'reject' ? 'rejected' : 'forwarded';
    log.overflow = action;
    deps.metrics.overflows.inc({ route: route.name, action });
    deps.logger.warn(
      { requestId: log.requestId, route: route.name, contextTokens: prompt.contextTokens, budgetTokens: route.budget.maxContextTokens, action },
      'instructions and new turn exceed the route budget; no history sent',
    );
  }
}

/** More results than one assistant message has calls: a second read that finds the call. */
const MAX_PARALLEL_CALLS = 128;

// Our own header and the body's framing are not the upstream's business.
const NOT_FORWARDED = new Set(['content-length', 'accept-encoding', 'expect']);

interface MemoryForward {
  /** Path and query relative to the upstream's base URL. */
  upstreamPath: string;
  /** The request body as sent upstream, serialised. */
  body: string;
  contextdHeaders: Record<string, string>;
  startedAt: number;
  /** Rebuild the reply on the side for storing; `onClientHasAll` runs in the tick the client has all of it. */
  tee?: { usageRequested: boolean; onClientHasAll: () => void };
}

/** Sends the body upstream and relays the reply; the rebuilt reply's tee when there is one to store, else undefined. */
async function forward(req: IncomingMessage, res: ServerResponse, deps: ChatCompletionsDeps, log: RequestLog, request: MemoryForward): Promise<ReplyTee | undefined> {
  const headers = endToEndHeaders(req.headers, new Set([...NOT_FORWARDED, deps.config.conversation.header]));
  headers['content-type'] = 'application/json';
  // contextd must read the reply it stores, so it asks only for encodings it can decode.
  const acceptEncoding = firstHeader(req.headers, 'accept-encoding');
  const asked = request.tee !== undefined ? decodableAcceptEncoding(acceptEncoding) : acceptEncoding;
  if (asked !== undefined) headers['accept-encoding'] = asked;

  const addedMs = performance.now() - request.startedAt;
  log.addedMs = round(addedMs);
  deps.metrics.addedLatency.observe({ kind: 'memory' }, addedMs / 1000);
  const { tee } = request;
  const outcome = await forwardAndRelay(deps.upstream, res, {
    method: 'POST',
    pathAndQuery: request.upstreamPath,
    headers,
    body: request.body,
    responseHeaders: request.contextdHeaders,
    ...(tee !== undefined ? { teeFor: (upstreamHeaders, onComplete) => teeReply(upstreamHeaders, { usageRequested: tee.usageRequested, onComplete }), onClientHasAll: tee.onClientHasAll } : {}),
    onClientCancelled: () => {
      log.clientAborted = true;
    },
  });
  log.upstreamMs = round(outcome.upstreamMs);
  log.upstreamStatus = outcome.status;
  deps.metrics.upstreamLatency.observe({ kind: 'memory' }, outcome.upstreamMs / 1000);
  if (outcome.error !== undefined) throw outcome.error;
  return outcome.tee;
}

/**
 * What the reply will cost when sent back as history: our count, or the
 * upstream's own completion count plus message overhead when that is larger,
 * so the budget holds as the model counts.
 */
async function replyTokens(counter: TokenCounter, message: ChatMessage, completionTokens: number | undefined): Promise<number> {
  const counted = await countMessageYielding(counter, message);
  return completionTokens === undefined ? counted : Math.max(counted, completionTokens + counter.countMessage({ role: 'assistant', content: '' }));
}


function isUsageRequested(raw: Record<string, unknown>): boolean {
  const options = raw.stream_options;
  return typeof options === 'object' && options !== null && (options as { include_usage?: unknown }).include_usage === true;
}

const round = (ms: number): number => Math.round(ms * 100) / 100;
