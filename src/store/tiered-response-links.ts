// Response links over the same tiers as the conversations (tiered-store.ts),
// or either alone, seen only through ResponseLinkStore. Writes go to both
// tiers at once; MongoDB's answer decides when it is configured and usable,
// so a link the caller was told is stored survives Redis's TTL and restarts.
// Reads: Redis first, then MongoDB on a miss or a Redis fault; a link found
// only in MongoDB is written back to Redis in the background. Every call has
// its tier's deadline and reports to StoreHealth.

import type { ConversationKey, TenantId } from '../domain.js';
import { StoreUnavailableError } from '../errors.js';
import type { ResponseLink, ResponseLinkStore } from './response-links.js';
import { callTier, type StoreHealth, type TierName } from './store-health.js';

export interface TieredResponseLinksOptions {
  /** The hot tier (RedisResponseLinks). */
  redis: ResponseLinkStore | undefined;
  /** The durable tier (MongoResponseLinks). */
  mongo: ResponseLinkStore | undefined;
  health: StoreHealth;
  redisTimeoutMs: number;
  mongoTimeoutMs: number;
  /** Most write-backs to Redis running at once; beyond it a link found in MongoDB is simply not cached (default 256). */
  maxConcurrentWriteBacks?: number;
}

export class TieredResponseLinks implements ResponseLinkStore {
  readonly #o: TieredResponseLinksOptions;
  /** Write-backs under way, by tenant and response id: one per link at a time, and bounded. */
  readonly #writingBack = new Set<string>();

  constructor(options: TieredResponseLinksOptions) {
    if (options.redis === undefined && options.mongo === undefined) throw new RangeError('TieredResponseLinks needs at least one tier');
    this.#o = options;
  }

  /**
   * Resolves once MongoDB has the link (Redis's outcome does not matter then).
   * With MongoDB not configured, or down and not yet due for a probe, Redis's
   * outcome decides; Redis is then asked even when down, as the last resort.
   */
  async put(tenant: TenantId, responseId: string, link: ResponseLink): Promise<void> {
    const { redis, mongo } = this.#o;
    const durableTier = mongo !== undefined && (this.#usable('mongodb') || redis === undefined) ? mongo : undefined;
    const hotTier = redis !== undefined && (this.#usable('redis') || durableTier === undefined) ? redis : undefined;
    const [hot, durable] = await Promise.allSettled([
      hotTier === undefined ? undefined : this.#call('redis', 'putResponseLink', () => hotTier.put(tenant, responseId, link)),
      durableTier === undefined ? undefined : this.#call('mongodb', 'putResponseLink', () => durableTier.put(tenant, responseId, link)),
    ]);
    // One of the two is called: without MongoDB deciding, Redis is (the constructor wants at least one tier).
    const deciding = durableTier !== undefined ? durable : hot;
    if (deciding.status === 'rejected') throw new StoreUnavailableError(deciding.reason);
  }

  /**
   * undefined only when a tier that could hold the link answered that it does
   * not: MongoDB, or Redis when it is the only tier. A Redis miss with MongoDB
   * down is no answer (the link may be in MongoDB alone), so it fails fast;
   * with Redis not answering, MongoDB is all there is and is asked regardless.
   */
  async get(tenant: TenantId, responseId: string): Promise<ResponseLink | undefined> {
    const { redis, mongo } = this.#o;
    let hasRedisMissed = false;
    if (redis !== undefined && (this.#usable('redis') || mongo === undefined)) {
      try {
        const link = await this.#call('redis', 'getResponseLink', () => redis.get(tenant, responseId));
        if (link !== undefined || mongo === undefined) return link;
        hasRedisMissed = true;
      } catch (error) {
        if (mongo === undefined) throw new StoreUnavailableError(error);
      }
    }
    if (mongo === undefined) throw new StoreUnavailableError(new Error('no store tier configured'));
    if (hasRedisMissed && !this.#usable('mongodb')) throw new StoreUnavailableError(new Error('MongoDB is down'));
    let link: ResponseLink | undefined;
    try {
      link = await this.#call('mongodb', 'getResponseLink', () => mongo.get(tenant, responseId));
    } catch (error) {
      throw new StoreUnavailableError(error);
    }
    if (link !== undefined && redis !== undefined && this.#o.health.isUp('redis')) this.#writeBack(redis, tenant, responseId, link);
    return link;
  }

  /** Like erasing the conversation: every configured tier must forget, or the call fails. */
  async forget(key: ConversationKey): Promise<void> {
    const { redis, mongo } = this.#o;
    const outcomes = await Promise.allSettled([
      redis === undefined ? undefined : this.#call('redis', 'forgetResponseLinks', () => redis.forget(key)),
      mongo === undefined ? undefined : this.#call('mongodb', 'forgetResponseLinks', () => mongo.forget(key)),
    ]);
    const failed = outcomes.find((outcome) => outcome.status === 'rejected');
    if (failed !== undefined) throw new StoreUnavailableError(failed.reason);
  }

  /**
   * Caches a link found in MongoDB alone, off the request path. Its failure
   * is not reported: StoreHealth hears of a Redis fault, and the next read
   * that misses simply asks MongoDB again.
   */
  #writeBack(redis: ResponseLinkStore, tenant: TenantId, responseId: string, link: ResponseLink): void {
    const id = JSON.stringify([tenant, responseId]);
    if (this.#writingBack.has(id) || this.#writingBack.size >= (this.#o.maxConcurrentWriteBacks ?? 256)) return;
    this.#writingBack.add(id);
    void this.#call('redis', 'writeBackResponseLink', () => redis.put(tenant, responseId, link))
      .catch(() => undefined)
      .finally(() => this.#writingBack.delete(id));
  }

  #usable(tier: TierName): boolean {
    return this.#o.health.isUsable(tier);
  }

  #call<T>(tier: TierName, operation: string, call: () => Promise<T>): Promise<T> {
    return callTier(this.#o.health, tier, operation, tier === 'redis' ? this.#o.redisTimeoutMs : this.#o.mongoTimeoutMs, call);
  }
}
