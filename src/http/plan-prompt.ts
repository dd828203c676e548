// Steps 3 and 4 of the request path, and the body they make: the request
// split into instructions | re-sent history | new turn, the prompt assembled
// within the route's budget, and the exact body and x-contextd-* headers that
// go upstream. The memory path forwards the plan; the conversation API's dry
// run (conversation-context.ts) shows it, so the two can never differ.

import { assemblePrompt, pinnedHistoryStart, type AssembledPrompt, type CountedMessage } from '../context/assemble-prompt.js';
import type { CountedRequest } from '../context/counted-request.js';
import { splitRequest, type SplitRequest } from '../context/split-request.js';
import { findRequestToolProblem, findToolSequenceProblem, type ToolSequenceProblem } from '../context/tool-sequence.js';
import { chunkedStart, type ChunkedStart } from '../context/window-policy.js';
import type { ConversationSnapshot, NewMessage, StoredMessage } from '../domain.js';
import { ConversationStateConflictError } from '../errors.js';
import { assemblyBudget, type Route } from '../routing/route.js';
import type { TokenCounter } from '../tokens/count-tokens.js';
import { memoryHeaders } from './memory-headers.js';
import type { MemoryRequest } from './memory-request.js';
import type { PrefixChange, SentPrefix } from './sent-prefixes.js';

export interface PromptPlan {
  split: SplitRequest;
  instructions: CountedMessage[];
  /** The new turn as it will be stored. */
  turn: NewMessage[];
  prompt: AssembledPrompt;
  /** The stored messages that go out, oldest first (the window). */
  window: readonly StoredMessage[];
  /** Stored messages after the summary left out before the window (the next summary's input). */
  droppedMessages: number;
  /**
   * The summary job's fold point, if one is due: before the window's first
   * message when history was left out; on a chunked route with summaries,
   * before where the coming step will start the window, so the summary is
   * written ahead and changes at the step (docs/request-path.md, "Window policy").
   */
  foldBeforeSeq: number | undefined;
  /** Of those, the oldest that a chunked window policy left out (the rest did not fit, or could not be sent). */
  evictedMessages: number;
  /** The window's start moved on with this request (contextd_window_evictions_total). */
  evicts: boolean;
  /** The prompt's prefix (instructions, summary, kept history) is what the conversation's previous request sent: no eviction, no new summary. */
  prefixStable: boolean;
  fixedTokens: number;
  /** The prompt's tool-message problem, if any (found before forwarding; the store guard reuses it). */
  promptProblem: ToolSequenceProblem | undefined;
  /** Set when the request goes as the client sent it (its own tool messages break the rules, or the assembled prompt would). */
  toolProblem: ReturnType<typeof findRequestToolProblem>;
  /** The body that goes upstream, byte for byte. */
  upstreamBody: string;
  /** contextd's x-contextd-* headers on the reply. */
  headers: Record<string, string>;
}

export interface PlanInput {
  body: MemoryRequest;
  request: CountedRequest;
  counter: TokenCounter;
  route: Route;
  snapshot: ConversationSnapshot;
  idempotencyKey: string | undefined;
  nowMs: number;
  retryWindowMs: number;
  /** How the errors name the conversation's source: the header's name, or the conversation API's path. */
  conversationHeader: string;
  /** What of this prompt's prefix differs from the one the conversation's previous request sent, when that is known (SentPrefixes). */
  prefixChanged?: (prefix: SentPrefix) => PrefixChange | undefined;
}

