// The conversation listing over the configured tiers, seen only through the
// ConversationDirectory interface. With MongoDB configured it alone answers:
// it holds every conversation, Redis in front of it only the recent ones. A
// conversation that so far exists only in Redis (taken unmerged while MongoDB
// did not answer, or turns within the flush delay) shows up, or shows its
// newest turns, once the flusher has written them. With MongoDB down the
// listing is a 503, not Redis's partial view passed off as complete. Redis
// alone answers by scanning its keyspace (redis-directory.ts).

import type { TenantId } from '../domain.js';
import { InvalidRequestError, StoreUnavailableError } from '../errors.js';
import type { ConversationDirectory, ConversationPage } from './conversation-directory.js';
import { callTier, type StoreHealth, type TierName } from './store-health.js';

export interface TieredDirectoryOptions {
  redis: ConversationDirectory | undefined;
  mongo: ConversationDirectory | undefined;
  health: StoreHealth;
  /**
   * A listing's deadline per tier. A listing is one or two queries (MongoDB)
   * or a scan of the keyspace (Redis alone), so it gets longer than one call;
   * running past it is not counted as a fault of the tier (a big scan does not
   * mean Redis is down).
   */
  redisTimeoutMs: number;
  mongoTimeoutMs: number;
}

export class TieredDirectory implements ConversationDirectory {
  readonly #o: TieredDirectoryOptions;

  constructor(options: TieredDirectoryOptions) {
    this.#o = options;
  }

  async list(tenant: TenantId, page: { limit: number; after: string | undefined }): Promise<ConversationPage> {
    const { redis, mongo, health } = this.#o;
    const [tier, directory, timeoutMs]: [TierName, ConversationDirectory | undefined, number] =
      mongo !== undefined ? ['mongodb', mongo, this.#o.mongoTimeoutMs] : ['redis', redis, this.#o.redisTimeoutMs];
    if (directory === undefined) throw new StoreUnavailableError(new Error('no store tier is configured'));
    try {
      return await callTier(health, tier, 'list', timeoutMs, () => directory.list(tenant, page), {
        // A cursor that does not parse is the caller's mistake, not the tier's.
        isAnswer: (error) => error instanceof InvalidRequestError,
        background: true,
      });
    } catch (error) {
      if (error instanceof InvalidRequestError) throw error;
      throw new StoreUnavailableError(error);
    }
  }
}
