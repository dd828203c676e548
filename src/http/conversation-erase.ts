// Erasure through the conversation API (docs/conversation-api.md, "Erasure"):
//   DELETE …/:id                 the conversation, from every tier, with its response links;
//   DELETE …/:id/messages/:seq   one message and the rest of its tool exchange, from every tier.
// Both answer with a receipt: what each tier removed, and whether a summary went.
//
// A message erasure waits for this instance's turns of the conversation that
// are not stored yet (so that none is stored after it, and every seq a caller
// may name is in the store), then holds the conversation's summary lock, so
// no summary job reads the conversation while the message is still there and
// stores its summary afterwards. A summary that covered the message is dropped
// by the stores and folded again, in the background, from what remains; so is
// one covering a seq the store no longer holds (folded in and dropped), since
// the erased text may live on there alone.

import type { IncomingMessage, ServerResponse } from 'node:http';
import { setTimeout as delay } from 'node:timers/promises';
import type { PersistQueue } from '../background/persist-queue.js';
import { toolExchangeRange } from '../context/tool-exchange.js';
import { hasToolCalls } from '../context/tool-sequence.js';
import type { ConversationKey, StoredMessage, Summary } from '../domain.js';
import { InvalidRequestError, NotFoundError, StoreUnavailableError } from '../errors.js';
import type { ConversationStore, EraseReceipt, LockLease, SummaryLock } from '../store/conversation-store.js';
import { tokenCounterFor } from '../tokens/count-tokens.js';
import { encodingForModel } from '../tokens/encoding-for-model.js';
import { isAdmin, type ConversationApiDeps } from './conversation-api.js';
import { credentialHeaders } from './request-headers.js';
import { sendJson } from './send-json.js';

/** What an erasure waits for. */
export interface ErasureDeps {
  /** This instance's turns not stored yet. */
  pending: Pick<PersistQueue, 'settledFor'>;
  /** The summary lock the summarizer takes (one job per conversation). */
  lock: SummaryLock;
}

/** Stored messages read at a time around the erased one: more than one assistant message makes calls. */
const PAGE = 128;
/** The erasure's hold on the summary lock: far longer than an erasure takes, so no job starts in the middle of one. */
const LOCK_TTL_MS = 120_000;
/** How long an erasure waits for a summary job under way (a summary call, up to its timeout): then a 503, to be repeated. */
const LOCK_WAIT_MS = 120_000;
const LOCK_POLL_MS = 100;

/** DELETE /contextd/v1/conversations/:id: erased from every tier, with its response links. */
export async function eraseConversation(res: ServerResponse, key: ConversationKey, deps: ConversationApiDeps): Promise<void> {
  // A turn still queued here would start the conversation again right after.
  await deps.erasure.pending.settledFor(key);
  const receipt = await deps.store.delete(key);
  await deps.links.forget(key);
  // As the listing says: a conversation holding no message and no summary (another tenant's, say) is not found.
  const tiers = Object.values(receipt.tiers);
  if (tiers.every((tier) => tier.messages === 0 && !tier.summaryDropped)) throw new NotFoundError(`Conversation ${key.conversation}`);
  sendJson(res, 200, { id: key.conversation, object: 'conversation.deleted', deleted: true, ...receiptBody(receipt) });
}

/** DELETE /contextd/v1/conversations/:id/messages/:seq: one message and the rest of its tool exchange. */
export async function eraseMessage(req: IncomingMessage, res: ServerResponse, url: URL, key: ConversationKey, seqText: string, deps: ConversationApiDeps): Promise<void> {
  const seq = Number(seqText);
  if (!/^[1-9][0-9]*$/.test(seqText) || !Number.isSafeInteger(seq)) throw new InvalidRequestError('The message seq must be a positive integer.', 'seq', 'invalid_value');
  await deps.erasure.pending.settledFor(key);
  const lease = await holdSummaryLock(deps.erasure.lock, key);
  let erasure: Erasure;
  try {
    erasure = await eraseUnderLock(deps.store, key, seq);
  } finally {
    await lease.release().catch(() => undefined);
  }
  const { seqs, receipt, droppedCoversSeq } = erasure;
  const refold = droppedCoversSeq === undefined ? null : offerRefold(req, url, key, droppedCoversSeq, deps);
  sendJson(res, 200, { id: key.conversation, object: 'conversation.message.deleted', deleted: true, seq, seqs, ...receiptBody(receipt), summary_refold: refold });
}

