// The MongoDB-protocol server under the benches' Redis + MongoDB half
// (`--mongodb-server`, issue 16): which one, how it is started, crashed and
// restarted, where its CPU time is read, and the name every report line gives it.
//
//   mongod  mongod on PATH, or the server at MONGODB_URL (test/support/mongo-server.ts)
//   pg      FerretDB v1 on PostgreSQL, GIN-indexed (bench/postgres-ferretdb.ts)
//   sqlite  FerretDB v1 on SQLite, which reads a whole collection for every query (test/support/mongo-server.ts)
//
// The default keeps what the benches did before: mongod when MONGODB_URL is set
// or mongod is on PATH; else pg when PostgreSQL's binaries are found; else sqlite.

import { randomBytes } from 'node:crypto';
import { spawnSync } from 'node:child_process';
import { MongoClient } from 'mongodb';
import { startMongo, type MongoServer } from '../test/support/mongo-server.js';
import { findFerretdb, findMongo, type MongoSource } from '../test/support/services.js';
import { ferretdbVersion, findPostgres, startPostgresFerretdb } from './postgres-ferretdb.js';
import { cpuTimeMs, findPid } from './processes.js';

export const MONGODB_SERVERS = ['mongod', 'pg', 'sqlite'] as const;
export type MongodbServerChoice = (typeof MONGODB_SERVERS)[number];

const INSTALL_HINT = 'scripts/install-services.sh installs FerretDB; `scripts/install-services.sh --bench` (or apt-get install postgresql) adds PostgreSQL';

/** The flag's value, checked (undefined: the default). */
export function parseMongodbServer(value: string | undefined): MongodbServerChoice | undefined {
  if (value === undefined || (MONGODB_SERVERS as readonly string[]).includes(value)) return value as MongodbServerChoice | undefined;
  throw new Error(`--mongodb-server must be ${MONGODB_SERVERS.join(', ')}, got ${value}`);
}

/** A program the server runs as, for its CPU time. */
export interface ServerProcess {
  name: string;
  cpuTimeMs(): number | undefined;
}

/** What the reports need to know of the server. */
export interface MongoServerDescription {
  /** `external`: the server at MONGODB_URL (chosen as `mongod`). */
  kind: 'mongod' | 'external' | 'pg' | 'sqlite';
  /** Its name in every report line: "FerretDB 1.24.2 on PostgreSQL 15.18 (GIN index on conversation, …)", "FerretDB 1.24.2 on SQLite", "mongod 7.0.5". */
  label: string;
  /** FerretDB on SQLite reads a whole collection for every query: a new conversation's first read costs a scan of everything stored. */
  scansCollections: boolean;
  /** Its programs (FerretDB and PostgreSQL on pg), each with its CPU time; none for MONGODB_URL's. */
  processes: readonly ServerProcess[];
  /** What a crash kills, for the fault timeline. */
  crashes: string;
}

/** The CPU time of all its processes so far (undefined when one cannot be read, or it has none). */
export function serverCpuTimeMs(server: MongoServerDescription): number | undefined {
  if (server.processes.length === 0) return undefined;
  let total = 0;
  for (const program of server.processes) {
    const ms = program.cpuTimeMs();
    if (ms === undefined) return undefined;
    total += ms;
  }
  return total;
}

export interface BenchMongoServer extends MongoServerDescription {
  /** `mongodb://127.0.0.1:PORT/`, or MONGODB_URL. */
  url: string;
  /** A database name unique to this run; each contextd's database adds a suffix. */
  database: string;
  /** False for MONGODB_URL's server: not ours to crash. */
  canRestart: boolean;
  /** Called once contextd's collections exist in `database`: on pg, their GIN indexes. */
  prepareDatabase(database: string): Promise<void>;
  /** SIGKILL, as a crash; the data stays for restart(). */
  kill(): Promise<void>;
  restart(): Promise<void>;
  stop(): Promise<void>;
}

export async function startMongodbServer(choice: MongodbServerChoice | undefined, { startTimeoutMs }: { startTimeoutMs: number }): Promise<BenchMongoServer> {
  const chosen = choice ?? defaultChoice();
  if (chosen === 'pg') return startOnPostgres(startTimeoutMs);
  const source = chosen === 'mongod' ? mongodSource() : ferretdbSource();
  const server = await startMongo({ startTimeoutMs, source });
  return fromTestSupport(server, source, await labelOf(source, server.url));
}

