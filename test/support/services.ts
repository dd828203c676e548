// The servers the store suites run against: where their binaries are found, how
// their processes are run and reaped, and what happens when one is missing.
// The policy lives here alone: with CI set a missing service fails its suites,
// elsewhere they are skipped and say why. scripts/install-services.sh installs
// the services and searches the same places in the same order.

import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { accessSync, constants, rmSync, statSync } from 'node:fs';
import { connect, createServer, type Socket } from 'node:net';
import { homedir } from 'node:os';
import { delimiter, join } from 'node:path';
import type { Writable } from 'node:stream';
import { setTimeout as delay } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { describe, test } from 'vitest';
import { waitFor } from './wait-for.js';

export const servicesRequired = Boolean(process.env.CI);

const REPO_ROOT = fileURLToPath(new URL('../../', import.meta.url));
const INSTALL_HINT = 'run scripts/install-services.sh';

// ---- finding the binaries ----

/** The first executable called `name` on PATH. */
export function findOnPath(name: string): string | undefined {
  for (const dir of (process.env.PATH ?? '').split(delimiter)) {
    if (dir !== '' && isExecutableFile(join(dir, name))) return join(dir, name);
  }
  return undefined;
}

let ferretdbSearch: { path: string | undefined } | undefined;

/**
 * A FerretDB that runs: .services/bin (what install-services.sh builds), PATH,
 * $GOBIN, $GOPATH/bin, ~/go/bin. Each candidate must pass `ferretdb --version`,
 * because a plain `go install ...cmd/ferretdb@v1.24.2` build panics at start.
 */
export function findFerretdb(): string | undefined {
  ferretdbSearch ??= { path: searchFerretdb() };
  return ferretdbSearch.path;
}

function searchFerretdb(): string | undefined {
  const goPath = process.env.GOPATH ?? join(homedir(), 'go');
  const candidates = [
    join(REPO_ROOT, '.services', 'bin', 'ferretdb'),
    findOnPath('ferretdb'),
    process.env.GOBIN ? join(process.env.GOBIN, 'ferretdb') : undefined,
    join(goPath, 'bin', 'ferretdb'),
    join(homedir(), 'go', 'bin', 'ferretdb'),
  ];
  for (const candidate of new Set(candidates)) {
    if (candidate === undefined || !isExecutableFile(candidate)) continue;
    if (spawnSync(candidate, ['--version'], { stdio: 'ignore', timeout: 10_000 }).status === 0) return candidate;
  }
  return undefined;
}

export function isExecutableFile(path: string): boolean {
  try {
    accessSync(path, constants.X_OK);
    return statSync(path).isFile();
  } catch {
    return false;
  }
}

/** Which MongoDB startMongo() uses: MONGODB_URL, else mongod on PATH, else FerretDB. */
export type MongoSource =
  | { kind: 'external'; url: string }
  | { kind: 'mongod'; path: string }
  | { kind: 'ferretdb'; path: string };

export function findMongo(): MongoSource | undefined {
  const url = process.env.MONGODB_URL;
  if (url) return { kind: 'external', url };
  const mongod = findOnPath('mongod');
  if (mongod !== undefined) return { kind: 'mongod', path: mongod };
  const ferretdb = findFerretdb();
  return ferretdb === undefined ? undefined : { kind: 'ferretdb', path: ferretdb };
}

/** `hint` says how to install what is missing (default: scripts/install-services.sh). */
export type Availability = { isAvailable: true } | { isAvailable: false; reason: string; hint?: string };

export interface ServiceAvailability {
  redis: Availability;
  /** A cluster also needs redis-cli, for `redis-cli --cluster create`. */
  redisCluster: Availability;
  mongo: Availability;
}

export function serviceAvailability(): ServiceAvailability {
  const hasRedisServer = findOnPath('redis-server') !== undefined;
  const hasRedisCli = findOnPath('redis-cli') !== undefined;
  const redis: Availability = hasRedisServer ? { isAvailable: true } : { isAvailable: false, reason: 'redis-server not found on PATH' };
  return {
    redis,
    redisCluster: !redis.isAvailable || hasRedisCli ? redis : { isAvailable: false, reason: 'redis-cli not found on PATH' },
    mongo:
      findMongo() !== undefined
        ? { isAvailable: true }
        : {
            isAvailable: false,
            reason: 'no MongoDB: MONGODB_URL is unset, mongod is not on PATH, and no working ferretdb (.services/bin, PATH, ~/go/bin)',
          },
  };
}

// ---- suites that need a service ----

type SuiteBody = () => void;

export function describeWithRedis(name: string, body: SuiteBody): void {
  describeWithService(serviceAvailability().redis, name, body);
}

export function describeWithRedisCluster(name: string, body: SuiteBody): void {
  describeWithService(serviceAvailability().redisCluster, name, body);
}

export function describeWithMongo(name: string, body: SuiteBody): void {
  describeWithService(serviceAvailability().mongo, name, body);
}