/** What a message erasure did: the seqs it erased, the stores' receipt, and what a dropped summary covered. */
interface Erasure {
  seqs: number[];
  receipt: EraseReceipt;
  droppedCoversSeq: number | undefined;
}

/** The message at `seq` and the rest of its tool exchange erased, with a summary covering them; run under the summary lock. */
async function eraseUnderLock(store: ConversationStore, key: ConversationKey, seq: number): Promise<Erasure> {
  const exchange = await exchangeOf(store, key, seq);
  const summaryBefore = (await store.load(key, { maxMessages: 0, maxTokens: 0 })).summary;
  if (exchange === undefined) return eraseFromSummary(store, key, seq, summaryBefore);
  const seqs = exchange.map((m) => m.seq);
  let receipt = await store.eraseMessages(key, seqs);
  // Tool results a request already under way stored after the exchange was read: they would answer an erased call.
  const last = exchange.at(-1)!;
  if (exchange.some((m) => hasToolCalls(m.message))) {
    const late = await toolRunAfter(store, key, last.seq);
    if (late.length > 0) {
      seqs.push(...late.map((m) => m.seq));
      receipt = mergeReceipts(receipt, await store.eraseMessages(key, late.map((m) => m.seq)));
    }
  }
  // The summary this instance read may be another tier's: one covering the erased seqs at least.
  return { seqs, receipt, droppedCoversSeq: isSummaryDropped(receipt) ? (summaryBefore?.coversSeq ?? Math.max(...seqs)) : undefined };
}

/**
 * A seq the store no longer holds (the embedded store and Redis alone drop
 * what a summary covers) whose text may live on in the summary: the summary
 * goes, through the stores' own erasure, which drops a summary covering a seq
 * whether or not it holds the message (0 messages). A seq beyond the summary
 * (never given, trimmed or expired without one) is not found.
 */
async function eraseFromSummary(store: ConversationStore, key: ConversationKey, seq: number, summary: Summary | undefined): Promise<Erasure> {
  const notFound = new NotFoundError(`Message ${seq} of conversation ${key.conversation}`);
  if (summary === undefined || summary.coversSeq < seq) throw notFound;
  const receipt = await store.eraseMessages(key, [seq]);
  if (!isSummaryDropped(receipt)) throw notFound;
  return { seqs: [], receipt, droppedCoversSeq: summary.coversSeq };
}

/** The summary lock, waiting for a job that holds it (a summary call) to end. */
async function holdSummaryLock(lock: SummaryLock, key: ConversationKey): Promise<LockLease> {
  const giveUpAt = Date.now() + LOCK_WAIT_MS;
  for (;;) {
    const lease = await lock.acquire(key, LOCK_TTL_MS).catch((error: unknown) => {
      throw new StoreUnavailableError(error);
    });
    if (lease !== undefined) return lease;
    if (Date.now() >= giveUpAt) throw new StoreUnavailableError(new Error(`a summary job of ${key.conversation} held its lock for ${LOCK_WAIT_MS} ms`));
    await delay(LOCK_POLL_MS);
  }
}

/** The message at `seq` and the rest of its tool exchange (context/tool-exchange.ts), oldest first; undefined when it is not stored. */
async function exchangeOf(store: ConversationStore, key: ConversationKey, seq: number): Promise<StoredMessage[] | undefined> {
  const [target] = await store.listMessages(key, { afterSeq: seq - 1, limit: 1 });
  if (target === undefined || target.seq !== seq) return undefined;
  const isTool = target.message.role === 'tool';
  const before = isTool ? await toolRunBefore(store, key, seq) : [];
  const after = isTool || hasToolCalls(target.message) ? await toolRunAfter(store, key, seq) : [];
  const around = [...before, target, ...after];
  const { first, last } = toolExchangeRange(
    around.map((m) => m.message),
    before.length,
  );
  return around.slice(first, last + 1);
}

