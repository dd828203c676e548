// Steps 3 and 4 of the request path, and the body they make: the request
// split into instructions | re-sent history | new turn, the prompt assembled
// within the route's budget, and the exact body and x-contextd-* headers that
// go upstream. The memory path forwards the plan; the conversation API's dry
// run (conversation-context.ts) shows it, so the two can never differ.

import { assemblePrompt, type AssembledPrompt, type CountedMessage } from '../context/assemble-prompt.js';
import type { CountedRequest } from '../context/counted-request.js';
import { splitRequest, type SplitRequest } from '../context/split-request.js';
import { findRequestToolProblem, findToolSequenceProblem, type ToolSequenceProblem } from '../context/tool-sequence.js';
import type { ConversationSnapshot, NewMessage, StoredMessage } from '../domain.js';
import { assemblyBudget, type Route } from '../routing/route.js';
import type { TokenCounter } from '../tokens/count-tokens.js';
import { memoryHeaders } from './memory-headers.js';
import type { MemoryRequest } from './memory-request.js';

export interface PromptPlan {
  split: SplitRequest;
  instructions: CountedMessage[];
  /** The new turn as it will be stored. */
  turn: NewMessage[];
  prompt: AssembledPrompt;
  /** The stored messages that go out, oldest first (the window). */
  window: readonly StoredMessage[];
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
  });
  const turn = await request.turn(split);
  const instructions = await request.instructions(split);

  // 4. Assemble within the budget, newest first, turn-safe.
  const fixedTokens = counter.replyPrimingTokens + counter.countTools(body.tools);
  const prompt = assemblePrompt({
    instructions,
    summary: snapshot.summary,
    history: split.history,
    turn,
    fixedTokens,
    budgetTokens: assemblyBudget(route.budget),
    summaryMaxTokens: route.budget.summaryMaxTokens,
  });
  // A request that breaks OpenAI's tool-message rules goes as it came: the upstream's
  // answer (a 400 from OpenAI) is the client's. The turn is stored only if the state stays valid.
  const promptProblem = findToolSequenceProblem(prompt.messages);
  const toolProblem = findRequestToolProblem(body.messages.slice(split.instructionCount), promptProblem, prompt.messages.length - turn.length);
  const window = split.history.slice(prompt.droppedMessages);
  return {
    split,
    instructions,
    turn,
    prompt,
    window,
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
    headers: toolProblem !== undefined ? { 'x-contextd-cache': snapshot.cache, 'x-contextd-memory': 'bypassed' } : memoryHeaders(prompt, snapshot, window),
  };
}
