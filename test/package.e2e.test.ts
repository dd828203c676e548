// What `npm pack` makes is what a user installs: the tarball installed globally
// into a temporary prefix (never the user's own) gives a `contextd` bin that
// answers --help and --version, and serves chat completions with memory in
// front of a fake upstream, run from a directory outside the repository so
// nothing it needs can come from the checkout. The tarball also carries the
// inspector's static files (ui/).
import { execFile, spawn } from 'node:child_process';
import { mkdtemp, realpath, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { delimiter, dirname, join } from 'node:path';
import { promisify } from 'node:util';
import OpenAI from 'openai';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { API_KEY, contextdConfig } from './integration/harness.js';
import { REPO_ROOT, ensureBuilt, startContextd, stopAll } from './support/contextd-process.js';
import { startFakeUpstream, type FakeUpstream } from './support/fake-upstream.js';

const run = promisify(execFile);

/** Packing takes about a second; installing, about 6 s with the dependencies in npm's cache (CI's `npm ci` fills it), longer when they come from the registry. */
const INSTALL_TIMEOUT_MS = 180_000;

interface PackResult {
  filename: string;
  files: { path: string }[];
}

let dir: string;
let tarball: string;
let packed: Set<string>;
let bin: string;
let upstream: FakeUpstream | undefined;

/** Runs npm with its output kept, failing with that output when npm does. */
function npm(args: readonly string[], cwd: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const child = spawn('npm', args, { cwd, env: { ...process.env, npm_config_update_notifier: 'false' }, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (text: string) => (stdout += text));
    child.stderr.setEncoding('utf8').on('data', (text: string) => (stderr += text));
    child.once('error', reject);
    child.once('close', (code) => (code === 0 ? resolve(stdout) : reject(new Error(`npm ${args.join(' ')} exited ${code}:\n${stdout}\n${stderr}`))));
  });
}

beforeAll(async () => {
  await ensureBuilt();
  dir = await mkdtemp(join(tmpdir(), 'contextd-package-'));
  // --ignore-scripts: `prepare` would rebuild dist/ under the other test files reading it; ensureBuilt just made it fresh.
  const [pack] = JSON.parse(await npm(['pack', '--ignore-scripts', '--json', '--pack-destination', dir], REPO_ROOT)) as PackResult[];
  tarball = join(dir, pack!.filename);
  packed = new Set(pack!.files.map((file) => file.path));
  const prefix = join(dir, 'prefix');
  // --prefer-offline: the dependencies usually sit in npm's cache already; the registry is asked only for what is missing.
  await npm(['install', '--global', '--prefix', prefix, '--no-audit', '--no-fund', '--prefer-offline', tarball], dir);
  bin = join(prefix, 'bin', 'contextd');
  upstream = await startFakeUpstream();
}, INSTALL_TIMEOUT_MS);

afterAll(async () => {
  await stopAll();
  await upstream?.close();
  if (dir !== undefined) await rm(dir, { recursive: true, force: true });
});

describe('the tarball npm pack makes', () => {
  test('holds the CLI, the example config, the JSON schema and the README, and no tests or TypeScript sources', () => {
    for (const path of ['package.json', 'README.md', 'dist/src/cli.js', 'dist/src/main.js', 'config/contextd.yaml', 'schema/contextd.schema.json']) {
      expect(packed.has(path), path).toBe(true);
    }
    expect([...packed].filter((path) => /^(src|test|bench|dist\/test|dist\/bench)\//.test(path) || /(?<!\.d)\.ts$/.test(path))).toEqual([]);
  });

  test("holds the inspector's static files", () => {
    for (const path of ['ui/index.html', 'ui/inspector.js', 'ui/inspector.css']) expect(packed.has(path), `${path} is in the tarball`).toBe(true);
  });
});

describe('contextd installed globally from the tarball', () => {
  test('the bin is the installed package, and answers --help and --version', async () => {
    expect(await realpath(bin)).toBe(await realpath(join(dir, 'prefix', 'lib', 'node_modules', 'contextd', 'dist', 'src', 'cli.js')));
    // Run as a user runs it: the bin itself, through its #! line, with this test's Node first on PATH.
    const env = { ...process.env, PATH: `${dirname(process.execPath)}${delimiter}${process.env.PATH ?? ''}` };
    const help = await run(bin, ['--help'], { cwd: dir, env, timeout: 10_000 });
    for (const flag of ['--config', '--port']) expect(help.stdout).toContain(flag);
    const version = await run(bin, ['--version'], { cwd: dir, env, timeout: 10_000 });
    expect(version.stdout.trim()).toMatch(/^contextd \d+\.\d+\.\d+/);
  });

  test('serves a chat completion on the embedded store, the next one gets the history, and the inspector page is there', async () => {
    const contextd = await startContextd({ cliPath: bin, cwd: dir, config: contextdConfig(upstream!) });
    expect(contextd.logs.some((line) => String(line.msg).includes('embedded'))).toBe(true);
    const client = new OpenAI({ baseURL: contextd.baseURL, apiKey: API_KEY, maxRetries: 0, defaultHeaders: { 'x-conversation-id': 'package-conv' } });

    const first = await client.chat.completions.create({ model: 'gpt-4o', messages: [{ role: 'user', content: 'My name is Ana.' }] });
    expect(first.choices[0]!.message.content).toBe('echo: My name is Ana.');
    const { data: second, response } = await client.chat.completions.create({ model: 'gpt-4o', messages: [{ role: 'user', content: 'What is my name?' }] }).withResponse();
    expect(second.choices[0]!.message.content).toBe('echo: What is my name?');
    expect(response.headers.get('x-contextd-history-messages')).toBe('2');

    const page = await fetch(`${contextd.url}/contextd/ui/`);
    expect(page.status, 'the inspector page, served from the installed ui/').toBe(200);
    expect(page.headers.get('content-type')).toMatch(/^text\/html/);
    await page.arrayBuffer();

    expect(await contextd.stop()).toBe(0);
  });
});
