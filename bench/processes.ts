// The benchmark's child processes: the fake upstream, the floor proxy, and
// contextd as its CLI. Each runs apart from the load generator so that none
// of them is timed on another's event loop.

import { spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { closeSync, openSync, readFileSync, readdirSync, readlinkSync } from 'node:fs';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer, type AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { setTimeout as delay } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { request } from 'undici';
import { stringify as stringifyYaml } from 'yaml';
import type { ListeningLine, UpstreamStatsMessage } from './protocol.js';

const REPO_ROOT = fileURLToPath(new URL('../../', import.meta.url));
const CLI_PATH = join(REPO_ROOT, 'dist', 'src', 'cli.js');
const START_TIMEOUT_MS = 20_000;
const STOP_TIMEOUT_MS = 10_000;
// The developer's shell must not reconfigure the contextd under test.
const DROPPED_ENV = /^(CONTEXTD_.*|REDIS_URL|MONGODB_URL|LOG_LEVEL|NODE_OPTIONS)$/;

export interface Child {
  url: string;
  process: ChildProcess;
  stop(): Promise<void>;
}

export interface UpstreamChild extends Child {
  /** OpenAI-style base URL (`<url>/v1`), for contextd's config. */
  baseUrl: string;
  stats(): Promise<UpstreamStatsMessage>;
}

export interface ContextdChild extends Child {
  logPath: string;
}

/** The sum of `read(text)` over /proc/<pid>/task/<tid>/<file>, every thread of the process; throws where there is no /proc. */
export function sumOverThreads(pid: number, file: string, read: (text: string) => number): number {
  let total = 0;
  for (const tid of readdirSync(`/proc/${pid}/task`)) {
    try {
      total += read(readFileSync(`/proc/${pid}/task/${tid}/${file}`, 'utf8'));
    } catch {
      // The thread ended between the listing and the read: what it counted is gone with it.
    }
  }
  return total;
}

/**
 * CPU time a process has used so far, all its threads (GC helpers included), from
 * /proc/<pid>/task/<tid>/schedstat (nanoseconds); undefined where there is no
 * /proc. Unlike wall time, this barely moves when other work shares the machine,
 * so it compares paths even on a busy host.
 */
export function cpuTimeMs(pid: number | undefined): number | undefined {
  if (pid === undefined) return undefined;
  try {
    const ns = sumOverThreads(pid, 'schedstat', (text) => Number(text.split(' ')[0]));
    return Number.isFinite(ns) ? ns / 1e6 : undefined;
  } catch {
    return undefined;
  }
}

/** The first process whose command line (arguments joined by spaces) matches; the support modules do not hand out their servers' pids. */
export function findPid(matches: (command: string) => boolean): number | undefined {
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry) || Number(entry) === process.pid) continue;
    try {
      const command = readFileSync(`/proc/${entry}/cmdline`, 'utf8').split('\0').join(' ');
      if (matches(command)) return Number(entry);
    } catch {
      // The process ended while we looked.
    }
  }
  return undefined;
}

/**
 * A process's TCP connections by what is at the other end, from /proc: its
 * socket inodes (/proc/<pid>/fd) matched against /proc/<pid>/net/tcp{,6}.
 * `listenPort`: connections accepted there are "clients"; `peers` names the
 * remote ports (e.g. { redis: 6379 }); anything else is "other". Undefined
 * where there is no /proc.
 */