/** Runs the suite when the service is there; otherwise fails it (CI) or skips it, naming what is missing either way. */
export function describeWithService(availability: Availability, name: string, body: SuiteBody, options: { timeoutMs?: number } = {}): void {
  if (availability.isAvailable) {
    describe(name, { timeout: options.timeoutMs }, body);
    return;
  }
  const message = `${availability.reason}; ${availability.hint ?? INSTALL_HINT}`;
  if (servicesRequired) {
    describe(name, () => {
      test('has the service it needs (CI is set, so a missing service fails)', () => {
        throw new Error(message);
      });
    });
    return;
  }
  console.warn(`skipping "${name}": ${message}`);
  describe.skip(`${name} [skipped: ${message}]`, body);
}

/**
 * Fault tests kill and restart their server, which an external MONGODB_URL
 * does not allow: with CI set that is a failure (CI starts its own), elsewhere
 * the test is skipped and says why.
 */
export function requireRestartable(server: { canRestart: boolean; kind: string }, context: { skip: (note?: string) => void }): void {
  if (server.canRestart) return;
  const message = `the ${server.kind} server at MONGODB_URL cannot be killed and restarted; unset MONGODB_URL to run this fault test on a local server`;
  if (servicesRequired) throw new Error(message);
  context.skip(message);
}

// ---- running a service process ----

export interface ProcessExit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

export interface ServiceProcess {
  child: ChildProcess;
  /** Resolves once the process has exited and its output has ended. */
  exited: Promise<ProcessExit>;
  /** undefined while it runs. */
  exit(): ProcessExit | undefined;
  /** The tail of its stdout and stderr, for error messages. */
  output(): string;
  /** Sends `signal` and waits for the exit; SIGKILLs after `timeoutMs`. */
  stop(signal?: NodeJS.Signals, timeoutMs?: number): Promise<ProcessExit>;
}

/** A service exited or did not become ready in time; `output` is what it printed. */
export class ServiceStartError extends Error {
  constructor(
    message: string,
    readonly output: string,
    readonly exit: ProcessExit | undefined,
  ) {
    super(`${message}\n--- output ---\n${output}`);
    this.name = 'ServiceStartError';
  }

  get isAddressInUse(): boolean {
    return /address already in use|EADDRINUSE/i.test(this.output);
  }
}

export interface StartServiceOptions {
  /** For messages: "redis-server on port 1234". */
  name: string;
  command: string;
  args: readonly string[];
  cwd?: string;
  isReady: () => Promise<boolean>;
  timeoutMs: number;
}

const MAX_OUTPUT_CHARS = 64 * 1024;
const STOP_TIMEOUT_MS = 10_000;
const running = new Set<ServiceProcess>();
const leftoverDirs = new Set<string>();
let isExitHookInstalled = false;

/** Spawns a service and polls `isReady` until it says yes; throws with the output if it exits first or time runs out. */
export async function startService(options: StartServiceOptions): Promise<ServiceProcess> {
  const service = spawnService(options.command, options.args, options.cwd);
  let isReady = false;
  try {
    // A probe still waiting when the process dies gives way to the exit.
    const probe = (): Promise<boolean> => Promise.race([options.isReady(), service.exited.then(() => false)]);
    await waitFor(async () => service.exit() !== undefined || (isReady = await probe()), {
      timeoutMs: options.timeoutMs,
      intervalMs: 20,
      message: `${options.name} to answer`,
    });
  } catch (error) {
    await service.stop('SIGKILL');
    const lastProbe = error instanceof Error && error.cause !== undefined ? String(error.cause) : 'not ready';
    throw new ServiceStartError(`${options.name} did not answer within ${options.timeoutMs} ms (last probe: ${lastProbe})`, service.output(), service.exit());
  }
  if (!isReady) {
    await service.exited;
    throw new ServiceStartError(`${options.name} exited (${describeExit(service.exit())}) before it was ready`, service.output(), service.exit());
  }
  return service;
}

/**
 * Starts on a port from `pickPort` and, when another process took the port in
 * the meantime, starts again on a new one (a fixed port is retried until `timeoutMs`).
 */
export async function startOnFreePort<T>(start: (port: number) => Promise<T>, pickPort: () => Promise<number>, timeoutMs: number): Promise<T> {
  const deadlineMs = performance.now() + timeoutMs;
  for (;;) {
    try {
      return await start(await pickPort());
    } catch (error) {
      if (!(error instanceof ServiceStartError && error.isAddressInUse) || performance.now() > deadlineMs) throw error;
      // Back off briefly: a fixed port that is still in use will not be free on the next tick.
      await delay(50);
    }
  }
}

