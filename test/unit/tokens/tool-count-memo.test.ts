import { expect, test } from 'vitest';
import { tokenCounterFor } from '../../../src/tokens/count-tokens.js';
import { countToolDefinitions } from '../../../src/tokens/count-tools.js';
import { ToolCountMemo } from '../../../src/tokens/tool-count-memo.js';

const counter = tokenCounterFor('o200k_base');

function tool(name: string, properties = 3): unknown {
  const props = Object.fromEntries(Array.from({ length: properties }, (_, i) => [`arg_${i}`, { type: 'string', description: `Argument ${i} of ${name}` }]));
  return { type: 'function', function: { name, description: `Does ${name}.`, parameters: { type: 'object', properties: props, required: ['arg_0'] } } };
}

// Each request parses its body anew: the same definitions arrive as new objects every time.
const parsedAgain = (tools: unknown): unknown => JSON.parse(JSON.stringify(tools));

test('gives the uncached count, for a set seen before as for a new one', () => {
  const tools = Array.from({ length: 20 }, (_, i) => tool(`tool_${i}`));
  const uncached = countToolDefinitions(tools, counter.countText, 'o200k_base');
  expect(counter.countTools(tools)).toBe(uncached);
  expect(counter.countTools(parsedAgain(tools))).toBe(uncached);
  const cl100k = tokenCounterFor('cl100k_base');
  expect(cl100k.countTools(parsedAgain(tools))).toBe(countToolDefinitions(tools, cl100k.countText, 'cl100k_base'));
});

test('counts a distinct set once, however often it comes back', () => {
  const memo = new ToolCountMemo(10);
  let counted = 0;
  const count = (tools: unknown): number => {
    counted++;
    return countToolDefinitions(tools, counter.countText, 'o200k_base');
  };
  const tools = [tool('search'), tool('fetch')];
  const first = memo.count(tools, count);
  for (let i = 0; i < 5; i++) expect(memo.count(parsedAgain(tools), count)).toBe(first);
  expect(counted).toBe(1);
  // One changed character is another set.
  const changed = [tool('search'), tool('fetcH')];
  expect(memo.count(changed, count)).toBe(countToolDefinitions(changed, counter.countText, 'o200k_base'));
  expect(counted).toBe(2);
});

test('stays within its bound, evicting the least recently used', () => {
  const memo = new ToolCountMemo(3);
  let counted = 0;
  const count = (tools: unknown): number => {
    counted++;
    return (tools as unknown[]).length;
  };
  const sets = ['a', 'b', 'c', 'd'].map((name) => [tool(name)]);
  const [a, b, c, d] = sets;
  memo.count(a, count);
  memo.count(b, count);
  memo.count(c, count);
  memo.count(a, count); // a is now the most recent
  memo.count(d, count); // b goes
  expect(memo.size).toBe(3);
  expect(counted).toBe(4);
  memo.count(a, count);
  memo.count(c, count);
  memo.count(d, count);
  expect(counted).toBe(4);
  memo.count(b, count);
  expect(counted).toBe(5);
  expect(memo.size).toBe(3);
});

test('keeps nothing for requests without tools', () => {
  const memo = new ToolCountMemo(3);
  for (const tools of [undefined, null, []]) expect(memo.count(tools, () => 0)).toBe(0);
  expect(memo.size).toBe(0);
});
