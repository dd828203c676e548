// What the AI SDK suites (test/clients/ai-sdk*.e2e.test.ts) share: where the
// AI SDK and its Node are, what happens when they are missing, and how the
// driver run-turns.mjs is run. The AI SDK needs Node >= 22, so it lives here
// with its own node_modules and its own Node binary (scripts/install-node-clients.sh).
import { execFile, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, beforeEach } from 'vitest';
import { contextdConfig } from '../../integration/harness.js';
import { ensureBuilt, REPO_ROOT, startContextd, stopAll, type ContextdProcess } from '../../support/contextd-process.js';
import { startFakeUpstream, type FakeUpstream } from '../../support/fake-upstream.js';
import { describeWithService, type Availability } from '../../support/services.js';

const AI_SDK_DIR = join(REPO_ROOT, 'test', 'clients', 'ai-sdk');
const NODE_BIN = join(AI_SDK_DIR, 'node_modules', '.bin', 'node');
const DRIVER = join(AI_SDK_DIR, 'run-turns.mjs');
const MIN_NODE_MAJOR = 22;
const INSTALL_HINT = 'run scripts/install-node-clients.sh';

function aiSdkAvailability(): Availability {
  const version = spawnSync(NODE_BIN, ['--version'], { encoding: 'utf8', timeout: 10_000 });
  if (version.status !== 0) return { isAvailable: false, reason: `${NODE_BIN} does not run (${version.error?.message ?? version.stderr.trim()})`, hint: INSTALL_HINT };
  const major = Number(/^v(\d+)\./.exec(version.stdout.trim())?.[1]);
  if (!(major >= MIN_NODE_MAJOR)) return { isAvailable: false, reason: `${NODE_BIN} is ${version.stdout.trim()}; the AI SDK needs Node >= ${MIN_NODE_MAJOR}` };
  for (const name of ['ai', '@ai-sdk/openai', 'zod']) {
    if (!existsSync(join(AI_SDK_DIR, 'node_modules', name, 'package.json'))) return { isAvailable: false, reason: `${name} is not installed in ${AI_SDK_DIR}`, hint: INSTALL_HINT };
  }
  return { isAvailable: true };
}

/** Runs the suite when the AI SDK is installed; otherwise fails it (CI set) or skips it, saying why either way. */
export function describeWithAiSdk(name: string, body: () => void): void {
  describeWithService(aiSdkAvailability(), name, body);
}

/** run-turns.mjs's scenario (its header says what each field does). */
export interface Scenario {
  call: 'generate' | 'stream';
  history: 'new-only' | 'full';
  turns: readonly string[];
  instructions?: string;
  tools?: boolean;
  api?: 'chat' | 'responses';
  providerOptions?: Record<string, Record<string, unknown>>;
  reportErrors?: boolean;
}

export interface DriverStep {
  finishReason: string;
  text: string;
  toolCalls: { toolCallId: string; toolName: string; input: unknown }[];
  toolResults: { toolCallId: string; output: unknown }[];
  contextTokens: string | null;
}

export interface DriverTurn {
  text: string;
  streamedText?: string;
  finishReason: string;
  usage?: { outputTokens?: number };
  steps: DriverStep[];
  responseMessages: { role: string; content: unknown }[];
}

/** A turn that failed, with `reportErrors` set. */
export interface DriverFailure {
  error: { statusCode?: number; message?: string; responseBody?: string };
}

export interface DriverResult<Turn = DriverTurn> {
  sdk: Record<string, string>;
  turns: Turn[];
  history: { role: string; content: unknown }[];
}

export interface DriverTarget {
  contextd: ContextdProcess;
  conversation: string;
  apiKey: string;
}

export function runTurns<Turn = DriverTurn>(target: DriverTarget, scenario: Scenario): Promise<DriverResult<Turn>> {
  // A minimal environment: nothing of the test runner's (NODE_OPTIONS, OPENAI_*) reaches the other Node.
  const env = { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '', CONTEXTD_BASE_URL: target.contextd.baseURL, CONVERSATION_ID: target.conversation, API_KEY: target.apiKey };
  return new Promise((resolve, reject) => {
    execFile(NODE_BIN, [DRIVER, JSON.stringify(scenario)], { cwd: AI_SDK_DIR, env, timeout: 20_000, maxBuffer: 16 * 1024 * 1024 }, (error, stdout, stderr) => {
      if (error !== null) {
        reject(new Error(`the AI SDK driver failed (${error.message.split('\n')[0]}):\n${stderr}${stdout}`));
        return;
      }
      try {
        resolve(JSON.parse(stdout.trim().split('\n').at(-1) ?? '') as DriverResult<Turn>);
      } catch {
        reject(new Error(`the AI SDK driver printed no JSON result:\n${stdout}\n${stderr}`));
      }
    });
  });
}

/** The suite's fake upstream and contextd; set by useAiSdkSuite's beforeAll. */
export interface AiSdkSuite {
  upstream: FakeUpstream;
  contextd: ContextdProcess;
  /** The AI SDK packages the driver reported, logged once when the suite ends. */
  sdkVersions: Record<string, string> | undefined;
}

/**
 * Call in the suite's describe: a fake upstream and a contextd in front of it
 * with a `budgetTokens` budget and no summaries (a summary call would be one
 * more request at the upstream, and a summary would stand for history); the
 * upstream is reset before each test.
 */
export function useAiSdkSuite(budgetTokens: number): AiSdkSuite {
  const suite = { sdkVersions: undefined } as AiSdkSuite;
  beforeAll(async () => {
    await ensureBuilt();
    suite.upstream = await startFakeUpstream();
    suite.contextd = await startContextd({
      config: contextdConfig(suite.upstream, { defaults: { budget: { max_context_tokens: budgetTokens, summary_max_tokens: 100 }, summary: { enabled: false } } }),
    });
  });
  beforeEach(() => suite.upstream.reset());
  afterAll(async () => {
    await stopAll();
    await suite.upstream?.close();
    if (suite.sdkVersions !== undefined) console.log(`AI SDK client versions: ${JSON.stringify(suite.sdkVersions)}`);
  });
  return suite;
}