function spawnService(command: string, args: readonly string[], cwd: string | undefined): ServiceProcess {
  const child = spawn(command, args, { cwd, stdio: ['ignore', 'pipe', 'pipe'] });
  let text = '';
  const append = (chunk: string): void => {
    text = (text + chunk).slice(-MAX_OUTPUT_CHARS);
  };
  // Both pipes are always read: a service that fills an unread pipe blocks.
  child.stdout.setEncoding('utf8').on('data', append);
  child.stderr.setEncoding('utf8').on('data', append);
  let exit: ProcessExit | undefined;
  const exited = new Promise<ProcessExit>((resolve) => {
    child.once('close', (code, signal) => resolve((exit = { code, signal })));
    child.once('error', (error) => {
      append(`\n${command}: ${error.message}\n`);
      // A process that never started emits no 'close'.
      if (child.pid === undefined) resolve((exit = { code: null, signal: null }));
    });
  });
  const service: ServiceProcess = {
    child,
    exited,
    exit: () => exit,
    output: () => text,
    stop: async (signal = 'SIGTERM', timeoutMs = STOP_TIMEOUT_MS) => {
      if (exit !== undefined) return exit;
      child.kill(signal);
      const timer = new AbortController();
      const result = await Promise.race([exited, delay(timeoutMs, undefined, { signal: timer.signal })]);
      timer.abort();
      if (result !== undefined) return result;
      child.kill('SIGKILL');
      return exited;
    },
  };
  track(service);
  return service;
}

/** A temp dir removed when the test process exits, in case its service's stop() never ran. */
export function trackDir(dir: string): void {
  leftoverDirs.add(dir);
  tellWatchdog('add', `dir:${dir}`);
}

export function removeDir(dir: string): void {
  leftoverDirs.delete(dir);
  tellWatchdog('remove', `dir:${dir}`);
  rmSync(dir, { recursive: true, force: true });
}

function track(service: ServiceProcess): void {
  running.add(service);
  const pid = service.child.pid;
  if (pid !== undefined) tellWatchdog('add', `pid:${pid}`);
  void service.exited.then(() => {
    running.delete(service);
    if (pid !== undefined) tellWatchdog('remove', `pid:${pid}`);
  });
  if (isExitHookInstalled) return;
  isExitHookInstalled = true;
  // Last resort when a test file ends without stopping its services (failure, bail): never leave a server behind.
  process.on('exit', () => {
    for (const { child } of running) child.kill('SIGKILL');
    for (const dir of leftoverDirs) rmSync(dir, { recursive: true, force: true });
  });
}

// The exit hook does not run when the test worker is killed by a signal (a
// timeout, vitest tearing down a stuck worker). This watchdog is told on a pipe
// which services run and which temp dirs exist; when the pipe ends, its parent
// is gone, and it SIGKILLs the services and removes the dirs still listed.
const WATCHDOG_SCRIPT = `
const listed = new Set();
let pending = '';
process.stdin.setEncoding('utf8');
process.stdin.on('data', (text) => {
  const lines = (pending + text).split('\\n');
  pending = lines.pop();
  for (const line of lines) line.startsWith('-') ? listed.delete(line.slice(1)) : listed.add(line);
});
process.stdin.on('end', () => {
  for (const item of listed) if (item.startsWith('pid:')) try { process.kill(Number(item.slice(4)), 'SIGKILL'); } catch {}
  for (const item of listed) if (item.startsWith('dir:')) require('node:fs').rmSync(item.slice(4), { recursive: true, force: true });
});
`;

let watchdog: Writable | undefined;

/** `item` is `pid:<pid>` or `dir:<path>`. */
function tellWatchdog(change: 'add' | 'remove', item: string): void {
  if (watchdog === undefined) {
    const child = spawn(process.execPath, ['-e', WATCHDOG_SCRIPT], { stdio: ['pipe', 'ignore', 'inherit'] });
    // Neither the watchdog nor its pipe may keep the test worker alive.
    child.unref();
    (child.stdin as unknown as Socket).unref();
    // If the watchdog is gone, the exit hook is all that is left; a failed write must not crash the tests.
    child.stdin.on('error', () => undefined);
    watchdog = child.stdin;
  }
  watchdog.write(`${change === 'remove' ? '-' : ''}${item}\n`);
}

function describeExit(exit: ProcessExit | undefined): string {
  if (exit === undefined) return 'still running';
  return exit.signal !== null ? `signal ${exit.signal}` : `code ${exit.code}`;
}

// ---- ports ----

/** A port that was free a moment ago; the caller retries if someone takes it first (see startOnFreePort). */
export async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', resolve);
  });
  const address = server.address();
  await new Promise<void>((resolve) => server.close(() => resolve()));
  if (address === null || typeof address === 'string') throw new Error('could not read the port of a probe server');
  return address.port;
}

/** Whether something accepts TCP connections on 127.0.0.1:port. */
export function isListening(port: number, timeoutMs = 1_000): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect({ host: '127.0.0.1', port, timeout: timeoutMs });
    const finish = (isOpen: boolean): void => {
      socket.destroy();
      resolve(isOpen);
    };
    socket.once('connect', () => finish(true));
    socket.once('timeout', () => finish(false));
    socket.once('error', () => finish(false));
  });
}
