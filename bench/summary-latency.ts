// Does a turn that triggers a rolling summary cost the client anything?
// One contextd on the embedded store with summaries on; sequential turns over
// many conversations; the client's latency of every turn is matched with
// contextd's log to tell the turns after which a summary job ran (triggering)
// from the others. Reports p50/p90/p99 of each group and their ratio, plus the
// turn right after a trigger (the job's upstream call runs then).
// Run: node dist/bench/summary-latency.js (npm run bench runs it last).

import { fork, spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { Pool } from 'undici';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const CONVERSATIONS = Number(process.env.SUMMARY_BENCH_CONVERSATIONS ?? 40);
const TURNS = Number(process.env.SUMMARY_BENCH_TURNS ?? 30);
const WORDS = 'the budget holds as the model counts while Ana orders forty two blue mugs for the team offsite next week'.split(' ');

const text = (seed: number, words: number): string => Array.from({ length: words }, (_, i) => WORDS[(seed * 31 + i * 7) % WORDS.length]).join(' ');

async function freePort(): Promise<number> {
  const server = createServer().listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address() as { port: number };
  server.close();
  return port;
}

async function firstLine(child: ChildProcess): Promise<string> {
  const lines = createInterface({ input: child.stdout! });
  const [line] = (await once(lines, 'line')) as [string];
  lines.close();
  return line;
}

function percentile(values: readonly number[], p: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))] ?? Number.NaN;
}

