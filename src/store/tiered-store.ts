// Redis in front of MongoDB behind the one ConversationStore interface, or
// either alone. Reads: Redis first, MongoDB on a miss (then Redis is warmed in
// the background). Writes: Redis allocates seqs and keeps the turn until the
// flusher has put it in MongoDB; with Redis down, MongoDB allocates and stores
// directly. Every tier call has a deadline and reports to StoreHealth.
//
// When Redis answers, MongoDB is given only the cold-read deadline on the
// request path (coldReadTimeoutMs, far shorter than its call deadline): a
// MongoDB that is down, or slower than that, leaves Redis to take the
// conversation *unmerged* (docs/storage.md): the turns made meanwhile are
// stored in Redis at once, with provisional seqs, and read back from there
// (`partial`), until the flusher appends them after what MongoDB holds and
// rebases Redis (outage-merge.ts). The read that missed the deadline goes on
// in the background and warms Redis if it can still be first. The deadline is
// not a failure of MongoDB: only the call's own deadline counts in StoreHealth.

import { randomUUID } from 'node:crypto';
import type { AppendOptions, AppendResult, ConversationKey, ConversationSnapshot, NewMessage, StoredMessage, Summary } from '../domain.js';
import { conversationKeyString } from '../domain.js';
import { ColdConversationError, StoreUnavailableError } from '../errors.js';
import { startWindowWalk } from '../context/window-cut.js';
import type { ConversationStore, DurableTier, EraseReceipt, ErasedPosition, HotTier, LoadLimits, LockLease, SummaryLock } from './conversation-store.js';
import { InProcessLock } from './in-process-lock.js';
import { callTier, type StoreHealth, type TierName } from './store-health.js';
import { readWarmState } from './warm-state.js';

export interface TieredStoreOptions {
  /** The hot tier: a RedisStore, in cache mode in front of a durable tier, standalone without one. */
  redis: HotTier | undefined;
  /** The durable tier (MongoStore). */
  mongo: DurableTier | undefined;
  health: StoreHealth;
  redisTimeoutMs: number;
  mongoTimeoutMs: number;
  /**
   * How long the request path waits for MongoDB when Redis has answered (a
   * cold read; seeding Redis for a turn's append): beyond it Redis takes the
   * conversation unmerged and the read goes on in the background.
   */
  coldReadTimeoutMs: number;
  /** How many recent messages a warmed Redis conversation starts with. */
  maxCachedMessages: number;
  /** A turn reached Redis and waits for the flusher. */
  onFlushNeeded: () => void;
  /** Background work (warming) failed; it is retried by the next miss. */
  onBackgroundError: (operation: string, error: unknown) => void;
  /** Resolves when this instance's flusher has no round in flight (delete waits for it between the tiers). */
  flushesSettled?: () => Promise<void>;
  /** Most warm-ups running at once; beyond it a miss simply stays a miss. */
  maxConcurrentWarmups?: number;
}

const isCold = (error: unknown): boolean => error instanceof ColdConversationError;
const DEADLINE_PASSED = Symbol('deadline passed');
/** What a load answers when Redis does not hold the conversation and MongoDB cannot say in time: nothing yet, history unknown. */
const unknownHistory = (): ConversationSnapshot => ({ summary: undefined, messages: [], lastSeq: 0, cache: 'partial' });

export class TieredStore implements ConversationStore, SummaryLock {
  readonly #o: TieredStoreOptions;
  readonly #localLock = new InProcessLock();
  /** Background warm-ups by conversation, each resolving true once Redis holds the conversation seeded from MongoDB. */
  readonly #warming = new Map<string, Promise<boolean>>();
  /** Conversations written to MongoDB directly while Redis was down: Redis's copy may be stale. */
  readonly #staleInRedis = new Map<string, ConversationKey>();

  constructor(options: TieredStoreOptions) {
    this.#o = options;
  }

