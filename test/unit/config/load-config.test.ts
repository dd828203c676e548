import { mkdtemp, mkdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, test } from 'vitest';
import { BUILT_IN_SOURCE, loadConfig, parseConfig } from '../../../src/config/load-config.js';
import { ConfigError } from '../../../src/errors.js';
import { DEFAULT_SUMMARY_PROMPT } from '../../../src/config/schema.js';
import { type Config } from '../../../src/config/config-types.js';

const FILE = 'config/x.yaml';

function problemsOf(yaml: string, env: Record<string, string> = {}): string[] {
  try {
    parseConfig(yaml, FILE, env);
  } catch (error) {
    expect(error).toBeInstanceOf(ConfigError);
    const problems = (error as ConfigError).problems;
    expect((error as ConfigError).message).toBe(problems.join('\n'));
    return [...problems];
  }
  throw new Error('expected a ConfigError');
}

const routeNamed = (config: Config, name: string) => {
  const route = config.routes.find((candidate) => candidate.name === name);
  if (route === undefined) throw new Error(`no route ${name}`);
  return route;
};

describe('parseConfig: defaults', () => {
  test.each([
    ['an empty file', ''],
    ['a file of comments', '# nothing here\n'],
    ['empty sections', 'server:\nstorage:\n  redis:\nroutes:\n'],
  ])('%s gives the documented defaults', (_name, yaml) => {
    const config = parseConfig(yaml, FILE, {});
    expect(config).toEqual({
      source: FILE,
      server: {
        host: '0.0.0.0',
        port: 8787,
        maxBodyBytes: 10 * 1024 * 1024,
        shutdownTimeoutMs: 30_000,
        headerTimeoutMs: 30_000,
        requestTimeoutMs: 300_000,
        idleTimeoutMs: 65_000,
        maxConnections: 1024,
      },
      upstream: { kind: 'openai', baseUrl: 'https://api.openai.com/v1', apiVersion: '2024-10-21', timeoutMs: 600_000, connectTimeoutMs: 10_000 },
      conversation: { header: 'x-conversation-id', tenant: { kind: 'authorization' }, retryWindowMs: 0 },
      admin: { token: undefined },
      ui: { enabled: true },
      storage: {
        kind: 'embedded',
        memory: { ttlMs: 86_400_000, maxConversations: 10_000, maxBytes: 256 * 1024 * 1024, maxMessagesPerConversation: 1000 },
      },
      routes: [
        {
          name: 'default',
          match: { path: undefined, model: undefined, headers: {} },
          budget: { maxContextTokens: 3000, summaryMaxTokens: 300, onOverflow: 'forward', encoding: 'auto', safetyMarginTokens: 0, driftWarning: 0.02 },
          summary: {
            enabled: true,
            model: 'gpt-4o-mini',
            triggerTokens: 1500,
            maxTokens: 300,
            prompt: DEFAULT_SUMMARY_PROMPT,
            apiKey: undefined,
            timeoutMs: 60_000,
          },
          onStoreDown: 'passthrough',
          responses: { state: 'pass' },
          window: { eviction: 'sliding', lowWatermark: 0.6 },
        },
      ],
    });
  });

  test('the result is deep-frozen', () => {
    const config = parseConfig('routes:\n  - name: a\n    match: { header: { x-a: b } }\n', FILE, {});
    expect(Object.isFrozen(config)).toBe(true);
    expect(Object.isFrozen(config.server)).toBe(true);
    expect(Object.isFrozen(config.routes)).toBe(true);
    expect(Object.isFrozen(routeNamed(config, 'a').match.headers)).toBe(true);
    expect(Object.isFrozen(routeNamed(config, 'a').budget)).toBe(true);
  });
});

