import { setTimeout as delay } from 'node:timers/promises';
import { Redis, type Cluster } from 'ioredis';

export interface RedisConnectionOptions {
  /** redis://, rediss://, or redis+cluster://host:port,host:port */
  url: string;
  isCluster: boolean;
  /** The deadline of every Redis call; connecting may take longer (at least 1 s). */
  timeoutMs: number;
}

/**
 * One connection to Redis (a Cluster client for a cluster url). It fails fast
 * while disconnected (no offline queue): the tiered store falls back to
 * MongoDB at once instead of waiting, and ioredis reconnects in the background.
 * Auto-pipelining (the commands of one tick in one write) suits the flusher,
 * whose rounds issue a command per conversation at once.
 */
export function connectRedis(
  options: RedisConnectionOptions,
  onError: (error: Error) => void,
  { autoPipelining = false, isSubscriber = false }: { autoPipelining?: boolean; isSubscriber?: boolean } = {},
): Redis | Cluster {
  const common = {
    enableOfflineQueue: false,
    maxRetriesPerRequest: 1,
    connectTimeout: Math.max(options.timeoutMs, 1_000),
    enableAutoPipelining: autoPipelining,
  };
  if (options.isCluster) {
    // redis+cluster://[user[:password]@]host:port,host:port — several seeds, so not a WHATWG URL.
    const parsed = /^(rediss?)(?:\+cluster)?:\/\/(?:([^:@/]*)(?::([^@/]*))?@)?([^/?]+)/.exec(options.url);
    const seeds = (parsed?.[4] ?? '').split(',').map((hostPort) => {
      const [host, port] = hostPort.split(':');
      return { host: host!, port: Number(port ?? 6379) };
    });
    const cluster = new Redis.Cluster(seeds, {
      enableOfflineQueue: false,
      enableAutoPipelining: autoPipelining,
      clusterRetryStrategy: (times) => Math.min(100 * times, 2_000),
      redisOptions: {
        maxRetriesPerRequest: common.maxRetriesPerRequest,
        connectTimeout: common.connectTimeout,
        username: parsed?.[2] ? decodeURIComponent(parsed[2]) : undefined,
        password: parsed?.[3] ? decodeURIComponent(parsed[3]) : undefined,
        tls: parsed?.[1] === 'rediss' ? {} : undefined,
      },
    });
    cluster.on('error', onError);
    return cluster;
  }
  // A subscriber (tracking's) subscribes again itself, after asking for its new CLIENT ID.
  const client = new Redis(options.url, { ...common, autoResubscribe: !isSubscriber, retryStrategy: (times) => Math.min(100 * times, 2_000) });
  client.on('error', onError);
  return client;
}

/**
 * Gives a connection a moment to be ready before the first request (without
 * the offline queue, calls before that fail): true once ready, false when it
 * was not within the wait, and contextd starts degraded.
 */
export function whenRedisReady(connection: Redis | Cluster, timeoutMs: number): Promise<boolean> {
  return Promise.race([
    new Promise<boolean>((resolve) => connection.once('ready', () => resolve(true))),
    delay(Math.max(timeoutMs * 4, 2_000)).then(() => false),
  ]);
}