  async load(key: ConversationKey, limits: LoadLimits): Promise<ConversationSnapshot> {
    const { redis, mongo } = this.#o;
    // What Redis answered, when MongoDB is still to be asked: a window short of older history, or a miss.
    let hot: ConversationSnapshot | undefined;
    // A conversation written to MongoDB while Redis was down is read from MongoDB
    // until its Redis copy, which lacks those turns, has been dropped.
    const isStaleInRedis = this.#staleInRedis.size > 0 && this.#staleInRedis.has(conversationKeyString(key));
    if (redis !== undefined && !isStaleInRedis && this.#usable('redis')) {
      try {
        const answer = await this.#redis('load', () => redis.load(key, limits));
        // Unmerged (partial): the turns made while MongoDB could not answer; the flusher puts MongoDB's history in front.
        if (mongo === undefined || answer.cache === 'partial') return answer;
        // Redis holds fewer messages than the budget could take: MongoDB has the rest.
        if (answer.cache === 'hit' && isWholeWindow(answer, limits)) return answer;
        hot = answer;
      } catch {
        // Redis is down or slow: MongoDB answers, the client sees no error.
      }
    }
    if (mongo === undefined) throw new StoreUnavailableError(new Error('Redis did not answer'));
    if (hot === undefined) {
      // Redis cannot take the conversation: MongoDB is all there is, however long it takes.
      try {
        const cold = await this.#mongo('load', () => mongo.load(key, limits));
        return { ...cold, cache: redis !== undefined && this.#o.health.isUp('redis') ? 'miss' : 'none' };
      } catch (error) {
        throw new StoreUnavailableError(error);
      }
    }
    const partial = hot.cache === 'hit' ? hot : undefined;
    const unanswered = partial ?? unknownHistory();
    if (!this.#usable('mongodb')) return unanswered;
    const reading = this.#mongo('load', () => mongo.load(key, limits));
    let cold: ConversationSnapshot | typeof DEADLINE_PASSED;
    try {
      cold = await withinDeadline(reading, this.#o.coldReadTimeoutMs);
    } catch {
      return unanswered;
    }
    if (cold === DEADLINE_PASSED) {
      // MongoDB is slow, not down: its answer still warms Redis, unless a turn has made the conversation unmerged first.
      if (partial === undefined) void this.#warmInBackground(key, reading);
      return unanswered;
    }
    if (partial !== undefined) return mergeWindows(partial, cold, limits);
    if (this.#o.health.isUp('redis')) void this.#warmInBackground(key, Promise.resolve(cold));
    return { ...cold, cache: 'miss' };
  }

  async listMessages(key: ConversationKey, page: { afterSeq: number; limit: number }): Promise<StoredMessage[]> {
    const { redis, mongo } = this.#o;
    let durable: StoredMessage[] = [];
    if (mongo !== undefined) {
      try {
        durable = await this.#mongo('listMessages', () => mongo.listMessages(key, page));
      } catch (error) {
        if (redis === undefined) throw new StoreUnavailableError(error);
      }
    }
    if (redis === undefined || durable.length >= page.limit) return durable;
    // Turns not yet flushed live only in Redis: complete the page from there.
    try {
      const afterSeq = durable.at(-1)?.seq ?? page.afterSeq;
      const hot = await this.#redis('listMessages', () => redis.listMessages(key, { afterSeq, limit: page.limit - durable.length }));
      return [...durable, ...hot];
    } catch (error) {
      if (mongo === undefined) throw new StoreUnavailableError(error);
      return durable;
    }
  }

  async append(key: ConversationKey, messages: readonly NewMessage[], options?: AppendOptions): Promise<AppendResult> {
    const { redis, mongo } = this.#o;
    // In front of MongoDB every turn carries a key: an unmerged conversation's turns are told
    // apart, and merged once, by it; and a turn Redis applied though its answer was lost, which
    // then goes to MongoDB directly, is recognised there by the same key when Redis's copy is flushed.
    const keyed = redis === undefined || mongo === undefined || options?.turnKey !== undefined ? options : { ...options, turnKey: `auto:${randomUUID()}` };
    if (redis !== undefined && (this.#usable('redis') || mongo === undefined)) {
      try {
        const result = await this.#appendHot(redis, key, messages, keyed);
        if (mongo !== undefined) this.#o.onFlushNeeded();
        return result;
      } catch (error) {
        // Only a Redis fault moves the write to MongoDB (a conversation Redis
        // does not hold is taken unmerged when MongoDB cannot seed it).
        if (mongo === undefined || this.#o.health.isUp('redis')) throw new StoreUnavailableError(error);
      }
    }
    if (mongo === undefined) throw new StoreUnavailableError(new Error('no store configured'));
    const result = await this.#mongo('append', () => mongo.append(key, messages, keyed));
    if (redis !== undefined) this.#staleInRedis.set(conversationKeyString(key), key);
    return result;
  }

  /**
   * Redis decides when it is up (it orders a conversation's writes); MongoDB
   * gets the summary too, and the flusher hands it over again once MongoDB
   * holds the messages it covers (MongoDB refuses a summary of seqs it does
   * not have yet). With Redis down, MongoDB decides.
   */
  async replaceSummary(key: ConversationKey, summary: Summary): Promise<boolean> {
    const { redis, mongo } = this.#o;
    if (redis !== undefined && this.#usable('redis')) {
      try {
        const isStored = await this.#redis('replaceSummary', () => redis.replaceSummary(key, summary));
        if (isStored && mongo !== undefined) {
          await this.#mongo('replaceSummary', () => mongo.replaceSummary(key, summary)).catch(() => false);
        }
        return isStored;
      } catch (error) {
        if (mongo === undefined) throw new StoreUnavailableError(error);
      }
    }
    if (mongo === undefined) throw new StoreUnavailableError(new Error('Redis did not answer'));
    try {
      return await this.#mongo('replaceSummary', () => mongo.replaceSummary(key, summary));
    } catch (error) {
      throw new StoreUnavailableError(error);
    }
  }

  /**
   * Erasure must reach every tier: a tier that cannot be reached fails the
   * call. Redis goes first, so no flush round can claim the conversation
   * afterwards; then a round of this instance's flusher already under way is
   * waited for, so it cannot write to MongoDB after MongoDB's erasure.
   */
  async delete(key: ConversationKey): Promise<EraseReceipt> {
    const { redis, mongo } = this.#o;
    const tiers: EraseReceipt['tiers'] = {};
    try {
      if (redis !== undefined) Object.assign(tiers, (await this.#redis('delete', () => redis.delete(key))).tiers);
      if (mongo !== undefined) {
        await this.#o.flushesSettled?.();
        Object.assign(tiers, (await this.#mongo('delete', () => mongo.delete(key))).tiers);
      }
    } catch (error) {
      throw new StoreUnavailableError(error);
    }
    this.#staleInRedis.delete(conversationKeyString(key));
    return { tiers };
  }

  /**
   * Erasure of messages reaches every tier too, in delete's order: Redis
   * first (so no flush round claims the messages afterwards), then, once this
   * instance's round in flight has ended, MongoDB, which also takes the seqs
   * Redis erased and had not flushed (a round of another instance that read
   * them earlier stores nothing there). A Redis copy this instance knows to be
   * stale is retired first (DEMOTE), since its seqs may name other messages;
   * an unmerged one is refused until the flusher has merged it (its seqs are
   * provisional), as is a tier that does not answer.
   */
  async eraseMessages(key: ConversationKey, seqs: readonly number[]): Promise<EraseReceipt> {
    const { redis, mongo } = this.#o;
    const tiers: EraseReceipt['tiers'] = {};
    let positions: ErasedPosition[] = [];
    try {
      if (redis !== undefined) {
        const id = conversationKeyString(key);
        if (mongo !== undefined && this.#staleInRedis.has(id)) {
          if ((await this.#redis('demote', () => redis.demote(key))) === 'demoted') this.#o.onFlushNeeded();
          this.#staleInRedis.delete(id);
        }
        const hot = await this.#redis('eraseMessages', () => redis.eraseMessages(key, seqs));
        if (hot.isUnmerged) throw new Error(`Redis holds conversation ${key.conversation} unmerged (its seqs are provisional until MongoDB has its turns)`);
        Object.assign(tiers, hot.tiers);
        positions = hot.positions;
      }
      if (mongo !== undefined) {
        await this.#o.flushesSettled?.();
        // Several writes (one per erased message and its later totals): a slow one is not MongoDB failing.
        const durable = await callTier(this.#o.health, 'mongodb', 'eraseMessages', this.#o.mongoTimeoutMs * 4, () => mongo.eraseMessages(key, seqs, positions), { background: true });
        Object.assign(tiers, durable.tiers);
      }
    } catch (error) {
      throw new StoreUnavailableError(error);
    }
    return { tiers };
  }

  async ping(): Promise<void> {
    const { redis, mongo } = this.#o;
    const outcomes = await Promise.allSettled([
      redis === undefined ? Promise.reject(new Error('no redis')) : this.#redis('ping', () => redis.ping()),
      mongo === undefined ? Promise.reject(new Error('no mongodb')) : this.#mongo('ping', () => mongo.ping()),
    ]);
    if (outcomes.every((o) => o.status === 'rejected')) throw new StoreUnavailableError((outcomes[0] as PromiseRejectedResult).reason);
  }

  /**
   * The summary lock: Redis's when Redis is configured (shared by every
   * instance); MongoDB alone has no lock primitive FerretDB and MongoDB share,
   * so there it is per instance (summaries stay safe: a summary covering less
   * never replaces one covering more).
   */
  async acquire(key: ConversationKey, ttlMs: number): Promise<LockLease | undefined> {
    const redis = this.#o.redis;
    if (redis === undefined) return this.#localLock.acquire(key, ttlMs);
    return this.#redis('acquireSummaryLock', () => redis.acquireSummaryLock(key, ttlMs));
  }

  /** Waits for background warm-ups; the clients themselves are closed by main.ts. */
  async close(): Promise<void> {
    await Promise.allSettled([...this.#warming.values()]);
    await Promise.allSettled([this.#o.redis?.close(), this.#o.mongo?.close()]);
  }

  /**
   * Redis is back after writes went to MongoDB directly: its copies of those
   * conversations lack turns. A copy with nothing waiting to be flushed is
   * dropped (the next miss warms it from MongoDB); one holding turns MongoDB
   * does not have yet (Redis came back with data it had not flushed) is made
   * unmerged, so the flusher appends those turns after MongoDB's history and
   * rebases Redis on it, as after a MongoDB outage.
   */
  async dropStaleCopies(): Promise<number> {
    const redis = this.#o.redis;
    if (redis === undefined) return 0;
    let dropped = 0;
    for (const [id, key] of [...this.#staleInRedis]) {
      try {
        // One script decides, so a turn appended meanwhile is never dropped with the copy.
        const outcome = await this.#redis('demote', () => redis.demote(key));
        if (outcome === 'dropped') dropped++;
        if (outcome === 'demoted') this.#o.onFlushNeeded();
        this.#staleInRedis.delete(id);
      } catch (error) {
        this.#o.onBackgroundError('drop stale redis copy', error);
        return dropped;
      }
    }
    return dropped;
  }

  async #appendHot(redis: HotTier, key: ConversationKey, messages: readonly NewMessage[], options?: AppendOptions): Promise<AppendResult> {
    try {
      return await this.#redis('append', () => redis.append(key, messages, options));
    } catch (error) {
      const mongo = this.#o.mongo;
      if (!isCold(error) || mongo === undefined) throw error;
    }
    // Redis does not hold the conversation: seeded from MongoDB, its seqs continue
    // MongoDB's. A MongoDB that cannot seed it within the cold-read deadline (down,
    // or slow) leaves Redis to take it unmerged, so the turn is stored at once
    // rather than waiting in this process's memory. Either way the append below
    // goes through: after a warm it is an ordinary append.
    const warming = this.#usable('mongodb') ? this.#warmInBackground(key) : undefined;
    if (warming !== undefined) await withinDeadline(warming, this.#o.coldReadTimeoutMs);
    return this.#redis('append', () => redis.appendUnmerged(key, messages, options));
  }

  /**
   * Seeds Redis from MongoDB in the background, from `cold` (a read already
   * made or under way) or from a read of its own; joins the warm-up of the
   * conversation already running. Resolves true once Redis holds it seeded
   * (WARM does nothing to a conversation Redis holds already, unmerged or not),
   * false when it failed (reported) or too many run already.
   */
  #warmInBackground(key: ConversationKey, cold?: Promise<ConversationSnapshot>): Promise<boolean> {
    const id = conversationKeyString(key);
    const running = this.#warming.get(id);
    if (running !== undefined) return running;
    if (this.#warming.size >= (this.#o.maxConcurrentWarmups ?? 256)) return Promise.resolve(false);
    const job = (async () => this.#warm(key, cold === undefined ? undefined : await cold))()
      .then(
        () => true,
        (error: unknown) => {
          // An outage is StoreHealth's to report (once, as the tier goes down), not each warm-up it stops.
          if (this.#o.health.isUp('mongodb') && this.#o.health.isUp('redis')) this.#o.onBackgroundError('warm redis', error);
          return false;
        },
      )
      .finally(() => this.#warming.delete(id));
    this.#warming.set(id, job);
    return job;
  }

  async #warm(key: ConversationKey, cold?: ConversationSnapshot): Promise<void> {
    const { redis, mongo } = this.#o;
    if (redis === undefined || mongo === undefined) return;
    const state = await readWarmState(mongo, key, this.#o.maxCachedMessages, (operation, call) => this.#mongo(operation, call), cold);
    await this.#redis('warm', () => redis.warm(key, state));
  }

  #usable(tier: TierName): boolean {
    return this.#o.health.isUsable(tier);
  }

  #redis<T>(operation: string, call: () => Promise<T>): Promise<T> {
    return callTier(this.#o.health, 'redis', operation, this.#o.redisTimeoutMs, call, { isAnswer: isCold });
  }

  #mongo<T>(operation: string, call: () => Promise<T>): Promise<T> {
    return callTier(this.#o.health, 'mongodb', operation, this.#o.mongoTimeoutMs, call);
  }
}

/**
 * Whether a Redis answer holds the whole window: walked by the window rule
 * (context/window-cut.ts), it hit the message limit or crossed the token
 * budget, or it reached back to the summary (or the first message).
 */
function isWholeWindow(snapshot: ConversationSnapshot, limits: LoadLimits): boolean {
  const coveredSeq = snapshot.summary?.coversSeq ?? 0;
  // Redis cut its answer by the same rule, so the walk takes all of it; what matters is why it stopped.
  const walk = startWindowWalk(limits, coveredSeq);
  let index = snapshot.messages.length - 1;
  while (index >= 0 && walk.takes(snapshot.messages[index]!)) index--;
  if (walk.isFull) return true;
  const oldest = snapshot.messages[0];
  return oldest === undefined ? snapshot.lastSeq <= coveredSeq : oldest.seq <= coveredSeq + 1;
}

/**
 * Redis's newest messages (some possibly not yet in MongoDB) continued by
 * MongoDB's older ones, cut by the rule every store cuts by (context/window-cut.ts).
 */
function mergeWindows(hot: ConversationSnapshot, cold: ConversationSnapshot, limits: LoadLimits): ConversationSnapshot {
  const hotOldestSeq = hot.messages[0]?.seq ?? hot.lastSeq + 1;
  const summary = (cold.summary?.coversSeq ?? 0) > (hot.summary?.coversSeq ?? 0) ? cold.summary : hot.summary;
  const candidates = [...cold.messages.filter((m) => m.seq < hotOldestSeq), ...hot.messages];
  const walk = startWindowWalk(limits, summary?.coversSeq ?? 0);
  let first = candidates.length;
  while (first > 0 && walk.takes(candidates[first - 1]!)) first--;
  return { summary, messages: candidates.slice(first), lastSeq: Math.max(hot.lastSeq, cold.lastSeq), cache: 'miss' };
}

/** The work's result, or DEADLINE_PASSED after `timeoutMs`; the work goes on either way (its callTier still reports it). */
async function withinDeadline<T>(work: Promise<T>, timeoutMs: number): Promise<T | typeof DEADLINE_PASSED> {
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<typeof DEADLINE_PASSED>((resolve) => {
    timer = setTimeout(() => resolve(DEADLINE_PASSED), timeoutMs);
  });
  try {
    return await Promise.race([work, deadline]);
  } finally {
    clearTimeout(timer);
  }
}
