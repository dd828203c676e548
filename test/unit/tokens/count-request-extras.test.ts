import { describe, expect, test } from 'vitest';
import { RESPONSE_FORMAT_MESSAGE_TOKENS, TOOL_CHOICE_TOKENS } from '../../../src/tokens/count-request-extras.js';
import { tokenCounterFor } from '../../../src/tokens/count-tokens.js';

const counter = tokenCounterFor('o200k_base');
const text = (value: string): number => counter.countText(value);
const extras = counter.countRequestExtras;

const schema = {
  type: 'object',
  properties: { steps: { type: 'array', items: { type: 'string' } }, final_answer: { type: 'string' } },
  required: ['steps', 'final_answer'],
  additionalProperties: false,
};

describe('response_format', () => {
  test.each([[undefined], [null], [{ type: 'text' }]])('%j adds nothing', (responseFormat) => {
    expect(extras({ responseFormat })).toBe(0);
  });

  test('a JSON schema counts as harmony renders it, in a developer message of its own', () => {
    const format = { type: 'json_schema', json_schema: { name: 'math_reasoning', description: 'Steps, then the answer', schema, strict: true } };
    const rendered = `# Response Formats\n\n## math_reasoning\n\n// Steps, then the answer\n${JSON.stringify(schema)}`;
    expect(extras({ responseFormat: format })).toBe(RESPONSE_FORMAT_MESSAGE_TOKENS + text(rendered));
    expect(extras({ responseFormat: format })).toBeGreaterThan(text(JSON.stringify(schema)) + text('math_reasoning'));
  });

  test('the Responses API’s text.format counts the same as chat’s response_format', () => {
    const chat = { type: 'json_schema', json_schema: { name: 'math_reasoning', schema, strict: true } };
    const responses = { type: 'json_schema', name: 'math_reasoning', schema, strict: true };
    expect(extras({ responseFormat: responses })).toBe(extras({ responseFormat: chat }));
  });

  test('grows with the schema', () => {
    let previous = 0;
    const properties: Record<string, unknown> = {};
    for (let i = 0; i < 30; i++) {
      properties[`field_${i}`] = { type: 'string', description: `The ${i}th field of the record` };
      const tokens = extras({ responseFormat: { type: 'json_schema', json_schema: { name: 'record', schema: { type: 'object', properties } } } });
      expect(tokens).toBeGreaterThan(previous);
      previous = tokens;
    }
  });

  test('JSON mode counts a few tokens: an object schema without properties', () => {
    const tokens = extras({ responseFormat: { type: 'json_object' } });
    expect(tokens).toBe(RESPONSE_FORMAT_MESSAGE_TOKENS + text('# Response Formats\n\n## json_object\n\n{"type":"object"}'));
    expect(tokens).toBeGreaterThan(0);
    expect(tokens).toBeLessThan(30);
  });

  test('fields it does not know, and formats it does not know, count their JSON text', () => {
    const known = { type: 'json_schema', json_schema: { name: 'r', schema } };
    const withExtra = { type: 'json_schema', json_schema: { name: 'r', schema, examples: [{ steps: [], final_answer: '42' }] } };
    expect(extras({ responseFormat: withExtra })).toBe(extras({ responseFormat: known }) + text(JSON.stringify({ examples: withExtra.json_schema.examples })));
    const grammar = { type: 'grammar', grammar: 'root ::= "yes" | "no"' };
    expect(extras({ responseFormat: grammar })).toBe(RESPONSE_FORMAT_MESSAGE_TOKENS + text(JSON.stringify(grammar)));
    expect(extras({ responseFormat: 'json' })).toBe(text('"json"')); // not a valid request; never free
  });
});

describe('tool_choice', () => {
  test.each([[undefined], [null], ['auto'], ['none']])('%j adds nothing', (toolChoice) => {
    expect(extras({ toolChoice })).toBe(0);
  });

  test('required adds the constant', () => {
    expect(extras({ toolChoice: 'required' })).toBe(TOOL_CHOICE_TOKENS);
  });

  test('a named function adds the constant and the name, in either API’s shape', () => {
    const expected = TOOL_CHOICE_TOKENS + text('get_current_weather');
    expect(extras({ toolChoice: { type: 'function', function: { name: 'get_current_weather' } } })).toBe(expected);
    expect(extras({ toolChoice: { type: 'function', name: 'get_current_weather' } })).toBe(expected);
  });

  test('other choices add the constant and their JSON text', () => {
    const allowed = { type: 'allowed_tools', mode: 'required', tools: [{ type: 'function', name: 'get_weather' }, { type: 'web_search' }] };
    expect(extras({ toolChoice: allowed })).toBe(TOOL_CHOICE_TOKENS + text(JSON.stringify(allowed)));
    expect(extras({ toolChoice: { type: 'web_search_preview' } })).toBe(TOOL_CHOICE_TOKENS + text('{"type":"web_search_preview"}'));
  });
});

test('both together add up', () => {
  const responseFormat = { type: 'json_object' };
  const toolChoice = 'required';
  expect(extras({ responseFormat, toolChoice })).toBe(extras({ responseFormat }) + extras({ toolChoice }));
});

test('cl100k counts with its own tokenizer', () => {
  const cl100k = tokenCounterFor('cl100k_base');
  const responseFormat = { type: 'json_schema', json_schema: { name: 'r', schema } };
  expect(cl100k.countRequestExtras({ responseFormat })).toBe(RESPONSE_FORMAT_MESSAGE_TOKENS + cl100k.countText(`# Response Formats\n\n## r\n\n${JSON.stringify(schema)}`));
});
