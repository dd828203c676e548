// The one place that knows whether each store tier is up. Every tier call
// reports its outcome here; /readyz and the two-tier store read it.

import { StoreTimeoutError } from '../errors.js';

export type TierName = 'redis' | 'mongodb';
export type TierState = 'up' | 'down';
export type OverallState = 'up' | 'degraded' | 'down';

interface TierRecord {
  state: TierState;
  /** While down, the tier is tried again (half-open) no earlier than this. */
  retryAtMs: number;
  lastError: string | undefined;
  consecutiveFailures: number;
}

export interface StoreHealthOptions {
  tiers: readonly TierName[];
  /** How long a tier that just failed is left alone before it is tried again. */
  probeIntervalMs: number;
  now?: () => number;
  onChange?: (tier: TierName, state: TierState, error: string | undefined) => void;
}

export class StoreHealth {
  readonly #tiers = new Map<TierName, TierRecord>();
  readonly #probeIntervalMs: number;
  readonly #now: () => number;
  readonly #onChange: StoreHealthOptions['onChange'];

  constructor(options: StoreHealthOptions) {
    for (const tier of options.tiers) this.#tiers.set(tier, { state: 'up', retryAtMs: 0, lastError: undefined, consecutiveFailures: 0 });
    this.#probeIntervalMs = options.probeIntervalMs;
    this.#now = options.now ?? Date.now;
    this.#onChange = options.onChange;
  }

  /** Worth calling now: up, or down long enough that one call may probe it. */
  isUsable(tier: TierName): boolean {
    const record = this.#tiers.get(tier);
    if (record === undefined) return false;
    return record.state === 'up' || this.#now() >= record.retryAtMs;
  }

  isUp(tier: TierName): boolean {
    return this.#tiers.get(tier)?.state === 'up';
  }

  succeeded(tier: TierName): void {
    const record = this.#tiers.get(tier);
    if (record === undefined) return;
    record.consecutiveFailures = 0;
    if (record.state !== 'up') {
      record.state = 'up';
      record.lastError = undefined;
      this.#onChange?.(tier, 'up', undefined);
    }
  }

  failed(tier: TierName, error: unknown): void {
    const record = this.#tiers.get(tier);
    if (record === undefined) return;
    record.consecutiveFailures++;
    record.lastError = error instanceof Error ? error.message : String(error);
    record.retryAtMs = this.#now() + this.#probeIntervalMs;
    if (record.state !== 'down') {
      record.state = 'down';
      this.#onChange?.(tier, 'down', record.lastError);
    }
  }

  /** up: every tier up; degraded: some down; down: all down. */
  overall(): OverallState {
    const states = [...this.#tiers.values()].map((r) => r.state);
    if (states.every((s) => s === 'up')) return 'up';
    return states.some((s) => s === 'up') ? 'degraded' : 'down';
  }

  report(): { status: OverallState; tiers: Record<string, { state: TierState; error?: string }> } {
    const tiers: Record<string, { state: TierState; error?: string }> = {};
    for (const [name, record] of this.#tiers) tiers[name] = record.lastError === undefined ? { state: record.state } : { state: record.state, error: record.lastError };
    return { status: this.overall(), tiers };
  }
}

/**
 * Runs one tier call under a deadline and reports its outcome to the health
 * tracker. `isAnswer` picks out errors that are the tier's answer (e.g. "I do
 * not hold that conversation"), not a fault of the tier. `background` work
 * (the flusher's rounds, merges) that runs past its deadline is not reported
 * as a fault: a tier slower than a big background write is not down, and
 * marking it down would send every request's cold read around it.
 */
export interface TierCallOptions {
  /** Errors that are the tier's answer, not a fault of it. */
  isAnswer?: (error: unknown) => boolean;
  /** Work off the request path: running past the deadline is not a fault of the tier. */
  background?: boolean;
}

export async function callTier<T>(health: StoreHealth, tier: TierName, operation: string, timeoutMs: number, call: () => Promise<T>, options: TierCallOptions = {}): Promise<T> {
  const { isAnswer = () => false, background = false } = options;
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<never>((_resolve, reject) => {
    timer = setTimeout(() => reject(new StoreTimeoutError(tier, operation, timeoutMs)), timeoutMs);
  });
  try {
    const result = await Promise.race([call(), deadline]);
    health.succeeded(tier);
    return result;
  } catch (error) {
    if (isAnswer(error)) health.succeeded(tier);
    else if (!(background && error instanceof StoreTimeoutError)) health.failed(tier, error);
    throw error;
  } finally {
    clearTimeout(timer);
  }
}