describe('parseConfig: a full file', () => {
  const FULL = `
server: { host: 127.0.0.1, port: 9000, body_limit: 512kb, shutdown_timeout: 250ms, header_timeout: 5s, request_timeout: 1m, idle_timeout: 10s, max_connections: 64 }
upstream: { kind: azure, base_url: "https://res.openai.azure.com/openai/", api_version: 2025-01-01-preview, timeout: 5m, connect_timeout: 2s }
conversation: { header: X-Thread-Id, tenant: "header:X-Tenant-Id", retry_window: 0 }
admin: { token: s3cret-admin-token }
ui: { enabled: false }
storage:
  memory: { ttl: 7d, max_conversations: 50, max_bytes: 1gb, max_messages_per_conversation: 20 }
  redis: { url: "rediss://cache:6380/1", ttl: 1h, max_cached_messages: 50, local_cache_messages: 0, tracking: false }
  mongodb: { url: "mongodb+srv://db.example.net", database: memory, flush_delay: 250ms }
defaults:
  budget: { max_context_tokens: 4000, summary_max_tokens: 500, on_overflow: reject, encoding: cl100k_base }
  summary: { enabled: false, model: gpt-4.1-mini, trigger_tokens: 2000, max_tokens: 400, prompt: Summarize., api_key: sk-summary, timeout: 30s }
  on_store_down: reject
routes:
  - name: support-bot
    match: { path: "/v1/chat/completions", model: "gpt-4o-mini*", header: { X-Route: support } }
    budget: { max_context_tokens: 8000 }
    summary: { enabled: true }
    on_store_down: passthrough
  - name: tiny
    match: { model: "tiny-?" }
    budget: { summary_max_tokens: 100 }
    summary: { max_tokens: 80 }
`;

  test('every key is read, renamed and converted to its unit', () => {
    const config = parseConfig(FULL, FILE, {});
    expect(config.server).toEqual({
      host: '127.0.0.1',
      port: 9000,
      maxBodyBytes: 512 * 1024,
      shutdownTimeoutMs: 250,
      headerTimeoutMs: 5000,
      requestTimeoutMs: 60_000,
      idleTimeoutMs: 10_000,
      maxConnections: 64,
    });
    expect(config.upstream).toEqual({ kind: 'azure', baseUrl: 'https://res.openai.azure.com/openai', apiVersion: '2025-01-01-preview', timeoutMs: 300_000, connectTimeoutMs: 2000 });
    expect(config.conversation).toEqual({ header: 'x-thread-id', tenant: { kind: 'header', header: 'x-tenant-id' }, retryWindowMs: 0 });
    expect(config.admin).toEqual({ token: 's3cret-admin-token' });
    expect(config.ui).toEqual({ enabled: false });
    // Both urls given: the two tiers run, and the embedded store's settings (validated all the same) are not used.
    expect(config.storage).toEqual({
      kind: 'redis+mongodb',
      redis: { url: 'rediss://cache:6380/1', isCluster: false, ttlMs: 3_600_000, maxCachedMessages: 50, timeoutMs: 500, localCacheMessages: 0, tracking: false },
      mongodb: { url: 'mongodb+srv://db.example.net', database: 'memory', timeoutMs: 3000, coldReadTimeoutMs: 400, flushDelayMs: 250 },
    });
    expect(parseConfig('storage: { memory: { ttl: 7d } }', FILE, {}).storage).toMatchObject({ kind: 'embedded', memory: { ttlMs: 7 * 86_400_000 } });
    expect(parseConfig('storage: { redis: { url: "redis://r" } }', FILE, {}).storage.kind).toBe('redis');
    expect(parseConfig('storage: { mongodb: { url: "mongodb://m" } }', FILE, {}).storage.kind).toBe('mongodb');
    expect(config.routes.map((route) => route.name)).toEqual(['support-bot', 'tiny', 'default']);
  });

  test('budget.safety_margin is tokens or a share of max_context_tokens, rounded up; drift_warning a share', () => {
    const config = parseConfig(
      'defaults:\n  budget: { max_context_tokens: 1000, safety_margin: 7.5%, drift_warning: 0.5% }\nroutes:\n  - name: a\n    match: { model: a }\n    budget: { safety_margin: 120 }\n',
      FILE,
      {},
    );
    const [a, defaults] = config.routes;
    expect(defaults!.budget).toMatchObject({ safetyMarginTokens: 75, driftWarning: 0.005 });
    expect(a!.budget).toMatchObject({ safetyMarginTokens: 120, driftWarning: 0.005 });
  });

  test.each([
    ['a margin that leaves no room for history', 'defaults:\n  budget: { max_context_tokens: 1000, summary_max_tokens: 300, safety_margin: 70% }\n', 'defaults.budget.safety_margin'],
    ["a route's margin that does", 'routes:\n  - name: a\n    match: { model: a }\n    budget: { safety_margin: 2800 }\n', 'routes[0].budget.safety_margin'],
    ['a margin that is not tokens or a percentage', 'defaults:\n  budget: { safety_margin: lots }\n', 'defaults.budget.safety_margin'],
    ['a drift warning of 100%', 'defaults:\n  budget: { drift_warning: 100% }\n', 'defaults.budget.drift_warning'],
  ])('%s is refused, naming the key', (_name, yaml, path) => {
    expect(() => parseConfig(yaml, FILE, {})).toThrow(path);
  });

  test('routes inherit the defaults, deep-merged under their own keys', () => {
    const config = parseConfig(FULL, FILE, {});
    const defaults = routeNamed(config, 'default');
    expect(defaults.budget).toEqual({ maxContextTokens: 4000, summaryMaxTokens: 500, onOverflow: 'reject', encoding: 'cl100k_base', safetyMarginTokens: 0, driftWarning: 0.02 });
    expect(defaults.summary).toEqual({
      enabled: false,
      model: 'gpt-4.1-mini',
      triggerTokens: 2000,
      maxTokens: 400,
      prompt: 'Summarize.',
      apiKey: 'sk-summary',
      timeoutMs: 30_000,
    });
    expect(defaults.onStoreDown).toBe('reject');

    const support = routeNamed(config, 'support-bot');
    expect(support.match).toEqual({ path: '/v1/chat/completions', model: 'gpt-4o-mini*', headers: { 'x-route': 'support' } });
    expect(support.budget).toEqual({ ...defaults.budget, maxContextTokens: 8000 });
    expect(support.summary).toEqual({ ...defaults.summary, enabled: true });
    expect(support.onStoreDown).toBe('passthrough');

    const tiny = routeNamed(config, 'tiny');
    expect(tiny.budget).toEqual({ ...defaults.budget, summaryMaxTokens: 100 });
    expect(tiny.summary).toEqual({ ...defaults.summary, maxTokens: 80 });
    expect(tiny.onStoreDown).toBe('reject');
  });

  test('summary.max_tokens defaults to the route\'s own summary_max_tokens', () => {
    const config = parseConfig('routes:\n  - name: a\n    match: { model: a }\n    budget: { summary_max_tokens: 120 }\n', FILE, {});
    expect(routeNamed(config, 'a').summary.maxTokens).toBe(120);
    expect(routeNamed(config, 'default').summary.maxTokens).toBe(300);
  });

  test.each([
    ['durations', 'server: { shutdown_timeout: 1.5s }', (c: Config) => c.server.shutdownTimeoutMs, 1500],
    ['plain numbers as milliseconds', 'server: { shutdown_timeout: 1234 }', (c: Config) => c.server.shutdownTimeoutMs, 1234],
    ['sizes in any case', 'server: { body_limit: 2MB }', (c: Config) => c.server.maxBodyBytes, 2 * 1024 * 1024],
    ['plain numbers as bytes', 'server: { body_limit: 100 }', (c: Config) => c.server.maxBodyBytes, 100],
    ['base_url without trailing slash', 'upstream: { base_url: "https://h/v1//" }', (c: Config) => c.upstream.baseUrl, 'https://h/v1'],
    ['tenant none', 'conversation: { tenant: none }', (c: Config) => c.conversation.tenant, { kind: 'none' }],
    ['request_timeout 0 (off)', 'server: { request_timeout: 0 }', (c: Config) => c.server.requestTimeoutMs, 0],
  ])('reads %s', (_name, yaml, pick, expected) => {
    expect(pick(parseConfig(yaml, FILE, {}))).toEqual(expected);
  });
});

