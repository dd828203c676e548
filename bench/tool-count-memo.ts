// What does the tools memo (src/tokens/tool-count-memo.ts) save an agent that sends the
// same tool definitions on every request? Baseline: counting the set without the memo
// (countToolDefinitions), timed in the same run, per request. Each request parses its body
// anew, so every call gets its own copy of the definitions (parsed beforehand: the parse is
// the same on both paths). The text counter's piece cache is warm on both paths, as on a
// busy server, so the baseline is the least the count costs.
//
//   npm run build && node dist/bench/tool-count-memo.js
import { tokenCounterFor } from '../src/tokens/count-tokens.js';
import { countToolDefinitions } from '../src/tokens/count-tools.js';
import { microseconds } from './micro.js';

/** An agent's tool: a few typed arguments with descriptions, one enum, as SDKs generate them. */
function tool(i: number): unknown {
  return {
    type: 'function',
    function: {
      name: `tool_${i}_${['search', 'fetch', 'update', 'create', 'list'][i % 5]}`,
      description: `Performs operation ${i} against the workspace. Use it when the user asks for ${['records', 'files', 'tickets', 'events'][i % 4]} by name or id.`,
      strict: true,
      parameters: {
        type: 'object',
        properties: {
          id: { type: 'string', description: 'The identifier of the item, as shown in the list.' },
          query: { type: 'string', description: 'Free text to match against names and descriptions.' },
          limit: { type: 'integer', description: 'Most items to return (1-100).' },
          order: { type: 'string', enum: ['newest', 'oldest', 'relevance'], description: 'Sort order.' },
          filters: { type: 'object', properties: { owner: { type: 'string' }, tag: { type: 'array', items: { type: 'string' } } }, additionalProperties: false },
        },
        required: ['id', 'query', 'limit', 'order', 'filters'],
        additionalProperties: false,
      },
    },
  };
}

const counter = tokenCounterFor('o200k_base');
console.log('| tools | JSON | tokens | uncached µs/request | memoised µs/request | memoised / uncached |\n| --- | --- | --- | --- | --- | --- |');
for (const count of [5, 20, 50]) {
  const json = JSON.stringify(Array.from({ length: count }, (_, i) => tool(i)));
  const copies = Array.from({ length: 64 }, () => JSON.parse(json) as unknown);
  let next = 0;
  const copy = (): unknown => copies[next++ % copies.length];
  const uncachedUs = microseconds(() => countToolDefinitions(copy(), counter.countText, 'o200k_base'));
  const memoisedUs = microseconds(() => counter.countTools(copy()));
  const tokens = counter.countTools(copy());
  console.log(`| ${count} | ${(json.length / 1024).toFixed(1)} KB | ${tokens} | ${uncachedUs.toFixed(1)} | ${memoisedUs.toFixed(1)} | ${(memoisedUs / uncachedUs).toFixed(2)} |`);
}
