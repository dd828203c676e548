// Runs the built contextd CLI as a real child process on port 0, the way a user
// runs it, and keeps what it logs so tests can assert on log lines.

import { spawn, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtemp, open, readFile, readdir, rm, stat, unlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { setTimeout as delay } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { stringify as stringifyYaml } from 'yaml';
import { waitFor } from './wait-for.js';

export const REPO_ROOT = fileURLToPath(new URL('../../', import.meta.url));
export const CLI_PATH = join(REPO_ROOT, 'dist', 'src', 'cli.js');

/** One parsed pino line from contextd's stdout. */
export type LogLine = Record<string, unknown>;

export interface ProcessExit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

export interface StartContextdOptions {
  /** YAML text, or an object that is written out as YAML. */
  config: string | Readonly<Record<string, unknown>>;
  /**
   * Merged over process.env, from which CONTEXTD_*, REDIS_URL, MONGODB_URL and
   * LOG_LEVEL are removed first (LOG_LEVEL then defaults to info). `undefined` removes a variable.
   */
  env?: Readonly<Record<string, string | undefined>>;
  /** Extra CLI arguments after `--config <file> --port 0`. */
  args?: readonly string[];
  startTimeoutMs?: number;
  /** The script to run; defaults to the built CLI. */
  cliPath?: string;
  /** The working directory; defaults to the repository root. */
  cwd?: string;
}

export interface ContextdProcess {
  /** `http://127.0.0.1:PORT` */
  url: string;
  /** `url + '/v1'`, for an OpenAI client's baseURL. */
  baseURL: string;
  port: number;
  configPath: string;
  /** Every stdout line that parsed as JSON, in order; grows while the process runs. */
  logs: LogLine[];
  /** Every stdout line as text, parsed or not. */
  stdoutLines: string[];
  stderr(): string;
  /** All stdout and stderr text, for assertions such as "this secret never appears". */
  output(): string;
  waitForLog(predicate: (line: LogLine) => boolean, timeoutMs?: number): Promise<LogLine>;
  /** Sends `signal` and resolves with the exit code (null if a signal ended it); SIGKILLs and rejects after `timeoutMs`. */
  stop(signal?: NodeJS.Signals, timeoutMs?: number): Promise<number | null>;
  kill(): Promise<number | null>;
  exited: Promise<ProcessExit>;
  process: ChildProcess;
}

/** contextd exited, or never said it was listening. */
export class ContextdStartError extends Error {
  constructor(
    message: string,
    readonly exit: ProcessExit | undefined,
    readonly output: string,
    readonly logs: readonly LogLine[],
  ) {
    super(`${message}\n--- contextd output ---\n${output}`);
    this.name = 'ContextdStartError';
  }

  get exitCode(): number | null | undefined {
    return this.exit?.code;
  }
}

const LISTENING_MESSAGE = 'contextd listening';
const DEFAULT_START_TIMEOUT_MS = 20_000;
const DEFAULT_STOP_TIMEOUT_MS = 10_000;
const DROPPED_INHERITED_ENV = /^(CONTEXTD_.*|REDIS_URL|MONGODB_URL|LOG_LEVEL)$/;

interface Running {
  child: ChildProcess;
  exited: Promise<ProcessExit>;
}

const running = new Set<Running>();
let isExitHookInstalled = false;

export async function startContextd(options: StartContextdOptions): Promise<ContextdProcess> {
  const dir = await mkdtemp(join(tmpdir(), 'contextd-test-'));
  const configPath = join(dir, 'contextd.yaml');
  await writeFile(configPath, typeof options.config === 'string' ? options.config : stringifyYaml(options.config));

  const child = spawn(process.execPath, [options.cliPath ?? CLI_PATH, '--config', configPath, '--port', '0', ...(options.args ?? [])], {
    cwd: options.cwd ?? REPO_ROOT,
    env: childEnv(options.env),
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const exited = new Promise<ProcessExit>((resolve) => {
    // 'close' rather than 'exit': it comes after stdout and stderr have ended, so every log line is in.
    child.once('close', (code, signal) => resolve({ code, signal }));
    child.once('error', () => resolve({ code: child.exitCode, signal: child.signalCode }));
  });
  track({ child, exited });
  exited
    .then(() => rm(dir, { recursive: true, force: true }))
    .catch((error: unknown) => console.error('contextd harness: could not remove', dir, error));

  const logs: LogLine[] = [];
  const stdoutLines: string[] = [];
  let stderr = '';
  let resolveListening: (port: number) => void = () => undefined;
  const listening = new Promise<number>((resolve) => {
    resolveListening = resolve;
  });
  createInterface({ input: child.stdout, crlfDelay: Infinity }).on('line', (line) => {
    stdoutLines.push(line);
    const parsed = parseLogLine(line);
    if (parsed === undefined) return;
    logs.push(parsed);
    if (parsed.msg === LISTENING_MESSAGE && typeof parsed.port === 'number') resolveListening(parsed.port);
  });
  child.stderr.setEncoding('utf8');
  child.stderr.on('data', (text: string) => {
    stderr += text;
  });
  const output = (): string => [...stdoutLines, stderr].join('\n');

  const startTimeoutMs = options.startTimeoutMs ?? DEFAULT_START_TIMEOUT_MS;
  const timer = new AbortController();
  const started = await Promise.race([
    listening.then((port) => ({ port })),
    exited.then((exit) => ({ exit })),
    delay(startTimeoutMs, { timedOut: true as const }, { signal: timer.signal }),
  ]);
  timer.abort();
  if ('exit' in started) {
    throw new ContextdStartError(`contextd exited (${describeExit(started.exit)}) before it was listening`, started.exit, output(), logs);
  }
  if ('timedOut' in started) {
    child.kill('SIGKILL');
    const exit = await exited;
    throw new ContextdStartError(`contextd did not log "${LISTENING_MESSAGE}" within ${startTimeoutMs} ms`, exit, output(), logs);
  }

  const url = `http://127.0.0.1:${started.port}`;
  return {
    url,
    baseURL: `${url}/v1`,
    port: started.port,
    configPath,
    logs,
    stdoutLines,
    stderr: () => stderr,
    output,
    waitForLog: async (predicate, timeoutMs = 5_000) => {
      let found: LogLine | undefined;
      await waitFor(
        () => {
          found = logs.find(predicate);
          return found !== undefined;
        },
        { timeoutMs, message: () => `a matching contextd log line; output so far:\n${output()}` },
      );
      return found as LogLine;
    },
    stop: (signal = 'SIGTERM', timeoutMs = DEFAULT_STOP_TIMEOUT_MS) => stopProcess({ child, exited }, signal, timeoutMs),
    kill: () => stopProcess({ child, exited }, 'SIGKILL', DEFAULT_STOP_TIMEOUT_MS),
    exited,
    process: child,
  };
}

/** Stops every contextd this test file started and has not stopped; call it in afterAll. */
export async function stopAll(timeoutMs = 5_000): Promise<void> {
  await Promise.all(
    [...running].map(async (entry) => {
      try {
        await stopProcess(entry, 'SIGTERM', timeoutMs);
      } catch {
        // stopProcess already SIGKILLed it; afterAll only needs it gone.
      }
    }),
  );
}

function track(entry: Running): void {
  running.add(entry);
  void entry.exited.then(() => running.delete(entry));
  if (!isExitHookInstalled) {
    isExitHookInstalled = true;
    // Last resort if the test worker exits without afterAll (crash, bail): never leave a contextd behind.
    process.on('exit', () => {
      for (const { child } of running) child.kill('SIGKILL');
    });
  }
}

async function stopProcess({ child, exited }: Running, signal: NodeJS.Signals, timeoutMs: number): Promise<number | null> {
  if (child.exitCode === null && child.signalCode === null) child.kill(signal);
  const timer = new AbortController();
  const result = await Promise.race([exited, delay(timeoutMs, undefined, { signal: timer.signal })]);
  timer.abort();
  if (result !== undefined) return result.code;
  child.kill('SIGKILL');
  await exited;
  throw new Error(`contextd did not exit within ${timeoutMs} ms of ${signal}; it was killed`);
}

function childEnv(overrides: Readonly<Record<string, string | undefined>> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [name, value] of Object.entries(process.env)) {
    if (!DROPPED_INHERITED_ENV.test(name)) env[name] = value;
  }
  // The harness needs the info-level "listening" line whatever the developer's shell says.
  env.LOG_LEVEL = 'info';
  for (const [name, value] of Object.entries(overrides)) {
    if (value === undefined) delete env[name];
    else env[name] = value;
  }
  return env;
}

function parseLogLine(line: string): LogLine | undefined {
  if (!line.startsWith('{')) return undefined;
  try {
    const parsed: unknown = JSON.parse(line);
    return typeof parsed === 'object' && parsed !== null && !Array.isArray(parsed) ? (parsed as LogLine) : undefined;
  } catch {
    return undefined;
  }
}

function describeExit(exit: ProcessExit): string {
  return exit.signal !== null ? `signal ${exit.signal}` : `code ${exit.code}`;
}

// ---- building dist/ once per test run ----

const BUILD_TIMEOUT_MS = 5 * 60_000;
const BUILD_LOCK_PATH = join(tmpdir(), `contextd-build-${createHash('sha256').update(REPO_ROOT).digest('hex').slice(0, 16)}.lock`);
const BUILD_FAILURE_PATH = `${BUILD_LOCK_PATH}.failed`;
const BUILD_INPUTS = [join(REPO_ROOT, 'src'), join(REPO_ROOT, 'tsconfig.json'), join(REPO_ROOT, 'tsconfig.build.json')];

let build: Promise<void> | undefined;

/**
 * Runs `npm run build` if dist/src/cli.js is missing or older than anything in src/.
 * Test files in parallel workers may call it at once: a lock file in the OS temp dir
 * lets one build while the others wait, then find the build fresh, or find that it failed.
 */
export function ensureBuilt(): Promise<void> {
  build ??= buildIfStale();
  return build;
}

async function buildIfStale(): Promise<void> {
  if (await isBuildFresh()) return;
  const deadlineMs = Date.now() + BUILD_TIMEOUT_MS;
  for (;;) {
    if (await tryLock()) {
      try {
        // Another worker may have built while this one waited for the lock.
        if (!(await isBuildFresh())) await runBuild();
      } finally {
        await unlink(BUILD_LOCK_PATH).catch(() => undefined);
      }
      return;
    }
    // Freshness is not checked while someone holds the lock: tsc writes cli.js before it has written every file.
    await waitFor(async () => !(await isLockHeld()), {
      timeoutMs: Math.max(0, deadlineMs - Date.now()),
      intervalMs: 100,
      message: `the build lock ${BUILD_LOCK_PATH} to be released`,
    });
  }
}

/**
 * tsc emits even when it reports errors, so after a failed build cli.js looks
 * fresh. The failure is therefore recorded with the sources it was built from:
 * the rest of the same test run (its workers share a parent process) fails
 * with the same output, and a later run with unchanged sources builds again.
 */
interface BuildFailure {
  runId: number;
  sourcesMtimeMs: number;
  message: string;
}

async function isBuildFresh(): Promise<boolean> {
  const sourcesMtimeMs = await newestMtimeMs(BUILD_INPUTS);
  const failure = await readBuildFailure();
  if (failure !== undefined && failure.sourcesMtimeMs === sourcesMtimeMs) {
    if (failure.runId === process.ppid) throw new Error(failure.message);
    return false; // a new run retries a build that failed before
  }
  const built = await stat(CLI_PATH).catch(() => undefined);
  return built !== undefined && built.mtimeMs >= sourcesMtimeMs;
}

async function readBuildFailure(): Promise<BuildFailure | undefined> {
  try {
    return JSON.parse(await readFile(BUILD_FAILURE_PATH, 'utf8')) as BuildFailure;
  } catch {
    return undefined;
  }
}

async function newestMtimeMs(paths: readonly string[]): Promise<number> {
  let newestMs = 0;
  for (const path of paths) {
    const info = await stat(path).catch(() => undefined);
    if (info === undefined) continue;
    newestMs = Math.max(newestMs, info.mtimeMs);
    if (!info.isDirectory()) continue;
    for (const entry of await readdir(path, { recursive: true })) {
      const entryInfo = await stat(join(path, entry)).catch(() => undefined);
      if (entryInfo !== undefined) newestMs = Math.max(newestMs, entryInfo.mtimeMs);
    }
  }
  return newestMs;
}

async function tryLock(): Promise<boolean> {
  try {
    const handle = await open(BUILD_LOCK_PATH, 'wx');
    await handle.writeFile(String(process.pid));
    await handle.close();
    return true;
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
    return false;
  }
}

/** False when there is no lock, or when its owner died without removing it (then the stale lock is removed). */
async function isLockHeld(): Promise<boolean> {
  const [owner, info] = await Promise.all([
    readFile(BUILD_LOCK_PATH, 'utf8').catch(() => undefined),
    stat(BUILD_LOCK_PATH).catch(() => undefined),
  ]);
  if (owner === undefined || info === undefined) return false;
  const pid = Number.parseInt(owner, 10);
  // An empty file is a lock whose owner has not written its pid yet.
  const isOwnerAlive = owner === '' || (Number.isInteger(pid) && isProcessAlive(pid));
  if (isOwnerAlive && Date.now() - info.mtimeMs < BUILD_TIMEOUT_MS) return true;
  // Several waiters judge the same stale lock at once. Only a waiter that still sees that
  // very file removes it (inode numbers get reused, hence mtime too), so a fresh lock
  // that one of them took meanwhile survives.
  const current = await stat(BUILD_LOCK_PATH).catch(() => undefined);
  if (current?.ino === info.ino && current.mtimeMs === info.mtimeMs) await unlink(BUILD_LOCK_PATH).catch(() => undefined);
  return false;
}

function isProcessAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

async function runBuild(): Promise<void> {
  const sourcesMtimeMs = await newestMtimeMs(BUILD_INPUTS);
  const child = spawn('npm', ['run', 'build'], { cwd: REPO_ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  child.stdout.setEncoding('utf8').on('data', (text: string) => (output += text));
  child.stderr.setEncoding('utf8').on('data', (text: string) => (output += text));
  const exit = await new Promise<ProcessExit>((resolve, reject) => {
    child.once('error', reject);
    child.once('close', (code, signal) => resolve({ code, signal }));
  });
  if (exit.code === 0) {
    await unlink(BUILD_FAILURE_PATH).catch(() => undefined);
    return;
  }
  const failure: BuildFailure = { runId: process.ppid, sourcesMtimeMs, message: `npm run build failed (${describeExit(exit)}):\n${output}` };
  await writeFile(BUILD_FAILURE_PATH, JSON.stringify(failure));
  throw new Error(failure.message);
}