describe('parseConfig: ${VAR} interpolation', () => {
  test.each([
    ['a set variable', 'admin: { token: "${TOKEN}" }', { TOKEN: 'abc' }, 'abc'],
    ['a variable inside text', 'admin: { token: "pre-${TOKEN}-post" }', { TOKEN: 'abc' }, 'pre-abc-post'],
    ['the default of an unset variable', 'admin: { token: "${TOKEN:-fallback}" }', {}, 'fallback'],
    ['the default of an empty variable', 'admin: { token: "${TOKEN:-fallback}" }', { TOKEN: '' }, 'fallback'],
    ['an escaped ${', 'admin: { token: "$${TOKEN}" }', { TOKEN: 'abc' }, '${TOKEN}'],
    ['a value holding # and : unharmed', 'admin:\n  token: ${TOKEN} # comment', { TOKEN: 'a #b: c\nd: e' }, 'a #b: c\nd: e'],
    ['a lone $ as is', 'admin: { token: "a$b$" }', {}, 'a$b$'],
  ])('takes %s', (_name, yaml, env, token) => {
    expect(parseConfig(yaml, FILE, env).admin.token).toBe(token);
  });

  test('interpolated numbers and booleans are read as numbers and booleans', () => {
    const config = parseConfig('server: { port: "${PORT}" }\ndefaults:\n  summary: { enabled: "${ON:-false}" }\n', FILE, { PORT: '9001' });
    expect(config.server.port).toBe(9001);
    expect(routeNamed(config, 'default').summary.enabled).toBe(false);
  });

  test('an unset variable without a default is an error naming the variable and the path', () => {
    expect(problemsOf('admin: { token: "${ADMIN_TOKEN}" }')).toEqual([
      `${FILE}: admin.token: environment variable ADMIN_TOKEN is not set (write \${ADMIN_TOKEN:-} to allow it to be unset)`,
    ]);
  });

  test('a malformed reference is an error', () => {
    expect(problemsOf('admin: { token: "${TOKEN" }')).toEqual([expect.stringMatching(/^config\/x\.yaml: admin\.token: malformed "\$\{"/)]);
  });

  test('an interpolated value never appears in an error', () => {
    const problems = problemsOf('upstream: { base_url: "${URL}" }\ndefaults:\n  budget: { encoding: "${ENC}" }\n', {
      URL: 'ftp://user:hunter2@host',
      ENC: 'hunter2',
    });
    expect(problems).toHaveLength(2);
    for (const problem of problems) expect(problem).not.toContain('hunter2');
    expect(problems[0]).toBe(`${FILE}: upstream.base_url: expected an http:// or https:// URL without query or fragment`);
  });

  test('keys are not interpolated', () => {
    expect(problemsOf('server: { "${KEY}": 1 }', { KEY: 'port' })).toEqual([`${FILE}: server["\${KEY}"]: unknown key`]);
  });
});

