// What does the request body's depth check (src/http/check-json-depth.ts) add
// to parsing the body? Baseline: the `JSON.parse(body.toString('utf8'))` that
// follows it on every chat completion with memory, timed in the same run.
// Two bodies at 100 KB and 1 MB: a chat history (prose with quotes and
// newlines, as apps send it) and a JSON-dense one (many small objects and
// numbers, the worst case for a scan that skips strings).
//
//   npm run build && node dist/bench/json-depth.js
import { checkJsonDepth } from '../src/http/check-json-depth.js';
import { prose } from './prose.js';
import { microseconds } from './micro.js';

function chatBody(bytes: number): Buffer {
  const messages: Record<string, unknown>[] = [];
  for (let i = 0, size = 0; size < bytes; i++) {
    const text = `${prose(i, 600)}\n\n"${prose(i + 1, 80)}"`;
    const message = i % 2 === 0 ? { role: 'user', content: text } : { role: 'assistant', content: text, refusal: null, annotations: [] };
    messages.push(message);
    size += JSON.stringify(message).length;
  }
  return Buffer.from(JSON.stringify({ model: 'gpt-4o-mini', stream: true, messages, metadata: { app: 'bench' } }));
}

function denseBody(bytes: number): Buffer {
  const rows: Record<string, unknown>[] = [];
  for (let i = 0, size = 0; size < bytes; i++) {
    const row = { id: i, values: [i % 7, i * 0.5, true, null], key: `k${i % 10}` };
    rows.push(row);
    size += JSON.stringify(row).length;
  }
  return Buffer.from(JSON.stringify({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'hi' }], metadata_rows: rows }));
}

console.log('| body | size | depth check µs | JSON.parse µs | check / parse |\n| --- | --- | --- | --- | --- |');
for (const [name, make] of [['chat history', chatBody], ['JSON-dense', denseBody]] as const) {
  for (const bytes of [100 * 1024, 1024 * 1024]) {
    const body = make(bytes);
    const parseUs = microseconds(() => JSON.parse(body.toString('utf8')));
    const checkUs = microseconds(() => checkJsonDepth(body));
    console.log(`| ${name} | ${Math.round(body.length / 1024)} KB | ${checkUs.toFixed(0)} | ${parseUs.toFixed(0)} | ${(checkUs / parseUs).toFixed(2)} |`);
  }
}
