// What the Python client suites (test/clients/python-*.e2e.test.ts) share: where
// the clients' virtualenv is, what happens when it is missing, how a driver
// script is run, and the checks every client's requests and stored rows get.
import { spawn, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { expect } from 'vitest';
import type { ChatMessage } from '../../../src/domain.js';
import { REPO_ROOT, type ContextdProcess } from '../../support/contextd-process.js';
import type { Behaviour, RecordedRequest } from '../../support/fake-upstream.js';
import { promptOf, textOf } from '../../support/compat-checks.js';
import { describeWithService, type Availability } from '../../support/services.js';

export const VENV_PYTHON = join(REPO_ROOT, '.venv-clients', 'bin', 'python');
const DRIVER_DIR = join(REPO_ROOT, 'test', 'clients', 'python');
const REQUIREMENTS = join(DRIVER_DIR, 'requirements.txt');
/** Written by scripts/install-python-clients.sh once every client installed and imported. */
const STAMP = join(REPO_ROOT, '.venv-clients', '.requirements.sha256');
const INSTALL_HINT = 'run scripts/install-python-clients.sh';

/** The pinned instructions every driver sends (test/clients/python/common.py's SYSTEM). */
export const SYSTEM = 'You are a terse assistant. Answer in one line.';
/** What the drivers' lookup tool answers for `q` (common.py's lookup_result). */
export const lookupResult = (q: string): string => `${q} is a teapot`;

export function pythonClientsAvailability(): Availability {
  if (!existsSync(VENV_PYTHON)) return { isAvailable: false, reason: `no Python client virtualenv at ${VENV_PYTHON}`, hint: INSTALL_HINT };
  const wanted = createHash('sha256').update(readFileSync(REQUIREMENTS)).digest('hex');
  const installed = existsSync(STAMP) ? readFileSync(STAMP, 'utf8').trim() : undefined;
  if (installed !== wanted) return { isAvailable: false, reason: `the Python clients in .venv-clients are not installed from the current ${REQUIREMENTS}`, hint: INSTALL_HINT };
  return { isAvailable: true };
}

/** A driver is killed after this long; a test gets a little more, so the kill, with the driver's output, is what it reports. */
const DRIVER_TIMEOUT_MS = 45_000;
const TEST_TIMEOUT_MS = 60_000;

/** Runs the suite when the clients are installed; otherwise fails it (CI set) or skips it, saying why either way. */
export function describeWithPythonClients(name: string, body: () => void): void {
  describeWithService(pythonClientsAvailability(), name, body, { timeoutMs: TEST_TIMEOUT_MS });
}

export interface DriverTarget {
  contextd: ContextdProcess;
  conversation: string;
  apiKey: string;
}

const runningDrivers = new Set<ChildProcess>();
let isExitHookInstalled = false;

/**
 * Runs `test/clients/python/<script> ...args` with the virtualenv's python and
 * returns the JSON object it printed; rejects with its stderr when it fails.
 */
export function runDriver<T>(script: string, args: readonly string[], target: DriverTarget): Promise<T> {
  const env: NodeJS.ProcessEnv = {
    PATH: process.env.PATH,
    HOME: process.env.HOME,
    LANG: 'C.UTF-8',
    PYTHONUNBUFFERED: '1',
    PYTHONDONTWRITEBYTECODE: '1',
    CONTEXTD_URL: target.contextd.url,
    CONTEXTD_BASE_URL: target.contextd.baseURL,
    CONVERSATION_ID: target.conversation,
    API_KEY: target.apiKey,
  };
  const command = `${script} ${args.join(' ')}`;
  return new Promise<T>((resolve, reject) => {
    const child = spawn(VENV_PYTHON, [join(DRIVER_DIR, script), ...args], { cwd: DRIVER_DIR, env, stdio: ['ignore', 'pipe', 'pipe'] });
    runningDrivers.add(child);
    child.once('close', () => runningDrivers.delete(child));
    if (!isExitHookInstalled) {
      isExitHookInstalled = true;
      // A test worker that ends mid-test (timeout, bail) leaves no driver behind.
      process.on('exit', () => {
        for (const driver of runningDrivers) driver.kill('SIGKILL');
      });
    }
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (text: string) => (stdout += text));
    child.stderr.setEncoding('utf8').on('data', (text: string) => (stderr += text));
    const timer = setTimeout(() => child.kill('SIGKILL'), DRIVER_TIMEOUT_MS);
    child.once('error', (error) => {
      clearTimeout(timer);
      reject(error);
    });
    child.once('close', (code, signal) => {
      clearTimeout(timer);
      const ending = signal === 'SIGKILL' ? `was killed after ${DRIVER_TIMEOUT_MS} ms` : `exited with ${signal ?? code}`;
      if (code !== 0) {
        reject(new Error(`python ${command} ${ending}\n--- stderr ---\n${stderr}\n--- stdout ---\n${stdout}`));
        return;
      }
      const last = stdout.trim().split('\n').at(-1) ?? '';
      let result: T & { blocked_connections?: string[] };
      try {
        result = JSON.parse(last) as T & { blocked_connections?: string[] };
      } catch {
        reject(new Error(`python ${command} printed no JSON object\n--- stdout ---\n${stdout}\n--- stderr ---\n${stderr}`));
        return;
      }
      // common.py refuses every connection beyond 127.0.0.1; a client that tried one phones home.
      if ((result.blocked_connections ?? []).length > 0) {
        reject(new Error(`python ${command} tried to reach beyond 127.0.0.1: ${result.blocked_connections!.join(', ')}\n--- stderr ---\n${stderr}`));
        return;
      }
      resolve(result);
    });
  });
}

