// The OpenAI cookbook's published token counts, which it checked against the API's own
// `usage.prompt_tokens`: examples/How_to_count_tokens_with_tiktoken.ipynb in openai/openai-cookbook
// (commit c81359cdc6744f001e40c08a192604c5113fdab3), sections 6 ("Counting tokens for chat
// completions API calls") and 7 ("Counting tokens for chat completions with tool calls").
import { describe, expect, test } from 'vitest';
import type { ChatMessage } from '../../../src/domain.js';
import { tokenCounterFor } from '../../../src/tokens/count-tokens.js';
import { encodingForModel } from '../../../src/tokens/encoding-for-model.js';

const exampleMessages: ChatMessage[] = [
  {
    role: 'system',
    content: 'You are a helpful, pattern-following assistant that translates corporate jargon into plain English.',
  },
  { role: 'system', name: 'example_user', content: 'New synergies will help drive top-line growth.' },
  { role: 'system', name: 'example_assistant', content: 'Things working well together will increase revenue.' },
  {
    role: 'system',
    name: 'example_user',
    content: "Let's circle back when we have more bandwidth to touch base on opportunities for increased leverage.",
  },
  { role: 'system', name: 'example_assistant', content: "Let's talk later when we're less busy about how to do better." },
  { role: 'user', content: "This late pivot means we don't have time to boil the ocean for the client deliverable." },
];

const tools = [
  {
    type: 'function',
    function: {
      name: 'get_current_weather',
      description: 'Get the current weather in a given location',
      parameters: {
        type: 'object',
        properties: {
          location: { type: 'string', description: 'The city and state, e.g. San Francisco, CA' },
          unit: { type: 'string', description: 'The unit of temperature to return', enum: ['celsius', 'fahrenheit'] },
        },
        required: ['location'],
      },
    },
  },
];

const toolExampleMessages: ChatMessage[] = [
  { role: 'system', content: 'You are a helpful assistant that can answer to questions about the weather.' },
  { role: 'user', content: "What's the weather like in San Francisco?" },
];

function promptTokens(model: string, messages: ChatMessage[], requestTools?: unknown): number {
  const counter = tokenCounterFor(encodingForModel(model, 'auto'));
  const messageTokens = messages.reduce((sum, message) => sum + counter.countMessage(message), 0);
  return messageTokens + counter.replyPrimingTokens + counter.countTools(requestTools);
}

describe('OpenAI cookbook: prompt tokens counted by the API', () => {
  test.each([
    ['gpt-3.5-turbo', 129],
    ['gpt-4-0613', 129],
    ['gpt-4', 129],
    ['gpt-4o', 124],
    ['gpt-4o-mini', 124],
  ])('example messages on %s: %i tokens', (model, published) => {
    expect(promptTokens(model, exampleMessages)).toBe(published);
  });

  test.each([
    ['gpt-3.5-turbo', 105],
    ['gpt-4', 105],
    ['gpt-4o', 101],
    ['gpt-4o-mini', 101],
  ])('function-calling example on %s: %i tokens', (model, published) => {
    expect(promptTokens(model, toolExampleMessages, tools)).toBe(published);
  });
});
