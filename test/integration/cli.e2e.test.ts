import { execFile } from 'node:child_process';
import { mkdtemp, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { afterAll, beforeAll, expect, test } from 'vitest';
import { CLI_PATH, ensureBuilt, startContextd, stopAll } from '../support/contextd-process.js';
import { startFakeUpstream, type FakeUpstream } from '../support/fake-upstream.js';
import { API_KEY, clientFor, startInFrontOf } from './harness.js';

const run = promisify(execFile);
let upstream: FakeUpstream;

beforeAll(async () => {
  await ensureBuilt();
  upstream = await startFakeUpstream();
});
afterAll(async () => {
  await stopAll();
  await upstream.close();
});

async function cli(args: string[], env: Record<string, string> = {}): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await run(process.execPath, [CLI_PATH, ...args], { env: { PATH: process.env.PATH ?? '', ...env }, timeout: 10_000 });
    return { code: 0, stdout, stderr };
  } catch (error) {
    const e = error as { code: number; stdout: string; stderr: string };
    return { code: e.code, stdout: e.stdout, stderr: e.stderr };
  }
}

test('--help lists flags and environment variables; --version prints the package version', async () => {
  const help = await cli(['--help']);
  expect(help.code).toBe(0);
  for (const word of ['--config', '--port', 'CONTEXTD_CONFIG', 'CONTEXTD_PORT', 'CONTEXTD_UPSTREAM_URL', 'REDIS_URL', 'MONGODB_URL', 'LOG_LEVEL']) expect(help.stdout).toContain(word);
  const version = await cli(['--version']);
  expect(version.stdout.trim()).toMatch(/^contextd \d+\.\d+\.\d+/);
  expect((await cli(['--bogus'])).code).toBe(2);
});

test('an invalid config stops the process with a message naming the file, the path and the problem', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'contextd-cli-'));
  const file = join(dir, 'bad.yaml');
  await writeFile(file, 'routes:\n  - name: a\n    match: { model: "gpt-4o*" }\n  - name: b\n    budget: { max_context_tokens: lots }\n');
  const result = await cli(['--config', file]);
  expect(result.code).toBe(1);
  expect(result.stderr).toContain(file);
  expect(result.stderr).toContain('routes[1].budget.max_context_tokens');
});

test('CONTEXTD_CONFIG and CONTEXTD_UPSTREAM_URL are honoured', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'contextd-cli-'));
  const file = join(dir, 'env.yaml');
  await writeFile(file, 'server: { host: 127.0.0.1 }\n');
  const contextd = await startContextd({ config: 'server: { host: 127.0.0.1 }\n', env: { CONTEXTD_CONFIG: file, CONTEXTD_UPSTREAM_URL: upstream.url } });
  const reply = await clientFor(contextd, 'env-conv').chat.completions.create({ model: 'gpt-4o', messages: [{ role: 'user', content: 'via env' }] });
  expect(reply.choices[0]!.message.content).toBe('echo: via env');
  const listening = contextd.logs.find((l) => l.msg === 'contextd listening')!;
  expect(String(listening.upstream)).toContain(`127.0.0.1:${upstream.port}`);
  expect(contextd.logs.some((l) => String(l.msg).includes('embedded'))).toBe(true);
});

test('SIGTERM lets an in-flight stream finish, then exits 0', async () => {
  const contextd = await startInFrontOf(upstream);
  upstream.enqueue({ kind: 'text', content: 'finishing after the signal', chunkCount: 5, holdAfterChunks: 2 });
  const stream = await clientFor(contextd, 'drain-conv').chat.completions.create({ model: 'gpt-4o', stream: true, messages: [{ role: 'user', content: 'long one' }] });
  const reading = (async () => {
    let text = '';
    for await (const chunk of stream) text += chunk.choices[0]?.delta.content ?? '';
    return text;
  })();
  await upstream.waitForHeld(1);
  const exited = contextd.stop('SIGTERM');
  await contextd.waitForLog((l) => String(l.msg).startsWith('contextd shutting down'));
  upstream.release();
  expect(await reading).toBe('finishing after the signal');
  expect(await exited).toBe(0);
  expect(contextd.output()).not.toContain(API_KEY);
});
