import { describe, expect, test } from 'vitest';
import { parseConfig } from '../../../src/config/load-config.js';
import { compileRoutes, globToRegExp, type RouteRequest } from '../../../src/routing/match-route.js';

const CONFIG = parseConfig(
  `
defaults:
  budget: { max_context_tokens: 4000, summary_max_tokens: 400, on_overflow: reject }
  summary: { model: summarizer, trigger_tokens: 900 }
routes:
  - name: support-bot
    match: { header: { X-Route: support } }
    budget: { max_context_tokens: 8000 }
  - name: small-models
    match: { model: "gpt-4o-mini*" }
    budget: { max_context_tokens: 2000 }
  - name: responses
    match: { path: "/v1/responses" }
  - name: tenant-beta-gpt4
    match: { model: "gpt-4.?", header: { x-tenant: "beta-*", x-tier: "*" } }
    summary: { enabled: false }
`,
  'routes.yaml',
  {},
);
const matcher = compileRoutes(CONFIG.routes);

const request = (overrides: Partial<RouteRequest>): RouteRequest => ({
  path: '/v1/chat/completions',
  model: 'gpt-4o',
  headers: {},
  ...overrides,
});

describe('compileRoutes', () => {
  test.each<[string, Partial<RouteRequest>, string]>([
    ['no route matches: the defaults', {}, 'default'],
    ['a header match', { headers: { 'x-route': 'support' } }, 'support-bot'],
    ['a header value is case-sensitive', { headers: { 'x-route': 'Support' } }, 'default'],
    ['a header value must match whole', { headers: { 'x-route': 'support-2' } }, 'default'],
    ['a repeated header matches on any value', { headers: { 'x-route': ['other', 'support'] } }, 'support-bot'],
    ['a model glob', { model: 'gpt-4o-mini-2024-07-18' }, 'small-models'],
    ['the * matches an empty run', { model: 'gpt-4o-mini' }, 'small-models'],
    ['a model glob is case-sensitive', { model: 'GPT-4o-mini' }, 'default'],
    ['no model never matches a model glob', { model: undefined }, 'default'],
    ['first match wins', { model: 'gpt-4o-mini', headers: { 'x-route': 'support' } }, 'support-bot'],
    ['a path', { path: '/v1/responses' }, 'responses'],
    ['a path ignores the query string', { path: '/v1/responses?stream=true' }, 'responses'],
    ['a path must match whole', { path: '/v1/responses/abc' }, 'default'],
    ['all conditions must match', { model: 'gpt-4.1', headers: { 'x-tenant': 'beta-acme' } }, 'default'],
    ['all conditions matching', { model: 'gpt-4.1', headers: { 'x-tenant': 'beta-acme', 'x-tier': '' } }, 'tenant-beta-gpt4'],
    ['? is exactly one character', { model: 'gpt-4.10', headers: { 'x-tenant': 'beta-acme', 'x-tier': 'x' } }, 'default'],
  ])('%s', (_name, overrides, routeName) => {
    expect(matcher.match(request(overrides)).name).toBe(routeName);
  });

  test('a matched route carries the defaults it does not override', () => {
    const support = matcher.match(request({ headers: { 'x-route': 'support' } }));
    expect(support.budget).toEqual({ maxContextTokens: 8000, summaryMaxTokens: 400, onOverflow: 'reject', encoding: 'auto', safetyMarginTokens: 0, driftWarning: 0.02 });
    expect(support.summary).toMatchObject({ enabled: true, model: 'summarizer', triggerTokens: 900, maxTokens: 400 });
    const beta = matcher.match(request({ model: 'gpt-4.1', headers: { 'x-tenant': 'beta-acme', 'x-tier': 'gold' } }));
    expect(beta.budget.maxContextTokens).toBe(4000);
    expect(beta.summary).toMatchObject({ enabled: false, model: 'summarizer' });
  });

  test('header names in the config are matched case-insensitively against node\'s lowercased names', () => {
    expect(CONFIG.routes[0]?.match.headers).toEqual({ 'x-route': 'support' });
    const routes = [{ ...CONFIG.routes[0]!, match: { path: undefined, model: undefined, headers: { 'X-Route': 'support' } } }, CONFIG.routes.at(-1)!];
    expect(compileRoutes(routes).match(request({ headers: { 'x-route': 'support' } })).name).toBe('support-bot');
  });

  test('routes without a "default" route are a programming error', () => {
    expect(() => compileRoutes(CONFIG.routes.slice(0, 1))).toThrow(/default/);
  });
});

describe('globToRegExp', () => {
  test.each([
    ['a.b', 'a.b', true],
    ['a.b', 'axb', false],
    ['(x)+[y]{2}|^$\\', '(x)+[y]{2}|^$\\', true],
    ['a*', 'a/b/c', true],
    ['*', '', true],
    ['?', '', false],
    ['?', '😀', true],
    ['a-?-c', 'a-b-c', true],
    ['a*c', 'abc\nabc', true],
  ])('%j against %j', (glob, text, matches) => {
    expect(globToRegExp(glob).test(text)).toBe(matches);
  });
});