// ---- the fake model's side of a tool round trip ----

/**
 * A user message asking to "look up item N" gets a call to lookup({q: 'item N'})
 * with id `call_item_N`; a tool result gets `found: <result>`; anything else the echo.
 */
export function toolRoundTrip(request: RecordedRequest): Behaviour {
  const last = promptOf(request).at(-1);
  if (last?.role === 'tool') return { kind: 'text', content: `found: ${textOf(last)}` };
  const item = last?.role === 'user' ? /look up item (\d+)/.exec(textOf(last)) : null;
  if (item !== null) return { kind: 'tool_calls', toolCalls: [{ id: `call_item_${item[1]}`, name: 'lookup', arguments: { q: `item ${item[1]}` } }] };
  return { kind: 'text' };
}

// ---- checks on what the upstream received ----

/** Every tool_call id in the prompt, in order, once per assistant message that carries it. */
export function toolCallIds(messages: readonly ChatMessage[]): string[] {
  return messages.flatMap((message) => (message.role === 'assistant' ? (message.tool_calls ?? []).map((call) => call.id) : []));
}

/** No tool call (and no tool result) appears twice: a re-sent assistant turn was recognised, not added again. */
export function expectNoDuplicateToolCalls(messages: readonly ChatMessage[]): void {
  const ids = toolCallIds(messages);
  expect(ids, 'a tool_call id appears in more than one assistant message').toEqual([...new Set(ids)]);
  const results = messages.flatMap((message) => (message.role === 'tool' ? [message.tool_call_id] : []));
  expect(results, 'a tool result appears twice').toEqual([...new Set(results)]);
}

/** The conversation header is contextd's alone: it never reaches the upstream. */
export function expectNoConversationHeader(requests: readonly RecordedRequest[]): void {
  for (const request of requests) expect(request.headers['x-conversation-id'], `${request.method} ${request.url} carried x-conversation-id`).toBeUndefined();
}

/** The budget header of a memory response: present, a number, within the route's budget. */
export function expectWithinBudget(headers: Readonly<Record<string, string>>, budgetTokens: number): void {
  const tokens = Number(headers['x-contextd-context-tokens']);
  expect(Number.isInteger(tokens), `x-contextd-context-tokens is ${headers['x-contextd-context-tokens']}`).toBe(true);
  expect(tokens).toBeGreaterThan(0);
  expect(tokens).toBeLessThanOrEqual(budgetTokens);
}

export function rolesOf(messages: readonly ChatMessage[]): string[] {
  return messages.map((message) => (message.role === 'assistant' && (message.tool_calls?.length ?? 0) > 0 ? 'assistant(tool_calls)' : message.role));
}
