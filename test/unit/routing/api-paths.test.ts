import { describe, expect, test } from 'vitest';
import { isResponsesCreate, matchChatCompletions, upstreamPathFor } from '../../../src/routing/api-paths.js';

describe('which paths have memory', () => {
  test.each([
    ['/v1/chat/completions', { deployment: undefined }],
    ['/openai/v1/chat/completions', { deployment: undefined }],
    ['/openai/deployments/gpt-4o-prod/chat/completions', { deployment: 'gpt-4o-prod' }],
    ['/v1/deployments/my%20dep/chat/completions', { deployment: 'my dep' }],
    ['/v1/deployments/%E0%A4%A/chat/completions', undefined],
    ['/v1/chat/completions/abc', undefined],
    ['/v1/responses', undefined],
  ])('chat completions: %s', (path, expected) => {
    expect(matchChatCompletions(path)).toEqual(expected);
  });

  test.each([
    ['/v1/responses', true],
    ['/openai/v1/responses', true],
    ['/openai/responses', true],
    ['/v1/responses/resp_1', false],
    ['/v1/responses/resp_1/input_items', false],
    ['/v1/chat/completions', false],
  ])('the Responses API (create): %s → %s', (path, expected) => {
    expect(isResponsesCreate(path)).toBe(expected);
  });
});

describe('where a path goes upstream', () => {
  test.each([
    ['openai', '/v1/responses', '/responses'],
    ['openai', '/openai/v1/responses?api-version=preview', '/v1/responses?api-version=preview'],
    ['azure', '/openai/responses?api-version=2025-03-01-preview', '/responses?api-version=2025-03-01-preview'],
    ['azure', '/v1/responses', '/v1/responses'],
    ['openai', '/healthz', undefined],
  ] as const)('%s upstream: %s → %s', (kind, path, expected) => {
    expect(upstreamPathFor(kind, path)).toBe(expected);
  });
});