export async function planPrompt(input: PlanInput): Promise<PromptPlan> {
  const { body, request, counter, route, snapshot } = input;
  // 3. Split the request: instructions | re-sent history | new turn.
  const split = splitRequest({
    messages: body.messages,
    digestAt: request.digestAt,
    stored: snapshot.messages,
    idempotencyKey: input.idempotencyKey,
    nowMs: input.nowMs,
    retryWindowMs: input.retryWindowMs,
    ...(body.isReference === undefined ? {} : { isReference: body.isReference }),
  });
  // An item_reference stands for re-sent history, which the window replaces; in the new turn only the upstream's store could read it.
  const strayReference = body.referenceFrom?.(split.turnStart);
  if (strayReference !== undefined) throw new ConversationStateConflictError(strayReference, input.conversationHeader);
  const turn = await request.turn(split);
  const instructions = await request.instructions(split);

  // 4. Assemble within the budget, newest first, turn-safe; a chunked window first sets where history starts.
  const fixedTokens =
    counter.replyPrimingTokens +
    counter.countTools(body.tools) +
    counter.countRequestExtras({ responseFormat: body.responseFormat, toolChoice: body.toolChoice }) +
    (body.unstoredItemTokens?.(split.instructionCount, split.turnStart) ?? 0);
  const budgetTokens = assemblyBudget(route.budget);
  const chunk =
    route.window.eviction === 'chunked'
      ? chunkedStart(
          split.history,
          sumTokens(turn),
          budgetTokens - summaryReserve(route) - sumTokens(instructions) - fixedTokens,
          route.window.lowWatermark,
          pinnedHistoryStart(split.history, turn),
        )
      : undefined;
  const skipped = chunk?.start ?? 0;
  const prompt = assemblePrompt({
    instructions,
    summary: snapshot.summary,
    history: skipped === 0 ? split.history : split.history.slice(skipped),
    turn,
    fixedTokens,
    budgetTokens,
    summaryMaxTokens: route.budget.summaryMaxTokens,
  });
  // A request that breaks OpenAI's tool-message rules goes as it came: the upstream's
  // answer (a 400 from OpenAI) is the client's. The turn is stored only if the state stays valid.
  const promptProblem = findToolSequenceProblem(prompt.messages);
  const toolProblem = findRequestToolProblem(body.messages.slice(split.instructionCount), promptProblem, prompt.messages.length - turn.length);
  const droppedMessages = skipped + prompt.droppedMessages;
  const window = split.history.slice(droppedMessages);
  const change = input.prefixChanged?.({ summary: prompt.summaryUsed ? snapshot.summary : undefined, pinned: pinnedIdentity(request, split.instructionCount, fixedTokens) });
  // The window and summary decide evictions; the client's own instructions and tools can change the prefix too.
  const windowStable = isPrefixStable(snapshot, split.history, chunk, prompt, droppedMessages, change?.summary);
  const prefixStable = windowStable && change?.pinned !== true;
  return {
    split,
    instructions,
    turn,
    prompt,
    window,
    droppedMessages,
    evictedMessages: skipped,
    foldBeforeSeq: foldBeforeSeq(route, split.history, droppedMessages, chunk, snapshot.lastSeq),
    prefixStable,
    // A chunked window moves at its steps (and when a summary written ahead moves it); a sliding one whenever history is left out.
    evicts: chunk !== undefined ? !windowStable : droppedMessages > 0,
    fixedTokens,
    promptProblem,
    toolProblem,
    upstreamBody:
      toolProblem !== undefined
        ? body.asSent()
        : body.withPrompt({
            messages: prompt.messages,
            instructionCount: split.instructionCount,
            summaryUsed: prompt.summaryUsed,
            historyMessages: prompt.historyMessages,
            turnMessages: turn.length,
            turnStart: split.turnStart,
          }),
    headers: toolProblem !== undefined ? { 'x-contextd-cache': snapshot.cache, 'x-contextd-memory': 'bypassed' } : memoryHeaders(prompt, snapshot, window, prefixStable),
  };
}

function foldBeforeSeq(route: Route, history: readonly StoredMessage[], droppedMessages: number, chunk: ChunkedStart | undefined, lastSeq: number): number | undefined {
  if (chunk?.nextStart !== undefined && route.summary.enabled && chunk.nextStart > droppedMessages) return history[chunk.nextStart]?.seq ?? lastSeq + 1;
  return droppedMessages > 0 ? (history[droppedMessages]?.seq ?? lastSeq + 1) : undefined;
}

/** The client's part of the prefix: its instructions by digest, and the fixed tokens (tools, output format, tool_choice) by their count. */
function pinnedIdentity(request: CountedRequest, instructionCount: number, fixedTokens: number): string {
  let identity = String(fixedTokens);
  for (let i = 0; i < instructionCount; i++) identity += `|${request.digestAt(i)}`;
  return identity;
}

/** What a chunked window leaves for the summary: its share of the budget, on a route that writes summaries. */
const summaryReserve = (route: Route): number => (route.summary.enabled ? route.budget.summaryMaxTokens : 0);

const sumTokens = (messages: readonly { tokens: number }[]): number => messages.reduce((sum, m) => sum + m.tokens, 0);

/**
 * Whether the window starts where it did for the conversation's previous
 * request and the summary is the one it had (`summaryChanged`, else: none was
 * dated after that request's turn was stored). Sliding: only while nothing is left out.
 */
function isPrefixStable(
  snapshot: ConversationSnapshot,
  history: readonly StoredMessage[],
  chunk: ChunkedStart | undefined,
  prompt: AssembledPrompt,
  droppedMessages: number,
  summaryChanged: boolean | undefined,
): boolean {
  const lastStored = history.at(-1);
  const summaryIsNew =
    summaryChanged ?? (prompt.summaryUsed && snapshot.summary !== undefined && lastStored !== undefined && snapshot.summary.createdAtMs > lastStored.createdAtMs);
  if (summaryIsNew || prompt.isOverflow) return false;
  // A chunked window the assembly had to cut further (a turn too big for it) moved after all.
  if (chunk !== undefined) return chunk.isSameAsBefore && droppedMessages === chunk.start;
  return droppedMessages === 0;
}
