// Folds history that no longer fits the window into the rolling summary, in
// the background: one job per conversation at a time (a lock with a fencing
// token), one upstream call per job, retried with back-off, never in the way
// of a user request.

import type { Route } from '../routing/route.js';
import { summaryAsSystemMessage } from '../context/assemble-prompt.js';
import { cutToTokens, foldableMessages, summaryRequestMessages } from '../context/summary-request.js';
import type { ConversationKey, StoredMessage, Summary } from '../domain.js';
import { conversationKeyString } from '../domain.js';
import type { ConversationStore, SummaryLock } from '../store/conversation-store.js';
import type { TokenCounter } from '../tokens/count-tokens.js';

export interface SummaryJob {
  key: ConversationKey;
  route: Route;
  /** Fold what comes before this seq: the first message of the window the last request sent. */
  foldBeforeSeq: number;
  /** The triggering request's credential headers (authorization / api-key), used when the route has no summary api_key. In memory for this job only. */
  credentialHeaders: Readonly<Record<string, string>>;
  counter: TokenCounter;
}

/** The one upstream call of a job: resolves with the assistant text, rejects on any failure. */
export interface SummaryRequest {
  model: string;
  messages: unknown[];
  maxTokens: number;
  /** The route's summary.api_key, if any; else `credentialHeaders` carry the triggering request's credential. */
  apiKey: string | undefined;
  credentialHeaders: Readonly<Record<string, string>>;
  timeoutMs: number;
}

export type SummaryCall = (request: SummaryRequest) => Promise<string>;

export type SummaryOutcome = 'stored' | 'not_needed' | 'locked' | 'stale' | 'failed' | 'retrying' | 'dropped';

export interface SummarizerOptions {
  store: ConversationStore;
  lock: SummaryLock;
  call: SummaryCall;
  maxConcurrentJobs: number;
  maxQueuedJobs: number;
  /** Delay before each retry; the job is given up after the last. */
  retryDelaysMs: readonly number[];
  /** Most messages one job reads and folds (older ones are folded by the next job). */
  maxMessagesPerJob: number;
  /** Most tokens of history one summary call is given (a long backlog is folded over several jobs). */
  maxTokensPerJob: number;
  onOutcome: (outcome: SummaryOutcome, job: SummaryJob, detail?: { error?: unknown; coversSeq?: number; tokens?: number }) => void;
  now?: () => number;
}

export class Summarizer {
  readonly #o: SummarizerOptions;
  readonly #now: () => number;
  /** Waiting jobs by conversation: a newer offer replaces an older one. */
  readonly #queued = new Map<string, { job: SummaryJob; attempt: number }>();
  readonly #running = new Set<string>();
  readonly #timers = new Set<NodeJS.Timeout>();
  readonly #inFlight = new Set<Promise<void>>();
  #isStopped = false;

  constructor(options: SummarizerOptions) {
    this.#o = options;
    this.#now = options.now ?? Date.now;
  }