function defaultChoice(): MongodbServerChoice {
  if (findMongo()?.kind !== 'ferretdb') return 'mongod'; // MONGODB_URL, mongod on PATH (or nothing: mongod's error says what is missing)
  return findPostgres() === undefined ? 'sqlite' : 'pg';
}

function mongodSource(): MongoSource {
  const source = findMongo();
  if (source === undefined || source.kind === 'ferretdb') throw new Error('--mongodb-server mongod: MONGODB_URL is unset and mongod is not on PATH');
  return source;
}

function ferretdbSource(): MongoSource & { kind: 'ferretdb' } {
  const path = findFerretdb();
  if (path === undefined) throw new Error(`no MongoDB: no working ferretdb (.services/bin, PATH, ~/go/bin) and no mongod or MONGODB_URL; ${INSTALL_HINT}`);
  return { kind: 'ferretdb', path };
}

async function startOnPostgres(startTimeoutMs: number): Promise<BenchMongoServer> {
  const postgres = findPostgres();
  if (postgres === undefined) throw new Error(`--mongodb-server pg: no PostgreSQL binaries (postgres, initdb, psql) on PATH or in /usr/lib/postgresql/N/bin; ${INSTALL_HINT}`);
  const server = await startPostgresFerretdb({ ferretdb: ferretdbSource().path, postgres, startTimeoutMs });
  return {
    kind: 'pg',
    label: server.label,
    scansCollections: false,
    processes: [
      { name: 'ferretdb', cpuTimeMs: server.ferretdbCpuTimeMs },
      { name: 'postgres', cpuTimeMs: server.postgresCpuTimeMs },
    ],
    crashes: 'FerretDB killed (SIGKILL; PostgreSQL, which holds the data, keeps running)',
    url: server.url,
    // PostgreSQL caps identifiers (FerretDB's schema names) at 63 bytes.
    database: `contextd_bench_${process.pid}_${randomBytes(3).toString('hex')}`,
    canRestart: true,
    prepareDatabase: server.indexDatabase,
    kill: server.kill,
    restart: server.restart,
    stop: server.stop,
  };
}

function fromTestSupport(server: MongoServer, source: MongoSource, label: string): BenchMongoServer {
  const port = new URL(server.url).port;
  const name = source.kind === 'ferretdb' ? 'ferretdb' : 'mongod';
  // The support module does not hand out its pid; found again after each restart.
  const findServerPid = (): number | undefined => (source.kind === 'external' ? undefined : findPid((command) => command.includes(`--listen-addr=127.0.0.1:${port}`) || (command.includes('mongod') && command.includes(`--port ${port}`))));
  let pid = findServerPid();
  return {
    kind: source.kind === 'ferretdb' ? 'sqlite' : source.kind,
    label,
    scansCollections: source.kind === 'ferretdb',
    processes: source.kind === 'external' ? [] : [{ name, cpuTimeMs: () => cpuTimeMs(pid) }],
    crashes: source.kind === 'ferretdb' ? 'FerretDB killed (SIGKILL; its SQLite files kept)' : `${name} killed (SIGKILL)`,
    url: server.url,
    database: server.database,
    canRestart: server.canRestart,
    prepareDatabase: () => Promise.resolve(),
    kill: server.kill,
    restart: async () => {
      await server.restart();
      pid = findServerPid();
    },
    stop: server.stop,
  };
}

async function labelOf(source: MongoSource, url: string): Promise<string> {
  if (source.kind === 'ferretdb') return `FerretDB ${ferretdbVersion(source.path)} on SQLite`;
  if (source.kind === 'mongod') {
    const version = /db version v?(\S+)/.exec(spawnSync(source.path, ['--version'], { encoding: 'utf8', timeout: 10_000 }).stdout ?? '')?.[1];
    return `mongod ${version ?? '(version unknown)'}`;
  }
  // MONGODB_URL's: whatever buildInfo says (FerretDB adds its own version to it).
  const client = new MongoClient(url, { serverSelectionTimeoutMS: 5_000 });
  try {
    const info = await client.db('admin').command({ buildInfo: 1 });
    return typeof info.ferretdbVersion === 'string' ? `FerretDB ${info.ferretdbVersion} at MONGODB_URL` : `MongoDB ${String(info.version)} at MONGODB_URL`;
  } catch {
    return 'the MongoDB at MONGODB_URL';
  } finally {
    await client.close();
  }
}
