// A MongoDB for the tests: the server at MONGODB_URL when set, else a mongod on
// PATH, else FerretDB v1 (a MongoDB-wire-protocol server) on SQLite in a temp dir.
// Every call gets its own database name, so suites can share a server.

import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { MongoClient } from 'mongodb';
import { findMongo, freePort, isListening, removeDir, startOnFreePort, startService, trackDir, type MongoSource, type ServiceProcess } from './services.js';

export type MongoKind = 'mongod' | 'ferretdb' | 'external';

export interface MongoServer {
  /** `mongodb://127.0.0.1:PORT/`, or MONGODB_URL. */
  url: string;
  /** Unique to this call; use it rather than the default database. */
  database: string;
  kind: MongoKind;
  /** False for MONGODB_URL: that server is not ours to kill. */
  canRestart: boolean;
  /** SIGKILL, as a crash; the data dir is kept for restart(). */
  kill(): Promise<void>;
  /** Stops it if it runs and starts it again on the same port with the same data. */
  restart(): Promise<void>;
  /** Stops it and removes its data (for MONGODB_URL: drops `database`). */
  stop(): Promise<void>;
  /** What the server printed, for failure messages. */
  output(): string;
}

export interface StartMongoOptions {
  startTimeoutMs?: number;
  /** The server to use instead of findMongo()'s choice (the benches' --mongodb-server). */
  source?: MongoSource;
}

const DEFAULT_START_TIMEOUT_MS = 20_000;
const PING_TIMEOUT_MS = 2_000;
let databaseCount = 0;

export async function startMongo(options: StartMongoOptions = {}): Promise<MongoServer> {
  const source = options.source ?? findMongo();
  if (source === undefined) {
    throw new Error('no MongoDB: MONGODB_URL is unset, mongod is not on PATH, and no working ferretdb; run scripts/install-services.sh');
  }
  // Short and unique across workers and runs (MongoDB caps database names at 63 bytes).
  const database = `contextd_test_${process.pid}_${++databaseCount}_${randomBytes(3).toString('hex')}`;
  if (source.kind === 'external') return externalMongo(source.url, database);

  const startTimeoutMs = options.startTimeoutMs ?? DEFAULT_START_TIMEOUT_MS;
  const dir = mkdtempSync(join(tmpdir(), `contextd-${source.kind}-`));
  trackDir(dir);
  const args = source.kind === 'mongod' ? mongodArgs : ferretdbArgs;
  const launch = (port: number): Promise<ServiceProcess> =>
    startService({
      name: `${source.kind} on port ${port}`,
      command: source.path,
      args: args(port, dir),
      cwd: dir,
      isReady: () => answersPing(port),
      timeoutMs: startTimeoutMs,
    });

  let port = 0;
  let isStopped = false;
  let service = await startOnFreePort((candidate) => launch((port = candidate)), freePort, startTimeoutMs).catch((error: unknown) => {
    removeDir(dir);
    throw error;
  });

  return {
    url: `mongodb://127.0.0.1:${port}/`,
    database,
    kind: source.kind,
    canRestart: true,
    kill: async () => {
      await service.stop('SIGKILL');
    },
    restart: async () => {
      if (isStopped) throw new Error('restart() after stop(): its data is gone');
      await service.stop('SIGTERM');
      service = await startOnFreePort(launch, () => Promise.resolve(port), startTimeoutMs);
    },
    stop: async () => {
      isStopped = true;
      await service.stop('SIGTERM');
      removeDir(dir);
    },
    output: () => service.output(),
  };
}

function mongodArgs(port: number, dir: string): string[] {
  const dataDir = join(dir, 'data');
  mkdirSync(dataDir, { recursive: true });
  return [
    ...['--port', String(port), '--bind_ip', '127.0.0.1', '--dbpath', dataDir, '--nounixsocket'],
    // Several mongods may run side by side on a small CI machine; the default cache takes half its memory.
    ...['--wiredTigerCacheSizeGB', '0.25'],
  ];
}

function ferretdbArgs(port: number, dir: string): string[] {
  const dataDir = join(dir, 'data');
  const stateDir = join(dir, 'state');
  mkdirSync(dataDir, { recursive: true });
  mkdirSync(stateDir, { recursive: true });
  return [
    '--handler=sqlite',
    // A directory URI: FerretDB keeps one SQLite file per database in it; the trailing slash is required.
    `--sqlite-url=file:${dataDir}/`,
    `--listen-addr=127.0.0.1:${port}`,
    // Its default state dir is the cwd and its debug HTTP server takes the fixed port 8088; neither suits parallel tests.
    `--state-dir=${stateDir}`,
    '--debug-addr=-',
    '--telemetry=disable',
    '--log-level=warn',
  ];
}

async function answersPing(port: number): Promise<boolean> {
  // The TCP probe is cheap; the driver, once its first connection fails, waits ~500 ms before it tries again.
  if (!(await isListening(port))) return false;
  const client = new MongoClient(`mongodb://127.0.0.1:${port}/`, {
    directConnection: true,
    serverSelectionTimeoutMS: PING_TIMEOUT_MS,
    connectTimeoutMS: PING_TIMEOUT_MS,
  });
  try {
    const reply = await client.db('admin').command({ ping: 1 });
    return reply.ok === 1;
  } finally {
    await client.close();
  }
}

function externalMongo(url: string, database: string): MongoServer {
  const unsupported = (what: string) => () => Promise.reject(new Error(`${what}() is not supported for the server at MONGODB_URL (canRestart: false)`));
  return {
    url,
    database,
    kind: 'external',
    canRestart: false,
    kill: unsupported('kill'),
    restart: unsupported('restart'),
    stop: async () => {
      const client = new MongoClient(url, { serverSelectionTimeoutMS: 5_000 });
      try {
        await client.db(database).dropDatabase();
      } finally {
        await client.close();
      }
    },
    output: () => '',
  };
}