  /** Queues a job for the conversation unless one is already waiting or running there. Never blocks. */
  offer(job: SummaryJob): void {
    const id = conversationKeyString(job.key);
    if (this.#isStopped || this.#running.has(id)) return;
    if (!this.#queued.has(id) && this.#queued.size >= this.#o.maxQueuedJobs) {
      this.#o.onOutcome('dropped', job);
      return;
    }
    this.#queued.set(id, { job, attempt: 0 });
    this.#pump();
  }

  /** Stops taking jobs; waits for running ones up to `deadlineMs`. */
  async stop(deadlineMs: number): Promise<void> {
    this.#isStopped = true;
    for (const timer of this.#timers) clearTimeout(timer);
    this.#queued.clear();
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([Promise.allSettled([...this.#inFlight]), new Promise((resolve) => (timer = setTimeout(resolve, deadlineMs)))]);
    clearTimeout(timer);
  }

  #pump(): void {
    for (const [id, entry] of this.#queued) {
      if (this.#running.size >= this.#o.maxConcurrentJobs) return;
      if (this.#running.has(id)) continue;
      this.#queued.delete(id);
      this.#running.add(id);
      const run = this.#run(entry.job, entry.attempt).finally(() => {
        this.#running.delete(id);
        this.#inFlight.delete(run);
        this.#pump();
      });
      this.#inFlight.add(run);
    }
  }

  async #run(job: SummaryJob, attempt: number): Promise<void> {
    try {
      const outcome = await this.#summarize(job);
      this.#o.onOutcome(outcome.outcome, job, outcome);
    } catch (error) {
      const delayMs = this.#o.retryDelaysMs[attempt];
      if (delayMs === undefined || this.#isStopped) {
        this.#o.onOutcome('failed', job, { error });
        return;
      }
      this.#o.onOutcome('retrying', job, { error });
      const timer = setTimeout(() => {
        this.#timers.delete(timer);
        const id = conversationKeyString(job.key);
        if (this.#isStopped || this.#queued.has(id)) return;
        this.#queued.set(id, { job, attempt: attempt + 1 });
        this.#pump();
      }, delayMs);
      timer.unref();
      this.#timers.add(timer);
    }
  }

  async #summarize(job: SummaryJob): Promise<{ outcome: SummaryOutcome; coversSeq?: number; tokens?: number }> {
    const { key, route, counter } = job;
    const policy = route.summary;
    // The lock outlives the call's own timeout, so it cannot lapse mid-job in normal operation.
    const lease = await this.#o.lock.acquire(key, policy.timeoutMs + 30_000);
    if (lease === undefined) return { outcome: 'locked' };
    try {
      // The summary is dated by the read it is made from, not by the answer: a store refuses one read before an erasure of what it covers.
      const readAtMs = this.#now();
      const current = await this.#o.store.load(key, { maxMessages: 0, maxTokens: 0 });
      const fromSeq = current.summary?.coversSeq ?? 0;
      const { messages, isCutShort } = await this.#unsummarized(key, fromSeq, job.foldBeforeSeq);
      const fold = foldableMessages(messages, isCutShort);
      const foldTokens = fold.reduce((sum, m) => sum + m.tokens, 0);
      if (fold.length === 0 || foldTokens < policy.triggerTokens) return { outcome: 'not_needed' };

      const answer = await this.#o.call({
        model: policy.model,
        messages: summaryRequestMessages(policy.prompt, current.summary, fold),
        maxTokens: policy.maxTokens,
        apiKey: policy.apiKey,
        credentialHeaders: policy.apiKey !== undefined ? {} : job.credentialHeaders,
        timeoutMs: policy.timeoutMs,
      });
      // The summary message must fit its share of the budget whatever the model answered.
      const overhead = counter.countMessage(summaryAsSystemMessage({ text: '', tokens: 0, coversSeq: 0, createdAtMs: 0 }));
      const text = cutToTokens(answer.trim(), Math.min(policy.maxTokens, route.budget.summaryMaxTokens - overhead), (t) => counter.countText(t));
      if (text === '') throw new Error('the summary came back empty');
      const summary: Summary = {
        text,
        tokens: counter.countMessage(summaryAsSystemMessage({ text, tokens: 0, coversSeq: 0, createdAtMs: 0 })),
        coversSeq: fold.at(-1)!.seq,
        createdAtMs: readAtMs,
      };
      // A job whose lease lapsed was overtaken; the newer job's summary stands.
      if (!(await lease.isHeld())) return { outcome: 'stale' };
      const isStored = await this.#o.store.replaceSummary(key, summary);
      return isStored ? { outcome: 'stored', coversSeq: summary.coversSeq, tokens: summary.tokens } : { outcome: 'stale' };
    } finally {
      await lease.release().catch(() => undefined);
    }
  }

  /** Stored messages after `fromSeq` and before `beforeSeq`, oldest first, at most maxMessagesPerJob. */
  async #unsummarized(key: ConversationKey, fromSeq: number, beforeSeq: number): Promise<{ messages: StoredMessage[]; isCutShort: boolean }> {
    const messages: StoredMessage[] = [];
    let afterSeq = fromSeq;
    let tokens = 0;
    while (messages.length < this.#o.maxMessagesPerJob) {
      const page = await this.#o.store.listMessages(key, { afterSeq, limit: Math.min(500, this.#o.maxMessagesPerJob - messages.length) });
      for (const message of page) {
        if (message.seq >= beforeSeq) return { messages, isCutShort: false };
        if (tokens + message.tokens > this.#o.maxTokensPerJob && messages.length > 0) return { messages, isCutShort: true };
        messages.push(message);
        tokens += message.tokens;
      }
      if (page.length === 0) return { messages, isCutShort: false };
      afterSeq = page.at(-1)!.seq;
    }
    return { messages, isCutShort: true };
  }
}
