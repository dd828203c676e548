import { createServer, type Server, type Socket } from 'node:net';
import { Cluster, Redis } from 'ioredis';
import { MongoClient } from 'mongodb';
import { afterAll, beforeAll, expect, test } from 'vitest';
import { startMongo, type MongoServer } from './mongo-server.js';
import { startRedis, startRedisCluster, type RedisCluster, type RedisServer } from './redis-server.js';
import { describeWithMongo, describeWithRedis, describeWithRedisCluster, isListening, requireRestartable, ServiceStartError } from './services.js';

function connectRedis(port: number): Redis {
  // No retries: a test that expects a dead server should see the failure, not a reconnect loop.
  const client = new Redis({ host: '127.0.0.1', port, maxRetriesPerRequest: 0, retryStrategy: () => null, lazyConnect: true });
  client.on('error', () => undefined);
  return client;
}

async function withRedis<T>(port: number, use: (client: Redis) => Promise<T>): Promise<T> {
  const client = connectRedis(port);
  try {
    await client.connect();
    return await use(client);
  } finally {
    client.disconnect();
  }
}

describeWithRedis('startRedis', () => {
  let redis: RedisServer;

  beforeAll(async () => {
    redis = await startRedis();
  });

  afterAll(async () => {
    await redis?.stop();
  });

  test('answers on 127.0.0.1 at the port in its url, with persistence off', async () => {
    expect(redis.url).toBe(`redis://127.0.0.1:${redis.port}`);
    await withRedis(redis.port, async (client) => {
      await client.set('greeting', 'hello');
      expect(await client.get('greeting')).toBe('hello');
      expect(await client.config('GET', 'save')).toEqual(['save', '']);
      expect(await client.config('GET', 'appendonly')).toEqual(['appendonly', 'no']);
      expect(await client.config('GET', 'bind')).toEqual(['bind', '127.0.0.1']);
    });
  });

  test('flushAll empties it', async () => {
    await withRedis(redis.port, (client) => client.set('doomed', '1'));
    await redis.flushAll();
    expect(await withRedis(redis.port, (client) => client.dbsize())).toBe(0);
  });

  test('kill takes it down; restart brings it back on the same port, empty', async () => {
    await withRedis(redis.port, (client) => client.set('before-crash', '1'));
    const port = redis.port;

    await redis.kill();
    expect(await isListening(port)).toBe(false);
    await expect(withRedis(port, (client) => client.ping())).rejects.toThrow();

    await redis.restart();
    await withRedis(port, async (client) => {
      expect(await client.ping()).toBe('PONG');
      expect(await client.get('before-crash')).toBeNull();
    });
  });

  test('restart of a running server also empties it', async () => {
    await withRedis(redis.port, (client) => client.set('k', 'v'));
    await redis.restart();
    expect(await withRedis(redis.port, (client) => client.dbsize())).toBe(0);
  });

  test('stop ends it', async () => {
    const other = await startRedis();
    expect(other.port).not.toBe(redis.port);
    await other.stop();
    expect(await isListening(other.port)).toBe(false);
  });

  test('a fixed port that stays taken fails with what redis-server said', async () => {
    // Something else on the port that reads and never answers, as a foreign server would.
    const accepted = new Set<Socket>();
    const blocker: Server = createServer((socket) => accepted.add(socket.resume()));
    await new Promise<void>((resolve) => blocker.listen(0, '127.0.0.1', resolve));
    const address = blocker.address();
    if (address === null || typeof address === 'string') throw new Error('no port');
    try {
      // Each redis-server fails within milliseconds; the port is retried until this short deadline.
      const error: unknown = await startRedis({ port: address.port, startTimeoutMs: 300 }).then(
        () => undefined,
        (caught: unknown) => caught,
      );
      expect(error).toBeInstanceOf(ServiceStartError);
      expect((error as ServiceStartError).isAddressInUse).toBe(true);
      expect((error as Error).message).toMatch(/address already in use/i);
    } finally {
      // Readiness probes left waiting for a PONG would otherwise hold close() until their own timeout.
      for (const socket of accepted) socket.destroy();
      await new Promise((resolve) => blocker.close(resolve));
    }
  });
});

describeWithRedisCluster('startRedisCluster', () => {
  let cluster: RedisCluster;

  beforeAll(async () => {
    cluster = await startRedisCluster({ masters: 3 });
  });

  afterAll(async () => {
    await cluster?.stop();
  });

  test('three masters share the slots; ioredis Cluster reads and writes across them', async () => {
    expect(cluster.nodes).toHaveLength(3);
    expect(cluster.url).toBe(`redis+cluster://${cluster.nodes.map((node) => `${node.host}:${node.port}`).join(',')}`);

    const client = new Cluster(cluster.nodes, { clusterRetryStrategy: () => null });
    client.on('error', () => undefined);
    try {
      // Hash tags as contextd uses them: each conversation's keys on one slot, conversations spread over slots.
      const keys = Array.from({ length: 30 }, (_, i) => `{tenant:conversation-${i}}:meta`);
      for (const [i, key] of keys.entries()) await client.set(key, `value-${i}`);
      for (const [i, key] of keys.entries()) expect(await client.get(key)).toBe(`value-${i}`);
    } finally {
      client.disconnect();
    }

    const keysPerNode = await Promise.all(cluster.nodes.map((node) => withRedis(node.port, (direct) => direct.dbsize())));
    expect(keysPerNode.reduce((sum, n) => sum + n, 0)).toBe(30);
    expect(keysPerNode.every((n) => n > 0)).toBe(true);
  });

  test('stop ends every node', async () => {
    const other = await startRedisCluster({ masters: 3 });
    await other.stop();
    const listening = await Promise.all(other.nodes.map((node) => isListening(node.port)));
    expect(listening).toEqual([false, false, false]);
  });
});

describeWithMongo('startMongo', () => {
  let mongo: MongoServer;

  beforeAll(async () => {
    mongo = await startMongo();
  });

  afterAll(async () => {
    await mongo?.stop();
  });

  async function withMongo<T>(use: (client: MongoClient) => Promise<T>): Promise<T> {
    const client = new MongoClient(mongo.url, { serverSelectionTimeoutMS: 5_000 });
    try {
      return await use(client);
    } finally {
      await client.close();
    }
  }

  test('stores and finds a document in its own database', async () => {
    expect(mongo.database).toMatch(/^contextd_test_/);
    const other = await startMongo();
    try {
      expect(other.database).not.toBe(mongo.database);
    } finally {
      await other.stop();
    }

    await withMongo(async (client) => {
      const messages = client.db(mongo.database).collection('messages');
      await messages.insertOne({ conversation: 'c1', seq: 1, content: 'hello' });
      expect(await messages.findOne({ conversation: 'c1' }, { projection: { _id: 0 } })).toEqual({ conversation: 'c1', seq: 1, content: 'hello' });
    });
  });

  test('kill takes it down; restart brings it back on the same port with the same data', async (context) => {
    requireRestartable(mongo, context);
    const durable = (client: MongoClient) => client.db(mongo.database).collection<{ _id: string; n: number }>('durable');
    // j: true so that a mongod has the write in its journal before the SIGKILL.
    await withMongo((client) => durable(client).insertOne({ _id: 'kept', n: 1 }, { writeConcern: { w: 1, j: true } }));
    const url = mongo.url;

    await mongo.kill();
    expect(await isListening(Number(new URL(url).port))).toBe(false);

    await mongo.restart();
    expect(mongo.url).toBe(url);
    expect(await withMongo((client) => durable(client).findOne({}))).toEqual({ _id: 'kept', n: 1 });
  });
});