describe('parseConfig: validation', () => {
  test.each([
    ['server: { port: 70000 }', 'server.port: expected a port number from 0 to 65535, got 70000'],
    ['server: { port: -1 }', 'server.port: expected a port number from 0 to 65535, got -1'],
    ['server: { body_limit: 10 megs }', 'server.body_limit: expected a positive size (512kb, 10mb, 1gb or a number of bytes), got "10 megs"'],
    ['server: { body_limit: 0 }', 'server.body_limit: expected a positive size (512kb, 10mb, 1gb or a number of bytes), got 0'],
    ['server: { header_timeout: 0 }', 'server.header_timeout: expected a positive duration up to 24d (250ms, 10s, 5m, 24h, 7d or a number of milliseconds), got 0'],
    ['server: { idle_timeout: forever }', 'server.idle_timeout: expected a positive duration up to 24d (250ms, 10s, 5m, 24h, 7d or a number of milliseconds), got "forever"'],
    ['server: { max_connections: 0 }', 'server.max_connections: expected a positive integer, got 0'],
    ['upstream: { timeout: soon }', 'upstream.timeout: expected a positive duration up to 24d (250ms, 10s, 5m, 24h, 7d or a number of milliseconds), got "soon"'],
    ['upstream: { timeout: 30d }', 'upstream.timeout: expected a positive duration up to 24d (250ms, 10s, 5m, 24h, 7d or a number of milliseconds), got "30d"'],
    ['upstream: { base_url: "ftp://h/v1" }', 'upstream.base_url: expected an http:// or https:// URL without query or fragment, got "ftp://h/v1"'],
    ['upstream: { base_url: "https://h/v1?x=1" }', 'upstream.base_url: expected an http:// or https:// URL without query or fragment, got "https://h/v1?x=1"'],
    ['conversation: { header: "x conv" }', 'conversation.header: expected a header name (letters, digits and !#$%&\'*+.^_`|~-), got "x conv"'],
    ['conversation: { tenant: "header:" }', 'conversation.tenant: expected authorization, none or header:<name> (e.g. header:x-tenant-id), got "header:"'],
    ['conversation: { tenant: bearer }', 'conversation.tenant: expected authorization, none or header:<name> (e.g. header:x-tenant-id), got "bearer"'],
    ['storage: { redis: { url: "http://cache" } }', 'storage.redis.url: expected "" or a redis:// or rediss:// or redis+cluster:// or rediss+cluster:// URL'],
    ['storage: { mongodb: { url: "mongo://db" } }', 'storage.mongodb.url: expected "" or a mongodb:// or mongodb+srv:// URL'],
    ['storage: { mongodb: { flush_delay: 2m } }', 'storage.mongodb.flush_delay: expected a duration up to 60000ms (250ms, 10s, 5m, 24h, 7d or a number of milliseconds), got "2m"'],
    ['storage: { mongodb: { database: "a.b" } }', 'storage.mongodb.database: expected a MongoDB database name (1-63 characters, none of /\\. "$*<>:|?), got "a.b"'],
    ['storage: { memory: { max_conversations: 0 } }', 'storage.memory.max_conversations: expected a positive integer, got 0'],
    ['defaults: { budget: { max_context_tokens: 1.5 } }', 'defaults.budget.max_context_tokens: expected a positive integer, got 1.5'],
    ['defaults: { budget: { on_overflow: drop } }', 'defaults.budget.on_overflow: expected one of "forward", "reject", got "drop"'],
    ['defaults: { budget: { encoding: gpt2 } }', 'defaults.budget.encoding: expected one of "auto", "o200k_base", "cl100k_base", "p50k_base", "r50k_base", got "gpt2"'],
    ['defaults: { summary: { trigger_tokens: 0 } }', 'defaults.summary.trigger_tokens: expected a positive integer, got 0'],
    ['defaults: { summary: { enabled: yes } }', 'defaults.summary.enabled: expected true or false, got "yes"'],
    ['defaults: { summary: { api_key: 12345 } }', 'defaults.summary.api_key: expected a string'],
    ['defaults: { on_store_down: fail }', 'defaults.on_store_down: expected one of "passthrough", "reject", got "fail"'],
    ['server: 8787', 'server: expected a mapping, got 8787'],
    ['routes: { name: a }', 'routes: expected a list, got a mapping'],
    ['routes:\n  - match: { model: a }', 'routes[0].name: missing: expected a route name (1-64 letters, digits, ".", "_" or "-")'],
    ['routes:\n  - name: "a b"', 'routes[0].name: expected a route name (1-64 letters, digits, ".", "_" or "-"), got "a b"'],
    ['routes:\n  - name: a\n    match: { model: "" }', 'routes[0].match.model: expected a non-empty pattern (* matches any run of characters, ? one character), got ""'],
  ])('%s', (yaml, problem) => {
    expect(problemsOf(yaml)).toEqual([`${FILE}: ${problem}`]);
  });

  test.each([
    ['server: { prot: 1 }', 'server.prot: unknown key (did you mean "port"?)'],
    ['sever: {}', 'sever: unknown key (did you mean "server"?)'],
    ['storage: { redis: { max-cached-messages: 3 } }', 'storage.redis.max-cached-messages: unknown key (did you mean "max_cached_messages"?)'],
    ['routes:\n  - name: a\n    summry: {}', 'routes[0].summry: unknown key (did you mean "summary"?)'],
    ['routes:\n  - name: a\n    match: { models: x }', 'routes[0].match.models: unknown key (did you mean "model"?)'],
    ['defaults: { budget: { colour: blue } }', 'defaults.budget.colour: unknown key'],
  ])('unknown key %s is an error', (yaml, problem) => {
    expect(problemsOf(yaml)).toEqual([`${FILE}: ${problem}`]);
  });

  test('every problem is reported at once, each naming the file and the path', () => {
    const problems = problemsOf(`
server: { port: lots }
upstream: { timeout: never }
routes:
  - name: a
    match: { model: a }
  - name: b
    budget: { max_context_tokens: "lots" }
    colour: red
`);
    expect(problems).toEqual([
      `${FILE}: server.port: expected a port number from 0 to 65535, got "lots"`,
      `${FILE}: upstream.timeout: expected a positive duration up to 24d (250ms, 10s, 5m, 24h, 7d or a number of milliseconds), got "never"`,
      `${FILE}: routes[1].budget.max_context_tokens: expected a positive integer, got "lots"`,
      `${FILE}: routes[1].colour: unknown key`,
    ]);
  });

  test.each([
    [
      'summary_max_tokens not below max_context_tokens in defaults',
      'defaults: { budget: { max_context_tokens: 300, summary_max_tokens: 300 } }',
      ['defaults.budget.summary_max_tokens: must be less than budget.max_context_tokens, so that the summary leaves room for recent history'],
    ],
    [
      'a route lowering max_context_tokens under the inherited summary_max_tokens',
      'routes:\n  - name: a\n    match: { model: a }\n  - name: b\n    match: { model: b }\n    budget: { max_context_tokens: 200 }',
      ['routes[1].budget.max_context_tokens: must be greater than budget.summary_max_tokens, so that the summary leaves room for recent history'],
    ],
    [
      'a route raising summary_max_tokens over max_context_tokens',
      'routes:\n  - name: a\n    budget: { summary_max_tokens: 5000 }',
      ['routes[0].budget.summary_max_tokens: must be less than budget.max_context_tokens, so that the summary leaves room for recent history'],
    ],
    [
      'summary.max_tokens over summary_max_tokens',
      'defaults: { summary: { max_tokens: 301 } }\nroutes:\n  - name: a\n    summary: { max_tokens: 500 }',
      [
        'defaults.summary.max_tokens: summary.max_tokens must not exceed budget.summary_max_tokens, or a new summary would not fit its share of the budget',
        'routes[0].summary.max_tokens: summary.max_tokens must not exceed budget.summary_max_tokens, or a new summary would not fit its share of the budget',
      ],
    ],
    [
      'duplicate route names',
      'routes:\n  - name: a\n    match: { model: a }\n  - name: a\n    match: { model: b }',
      ['routes[1].name: duplicate route name: routes[0] has the same name'],
    ],
    [
      'a route named default',
      'routes:\n  - name: default\n    match: { model: a }',
      ['routes[0].name: "default" is the built-in catch-all route; configure it under defaults'],
    ],
    [
      'a catch-all route before others',
      'routes:\n  - name: all\n  - name: never\n    match: { model: a }',
      ['routes[0].match: matches every request, so the routes after it can never match; give it a match or move it last'],
    ],
    [
      'a header listed twice',
      'routes:\n  - name: a\n    match: { header: { X-Route: a, x-route: b } }',
      ['routes[0].match.header.x-route: header listed twice (names are case-insensitive)'],
    ],
    [
      'an invalid header name',
      'routes:\n  - name: a\n    match: { header: { "x route": a } }',
      ['routes[0].match.header["x route"]: not a valid header name'],
    ],
    [
      'the tenant header equal to the conversation header',
      'conversation: { header: x-id, tenant: "header:X-Id" }',
      ['conversation.tenant: the tenant header must differ from conversation.header'],
    ],
    [
      'a request_timeout shorter than header_timeout',
      'server: { header_timeout: 10s, request_timeout: 5s }',
      ['server.request_timeout: must be at least server.header_timeout (or 0: off), since the headers are part of the request'],
    ],
    [
      'the raw authorization header as tenant',
      'conversation: { tenant: "header:Authorization" }',
      ['conversation.tenant: header:authorization would store API keys in storage keys; use tenant: authorization, which hashes them'],
    ],
  ])('rejects %s', (_name, yaml, problems) => {
    expect(problemsOf(yaml)).toEqual(problems.map((problem) => `${FILE}: ${problem}`));
  });

  test('a catch-all route last is allowed', () => {
    const config = parseConfig('routes:\n  - name: a\n    match: { model: a }\n  - name: rest\n', FILE, {});
    expect(config.routes.map((route) => route.name)).toEqual(['a', 'rest', 'default']);
  });

  test.each([
    ['unclosed flow', 'server: { port: 1\n', /^config\/x\.yaml: line \d+, column \d+: /],
    ['duplicate key', 'server: {}\nserver: {}\n', /^config\/x\.yaml: line 2, column 1: Map keys must be unique$/],
    ['bad indentation', 'server:\n  port: 1\n bad: 2\n', /^config\/x\.yaml: line 3, column \d+: /],
  ])('a YAML syntax error (%s) names the file and the line', (_name, yaml, pattern) => {
    const problems = problemsOf(yaml);
    expect(problems.length).toBeGreaterThan(0);
    expect(problems[0]).toMatch(pattern);
  });

  test('a document that is not a mapping is an error', () => {
    expect(problemsOf('- a\n- b\n')).toEqual([`${FILE}: (top level): expected a mapping of sections (server, upstream, storage, …), got a list`]);
  });
});

