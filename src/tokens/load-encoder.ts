import { createRequire } from 'node:module';
import type { EncodingName } from './encoding-for-model.js';

/** What contextd needs of a gpt-tokenizer encoding module. */
export interface BpeEncoder {
  countTokens(text: string, options: { disallowedSpecial: Set<string> }): number;
}

interface EncodingModule extends BpeEncoder {
  setMergeCacheSize(size: number): void;
}

// tokenCounterFor() is synchronous, and importing every encoding statically would load
// all four rank tables (o200k_base alone: ~200 ms and ~15 MB of heap), so an encoding is
// required on first use instead; main.ts asks for the routes' encodings at startup.
const requireEncoding = createRequire(import.meta.url);

export function loadEncoder(encoding: EncodingName): BpeEncoder {
  const encoder = requireEncoding(`gpt-tokenizer/encoding/${encoding}`) as EncodingModule;
  // gpt-tokenizer's merge cache (100,000 entries by default) must stay off in a process that
  // runs for weeks. Its keys are slices of the counted text, so every entry pins the whole
  // text it came from: 2,000 distinct 90 KB texts kept 180 MB alive. And once full, each
  // eviction walks the Map's deleted slots: counting fresh 100 KB base64 texts slowed from
  // 65 ms to 800 ms each. Distinct 2 KB chat messages count only ~1.2x faster with it
  // (190 vs 150 ns/char), which is not worth either.
  encoder.setMergeCacheSize(0);
  return encoder;
}
