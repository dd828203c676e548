// The Redis and MongoDB that the bench's second half runs on: real servers
// (redis-server without persistence, from the test support module; the
// MongoDB-protocol server --mongodb-server chose, see mongodb-server.ts), and
// the bench's own clients on them, for seeding conversations, evicting them
// from Redis for cold reads, and reading the servers' CPU time.

import { delimiter, join } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { Redis } from 'ioredis';
import { MongoClient } from 'mongodb';
import { request } from 'undici';
import { digestMessage } from '../src/context/message-digest.js';
import type { ChatMessage, ConversationId, ConversationKey, StoredMessage, TenantId } from '../src/domain.js';
import { resolveTenant } from '../src/http/conversation-identity.js';
import { MongoStore } from '../src/store/mongo/mongo-store.js';
import { RedisStore } from '../src/store/redis/redis-store.js';
import { startRedis, type RedisServer } from '../test/support/redis-server.js';
import type { TokenCounter } from '../src/tokens/count-tokens.js';
import { startMongodbServer, type BenchMongoServer, type MongodbServerChoice, type MongoServerDescription } from './mongodb-server.js';
import { cpuTimeMs, findPid, type Child } from './processes.js';
import { API_KEY, type Turn } from './workload.js';

const REPO_ROOT = fileURLToPath(new URL('../../', import.meta.url));
/** contextd's default storage.redis.max_cached_messages, which the bench's contextd runs with. */
export const MAX_CACHED_MESSAGES = 200;
const REDIS_TTL_MS = 24 * 3_600_000;
/** Documents per insertMany when seeding, as the flusher's batches are bounded too. */
const SEED_CHUNK = 1_000;

/** The tenant contextd derives from the bench's API key (a digest of it). */
export const BENCH_TENANT = resolveTenant({ authorization: `Bearer ${API_KEY}` }, { kind: 'authorization' });

export function keyOf(conversation: string): ConversationKey {
  return { tenant: BENCH_TENANT as TenantId, conversation: conversation as ConversationId };
}

/** Turns as contextd would have stored them: token counts, digests and running totals, seqs from `first`. */
export function storedMessages(counter: TokenCounter, turns: readonly Turn[], first: { seq: number; cumTokens: number } = { seq: 1, cumTokens: 0 }): StoredMessage[] {
  let cumTokens = first.cumTokens;
  const createdAtMs = Date.now();
  return turns
    .flatMap((turn): ChatMessage[] => [
      { role: 'user', content: turn.user },
      { role: 'assistant', content: turn.assistant },
    ])
    .map((message, index) => {
      const tokens = counter.countMessage(message);
      cumTokens += tokens;
      return { message, tokens, digest: digestMessage(message), seq: first.seq + index, cumTokens, createdAtMs };
    });
}

/** One MongoDB database and one Redis logical database: what one contextd (or several sharing them) runs on. */
export interface StorePair {
  /** contextd's `storage:` section. */
  storage: Record<string, unknown>;
  /** Stores the messages in MongoDB (in chunks) and, with `warm`, puts the newest of them in Redis as contextd's warm-up would. */
  seed(conversation: string, messages: readonly StoredMessage[], options: { warm: boolean }): Promise<void>;
  /** Whether Redis holds the conversation with every message flushed to MongoDB (contextd's background work for it is done). */
  isSettled(conversation: string): Promise<boolean>;
  /** Removes the conversation's keys from Redis (and the dirty set): its next read is a cold one. */
  evict(conversation: string): Promise<void>;
  /** Conversations with messages not yet in MongoDB. */
  dirtyCount(): Promise<number>;
  /** Resolves when no conversation awaits the flusher (throws after `timeoutMs`, a minute by default). */
  waitFlushed(timeoutMs?: number): Promise<void>;
  /** Every message document of the bench's tenant in this MongoDB database (summaries left out), for the load bench's checks. */
  storedMessages(): Promise<StoredDocument[]>;
  /** The user messages of a conversation that wait in Redis for the flusher (RedisStore.unflushed): not in MongoDB yet, not lost. */
  unflushedUsers(conversation: string): Promise<string[]>;
  /** MongoStore.load from the bench's own client: the MongoDB part of a cold read, without contextd. */
  loadDirect(conversation: string, limits: { maxMessages: number; maxTokens: number }): Promise<StoredMessage[]>;
  /** RedisStore.load (contextd's load script) from the bench's own client. */
  loadHot(conversation: string, limits: { maxMessages: number; maxTokens: number }): Promise<StoredMessage[]>;
}