describe('parseConfig: environment overrides', () => {
  test.each([
    ['CONTEXTD_PORT beats the file', 'server: { port: 1000 }', { CONTEXTD_PORT: '2000' }, (c: Config) => c.server.port, 2000],
    ['an empty CONTEXTD_PORT is unset', 'server: { port: 1000 }', { CONTEXTD_PORT: '' }, (c: Config) => c.server.port, 1000],
    ['CONTEXTD_UPSTREAM_URL beats the file', 'upstream: { base_url: "http://a/v1" }', { CONTEXTD_UPSTREAM_URL: 'http://b/v1/' }, (c: Config) => c.upstream.baseUrl, 'http://b/v1'],
    ['REDIS_URL fills an empty url', 'storage: { redis: { url: "" } }', { REDIS_URL: 'redis://r:6379' }, (c: Config) => c.storage.redis?.url, 'redis://r:6379'],
    ['REDIS_URL fills a missing url', '', { REDIS_URL: 'redis://r:6379' }, (c: Config) => c.storage.redis?.url, 'redis://r:6379'],
    ['the file beats REDIS_URL', 'storage: { redis: { url: "redis://file" } }', { REDIS_URL: 'redis://env' }, (c: Config) => c.storage.redis?.url, 'redis://file'],
    ['MONGODB_URL fills a missing url', '', { MONGODB_URL: 'mongodb://m' }, (c: Config) => c.storage.mongodb, { url: 'mongodb://m', database: 'contextd', timeoutMs: 3000, coldReadTimeoutMs: 400, flushDelayMs: 100 }],
    ['the file beats MONGODB_URL', 'storage: { mongodb: { url: "mongodb://file" } }', { MONGODB_URL: 'mongodb://env' }, (c: Config) => c.storage.mongodb?.url, 'mongodb://file'],
  ])('%s', (_name, yaml, env, pick, expected) => {
    expect(pick(parseConfig(yaml, FILE, env))).toEqual(expected);
  });

  test('an invalid override names the variable and hides its value', () => {
    expect(problemsOf('', { CONTEXTD_PORT: 'eighty', REDIS_URL: 'http://user:hunter2@cache' })).toEqual([
      `${FILE}: server.port (from CONTEXTD_PORT): expected a port number from 0 to 65535`,
      `${FILE}: storage.redis.url (from REDIS_URL): expected "" or a redis:// or rediss:// or redis+cluster:// or rediss+cluster:// URL`,
    ]);
  });
});

