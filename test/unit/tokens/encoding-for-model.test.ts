import { describe, expect, test } from 'vitest';
import { ENCODINGS, encodingForModel } from '../../../src/tokens/encoding-for-model.js';

describe('encodingForModel with auto', () => {
  test.each([
    ['gpt-4o', 'o200k_base'],
    ['gpt-4o-mini', 'o200k_base'],
    ['gpt-4o-2024-08-06', 'o200k_base'],
    ['chatgpt-4o-latest', 'o200k_base'],
    ['gpt-4.1', 'o200k_base'],
    ['gpt-4.1-nano-2025-04-14', 'o200k_base'],
    ['gpt-4.5-preview', 'o200k_base'],
    ['gpt-5', 'o200k_base'],
    ['gpt-5-mini-2025-08-07', 'o200k_base'],
    ['o1', 'o200k_base'],
    ['o1-mini', 'o200k_base'],
    ['o3-mini-2025-01-31', 'o200k_base'],
    ['o4-mini', 'o200k_base'],
    ['gpt-oss-120b', 'o200k_base'],
    ['ft:gpt-4o-mini-2024-07-18:my-org::abc123', 'o200k_base'],
    ['openai/gpt-4.1', 'o200k_base'],
    ['GPT-4o', 'o200k_base'],
    ['gpt-4', 'cl100k_base'],
    ['gpt-4-0613', 'cl100k_base'],
    ['gpt-4-32k', 'cl100k_base'],
    ['gpt-4-turbo-2024-04-09', 'cl100k_base'],
    ['gpt-4-1106-preview', 'cl100k_base'],
    ['gpt-3.5-turbo', 'cl100k_base'],
    ['gpt-3.5-turbo-0125', 'cl100k_base'],
    ['gpt-35-turbo', 'cl100k_base'], // Azure's spelling
    ['ft:gpt-3.5-turbo-0613:org::id', 'cl100k_base'],
    ['ft:gpt-4-0613:org:custom:id', 'cl100k_base'],
    ['text-embedding-3-small', 'cl100k_base'],
    ['text-embedding-ada-002', 'cl100k_base'],
    ['davinci-002', 'cl100k_base'],
    ['text-davinci-003', 'p50k_base'],
    ['code-davinci-002', 'p50k_base'],
    ['text-davinci-001', 'r50k_base'],
    ['davinci', 'r50k_base'],
    ['curie:ft-my-org-2023-01-01', 'r50k_base'],
    // Unknown: o200k_base, the encoding of every OpenAI model since gpt-4o.
    ['gpt-6-preview', 'o200k_base'],
    ['meta-llama/Llama-3.1-8B-Instruct', 'o200k_base'],
    ['my-azure-deployment', 'o200k_base'],
    ['adapter-v2', 'o200k_base'],
    ['', 'o200k_base'],
  ])('%s → %s', (model, encoding) => {
    expect(encodingForModel(model, 'auto')).toBe(encoding);
  });
});

test.each(ENCODINGS)('an explicit %s wins over the model family', (encoding) => {
  expect(encodingForModel('gpt-4o', encoding)).toBe(encoding);
  expect(encodingForModel('gpt-3.5-turbo', encoding)).toBe(encoding);
});
