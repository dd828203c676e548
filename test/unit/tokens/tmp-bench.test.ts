import { test } from 'vitest';
import { readFileSync } from 'node:fs';
import { randomBytes } from 'node:crypto';
import { createRequire } from 'node:module';
import { tokenCounterFor } from '../../../src/tokens/count-tokens.js';
const req = createRequire(import.meta.url);
test('bench', () => {
  const lines: string[] = [];
  for (const encoding of ['o200k_base', 'cl100k_base'] as const) {
    const c = tokenCounterFor(encoding);
    const enc = req(`gpt-tokenizer/encoding/${encoding}`);
    enc.setMergeCacheSize(0);
    const plain = (s: string) => enc.countTokens(s, { disallowedSpecial: new Set() });
    for (const f of ['prose', 'code', 'json']) {
      const s = readFileSync(`/tmp/${f}.txt`, 'utf8').slice(0, 1_000_000);
      const time = (fn: () => number) => { const times = []; let r = 0; for (let i = 0; i < 5; i++) { const t0 = performance.now(); r = fn(); times.push(performance.now() - t0); } times.sort((a, b) => a - b); return `${times[2]!.toFixed(0)}ms (${r})`; };
      lines.push(`${encoding} ${f} 1MB: countText ${time(() => c.countText(s))}  plain ${time(() => plain(s))}`);
      const msgs: string[] = []; for (let i = 0; i + 2000 <= s.length; i += 2000) msgs.push(s.slice(i, i + 2000));
      const t0 = performance.now(); for (const m of msgs) c.countText(m); const t1 = performance.now(); for (const m of msgs) plain(m); const t2 = performance.now();
      lines.push(`   2KB msgs: countText ${((t1 - t0) / msgs.length * 1000).toFixed(0)}us plain ${((t2 - t1) / msgs.length * 1000).toFixed(0)}us`);
    }
    // exact cost of one no-space run vs length
    for (const L of [1024, 4096, 8192, 16384, 32768]) {
      const b64 = randomBytes(L).toString('base64').slice(0, L);
      const json = JSON.stringify(Array.from({ length: L }, (_, i) => ({ id: i, name: `n${i}`, ok: i % 2 === 0 }))).slice(0, L);
      const letters = randomBytes(L).toString('hex').replace(/[0-9]/g, 'q').slice(0, L);
      const t = (s: string) => { const t0 = performance.now(); const n = plain(s); return `${(performance.now() - t0).toFixed(1)}ms bytes/tok=${(s.length / n).toFixed(2)}`; };
      lines.push(`${encoding} run L=${L}: base64 ${t(b64)} | minJSON ${t(json)} | hexletters ${t(letters)}`);
    }
  }
  console.log(lines.join('\n'));
}, 120_000);
