// Redis server-assisted client-side caching (CLIENT TRACKING) for one
// connection, so that RedisStore can answer a load from the window it holds
// without asking Redis, for as long as Redis has not told it that a key it
// read has changed.
//
// How. A second connection, the subscriber, subscribes to
// `__redis__:invalidate`; the store's connection turns tracking on with
// `CLIENT TRACKING ON REDIRECT <subscriber id> NOLOOP` (RESP2, which ioredis
// speaks, needs the redirect). From then on Redis remembers every key the
// store's connection reads (inside scripts too) and, the first time another
// client changes, expires, evicts or deletes one, publishes the key's name to
// the subscriber (a FLUSHDB/FLUSHALL publishes null: everything). NOLOOP
// leaves out the store's own writes, which it accounts for itself.
//
// Epochs. Tracking lives and dies with the two connections: a reconnection
// of either loses what Redis remembered (or where it would say so), so the
// end of either socket (its EOF or error, see whenLost) starts a new epoch
// with tracking off, and tracking is on again only
// once both are back and CLIENT TRACKING has answered. RedisStore trusts a
// window only within the epoch that validated it. Reads the store sends after
// it has seen CLIENT TRACKING's answer run after it (one connection runs its
// commands in order), so they are tracked.
//
// If Redis refuses (older than 6.0, an ACL without CLIENT, a proxy in front),
// tracking stays off and the store asks Redis on every load, as without it.

import type { Redis } from 'ioredis';

export const INVALIDATION_CHANNEL = '__redis__:invalidate';

/** Keys Redis says changed, or null when it says everything did (a flush). */
export type InvalidationListener = (keys: readonly string[] | null) => void;

export interface RedisTrackingOptions {
  /** The connection whose reads are tracked: the one RedisStore is given. */
  client: Redis;
  /** A connection of its own (it is put in subscriber mode); created with autoResubscribe: false. */
  subscriber: Redis;
  /** Redis refused a step of turning tracking on; it stays off until the next reconnection. */
  onError?: (error: unknown) => void;
}

export class RedisTracking {
  readonly #client: Redis;
  readonly #subscriber: Redis;
  readonly #onError: (error: unknown) => void;
  readonly #listeners = new Set<InvalidationListener>();
  #epoch = 0;
  #isActive = false;
  #subscriberId: number | undefined;
  #isClosed = false;

  constructor(options: RedisTrackingOptions) {
    this.#client = options.client;
    this.#subscriber = options.subscriber;
    this.#onError = options.onError ?? (() => undefined);
    const client = this.#client;
    const subscriber = this.#subscriber;
    const loseSubscriber = (): void => {
      this.#subscriberId = undefined;
      this.#lose();
    };
    client.on('ready', () => void this.#enable());
    subscriber.on('ready', () => void this.#subscribe());
    whenLost(client, () => this.#lose());
    whenLost(subscriber, loseSubscriber);
    subscriber.on('messageBuffer', (channel: Buffer | string, payload: unknown) => this.#deliver(channel, payload));
    if (subscriber.status === 'ready') void this.#subscribe();
  }

  /** The connection whose reads are tracked. */
  get client(): Redis {
    return this.#client;
  }

  /** The current epoch while the client's reads are tracked; undefined while they are not. */
  get activeEpoch(): number | undefined {
    return this.#isActive ? this.#epoch : undefined;
  }

  /** Calls `listener` with every invalidation from now on; returns what stops it. */
  onInvalidate(listener: InvalidationListener): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  /** Tracking is off for good; the connections are main.ts's to quit. */
  close(): void {
    this.#isClosed = true;
    this.#lose();
  }

  async #subscribe(): Promise<void> {
    if (this.#isClosed) return;
    try {
      // CLIENT ID first: a subscribed RESP2 connection accepts nothing but (un)subscribing.
      const id = Number(await this.#subscriber.client('ID'));
      await this.#subscriber.subscribe(INVALIDATION_CHANNEL);
      this.#subscriberId = id;
      await this.#enable();
    } catch (error) {
      this.#onError(error);
    }
  }

  async #enable(): Promise<void> {
    const id = this.#subscriberId;
    if (id === undefined || this.#isClosed || this.#client.status !== 'ready') return;
    this.#lose();
    const epoch = this.#epoch;
    try {
      // Again on an already tracking connection only changes where the messages go.
      await this.#client.client('TRACKING', 'ON', 'REDIRECT', id, 'NOLOOP');
      if (this.#epoch === epoch && this.#subscriberId === id && !this.#isClosed) this.#isActive = true;
    } catch (error) {
      this.#onError(error);
    }
  }

  #lose(): void {
    this.#epoch++;
    this.#isActive = false;
  }

  #deliver(channel: Buffer | string, payload: unknown): void {
    if (String(channel) !== INVALIDATION_CHANNEL) return;
    const keys = Array.isArray(payload) ? payload.map((key) => String(key)) : null;
    for (const listener of this.#listeners) listener(keys);
  }
}

/**
 * Calls `lost` as soon as the connection's socket ends or fails, not only at
 * ioredis's 'close': that comes when the socket's handle has closed, at the
 * end of the event-loop turn that read the EOF, so a request read in the same
 * turn would still trust windows whose invalidations can no longer arrive.
 * A socket's 'end' and 'error' run right after the read that saw them.
 */
function whenLost(connection: Redis, lost: () => void): void {
  const watch = (): void => {
    const socket = connection.stream;
    socket.once('end', lost);
    socket.once('error', lost);
  };
  connection.on('close', lost);
  connection.on('connect', watch);
  if (connection.status === 'connect' || connection.status === 'ready') watch();
}
