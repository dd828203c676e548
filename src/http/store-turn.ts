import { setImmediate as yieldToEventLoop } from 'node:timers/promises';
import type { PersistQueue, TurnReservation } from '../background/persist-queue.js';
import type { LinkTicket } from '../background/response-link-book.js';
import type { Summarizer } from '../background/summarizer.js';
import { digestMessage } from '../context/message-digest.js';
import type { SplitRequest } from '../context/split-request.js';
import { describeToolSequenceProblem, findStoreProblem, type ToolSequenceProblem } from '../context/tool-sequence.js';
import type { ChatMessage, ConversationId, ConversationKey, NewMessage, StoredMessage } from '../domain.js';
import { InvalidRequestError } from '../errors.js';
import type { Route } from '../routing/route.js';
import type { ReplyTee, TeeOutcome } from '../streaming/tee-reply.js';
import { countMessageYielding } from '../tokens/count-message-yielding.js';
import type { TokenCounter } from '../tokens/count-tokens.js';
import { checkChatMessages } from './check-chat-messages.js';

export interface TurnToStore {
  key: ConversationKey;
  route: Route;
  counter: TokenCounter;
  split: SplitRequest;
  turn: readonly NewMessage[];
  /** The tool-message problem of the prompt as assembled, if any (found before forwarding). */
  promptProblem: ToolSequenceProblem | undefined;
  /** The seq of the first stored message the prompt left out of the window, if any: the summary folds what is before the window. */
  foldBeforeSeq: number | undefined;
  /** The reply's side branch, rebuilt once the client has it whole. */
  tee: ReplyTee;
  /** Taken the moment the client had the whole reply, if it was. */
  reservation: TurnReservation | undefined;
  /** The turn's key: the client's Idempotency-Key, else one of ours (every turn carries one). */
  turnKey: string;
  /** previous_response_id emulation: the link to write for the reply's response id (the ticket taken when the client had it whole). */
  link: { ticket: LinkTicket; conversation: ConversationId } | undefined;
  /** The caller's credential, for a summary job that has no key of its own. */
  credentialHeaders: Record<string, string>;
}

export interface TurnStoreDeps {
  persist: Pick<PersistQueue, 'offer'>;
  summarizer: Pick<Summarizer, 'offer'>;
  now: () => number;
}

/**
 * What became of the turn; `promptTokens` is the upstream's count of the
 * prompt, when it reported one; `summaryOffered`, that the turn offered the
 * conversation to the summarizer (the request's log line says so).
 */
export type StoreOutcome = ({ stored: 'queued' | 'dropped' | 'retry' } | { stored: 'not_stored'; reason: string }) & { promptTokens?: number; summaryOffered?: true };

/**
 * Step 6: the turn (its new messages and the rebuilt reply) is queued for the
 * store, and a summary job is offered when history was left out. Runs after
 * the client has its last byte.
 */
export async function storeTurn(deps: TurnStoreDeps, input: TurnToStore): Promise<StoreOutcome> {
  // What follows is bookkeeping: let the last bytes reach the socket first
  // (measured: without this yield, a turn that starts a summary job was 1.4x slower).
  await yieldToEventLoop();
  const reply = await input.tee.finish();
  const outcome: StoreOutcome = reply.kind === 'not_stored' ? { stored: 'not_stored', reason: reply.reason } : await storeReply(deps, input, reply);
  return reply.promptTokens === undefined ? outcome : { ...outcome, promptTokens: reply.promptTokens };
}

async function storeReply(deps: TurnStoreDeps, input: TurnToStore, reply: Extract<TeeOutcome, { kind: 'reply' }>): Promise<StoreOutcome> {
  if (input.split.isRetry) {
    // The turn is stored already, under the Idempotency-Key: this response continues it too.
    linkResponse(input, reply.responseId, deps.now());
    return { stored: 'retry' };
  }
  // The reply becomes history that later requests carry: it must have a shape a request may
  // (a lenient upstream can answer, say, content parts of an unknown shape or a null tool call).
  const shapeProblem = reply.message === undefined ? undefined : replyShapeProblem(reply.message);
  if (shapeProblem !== undefined) return { stored: 'not_stored', reason: `reply: ${shapeProblem}` };
  // The stored state must keep the rules (a lenient upstream may answer what OpenAI refuses).
  const storeProblem = findStoreProblem(
    input.promptProblem,
    input.split.history.map((m) => m.message),
    input.turn.map((m) => m.message),
    reply.message,
  );
  if (storeProblem !== undefined) return { stored: 'not_stored', reason: `tool messages: ${describeToolSequenceProblem(storeProblem)}` };

  // A Responses reply with no chat form (a hosted tool's call alone) stores the turn's own
  // messages and no assistant message: an empty one is not a message OpenAI takes back.
  const replyMessages: NewMessage[] =
    reply.message === undefined
      ? []
      : [{ message: reply.message, tokens: await replyTokens(input.counter, reply.message, reply.completionTokens), digest: digestMessage(reply.message) }];
  const messages = [...input.turn, ...replyMessages];
  if (messages.length === 0) {
    // Nothing of the turn has a chat form either: the response continues the newest stored turn.
    linkResponse(input, reply.responseId, deps.now(), newestTurnKey(input.split.history));
    return { stored: 'not_stored', reason: 'nothing in the turn or its reply has a chat form' };
  }
  const options = { turnKey: input.turnKey };
  const isQueued = input.reservation === undefined ? deps.persist.offer(input.key, messages, options, deps.now()) : input.reservation.fill(messages, options, deps.now());
  if (isQueued) linkResponse(input, reply.responseId, deps.now());

  // History left out of this window, not yet in a summary: fold it (the job
  // checks trigger_tokens against the store, so this offer costs nothing here).
  const stored = isQueued ? 'queued' : 'dropped';
  if (!input.route.summary.enabled || input.foldBeforeSeq === undefined) return { stored };
  deps.summarizer.offer({ key: input.key, route: input.route, foldBeforeSeq: input.foldBeforeSeq, credentialHeaders: input.credentialHeaders, counter: input.counter });
  return { stored, summaryOffered: true };
}

/** previous_response_id emulation: the response id now names this turn (or `turnKey`, a stored one). */
function linkResponse(input: TurnToStore, responseId: string | undefined, nowMs: number, turnKey: string | undefined = input.turnKey): void {
  if (responseId !== undefined && turnKey !== undefined) input.link?.ticket.fill(responseId, { conversation: input.link.conversation, turnKey, createdAtMs: nowMs });
}

/** The key of the newest turn among stored messages (a turn's first message carries it). */
function newestTurnKey(history: readonly StoredMessage[]): string | undefined {
  for (let i = history.length - 1; i >= 0; i--) if (history[i]!.turnKey !== undefined) return history[i]!.turnKey;
  return undefined;
}

/** What checkChatMessages refuses in the reply, in its words, or undefined when a request may carry it. */
function replyShapeProblem(reply: ChatMessage): string | undefined {
  try {
    checkChatMessages([reply]);
    return undefined;
  } catch (error) {
    if (!(error instanceof InvalidRequestError)) throw error;
    return error.message.replaceAll('messages[0]', 'reply');
  }
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