/** What the load bench reads back of each stored message. */
export interface StoredDocument {
  conversation: string;
  seq: number;
  role: string;
  /** The message as contextd stored it (JSON text). */
  messageJson: string;
}

/** Cumulative counters, by command, since the server started. */
export type CommandCounts = Map<string, number>;

/**
 * From contextd's /metrics: the MongoDB commands it ran (its command monitoring),
 * as `mongodb <command>`, and its Redis loads by how they were answered, as
 * `contextd redis load <tracked|fast|script>`.
 */
export async function contextdStoreCounts(contextd: Child): Promise<CommandCounts> {
  const res = await request(`${contextd.url}/metrics`);
  const counts: CommandCounts = new Map();
  for (const line of (await res.body.text()).split('\n')) {
    const mongo = /^contextd_mongodb_commands_total\{command="([^"]+)"\} (\S+)/.exec(line);
    if (mongo !== null) counts.set(`mongodb ${mongo[1]!}`, Number(mongo[2]));
    const load = /^contextd_redis_loads_total\{path="([^"]+)"\} (\S+)/.exec(line);
    if (load !== null) counts.set(`contextd redis load ${load[1]!}`, Number(load[2]));
  }
  return counts;
}

/**
 * Redis's own counts (all clients, all databases), from INFO commandstats:
 * EVALSHA calls (each one of contextd's script round trips) and the server
 * time they took, and every command run, those inside the scripts included
 * (Redis counts a script's calls as commands too, so the two are not a sum).
 */
export async function redisCommandCounts(redis: Redis): Promise<CommandCounts> {
  let scripts = 0;
  let scriptUs = 0;
  let all = 0;
  for (const line of (await redis.info('commandstats')).split('\n')) {
    const match = /^cmdstat_([^:]+):calls=(\d+),usec=(\d+)/.exec(line);
    if (match === null || match[1] === 'info') continue;
    all += Number(match[2]);
    if (match[1] === 'evalsha' || match[1] === 'eval') {
      scripts += Number(match[2]);
      scriptUs += Number(match[3]);
    }
  }
  return new Map([
    ['evalsha', scripts],
    ['evalsha µs', scriptUs],
    ['commands, script calls included', all],
  ]);
}

export interface BackingStores {
  /** The MongoDB-protocol server: its name for the reports, its processes' CPU time. */
  mongo: MongoServerDescription;
  /** The bench's own client on Redis database 0, for INFO. */
  redis: Redis;
  /** redis-server's CPU time so far (undefined when its process is not found). */
  redisCpuTimeMs(): number | undefined;
  /** The servers' TCP ports on 127.0.0.1 (to tell a process's connections to each apart). */
  ports: { redis: number; mongo: number };
  /**
   * A MongoDB database (FerretDB keeps one SQLite file, or one PostgreSQL
   * schema, per database) and a Redis logical database of their own. Two
   * contextds on different MongoDB databases must not share a Redis database:
   * the flusher of one would move the other's turns into its own MongoDB
   * database (the dirty set is global). Resolves once contextd's collections
   * and indexes exist there (on PostgreSQL, their GIN indexes too).
   */
  pair(name: string, redisDb: number): Promise<StorePair>;
  /** Redis alone (contextd's standalone mode, no MongoDB) on a Redis logical database of its own. */
  redisAlone(redisDb: number): { storage: Record<string, unknown>; seed(conversation: string, messages: readonly StoredMessage[]): Promise<void> };
  /**
   * Takes Redis down for `downMs` and starts it again on the same port. `keepData`:
   * a graceful restart with its data (SHUTDOWN SAVE, then the same dir: as with
   * persistence on, which a deployment needs since unflushed turns wait in Redis);
   * else a crash of a Redis without persistence (SIGKILL; it comes back empty).
   */
  restartRedis(options: { keepData: boolean; downMs: number }): Promise<void>;
  /**
   * Crashes the MongoDB-protocol server (SIGKILL: mongod, or FerretDB, with
   * PostgreSQL left running under it), waits `downMs`, starts it again on its
   * data. Throws for MONGODB_URL's server.
   */
  restartMongo(options: { downMs: number }): Promise<void>;
  stop(): Promise<void>;
}

export interface BackingStoresOptions {
  /**
   * contextd's storage.mongodb.timeout; by default contextd's own (3 s). Earlier
   * runs raised it to 10 s for FerretDB, whose every query scans a whole collection.
   */
  mongoTimeout?: string;
  /** Which MongoDB-protocol server (--mongodb-server); by default mongod or MONGODB_URL, else FerretDB on PostgreSQL, else on SQLite. */
  mongodbServer?: MongodbServerChoice;
}

