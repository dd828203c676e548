// Issue 15: the output format and tool_choice reach the prompt's fixed tokens on both APIs.
import { expect, test } from 'vitest';
import { parseMemoryRequest } from '../../../src/http/memory-request.js';
import { tokenCounterFor } from '../../../src/tokens/count-tokens.js';

const schema = { type: 'object', properties: { answer: { type: 'string' } }, required: ['answer'], additionalProperties: false };
const body = (value: unknown): Buffer => Buffer.from(JSON.stringify(value));

test('chat: response_format and tool_choice as the client sent them', () => {
  const responseFormat = { type: 'json_schema', json_schema: { name: 'answer', schema, strict: true } };
  const toolChoice = { type: 'function', function: { name: 'lookup' } };
  const request = parseMemoryRequest('chat', body({ model: 'gpt-4o', messages: [{ role: 'user', content: 'hi' }], response_format: responseFormat, tool_choice: toolChoice }));
  expect(request.responseFormat).toEqual(responseFormat);
  expect(request.toolChoice).toEqual(toolChoice);
});

test('Responses: text.format and tool_choice, counted as chat’s are', () => {
  const request = parseMemoryRequest(
    'responses',
    body({ model: 'gpt-4o', input: 'hi', text: { format: { type: 'json_schema', name: 'answer', schema, strict: true } }, tool_choice: { type: 'function', name: 'lookup' } }),
  );
  const chat = parseMemoryRequest(
    'chat',
    body({ model: 'gpt-4o', messages: [{ role: 'user', content: 'hi' }], response_format: { type: 'json_schema', json_schema: { name: 'answer', schema, strict: true } }, tool_choice: { type: 'function', function: { name: 'lookup' } } }),
  );
  const counter = tokenCounterFor('o200k_base');
  const tokens = counter.countRequestExtras({ responseFormat: request.responseFormat, toolChoice: request.toolChoice });
  expect(tokens).toBeGreaterThan(0);
  expect(tokens).toBe(counter.countRequestExtras({ responseFormat: chat.responseFormat, toolChoice: chat.toolChoice }));
});

test('absent on both APIs: nothing to count', () => {
  const counter = tokenCounterFor('o200k_base');
  for (const request of [parseMemoryRequest('chat', body({ messages: [{ role: 'user', content: 'hi' }] })), parseMemoryRequest('responses', body({ input: 'hi', text: { verbosity: 'low' } }))]) {
    expect(request.responseFormat).toBeUndefined();
    expect(request.toolChoice).toBeUndefined();
    expect(counter.countRequestExtras({ responseFormat: request.responseFormat, toolChoice: request.toolChoice })).toBe(0);
  }
});