export function tcpConnections(pid: number | undefined, listenPort: number, peers: Record<string, number>): Record<string, number> | undefined {
  if (pid === undefined) return undefined;
  try {
    const inodes = new Set<string>();
    for (const fd of readdirSync(`/proc/${pid}/fd`)) {
      try {
        const target = readlinkSync(`/proc/${pid}/fd/${fd}`);
        if (target.startsWith('socket:[')) inodes.add(target.slice(8, -1));
      } catch {
        // Closed while we looked.
      }
    }
    const counts: Record<string, number> = { clients: 0, ...Object.fromEntries(Object.keys(peers).map((name) => [name, 0])), other: 0 };
    for (const table of ['tcp', 'tcp6']) {
      let text = '';
      try {
        text = readFileSync(`/proc/${pid}/net/${table}`, 'utf8');
      } catch {
        continue;
      }
      for (const line of text.split('\n').slice(1)) {
        const fields = line.trim().split(/\s+/);
        if (fields.length < 10 || !inodes.has(fields[9]!) || fields[3] === '0A') continue; // 0A: LISTEN
        const localPort = parseInt(fields[1]!.split(':')[1]!, 16);
        const remotePort = parseInt(fields[2]!.split(':')[1]!, 16);
        const peer = localPort === listenPort ? 'clients' : (Object.entries(peers).find(([, port]) => port === remotePort)?.[0] ?? 'other');
        counts[peer] = (counts[peer] ?? 0) + 1;
      }
    }
    return counts;
  } catch {
    return undefined;
  }
}

function childEnv(extra: Record<string, string>): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [name, value] of Object.entries(process.env)) if (!DROPPED_ENV.test(name)) env[name] = value;
  return { ...env, ...extra };
}

async function stopChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = once(child, 'exit');
  child.kill('SIGTERM');
  const timer = new AbortController();
  const result = await Promise.race([exited, delay(STOP_TIMEOUT_MS, 'timeout' as const, { signal: timer.signal })]);
  timer.abort();
  if (result === 'timeout') {
    child.kill('SIGKILL');
    await exited;
  }
}

/** Runs a compiled bench script with an IPC channel and waits for its {"url"} line. */
async function startScript(script: string, args: readonly string[]): Promise<{ url: string; child: ChildProcess }> {
  const child = spawn(process.execPath, [fileURLToPath(new URL(script, import.meta.url)), ...args], {
    cwd: REPO_ROOT,
    env: childEnv({}),
    stdio: ['ignore', 'pipe', 'inherit', 'ipc'],
  });
  const lines = createInterface({ input: child.stdout!, crlfDelay: Infinity });
  const timer = new AbortController();
  const first = await Promise.race([
    once(lines, 'line').then(([line]) => line as string),
    once(child, 'exit').then(([code]) => `exit ${String(code)}`),
    delay(START_TIMEOUT_MS, 'timeout', { signal: timer.signal }),
  ]);
  timer.abort();
  lines.close();
  child.stdout!.resume();
  if (!first.startsWith('{')) {
    child.kill('SIGKILL');
    throw new Error(`${script} did not start: ${first}`);
  }
  return { url: (JSON.parse(first) as ListeningLine).url, child };
}

export interface UpstreamOptions {
  /** Size of every reply, in o200k_base tokens (default 300). */
  replyTokens?: number;
  /** SSE events per write when streaming (default 1: each event in a write of its own). */
  eventsPerWrite?: number;
}

export async function startUpstream(options: UpstreamOptions = {}): Promise<UpstreamChild> {
  const args = [
    ...(options.replyTokens === undefined ? [] : ['--reply-tokens', String(options.replyTokens)]),
    ...(options.eventsPerWrite === undefined ? [] : ['--events-per-write', String(options.eventsPerWrite)]),
  ];
  const { url, child } = await startScript('./upstream-server.js', args);
  return {
    url: new URL(url).origin,
    baseUrl: url,
    process: child,
    stop: () => stopChild(child),
    stats: async () => {
      const answer = once(child, 'message');
      child.send({ type: 'stats' });
      const [message] = (await answer) as [UpstreamStatsMessage];
      return message;
    },
  };
}

/** `stream`: the floor (undici stream() into the response); `request`: a plain undici.request() and a pipe, for comparison. */
export type FloorVariant = 'stream' | 'request';

export async function startFloorProxy(upstreamOrigin: string, variant: FloorVariant = 'stream'): Promise<Child> {
  const { url, child } = await startScript('./floor-proxy.js', [upstreamOrigin, variant]);
  return { url, process: child, stop: () => stopChild(child) };
}

async function freePort(): Promise<number> {
  const server = createServer();
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as AddressInfo;
  await new Promise((resolve) => server.close(resolve));
  return port;
}

