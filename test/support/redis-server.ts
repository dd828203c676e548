// Real Redis servers for the tests: Debian's redis-server on 127.0.0.1, on a free
// port, with no persistence, and a local Redis Cluster built with redis-cli.

import { execFile } from 'node:child_process';
import { mkdirSync, mkdtempSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { waitFor } from './wait-for.js';
import { freePort, removeDir, startOnFreePort, startService, trackDir, type ServiceProcess } from './services.js';

export interface RedisServer {
  /** `redis://127.0.0.1:PORT` */
  url: string;
  port: number;
  /** SIGTERM (nothing is saved: persistence is off), then the temp dir is removed. */
  stop(): Promise<void>;
  /** SIGKILL, as a crash; restart() brings it back. */
  kill(): Promise<void>;
  /** Stops it if it runs and starts it again on the same port, empty. */
  restart(): Promise<void>;
  flushAll(): Promise<void>;
  /** What redis-server printed, for failure messages. */
  output(): string;
}

export interface StartRedisOptions {
  /** A fixed port; by default a free one is picked. */
  port?: number;
  startTimeoutMs?: number;
}

const DEFAULT_START_TIMEOUT_MS = 10_000;
// A Redis answers in well under a millisecond; a probe that waits longer is talking to something else.
const COMMAND_TIMEOUT_MS = 1_000;

export async function startRedis(options: StartRedisOptions = {}): Promise<RedisServer> {
  const startTimeoutMs = options.startTimeoutMs ?? DEFAULT_START_TIMEOUT_MS;
  const dir = mkdtempSync(join(tmpdir(), 'contextd-redis-'));
  trackDir(dir);
  const launch = (port: number): Promise<ServiceProcess> =>
    startService({
      name: `redis-server on port ${port}`,
      command: 'redis-server',
      args: redisArgs(port, dir),
      isReady: () => answersPing(port),
      timeoutMs: startTimeoutMs,
    });

  let port = 0;
  let isStopped = false;
  let service = await startOnFreePort(
    (candidate) => launch((port = candidate)),
    options.port === undefined ? freePort : () => Promise.resolve(options.port as number),
    startTimeoutMs,
  ).catch((error: unknown) => {
    removeDir(dir);
    throw error;
  });

  return {
    url: `redis://127.0.0.1:${port}`,
    port,
    stop: async () => {
      isStopped = true;
      await service.stop('SIGTERM');
      removeDir(dir);
    },
    kill: async () => {
      await service.stop('SIGKILL');
    },
    restart: async () => {
      if (isStopped) throw new Error('restart() after stop(): this Redis is gone');
      await service.stop('SIGTERM');
      service = await startOnFreePort(launch, () => Promise.resolve(port), startTimeoutMs);
    },
    flushAll: async () => {
      await redisCommand(port, ['FLUSHALL']);
    },
    output: () => service.output(),
  };
}

export interface RedisClusterNode {
  host: string;
  port: number;
}

export interface RedisCluster {
  nodes: RedisClusterNode[];
  /** `redis+cluster://127.0.0.1:P1,127.0.0.1:P2,...`: the seed list, as contextd's config takes it. */
  url: string;
  stop(): Promise<void>;
  output(): string;
}

export interface StartRedisClusterOptions {
  masters?: number;
  /** For the whole cluster: nodes, `redis-cli --cluster create`, and every node reporting cluster_state:ok. */
  timeoutMs?: number;
}

/** Masters only, no replicas. Needs Redis 7 (`--cluster-port` keeps the bus ports free-picked too). */
export async function startRedisCluster({ masters = 3, timeoutMs = 30_000 }: StartRedisClusterOptions = {}): Promise<RedisCluster> {
  const deadlineMs = performance.now() + timeoutMs;
  const remainingMs = (): number => Math.max(1, Math.ceil(deadlineMs - performance.now()));
  const dir = mkdtempSync(join(tmpdir(), 'contextd-redis-cluster-'));
  trackDir(dir);
  const services: ServiceProcess[] = [];
  const nodes: RedisClusterNode[] = [];
  let createOutput = '';
  const output = (): string =>
    [...services.map((service, i) => `--- node ${nodes[i]?.port ?? '?'} ---\n${service.output()}`), `--- redis-cli ---\n${createOutput}`].join('\n');
  const stop = async (): Promise<void> => {
    await Promise.all(services.map((service) => service.stop('SIGTERM')));
    removeDir(dir);
  };

  try {
    for (let i = 0; i < masters; i++) {
      const nodeDir = join(dir, `node-${i}`);
      mkdirSync(nodeDir);
      const service = await startOnFreePort(
        async (port) => {
          const busPort = await freePort();
          const started = await startService({
            name: `redis-server cluster node on port ${port}`,
            command: 'redis-server',
            args: [
              ...redisArgs(port, nodeDir),
              ...['--cluster-enabled', 'yes', '--cluster-config-file', join(nodeDir, 'nodes.conf'), '--cluster-port', String(busPort)],
              ...['--cluster-node-timeout', '5000'],
            ],
            isReady: () => answersPing(port),
            timeoutMs: remainingMs(),
          });
          nodes.push({ host: '127.0.0.1', port });
          return started;
        },
        freePort,
        remainingMs(),
      );
      services.push(service);
    }

    createOutput = await runRedisCli(
      ['--cluster', 'create', ...nodes.map(({ host, port }) => `${host}:${port}`), '--cluster-replicas', '0', '--cluster-yes'],
      remainingMs(),
    );
    await waitFor(
      async () => {
        const infos = await Promise.all(nodes.map(({ port }) => redisCommand(port, ['CLUSTER', 'INFO'])));
        return infos.every((info) => typeof info === 'string' && info.includes('cluster_state:ok'));
      },
      { timeoutMs: remainingMs(), intervalMs: 50, message: 'cluster_state:ok on every node' },
    );
  } catch (error) {
    const text = output();
    await stop();
    throw new Error(`Redis Cluster of ${masters} masters did not start within ${timeoutMs} ms: ${String(error)}\n${text}`, { cause: error });
  }

  return {
    nodes,
    url: `redis+cluster://${nodes.map(({ host, port }) => `${host}:${port}`).join(',')}`,
    stop,
    output,
  };
}

function redisArgs(port: number, dir: string): string[] {
  // Loopback only, nothing written to disk; the log goes to stdout, where the harness keeps it.
  return ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', dir, '--logfile', ''];
}

async function answersPing(port: number): Promise<boolean> {
  return (await redisCommand(port, ['PING'])) === 'PONG';
}

/**
 * One command on a fresh socket, destroyed when done or after COMMAND_TIMEOUT_MS.
 * A raw socket rather than ioredis: while a server starts, the port may still
 * belong to something else that never answers, and the probe must not linger there.
 * Replies: simple string, error (rejects), integer, bulk string; enough for PING, FLUSHALL, CLUSTER INFO.
 */
function redisCommand(port: number, args: readonly string[]): Promise<unknown> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host: '127.0.0.1', port });
    let received = Buffer.alloc(0);
    const finish = (error: Error | undefined, value?: unknown): void => {
      clearTimeout(timer);
      socket.destroy();
      if (error) reject(error);
      else resolve(value);
    };
    const timer = setTimeout(() => finish(new Error(`no reply to ${args.join(' ')} within ${COMMAND_TIMEOUT_MS} ms`)), COMMAND_TIMEOUT_MS);
    socket.once('error', (error) => finish(error));
    socket.once('close', () => finish(new Error(`connection closed before the reply to ${args.join(' ')}`)));
    socket.on('data', (chunk: Buffer) => {
      received = Buffer.concat([received, chunk]);
      try {
        const reply = parseReply(received);
        if (reply !== undefined) finish(undefined, reply.value);
      } catch (error) {
        finish(error as Error);
      }
    });
    socket.write(`*${args.length}\r\n${args.map((arg) => `$${Buffer.byteLength(arg)}\r\n${arg}\r\n`).join('')}`);
  });
}

/** undefined while the reply is incomplete. */
function parseReply(buffer: Buffer): { value: string | number | null } | undefined {
  const lineEnd = buffer.indexOf('\r\n');
  if (lineEnd < 0) return undefined;
  const line = buffer.toString('utf8', 1, lineEnd);
  switch (String.fromCharCode(buffer[0] ?? 0)) {
    case '+':
      return { value: line };
    case '-':
      throw new Error(`redis: ${line}`);
    case ':':
      return { value: Number(line) };
    case '$': {
      const length = Number(line);
      if (length < 0) return { value: null };
      const start = lineEnd + 2;
      return buffer.length >= start + length + 2 ? { value: buffer.toString('utf8', start, start + length) } : undefined;
    }
    default:
      throw new Error(`unexpected reply: ${JSON.stringify(buffer.toString('utf8', 0, 80))}`);
  }
}

function runRedisCli(args: readonly string[], timeoutMs: number): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile('redis-cli', args, { timeout: timeoutMs, killSignal: 'SIGKILL' }, (error, stdout, stderr) => {
      const text = `${stdout}${stderr}`;
      if (error) reject(new Error(`redis-cli ${args.join(' ')} failed: ${error.message}\n${text}`));
      else resolve(text);
    });
  });
}
