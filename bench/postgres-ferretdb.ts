// FerretDB v1 on PostgreSQL, for the benches' MongoDB (issue 16). FerretDB on
// SQLite reads a whole collection for every query, so under bench:load's 20,000
// turns each query took seconds and the flusher fell behind. On PostgreSQL,
// FerretDB pushes `{ field: value }` down as `_jsonb->$1 @> $2`: with a GIN index
// on `(_jsonb->'conversation')` in each of contextd's tables, and custom plans
// (a generic plan keeps the key a parameter, which no index expression matches),
// a 10-message cold load among 30,000 messages takes ≈3 ms instead of ≈2 s.
//
// PostgreSQL refuses to run as root, so under root it runs as the `postgres`
// user (which `apt-get install postgresql` creates) in a temp dir it owns: its
// data dir and its unix socket there, TCP on a free loopback port. FerretDB runs
// as the bench's own user, from the test support's service runner.

import { spawn, spawnSync, execFile, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { accessSync, chownSync, constants, mkdtempSync, readFileSync, readdirSync, realpathSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { promisify } from 'node:util';
import { MongoClient } from 'mongodb';
import { findOnPath, freePort, isListening, removeDir, startOnFreePort, startService, trackDir, type ServiceProcess } from '../test/support/services.js';
import { cpuTimeMs } from './processes.js';

const run = promisify(execFile);

/** The PostgreSQL binaries of one installation, and its version ("15.18"). */
export interface PostgresInstall {
  binDir: string;
  version: string;
}

const REQUIRED_BINARIES = ['postgres', 'initdb', 'psql'] as const;
const SUPERUSER = 'postgres';
const DATABASE = 'ferretdb';
const STOP_TIMEOUT_MS = 10_000;
/** Reaped children's CPU in /proc/<pid>/stat is in clock ticks, 100 a second on Linux. */
const CLOCK_TICKS_PER_S = 100;
/** contextd's collections, and the field every one of its queries filters on. */
const INDEXED_FIELD = 'conversation';
/** Named in every report line that names the server. */
/** FerretDB's PostgreSQL pool: twice two contextds' MongoDB pools (50 each; the --baseline build is the second). */
const FERRETDB_POOL = 200;

export const POSTGRES_TUNING = `GIN index on ${INDEXED_FIELD}, plan_cache_mode=force_custom_plan, FerretDB pool_max_conns=${FERRETDB_POOL}`;

/**
 * PostgreSQL's binaries: the directory `postgres` on PATH links into (Debian's
 * /usr/local/bin links, or a source build), else the newest
 * /usr/lib/postgresql/N/bin (Debian's `apt-get install postgresql`, which puts
 * only psql on PATH). A directory counts when it has postgres, initdb and psql.
 */
export function findPostgres(): PostgresInstall | undefined {
  const candidates: string[] = [];
  for (const name of REQUIRED_BINARIES) {
    const onPath = findOnPath(name);
    if (onPath !== undefined) candidates.push(dirname(realpathSync(onPath)));
  }
  const debian = '/usr/lib/postgresql';
  try {
    const versions = readdirSync(debian).filter((name) => /^\d+$/.test(name)).sort((a, b) => Number(b) - Number(a));
    candidates.push(...versions.map((version) => join(debian, version, 'bin')));
  } catch {
    // No Debian layout.
  }
  for (const binDir of new Set(candidates)) {
    if (!REQUIRED_BINARIES.every((name) => isExecutable(join(binDir, name)))) continue;
    const version = /\(PostgreSQL\) (\S+)/.exec(spawnSync(join(binDir, 'postgres'), ['--version'], { encoding: 'utf8', timeout: 10_000 }).stdout ?? '')?.[1];
    if (version !== undefined) return { binDir, version };
  }
  return undefined;
}

function isExecutable(path: string): boolean {
  try {
    accessSync(path, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

/** FerretDB's version ("1.24.2"), from `ferretdb --version`. */
export function ferretdbVersion(ferretdb: string): string {
  const output = spawnSync(ferretdb, ['--version'], { encoding: 'utf8', timeout: 10_000 }).stdout ?? '';
  return /version: v?(\S+)/.exec(output)?.[1] ?? 'v1 (version unknown)';
}

export interface PostgresFerretdb {
  /** FerretDB's `mongodb://127.0.0.1:PORT/`. */
  url: string;
  /** "FerretDB 1.24.2 on PostgreSQL 15.18 (GIN index on conversation, plan_cache_mode=force_custom_plan)". */
  label: string;
  /** CPU time so far: FerretDB's process, and PostgreSQL's (the postmaster, its live processes and those it reaped). */
  ferretdbCpuTimeMs(): number | undefined;
  postgresCpuTimeMs(): number | undefined;
  /** Once contextd's collections exist in `database` (MongoStore.ensureIndexes): a GIN index on conversation in each of its tables. */
  indexDatabase(database: string): Promise<void>;
  /** SIGKILLs FerretDB, the MongoDB-protocol server; PostgreSQL keeps running with the data. */
  kill(): Promise<void>;
  /** Starts FerretDB again on the same port, on the same PostgreSQL. */
  restart(): Promise<void>;
  /** Stops both and removes the temp dir. */
  stop(): Promise<void>;
  output(): string;
}

export interface StartPostgresFerretdbOptions {
  ferretdb: string;
  postgres: PostgresInstall;
  startTimeoutMs: number;
}

export async function startPostgresFerretdb(options: StartPostgresFerretdbOptions): Promise<PostgresFerretdb> {
  const owner = postgresOwner();
  const dir = mkdtempSync(join(tmpdir(), 'contextd-postgres-'));
  trackDir(dir); // removed at exit; with its lock file gone, a postmaster left behind shuts itself down within a minute
  if (owner !== undefined) chownSync(dir, owner.uid, owner.gid);
  let postgres: Postgres | undefined;
  let ferretdb: ServiceProcess | undefined;
  try {
    postgres = await startPostgres(options.postgres, dir, owner, options.startTimeoutMs);
    await postgres.sql(`CREATE DATABASE ${DATABASE}`, 'postgres');
    // FerretDB v1 holds one pooled PostgreSQL connection per operation and may take a
    // second inside it (an update is a read, then a write): with as many operations in
    // flight as its pool has connections (50: contextd's MongoDB pool, every flush round
    // and append at once) each waits for another, and it stops answering, PostgreSQL
    // idle. Seen on a 500-turn set-up; the pool gets room for two contextds' pools twice.
    const pgUrl = `postgres://${SUPERUSER}@127.0.0.1:${postgres.port}/${DATABASE}?pool_max_conns=${FERRETDB_POOL}`;
    const stateDir = join(dir, 'ferretdb-state');
    let port = 0;
    const launch = (candidate: number): Promise<ServiceProcess> =>
      startService({
        name: `ferretdb (PostgreSQL) on port ${(port = candidate)}`,
        command: options.ferretdb,
        args: [
          '--handler=postgresql',
          `--postgresql-url=${pgUrl}`,
          `--listen-addr=127.0.0.1:${candidate}`,
          // Its default state dir is the cwd and its debug HTTP server takes the fixed port 8088.
          `--state-dir=${stateDir}`,
          '--debug-addr=-',
          '--telemetry=disable',
          '--log-level=warn',
        ],
        cwd: dir,
        isReady: () => answersPing(candidate),
        timeoutMs: options.startTimeoutMs,
      });
    ferretdb = await startOnFreePort(launch, freePort, options.startTimeoutMs);
    const running = { postgres, ferretdb };
    let isStopped = false;
    return {
      url: `mongodb://127.0.0.1:${port}/`,
      label: `FerretDB ${ferretdbVersion(options.ferretdb)} on PostgreSQL ${options.postgres.version} (${POSTGRES_TUNING})`,
      ferretdbCpuTimeMs: () => cpuTimeMs(running.ferretdb.child.pid),
      postgresCpuTimeMs: () => processTreeCpuTimeMs(running.postgres.child.pid),
      indexDatabase: (database) => indexDatabase(running.postgres, database),
      kill: async () => {
        await running.ferretdb.stop('SIGKILL');
      },
      restart: async () => {
        if (isStopped) throw new Error('restart() after stop()');
        await running.ferretdb.stop('SIGTERM');
        running.ferretdb = await startOnFreePort(launch, () => Promise.resolve(port), options.startTimeoutMs);
      },
      stop: async () => {
        isStopped = true;
        await running.ferretdb.stop('SIGTERM');
        await running.postgres.stop();
        removeDir(dir);
      },
      output: () => `--- ferretdb ---\n${running.ferretdb.output()}\n--- postgres ---\n${running.postgres.output()}`,
    };
  } catch (error) {
    await ferretdb?.stop('SIGKILL');
    await postgres?.stop();
    removeDir(dir);
    throw error;
  }
}

/** Who PostgreSQL runs as: the bench's own user, or `postgres` under root (PostgreSQL refuses root). */
function postgresOwner(): { uid: number; gid: number } | undefined {
  if (process.getuid?.() !== 0) return undefined;
  const id = (flag: string): number => Number(spawnSync('id', [flag, SUPERUSER], { encoding: 'utf8' }).stdout?.trim() || Number.NaN);
  const owner = { uid: id('-u'), gid: id('-g') };
  if (!Number.isInteger(owner.uid) || !Number.isInteger(owner.gid)) {
    throw new Error(`PostgreSQL refuses to run as root and there is no ${SUPERUSER} user to run it as (apt-get install postgresql creates one)`);
  }
  return owner;
}

interface Postgres {
  port: number;
  child: ChildProcess;
  /** Runs SQL through psql (as the superuser, on TCP) and returns its unaligned output. */
  sql(statement: string, database?: string): Promise<string>;
  stop(): Promise<void>;
  output(): string;
}

async function startPostgres(install: PostgresInstall, dir: string, owner: { uid: number; gid: number } | undefined, timeoutMs: number): Promise<Postgres> {
  const dataDir = join(dir, 'data');
  const asOwner = { cwd: dir, ...(owner ?? {}) };
  // Trust on loopback and the socket: a throwaway cluster only this machine reaches. C locale: no locale to install.
  await run(join(install.binDir, 'initdb'), ['-D', dataDir, '-U', SUPERUSER, '--auth=trust', '--encoding=UTF8', '--locale=C', '--no-sync'], asOwner).catch((error: unknown) => {
    throw new Error(`initdb failed: ${String((error as { stderr?: string }).stderr ?? error)}`);
  });
  const psql = (port: number) => async (statement: string, database = DATABASE): Promise<string> => {
    const { stdout } = await run(join(install.binDir, 'psql'), ['-X', '-q', '-A', '-t', '-v', 'ON_ERROR_STOP=1', '-h', '127.0.0.1', '-p', String(port), '-U', SUPERUSER, '-d', database, '-c', statement], {
      env: { ...process.env, PGCONNECT_TIMEOUT: '5' },
    });
    return stdout;
  };
  for (let attempt = 1; ; attempt++) {
    const port = await freePort();
    const child = spawn(
      join(install.binDir, 'postgres'),
      [
        ...['-D', dataDir, '-c', 'listen_addresses=127.0.0.1', '-c', `port=${port}`, '-c', `unix_socket_directories=${dir}`],
        // FerretDB's statements are prepared with the key as a parameter: a generic plan (chosen after five runs) cannot use the GIN index.
        ...['-c', 'plan_cache_mode=force_custom_plan'],
        // Room for FerretDB's pool (FERRETDB_POOL) and the bench's own psql.
        ...['-c', `max_connections=${FERRETDB_POOL + 20}`],
      ],
      { ...asOwner, stdio: ['ignore', 'pipe', 'pipe'] },
    );
    let text = '';
    const append = (chunk: string): void => {
      text = (text + chunk).slice(-64 * 1024);
    };
    child.stdout.setEncoding('utf8').on('data', append);
    child.stderr.setEncoding('utf8').on('data', append);
    const exited = once(child, 'exit').catch(() => undefined);
    let hasExited = false;
    void exited.then(() => (hasExited = true));
    // SIGQUIT: PostgreSQL's immediate shutdown, its backends included; for a bench that ends without stop().
    const onExit = (): void => void child.kill('SIGQUIT');
    process.on('exit', onExit);
    const stop = async (): Promise<void> => {
      process.off('exit', onExit);
      if (hasExited) return;
      child.kill('SIGINT'); // fast shutdown
      const timer = new AbortController();
      const result = await Promise.race([exited.then(() => 'exited' as const), delay(STOP_TIMEOUT_MS, 'timeout' as const, { signal: timer.signal })]);
      timer.abort();
      if (result === 'timeout') {
        child.kill('SIGQUIT');
        await exited;
      }
    };
    const sql = psql(port);
    const deadlineMs = performance.now() + timeoutMs;
    while (!hasExited && performance.now() < deadlineMs) {
      if ((await isListening(port)) && (await sql('SELECT 1', 'postgres').then(() => true, () => false))) return { port, child, sql, stop, output: () => text };
      await delay(50);
    }
    await stop();
    if (/address already in use/i.test(text) && attempt < 5) continue;
    throw new Error(`postgres on port ${port} ${hasExited ? 'exited' : `did not answer within ${timeoutMs} ms`}:\n${text}`);
  }
}

/** A GIN index on `(_jsonb->'conversation')` in each table FerretDB keeps for the database (one per collection, in a schema named after it). */
async function indexDatabase(postgres: Postgres, database: string): Promise<void> {
  const schema = quoteIdentifier(database);
  const tables = (await postgres.sql(`SELECT _jsonb->>'table' FROM ${schema}._ferretdb_database_metadata ORDER BY 1`)).split('\n').filter((line) => line !== '');
  if (tables.length === 0) throw new Error(`PostgreSQL schema ${database}: FerretDB lists no collections (index them after MongoStore.ensureIndexes)`);
  for (const table of tables) {
    await postgres.sql(`CREATE INDEX IF NOT EXISTS ${quoteIdentifier(`${table}_${INDEXED_FIELD}_gin`)} ON ${schema}.${quoteIdentifier(table)} USING gin ((_jsonb->'${INDEXED_FIELD}'))`);
  }
}

function quoteIdentifier(name: string): string {
  return `"${name.replaceAll('"', '""')}"`;
}

async function answersPing(port: number): Promise<boolean> {
  if (!(await isListening(port))) return false;
  const client = new MongoClient(`mongodb://127.0.0.1:${port}/`, { directConnection: true, serverSelectionTimeoutMS: 2_000, connectTimeoutMS: 2_000 });
  try {
    return (await client.db('admin').command({ ping: 1 })).ok === 1;
  } finally {
    await client.close();
  }
}

/**
 * CPU time of a process and its children (PostgreSQL: the postmaster and a
 * backend per connection): the live ones from /proc, plus what the process
 * has reaped (cutime + cstime), so a backend that ended still counts.
 */
function processTreeCpuTimeMs(pid: number | undefined): number | undefined {
  const own = cpuTimeMs(pid);
  if (pid === undefined || own === undefined) return undefined;
  let total = own;
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Fields after the command (which may hold spaces, so split after its closing parenthesis): cutime and cstime are the 16th and 17th.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    total += ((Number(fields[13]) + Number(fields[14])) * 1000) / CLOCK_TICKS_PER_S;
  } catch {
    return own;
  }
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      if (Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]) === pid) total += cpuTimeMs(Number(entry)) ?? 0;
    } catch {
      // Ended while we looked: its time is in its parent's cutime from now on.
    }
  }
  return total;
}