describe('the example config/contextd.yaml', () => {
  test('parses with an empty environment into the embedded store and the two example routes', async () => {
    const text = await readFile('config/contextd.yaml', 'utf8');
    expect(text.split('\n')[0]).toBe('# yaml-language-server: $schema=../schema/contextd.schema.json');
    const config = parseConfig(text, 'config/contextd.yaml', {});
    expect(config.upstream.baseUrl).toBe('https://api.openai.com/v1');
    expect(config.storage.redis).toBeUndefined();
    expect(config.storage.mongodb).toBeUndefined();
    expect(config.admin.token).toBeUndefined();
    expect(config.routes.map((route) => [route.name, route.budget.maxContextTokens])).toEqual([
      ['support-bot', 8000],
      ['small-models', 2000],
      ['default', 3000],
    ]);
    // Apart from its routes and comments, the example shows the defaults.
    expect({ ...config, source: BUILT_IN_SOURCE, routes: config.routes.slice(-1) }).toEqual(parseConfig('', BUILT_IN_SOURCE, {}));
  });

  test('takes its urls and tokens from the environment', async () => {
    const text = await readFile('config/contextd.yaml', 'utf8');
    const config = parseConfig(text, 'config/contextd.yaml', {
      CONTEXTD_UPSTREAM_URL: 'http://vllm:8000/v1',
      REDIS_URL: 'redis://cache:6379',
      MONGODB_URL: 'mongodb://db:27017',
      CONTEXTD_ADMIN_TOKEN: 'admin-token',
    });
    expect(config.upstream.baseUrl).toBe('http://vllm:8000/v1');
    expect(config.storage.redis?.url).toBe('redis://cache:6379');
    expect(config.storage.mongodb?.url).toBe('mongodb://db:27017');
    expect(config.admin.token).toBe('admin-token');
  });
});