export interface ContextdOptions {
  upstreamUrl: string;
  /** contextd's own default is info (a line per request); warn and error are quieter than any deployment that keeps its defaults. */
  logLevel: 'info' | 'warn' | 'error';
  /** Extra node flags for the contextd process, e.g. --cpu-prof. */
  nodeArgs?: readonly string[];
  /** Where stdout and stderr go; a file, as a container runtime would collect them. */
  logPath: string;
  /** The config's `storage:` section; the embedded store when absent. */
  storage?: Record<string, unknown>;
  /** Rolling summaries (on in contextd by default); off unless asked for, see run.ts. */
  summaries?: boolean;
  /** The config's `defaults:` (summaries: false still turns them off) and `routes:`, for a bench that sets its own policies (prefix-cache.ts). */
  defaults?: Record<string, unknown>;
  routes?: readonly Record<string, unknown>[];
  /** Another build of contextd to run instead of this one (--baseline): its root (the working directory) and its CLI. */
  build?: { dir: string; cliPath: string; knowsDriftWarning: boolean };
}

/**
 * The fake upstream's usage.prompt_tokens is its body's bytes ÷ 4, not a count
 * (it never tokenizes: upstream-server.ts), about 22% over contextd's. The
 * drift check still runs and observes its metric on every request; only its
 * warning line, which an upstream's real count would not cause, is kept out.
 */
const FAKE_COUNT_DRIFT_WARNING = '99%';

function defaultsOf(options: ContextdOptions): { defaults: Record<string, unknown> } {
  const summary = options.defaults?.summary as Record<string, unknown> | undefined;
  const budget = options.defaults?.budget as Record<string, unknown> | undefined;
  return {
    defaults: {
      ...options.defaults,
      budget: { ...(options.build?.knowsDriftWarning === false ? {} : { drift_warning: FAKE_COUNT_DRIFT_WARNING }), ...budget },
      ...(options.summaries === true ? {} : { summary: { ...summary, enabled: false } }),
    },
  };
}

/**
 * The real CLI on a free port. Below info level contextd does not log "listening",
 * so the port is chosen here and readiness is /healthz answering.
 */
export async function startContextd(options: ContextdOptions): Promise<ContextdChild> {
  const dir = await mkdtemp(join(tmpdir(), 'contextd-bench-'));
  const configPath = join(dir, 'contextd.yaml');
  const config = {
    server: { host: '127.0.0.1' },
    upstream: { base_url: options.upstreamUrl, timeout: '60s', connect_timeout: '5s' },
    ...(options.storage === undefined ? {} : { storage: options.storage }),
    ...defaultsOf(options),
    ...(options.routes === undefined ? {} : { routes: options.routes }),
  };
  await writeFile(configPath, stringifyYaml(config));
  const port = await freePort();
  const log = openSync(options.logPath, 'w');
  const child = spawn(process.execPath, [...(options.nodeArgs ?? []), options.build?.cliPath ?? CLI_PATH, '--config', configPath, '--port', String(port)], {
    cwd: options.build?.dir ?? REPO_ROOT,
    env: childEnv({ LOG_LEVEL: options.logLevel }),
    stdio: ['ignore', log, log],
  });
  closeSync(log);
  const url = `http://127.0.0.1:${port}`;
  const stop = async (): Promise<void> => {
    await stopChild(child);
    await rm(dir, { recursive: true, force: true });
  };
  const deadlineMs = Date.now() + START_TIMEOUT_MS;
  for (;;) {
    if (child.exitCode !== null) {
      await stop();
      throw new Error(`contextd exited with ${child.exitCode} before it was ready:\n${readFileSync(options.logPath, 'utf8')}`);
    }
    const healthy = await request(`${url}/healthz`).then(
      async (res) => {
        await res.body.dump();
        return res.statusCode === 200;
      },
      () => false,
    );
    if (healthy) break;
    if (Date.now() > deadlineMs) {
      await stop();
      throw new Error(`contextd did not answer /healthz within ${START_TIMEOUT_MS} ms:\n${readFileSync(options.logPath, 'utf8')}`);
    }
    await delay(50);
  }
  return { url, process: child, logPath: options.logPath, stop };
}