/** The stored messages before `seq`, oldest first, back to the newest one that is not a tool message (or as far as they are stored). */
async function toolRunBefore(store: ConversationStore, key: ConversationKey, seq: number): Promise<StoredMessage[]> {
  const newestFirst: StoredMessage[] = [];
  for (let below = seq; below > 1; ) {
    const afterSeq = Math.max(0, below - 1 - PAGE);
    // At most PAGE seqs lie in (afterSeq, below): the page holds every message stored there.
    const page = (await store.listMessages(key, { afterSeq, limit: PAGE })).filter((m) => m.seq < below);
    // Nothing stored there: history before it is trimmed, summarised away or gone.
    if (page.length === 0) break;
    for (let index = page.length - 1; index >= 0; index--) {
      newestFirst.push(page[index]!);
      if (page[index]!.message.role !== 'tool') return newestFirst.reverse();
    }
    below = afterSeq + 1;
  }
  return newestFirst.reverse();
}

/** The tool messages stored right after `seq`, oldest first, up to the first message that is not one. */
async function toolRunAfter(store: ConversationStore, key: ConversationKey, seq: number): Promise<StoredMessage[]> {
  const run: StoredMessage[] = [];
  for (let afterSeq = seq; ; ) {
    const page = await store.listMessages(key, { afterSeq, limit: PAGE });
    for (const message of page) {
      if (message.message.role !== 'tool') return run;
      run.push(message);
    }
    if (page.length < PAGE) return run;
    afterSeq = page.at(-1)!.seq;
  }
}

/**
 * The dropped summary folded again from what remains, in the background, by
 * the route a chat completion with `?model=` would take. The job needs a
 * credential: the route's summary.api_key, else this request's own (as a chat
 * request's would serve), never the admin token. Without one the next request
 * with memory that leaves history out of its window folds it.
 */
function offerRefold(req: IncomingMessage, url: URL, key: ConversationKey, coversSeq: number, deps: ConversationApiDeps): 'scheduled' | 'next_request' | 'disabled' {
  const model = url.searchParams.get('model') ?? undefined;
  const route = deps.memory.routes.match({ path: '/v1/chat/completions', model, headers: req.headers });
  if (!route.summary.enabled) return 'disabled';
  const isAdminCall = isAdmin(req, deps.adminToken);
  if (route.summary.apiKey === undefined && isAdminCall) return 'next_request';
  deps.memory.summarizer.offer({
    key,
    route,
    foldBeforeSeq: coversSeq + 1,
    credentialHeaders: isAdminCall ? {} : credentialHeaders(req.headers),
    counter: tokenCounterFor(encodingForModel(model ?? '', route.budget.encoding)),
  });
  return 'scheduled';
}

function isSummaryDropped(receipt: EraseReceipt): boolean {
  return Object.values(receipt.tiers).some((tier) => tier.summaryDropped);
}

function mergeReceipts(a: EraseReceipt, b: EraseReceipt): EraseReceipt {
  const tiers: EraseReceipt['tiers'] = { ...a.tiers };
  for (const [name, tier] of Object.entries(b.tiers)) {
    const earlier = tiers[name];
    tiers[name] = earlier === undefined ? tier : { messages: earlier.messages + tier.messages, summaryDropped: earlier.summaryDropped || tier.summaryDropped };
  }
  return { tiers };
}

/** The receipt as the API says it: per tier what it removed, and whether a summary went. */
function receiptBody(receipt: EraseReceipt): { tiers: Record<string, { messages: number; summary_dropped: boolean }>; summary_dropped: boolean } {
  const tiers: Record<string, { messages: number; summary_dropped: boolean }> = {};
  for (const [name, tier] of Object.entries(receipt.tiers)) tiers[name] = { messages: tier.messages, summary_dropped: tier.summaryDropped };
  return { tiers, summary_dropped: isSummaryDropped(receipt) };
}