describe('loadConfig', () => {
  let directory: string;
  const originalCwd = process.cwd();

  beforeEach(async () => {
    directory = await mkdtemp(join(tmpdir(), 'contextd-config-'));
  });
  afterEach(async () => {
    process.chdir(originalCwd);
    await rm(directory, { recursive: true, force: true });
  });

  test('reads the file it is given and names it as the source', async () => {
    const path = join(directory, 'c.yaml');
    await writeFile(path, 'server: { port: 1234 }\n');
    const config = await loadConfig({ path, env: {} });
    expect(config.source).toBe(path);
    expect(config.server.port).toBe(1234);
  });

  test('a path given that does not exist is an error naming it', async () => {
    const path = join(directory, 'missing.yaml');
    await expect(loadConfig({ path, env: {} })).rejects.toThrow(new ConfigError([`${path}: cannot read the config file: no such file`]));
  });

  test('CONTEXTD_CONFIG names the file when no path is given', async () => {
    const path = join(directory, 'env.yaml');
    await writeFile(path, 'server: { port: 4321 }\n');
    const config = await loadConfig({ path: undefined, env: { CONTEXTD_CONFIG: path } });
    expect(config.server.port).toBe(4321);
    await expect(loadConfig({ path: undefined, env: { CONTEXTD_CONFIG: join(directory, 'nope.yaml') } })).rejects.toThrow(/nope\.yaml: cannot read/);
  });

  test('without a path it reads config/contextd.yaml from the working directory', async () => {
    await mkdir(join(directory, 'config'));
    await writeFile(join(directory, 'config', 'contextd.yaml'), 'server: { port: 5555 }\n');
    process.chdir(directory);
    const config = await loadConfig({ path: undefined, env: {} });
    expect(config.source).toBe('config/contextd.yaml');
    expect(config.server.port).toBe(5555);
  });

  test('without a path or a default file it runs on the built-in defaults', async () => {
    process.chdir(directory);
    const config = await loadConfig({ path: undefined, env: {} });
    expect(config).toEqual(parseConfig('', BUILT_IN_SOURCE, {}));
    expect(config.source).toBe('(built-in defaults)');
  });

  test('port precedence: --port > CONTEXTD_PORT > file > default', async () => {
    const path = join(directory, 'p.yaml');
    await writeFile(path, 'server: { port: 1111 }\n');
    const port = async (options: { file: boolean; env?: string; flag?: number }) =>
      (
        await loadConfig({
          path: options.file ? path : join(directory, 'empty.yaml'),
          env: options.env === undefined ? {} : { CONTEXTD_PORT: options.env },
          portOverride: options.flag,
        })
      ).server.port;
    await writeFile(join(directory, 'empty.yaml'), '');
    expect(await port({ file: false })).toBe(8787);
    expect(await port({ file: true })).toBe(1111);
    expect(await port({ file: true, env: '2222' })).toBe(2222);
    expect(await port({ file: true, env: '2222', flag: 3333 })).toBe(3333);
    expect(await port({ file: true, env: '2222', flag: 0 })).toBe(0);
  });
});