async function main(): Promise<void> {
  // Replies sized for this run's 600-token budget (the upstream's default, 300 tokens, would fill half of it each turn).
  const upstream = fork(join(ROOT, 'dist/bench/upstream-server.js'), ['--reply-tokens', '60'], { stdio: ['ignore', 'pipe', 'inherit', 'ipc'] });
  const { url } = JSON.parse(await firstLine(upstream)) as { url: string };
  const dir = await mkdtemp(join(tmpdir(), 'contextd-summary-bench-'));
  const port = await freePort();
  const configPath = join(dir, 'contextd.yaml');
  await writeFile(
    configPath,
    [
      'server: { host: 127.0.0.1 }',
      `upstream: { base_url: "${url}" }`,
      'defaults:',
      '  budget: { max_context_tokens: 600, summary_max_tokens: 100 }',
      '  summary: { enabled: true, trigger_tokens: 200 }',
    ].join('\n'),
  );
  const logPath = join(dir, 'contextd.log');
  const { createWriteStream } = await import('node:fs');
  const logFile = createWriteStream(logPath);
  const contextd = spawn(process.execPath, [join(ROOT, 'dist/src/cli.js'), '--config', configPath, '--port', String(port)], {
    env: { ...process.env, LOG_LEVEL: 'info', REDIS_URL: '', MONGODB_URL: '' },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const listening = new Promise<void>((resolve, reject) => {
    contextd.once('exit', (code) => reject(new Error(`contextd exited (${code}) before listening`)));
    createInterface({ input: contextd.stdout! }).on('line', (line) => {
      logFile.write(line + '\n');
      if (line.includes('"msg":"contextd listening"')) resolve();
    });
  });
  await listening;
  const pool = new Pool(`http://127.0.0.1:${port}`, { connections: 1 });
  const send = async (conversation: string, content: string): Promise<number> => {
    const started = performance.now();
    const response = await pool.request({
      method: 'POST',
      path: '/v1/chat/completions',
      headers: { 'content-type': 'application/json', authorization: 'Bearer sk-bench-summary', 'x-conversation-id': conversation },
      body: JSON.stringify({ model: 'gpt-4o-mini', messages: [{ role: 'system', content: 'Be brief.' }, { role: 'user', content }] }),
    });
    await response.body.text();
    if (response.statusCode !== 200) throw new Error(`contextd answered ${response.statusCode}`);
    return performance.now() - started;
  };
  for (let i = 0; i < 200; i++) await send(`warm-${i % 10}`, text(i, 30));

  const latencies = new Map<string, number[]>();
  for (let turn = 0; turn < TURNS; turn++) {
    for (let c = 0; c < CONVERSATIONS; c++) {
      const conversation = `sum-bench-${c}`;
      const ms = await send(conversation, text(turn * CONVERSATIONS + c, 40));
      latencies.set(conversation, [...(latencies.get(conversation) ?? []), ms]);
    }
  }
  const exited = once(contextd, 'exit');
  contextd.kill('SIGTERM');
  await exited;
  logFile.end();
  await once(logFile, 'finish');
  upstream.kill('SIGTERM');
  await pool.close();

  // Match: the k-th request line of a conversation is its k-th turn; a stored
  // summary job belongs to the last turn of its conversation logged before it.
  const lines = (await readFile(logPath, 'utf8')).split('\n').filter(Boolean).map((l) => JSON.parse(l) as Record<string, unknown>);
  await rm(dir, { recursive: true, force: true });
  const turnTimes = new Map<string, number[]>();
  const addedMs = new Map<string, number>();
  const triggering = new Set<string>();
  for (const line of lines) {
    const conversation = String(line.conversation ?? '');
    if (!conversation.startsWith('sum-bench-')) continue;
    if (line.msg === 'request') {
      const times = [...(turnTimes.get(conversation) ?? []), Number(line.time)];
      turnTimes.set(conversation, times);
      addedMs.set(`${conversation}#${times.length - 1}`, Number(line.addedMs));
    }
    if (line.msg === 'summary job' && line.outcome === 'stored') {
      const times = turnTimes.get(conversation) ?? [];
      triggering.add(`${conversation}#${times.length - 1}`);
    }
  }
  const groups = { triggering: [] as number[], afterTrigger: [] as number[], other: [] as number[] };
  const added = { triggering: [] as number[], afterTrigger: [] as number[], other: [] as number[] };
  for (const [conversation, values] of latencies) {
    values.forEach((ms, k) => {
      const group = triggering.has(`${conversation}#${k}`) ? 'triggering' : triggering.has(`${conversation}#${k - 1}`) ? 'afterTrigger' : 'other';
      groups[group].push(ms);
      added[group].push(addedMs.get(`${conversation}#${k}`) ?? Number.NaN);
    });
  }
  const row = (name: string, values: number[]): string =>
    `| ${name} | ${values.length} | ${percentile(values, 50).toFixed(3)} | ${percentile(values, 90).toFixed(3)} | ${percentile(values, 99).toFixed(3)} |`;
  const ratio = percentile(groups.triggering, 50) / percentile(groups.other, 50);
  const next = percentile(groups.afterTrigger, 50) / percentile(groups.other, 50);
  console.log(`\n# Turns that trigger a rolling summary (embedded store, c=1, ${CONVERSATIONS} conversations x ${TURNS} turns)\n`);
  console.log('| turns | n | p50 ms | p90 ms | p99 ms |\n| --- | --- | --- | --- | --- |');
  console.log(row('triggering a summary job', groups.triggering));
  console.log(row('right after one (its upstream call runs then)', groups.afterTrigger));
  console.log(row('all other turns', groups.other));
  console.log(`\ntriggering / other p50: ${ratio.toFixed(2)} (target about 1: the job starts after the reply) ${ratio <= 1.1 ? 'PASS' : 'FAIL'}`);
  console.log(`right after / other p50: ${next.toFixed(2)}`);
  console.log(
    `contextd's own time before the upstream call (addedMs p50): triggering ${percentile(added.triggering, 50).toFixed(3)} ms, right after ${percentile(added.afterTrigger, 50).toFixed(3)} ms, other ${percentile(added.other, 50).toFixed(3)} ms`,
  );
}

main().catch((error: unknown) => {
  console.error(error);
  process.exitCode = 1;
});