/** Starts both servers; throws with the reason (and scripts/install-services.sh as the fix) when one is missing. */
export async function startBackingStores(options: BackingStoresOptions = {}): Promise<BackingStores> {
  // From dist/, the support module looks for the FerretDB that install-services.sh builds under dist/.services; put the real place on PATH.
  process.env.PATH = `${join(REPO_ROOT, '.services', 'bin')}${delimiter}${process.env.PATH ?? ''}`;
  // Settled one by one: when one server fails to start, the other is stopped (else it outlives the bench and keeps it from exiting).
  const [redisStart, mongoStart] = await Promise.allSettled([startRedis(), startMongodbServer(options.mongodbServer, { startTimeoutMs: 60_000 })]);
  if (redisStart.status === 'rejected' || mongoStart.status === 'rejected') {
    await Promise.allSettled([redisStart.status === 'fulfilled' ? redisStart.value.stop() : undefined, mongoStart.status === 'fulfilled' ? mongoStart.value.stop() : undefined]);
    throw redisStart.status === 'rejected' ? redisStart.reason : (mongoStart as PromiseRejectedResult).reason;
  }
  const redisServer: RedisServer = redisStart.value;
  const mongoServer: BenchMongoServer = mongoStart.value;
  const servers = { redis: redisServer, mongo: mongoServer };
  const mongo = new MongoClient(mongoServer.url, { serverSelectionTimeoutMS: 10_000, socketTimeoutMS: 120_000 });
  const admin = new Redis(servers.redis.url, { maxRetriesPerRequest: 1 });
  // The load bench restarts Redis under these clients: a refused reconnect is expected there, not worth a stack trace.
  admin.on('error', () => undefined);
  const redisClients: Redis[] = [admin];
  const redisPort = new URL(redisServer.url).port;
  const mongoPort = new URL(mongoServer.url).port;

  const databases: string[] = [];
  const pair = async (name: string, redisDb: number): Promise<StorePair> => {
    const database = `${servers.mongo.database}_${name}`;
    databases.push(database);
    const redisUrl = `${servers.redis.url}/${redisDb}`;
    const redis = new Redis(redisUrl, { maxRetriesPerRequest: 1 });
    redis.on('error', () => undefined);
    redisClients.push(redis);
    const redisView = new RedisStore({ client: redis, ttlMs: REDIS_TTL_MS, maxCachedMessages: MAX_CACHED_MESSAGES, mode: 'cache' });
    const mongoStore = new MongoStore({ db: mongo.db(database) });
    // The collections exist before contextd's first query, and on PostgreSQL their tables get the GIN index before it too.
    await mongoStore.ensureIndexes();
    await mongoServer.prepareDatabase(database);
    return {
      storage: {
        redis: { url: redisUrl },
        mongodb: { url: servers.mongo.url, database, ...(options.mongoTimeout === undefined ? {} : { timeout: options.mongoTimeout }) },
      },
      seed: async (conversation, messages, { warm }) => {
        const key = keyOf(conversation);
        for (let i = 0; i < messages.length; i += SEED_CHUNK) {
          const result = await mongoStore.upsertAllocated(key, messages.slice(i, i + SEED_CHUNK));
          if (result.conflicts.length > 0) throw new Error(`seeding ${conversation}: ${result.conflicts.length} seqs already held other messages`);
        }
        const newest = messages.at(-1);
        if (warm && newest !== undefined) {
          await redisView.warm(key, { lastSeq: newest.seq, lastCum: newest.cumTokens ?? 0, summary: undefined, messages: messages.slice(-MAX_CACHED_MESSAGES) });
        }
      },
      isSettled: async (conversation) => {
        const [lastSeq, flushedSeq] = await redis.hmget(metaKey(conversation), 'lastSeq', 'flushedSeq');
        return lastSeq !== null && lastSeq === flushedSeq;
      },
      evict: async (conversation) => {
        await redisView.delete(keyOf(conversation));
      },
      dirtyCount: () => redis.zcard('contextd:dirty'),
      waitFlushed: async (timeoutMs = 60_000) => {
        const deadlineMs = Date.now() + timeoutMs;
        await delay(5); // the last reply's turn reaches Redis (and the dirty set) just after the reply
        while ((await redis.zcard('contextd:dirty')) > 0) {
          if (Date.now() > deadlineMs) throw new Error(`MongoDB ${database}: the flusher did not catch up within ${timeoutMs} ms`);
          await delay(2);
        }
      },
      unflushedUsers: async (conversation) => {
        const { messages } = await redisView.unflushed(keyOf(conversation));
        return messages.filter((m) => m.message.role === 'user').map((m) => (typeof m.message.content === 'string' ? m.message.content : JSON.stringify(m.message.content ?? null)));
      },
      storedMessages: async () => {
        const documents = await mongo
          .db(database)
          .collection('messages')
          .find({ tenant: BENCH_TENANT }, { projection: { _id: 0, conversation: 1, seq: 1, role: 1, messageJson: 1 } })
          .toArray();
        return documents.filter((d) => d.role !== 'summary').map((d) => ({ conversation: String(d.conversation), seq: Number(d.seq), role: String(d.role), messageJson: String(d.messageJson) }));
      },
      loadHot: async (conversation, limits) => (await redisView.load(keyOf(conversation), limits)).messages,
      loadDirect: async (conversation, limits) => (await mongoStore.load(keyOf(conversation), limits)).messages,
    };
  };

  const redisAlone = (redisDb: number): ReturnType<BackingStores['redisAlone']> => {
    const redisUrl = `${servers.redis.url}/${redisDb}`;
    const redis = new Redis(redisUrl, { maxRetriesPerRequest: 1 });
    redisClients.push(redis);
    const store = new RedisStore({ client: redis, ttlMs: REDIS_TTL_MS, maxCachedMessages: MAX_CACHED_MESSAGES, mode: 'standalone' });
    return {
      storage: { redis: { url: redisUrl } },
      // One append of the whole history: in standalone mode Redis allocates the seqs and keeps the newest MAX_CACHED_MESSAGES.
      seed: async (conversation, messages) => {
        await store.append(
          keyOf(conversation),
          messages.map(({ message, tokens, digest }) => ({ message, tokens, digest })),
        );
      },
    };
  };

  // redis-server rewrites its title to `redis-server 127.0.0.1:PORT`.
  const redisPid = findPid((command) => command.includes('redis-server') && (command.includes(`:${redisPort}`) || command.includes(`--port ${redisPort}`)));
  return {
    mongo: mongoServer,
    redis: admin,
    redisAlone,
    redisCpuTimeMs: () => cpuTimeMs(redisPid),
    pair,
    ports: { redis: Number(redisPort), mongo: Number(mongoPort) },
    restartRedis: async ({ keepData, downMs }) => {
      if (keepData) {
        // SHUTDOWN SAVE writes everything acknowledged so far to dump.rdb, which the restart loads from the same dir.
        // A client of its own that never reconnects or resends: SHUTDOWN must not reach the restarted server.
        const once = new Redis(servers.redis.url, { lazyConnect: true, maxRetriesPerRequest: 0, autoResendUnfulfilledCommands: false, retryStrategy: () => null });
        once.on('error', () => undefined);
        await once.connect();
        await once.call('SHUTDOWN', 'SAVE').catch(() => undefined);
        once.disconnect();
      } else {
        await servers.redis.kill();
      }
      await delay(downMs);
      await servers.redis.restart();
    },
    restartMongo: async ({ downMs }) => {
      if (!servers.mongo.canRestart) throw new Error(`${servers.mongo.label} is not ours to restart`);
      await servers.mongo.kill();
      await delay(downMs);
      await servers.mongo.restart();
    },
    stop: async () => {
      for (const client of redisClients) client.disconnect();
      // A server at MONGODB_URL is not ours: leave it as we found it. (Ours is removed with its temp dir.)
      if (servers.mongo.kind === 'external') await Promise.allSettled(databases.map((database) => mongo.db(database).dropDatabase()));
      await mongo.close();
      await Promise.allSettled([servers.redis.stop(), servers.mongo.stop()]);
    },
  };
}

/** RedisStore's meta key of a conversation (ids here need no escaping: no '%', '{', '}', and no ':' in the tenant). */
function metaKey(conversation: string): string {
  return `contextd:{${BENCH_TENANT}:${conversation}}:meta`;
}

/** Waits until contextd has warmed Redis with the conversation and flushed its last turn. */
export async function waitSettled(stores: StorePair, conversation: string, timeoutMs = 60_000): Promise<void> {
  const deadlineMs = Date.now() + timeoutMs;
  while (!(await stores.isSettled(conversation))) {
    if (Date.now() > deadlineMs) throw new Error(`${conversation}: not warmed and flushed within ${timeoutMs} ms`);
    await delay(5);
  }
}
