// The config file's one definition: the zod schema below validates the YAML
// (snake_case, every key optional), gives the JSON Schema shipped for editors,
// and its outputs type the normalised Config the rest of contextd reads
// (camelCase, units in names, defaults merged into every route).

import { z } from 'zod';
import type { ConfigPath } from './interpolate.js';
import { DURATION_EXAMPLES, SIZE_EXAMPLES, parseDurationMs, parseSizeBytes } from './parse-units.js';

// Stand-in until src/tokens/encoding-for-model.ts exports its EncodingName union:
// then import that list here so the two cannot drift.
const ENCODING_NAMES = ['o200k_base', 'cl100k_base', 'p50k_base', 'r50k_base'] as const;
type EncodingName = (typeof ENCODING_NAMES)[number];

export type TenantMode = { kind: 'authorization' } | { kind: 'header'; header: string } | { kind: 'none' };

// ── Leaves ──────────────────────────────────────────────────────────────────
// Every value is parsed by hand so each problem reads "expected <what>", and a
// number or boolean may arrive as a string from `${VAR}` interpolation.

type JsonSchema = Record<string, unknown>;

// The raw YAML still holds `${VAR}` when an editor checks it, so every typed value may be one.
const INTERPOLATION_JSON: JsonSchema = { type: 'string', pattern: '\\$\\{' };

function leaf<T>(expected: string, json: JsonSchema, parse: (value: unknown) => T | undefined) {
  const alternatives = Array.isArray(json.anyOf) ? (json.anyOf as JsonSchema[]) : [json];
  const acceptsInterpolation = alternatives.some((schema) => schema.type === 'string' && schema.pattern === undefined);
  return z
    .unknown()
    .transform((value, ctx): T => {
      const parsed = parse(value);
      if (parsed !== undefined) return parsed;
      ctx.issues.push({ code: 'custom', message: `expected ${expected}`, input: value });
      return z.NEVER;
    })
    .meta(acceptsInterpolation ? json : { anyOf: [...alternatives, INTERPOLATION_JSON] });
}

const DIGITS = /^\d+$/;

function parseInteger(value: unknown): number | undefined {
  const number = typeof value === 'string' && DIGITS.test(value.trim()) ? Number(value) : value;
  return typeof number === 'number' && Number.isSafeInteger(number) ? number : undefined;
}

const integerLeaf = (expected: string, min: number, max: number) =>
  leaf(
    expected,
    max < Number.MAX_SAFE_INTEGER ? { type: 'integer', minimum: min, maximum: max } : { type: 'integer', minimum: min },
    (value) => {
      const number = parseInteger(value);
      return number !== undefined && number >= min && number <= max ? number : undefined;
    },
  );

const positiveInteger = integerLeaf('a positive integer', 1, Number.MAX_SAFE_INTEGER);
const nonNegativeInteger = integerLeaf('a non-negative integer', 0, Number.MAX_SAFE_INTEGER);
const port = integerLeaf('a port number from 0 to 65535', 0, 65_535);

// Node's timers fire at once above 2^31-1 ms, so a longer timeout would mean no wait at all.
const MAX_TIMER_MS = 2 ** 31 - 1;
const DURATION_JSON = { anyOf: [{ type: 'integer', minimum: 0 }, { type: 'string', pattern: '^\\s*\\d+(\\.\\d+)?\\s*(ms|s|m|h|d)\\s*$' }] };

const durationLeaf = ({ allowZero, maxMs }: { allowZero: boolean; maxMs: number }) =>
  leaf(
    `${allowZero ? 'a duration' : 'a positive duration'} up to ${describeMs(maxMs)} (${DURATION_EXAMPLES})`,
    DURATION_JSON,
    (value) => {
      const ms = parseDurationMs(value);
      return ms !== undefined && (allowZero || ms > 0) && ms <= maxMs ? ms : undefined;
    },
  );

const timeout = durationLeaf({ allowZero: false, maxMs: MAX_TIMER_MS });
const ttl = durationLeaf({ allowZero: false, maxMs: 365 * 86_400_000 });

const size = leaf(
  `a positive size (${SIZE_EXAMPLES})`,
  { anyOf: [{ type: 'integer', minimum: 1 }, { type: 'string', pattern: '^\\s*\\d+(\\.\\d+)?\\s*([kKmMgG][iI]?)?[bB]\\s*$' }] },
  (value) => {
    const bytes = parseSizeBytes(value);
    return bytes !== undefined && bytes > 0 ? bytes : undefined;
  },
);

const anyString = leaf('a string', { type: 'string' }, (value) => (typeof value === 'string' ? value : undefined));
const text = leaf('a non-empty string', { type: 'string', minLength: 1 }, (value) =>
  typeof value === 'string' && value.trim() !== '' ? value : undefined,
);

const boolean = leaf('true or false', { type: 'boolean' }, (value) => {
  if (typeof value === 'boolean') return value;
  if (value === 'true') return true;
  if (value === 'false') return false;
  return undefined;
});

function oneOf<const T extends readonly string[]>(values: T) {
  return leaf<T[number]>(`one of ${values.map((value) => JSON.stringify(value)).join(', ')}`, { enum: values }, (value) =>
    values.find((candidate) => candidate === value),
  );
}

// RFC 9110 token: what Node accepts as a header name.
const HEADER_NAME = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;
const HEADER_NAME_JSON = { type: 'string', pattern: HEADER_NAME.source };

const headerName = leaf('a header name (letters, digits and !#$%&\'*+.^_`|~-)', HEADER_NAME_JSON, (value) =>
  typeof value === 'string' && HEADER_NAME.test(value) ? value.toLowerCase() : undefined,
);

const tenant = leaf(
  'authorization, none or header:<name> (e.g. header:x-tenant-id)',
  { anyOf: [{ enum: ['authorization', 'none'] }, { type: 'string', pattern: `^header:${HEADER_NAME.source.slice(1)}` }] },
  (value): TenantMode | undefined => {
    if (value === 'authorization' || value === 'none') return { kind: value };
    if (typeof value !== 'string' || !value.startsWith('header:')) return undefined;
    const header = value.slice('header:'.length);
    return HEADER_NAME.test(header) ? { kind: 'header', header: header.toLowerCase() } : undefined;
  },
);

const httpUrl = leaf(
  'an http:// or https:// URL without query or fragment',
  { type: 'string', pattern: '^https?://' },
  (value) => {
    if (typeof value !== 'string' || !URL.canParse(value)) return undefined;
    const url = new URL(value);
    if ((url.protocol !== 'http:' && url.protocol !== 'https:') || url.search !== '' || url.hash !== '') return undefined;
    // `<base_url>/<rest>` is built by joining, so a trailing slash would double up.
    return url.href.replace(/\/+$/, '');
  },
);

function urlWithScheme(schemes: readonly string[]) {
  const pattern = new RegExp(`^(${schemes.map((scheme) => scheme.replace(/[+]/g, '\\+')).join('|')})://\\S+$`);
  return leaf(
    `"" or a ${schemes.map((scheme) => `${scheme}://`).join(' or ')} URL`,
    { type: 'string', pattern: `^$|${pattern.source}` },
    (value) => (typeof value === 'string' && (value === '' || pattern.test(value)) ? value : undefined),
  );
}

const redisUrl = urlWithScheme(['redis', 'rediss', 'redis+cluster', 'rediss+cluster']);
const storeTimeout = durationLeaf({ allowZero: false, maxMs: 600_000 });
const flushDelay = durationLeaf({ allowZero: true, maxMs: 60_000 });
const mongodbUrl = urlWithScheme(['mongodb', 'mongodb+srv']);

// MongoDB's own rules for database names.
const DATABASE_NAME = /^[^/\\. "$*<>:|?]{1,63}$/;
const databaseName = leaf(
  'a MongoDB database name (1-63 characters, none of /\\. "$*<>:|?)',
  { type: 'string', pattern: DATABASE_NAME.source },
  (value) => (typeof value === 'string' && DATABASE_NAME.test(value) ? value : undefined),
);

const ROUTE_NAME = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/;
const routeName = leaf('a route name (1-64 letters, digits, ".", "_" or "-")', { type: 'string', pattern: ROUTE_NAME.source }, (value) =>
  typeof value === 'string' && ROUTE_NAME.test(value) ? value : undefined,
);

const glob = leaf('a non-empty pattern (* matches any run of characters, ? one character)', { type: 'string', minLength: 1 }, (value) =>
  typeof value === 'string' && value !== '' ? value : undefined,
);

// ── Sections ────────────────────────────────────────────────────────────────

const serverSchema = z
  .strictObject({
    host: text.prefault('0.0.0.0').describe('Address to listen on.'),
    port: port.prefault(8787).describe('TCP port (0 picks a free one). CONTEXTD_PORT and --port override it.'),
    body_limit: size.prefault('10mb').describe('Largest request body accepted; larger ones get a 413.'),
    shutdown_timeout: timeout.prefault('30s').describe('On SIGTERM, how long to wait for in-flight requests and pending writes.'),
  })
  .transform((server) => ({
    host: server.host,
    port: server.port,
    maxBodyBytes: server.body_limit,
    shutdownTimeoutMs: server.shutdown_timeout,
  }));

const upstreamSchema = z
  .strictObject({
    kind: z
      .enum(['openai', 'azure'])
      .prefault('openai')
      .describe(
        'openai: base_url is an OpenAI-style URL with its version prefix (/v1/<rest> goes to <base_url>/<rest>). azure: base_url is the Azure OpenAI root, https://<resource>.openai.azure.com/openai (deployment paths keep their shape; contextd\'s own summary calls go to a deployment with api-version and api-key).',
      ),
    base_url: httpUrl
      .prefault('https://api.openai.com/v1')
      .describe('Where requests go: see kind. CONTEXTD_UPSTREAM_URL overrides it.'),
    api_version: z
      .string()
      .regex(/^[0-9A-Za-z.-]{1,40}$/, 'expected an Azure api-version such as 2024-10-21')
      .prefault('2024-10-21')
      .describe('azure: the api-version of contextd\'s own calls (summaries); clients\' own api-version passes through.'),
    timeout: timeout.prefault('10m').describe('Longest an upstream request may take, streaming included.'),
    connect_timeout: timeout.prefault('10s').describe('Longest wait for a connection to the upstream.'),
  })
  .transform((upstream) => ({
    kind: upstream.kind,
    baseUrl: upstream.base_url,
    apiVersion: upstream.api_version,
    timeoutMs: upstream.timeout,
    connectTimeoutMs: upstream.connect_timeout,
  }));

const conversationSchema = z
  .strictObject({
    header: headerName.prefault('x-conversation-id').describe('Request header that turns memory on (case-insensitive).'),
    tenant: tenant
      .prefault('authorization')
      .describe('Who owns a conversation: authorization (a hash of the bearer token), none (one tenant), or header:<name>.'),
    retry_window: durationLeaf({ allowZero: true, maxMs: MAX_TIMER_MS })
      .prefault('0')
      .describe(
        'For clients that send only the new message: a new turn identical to the last stored one, sent again within this window, is taken as a retry and not stored twice. 0 (default) turns this off, since people and agents do repeat themselves ("continue"); Idempotency-Key and re-sent history are recognised either way.',
      ),
  })
  .transform((conversation) => ({
    header: conversation.header,
    tenant: conversation.tenant,
    retryWindowMs: conversation.retry_window,
  }));

const adminSchema = z
  .strictObject({
    token: anyString.prefault('').describe('Bearer token for the cross-tenant conversation API; empty means no admin access.'),
  })
  .transform((admin) => ({ token: admin.token === '' ? undefined : admin.token }));

const storageSchema = z.strictObject({
  memory: z
    .strictObject({
      ttl: ttl.prefault('24h').describe('A conversation untouched this long is forgotten.'),
      max_conversations: positiveInteger.prefault(10_000).describe('Beyond this, the least recently used conversation is evicted.'),
      max_bytes: size.prefault('256mb').describe('Beyond this, least recently used conversations are evicted.'),
      max_messages_per_conversation: positiveInteger.prefault(1000).describe('Older messages beyond this are dropped.'),
    })
    .transform((memory) => ({
      ttlMs: memory.ttl,
      maxConversations: memory.max_conversations,
      maxBytes: memory.max_bytes,
      maxMessagesPerConversation: memory.max_messages_per_conversation,
    }))
    .prefault({})
    .describe('The embedded store, used when neither redis nor mongodb is configured.'),
  redis: z
    .strictObject({
      url: redisUrl
        .prefault('')
        .describe(
          'redis:// or rediss:// URL of the hot cache; redis+cluster://host:port,host:port (or cluster: true) for Redis Cluster; empty means not used. REDIS_URL fills it when empty.',
        ),
      cluster: boolean.prefault(false).describe('Connect with ioredis Cluster (also implied by a redis+cluster:// URL).'),
      ttl: ttl.prefault('24h').describe('A cached conversation untouched this long expires.'),
      max_cached_messages: positiveInteger.prefault(200).describe('Newest messages kept per cached conversation (unflushed messages are never trimmed).'),
      timeout: storeTimeout.prefault('500ms').describe('Longest any Redis call may take before the request goes on without it.'),
      local_cache_messages: nonNegativeInteger
        .prefault(20_000)
        .describe(
          "Decoded messages this process keeps from recent Redis reads (least recently used conversations go first), so a load fetches only messages it has not seen; 0 turns it off (and tracking with it).",
        ),
      tracking: z
        .boolean()
        .prefault(true)
        .describe(
          "Standalone Redis: CLIENT TRACKING on a second connection tells this process when another client changes a conversation it holds, so a load of a window nobody else has written since is answered from memory with no Redis round trip. Off, or refused by Redis (older than 6, an ACL without CLIENT, a proxy), every load asks Redis. Not used on a Cluster.",
        ),
    })
    .transform((redis) =>
      redis.url === ''
        ? undefined
        : {
            url: redis.url,
            isCluster: redis.cluster || /^rediss?\+cluster:/.test(redis.url),
            ttlMs: redis.ttl,
            maxCachedMessages: redis.max_cached_messages,
            timeoutMs: redis.timeout,
            localCacheMessages: redis.local_cache_messages,
            tracking: redis.tracking,
          },
    )
    .prefault({}),
  mongodb: z
    .strictObject({
      url: mongodbUrl.prefault('').describe('mongodb:// or mongodb+srv:// URL of the durable store; empty means not used. MONGODB_URL fills it when empty.'),
      database: databaseName.prefault('contextd').describe('Database holding the messages and conversations collections.'),
      timeout: storeTimeout.prefault('3s').describe('Longest any MongoDB call may take before the request goes on without it.'),
      flush_delay: flushDelay
        .prefault('100ms')
        .describe(
          'With Redis in front: how long a turn waits in Redis before the flusher writes it to MongoDB; turns of every conversation that arrive meanwhile go in the same insert. 0 flushes each turn at once.',
        ),
    })
    .transform((mongodb) =>
      mongodb.url === '' ? undefined : { url: mongodb.url, database: mongodb.database, timeoutMs: mongodb.timeout, flushDelayMs: mongodb.flush_delay },
    )
    .prefault({}),
});

// Budget and summary fields are written once; `defaults` gives them default
// values, a route's overrides leave out what it inherits.
const budgetFields = {
  max_context_tokens: positiveInteger.describe('Upper bound on the prompt the model receives, counted as the model counts it.'),
  summary_max_tokens: positiveInteger.describe('Most of the budget the rolling summary may take; must be less than max_context_tokens.'),
  on_overflow: oneOf(['forward', 'reject'] as const).describe(
    'When instructions + new turn alone exceed the budget: forward them without history, or reject with a 400.',
  ),
  encoding: oneOf(['auto', ...ENCODING_NAMES] as const).describe('Tokenizer; auto follows the model family.'),
};

export const DEFAULT_SUMMARY_PROMPT = [
  'You maintain the running summary of a conversation between a user and an AI assistant.',
  'You are given the previous summary (it may be empty) and the messages that came after it.',
  'Write one updated summary that replaces the previous one.',
  'Keep everything later turns may need: names, numbers, dates, identifiers, decisions and their reasons,',
  "commitments, open questions and unfinished tasks, and the user's stated preferences and constraints.",
  'Drop greetings, filler and anything later messages superseded.',
  'Write compact notes in the language of the conversation, and say nothing about the summary itself.',
].join(' ');

const summaryFields = {
  enabled: boolean.describe('Fold history that no longer fits into a rolling summary.'),
  model: text.describe('Model that writes the summary.'),
  trigger_tokens: positiveInteger.describe('Summarize once history outside the window has grown past this many tokens.'),
  max_tokens: positiveInteger.describe('max_tokens of the summary call; at most budget.summary_max_tokens, which is its default.'),
  prompt: text.describe('System prompt of the summary call.'),
  api_key: anyString.describe("API key for the summary call; empty means the key of the request that triggered it."),
  timeout: timeout.describe('Longest a summary call may take.'),
};

const onStoreDown = oneOf(['passthrough', 'reject'] as const).describe(
  'When every store is down: pass requests through without memory, or answer 503.',
);

const defaultsSchema = z.strictObject({
  budget: z
    .strictObject({
      max_context_tokens: budgetFields.max_context_tokens.prefault(3000),
      summary_max_tokens: budgetFields.summary_max_tokens.prefault(300),
      on_overflow: budgetFields.on_overflow.prefault('forward'),
      encoding: budgetFields.encoding.prefault('auto'),
    })
    .prefault({}),
  summary: z
    .strictObject({
      enabled: summaryFields.enabled.prefault(true),
      model: summaryFields.model.prefault('gpt-4o-mini'),
      trigger_tokens: summaryFields.trigger_tokens.prefault(1500),
      max_tokens: summaryFields.max_tokens.optional(),
      prompt: summaryFields.prompt.prefault(DEFAULT_SUMMARY_PROMPT),
      api_key: summaryFields.api_key.prefault(''),
      timeout: summaryFields.timeout.prefault('60s'),
    })
    .prefault({}),
  on_store_down: onStoreDown.prefault('passthrough'),
});

const routeSchema = z.strictObject({
  name: routeName.describe('Unique name, shown in logs and metrics; "default" is the built-in catch-all.'),
  match: z
    .strictObject({
      path: glob.optional().describe('Glob on the request path, e.g. /v1/chat/completions.'),
      model: glob.optional().describe('Glob on the request body\'s model, e.g. "gpt-4o-mini*".'),
      header: z
        // The names are checked with the other cross-field rules; the meta only tells editors.
        .record(z.string().meta({ pattern: HEADER_NAME.source }), glob)
        .optional()
        .describe('Header name (case-insensitive) to glob on its value; every one listed must match.'),
    })
    .optional()
    .describe('Every condition given must match; none given matches every request.'),
  budget: z.strictObject(budgetFields).partial().optional(),
  summary: z.strictObject(summaryFields).partial().optional(),
  on_store_down: onStoreDown.optional(),
});

export const configFileSchema = z
  .strictObject({
    server: serverSchema.prefault({}),
    upstream: upstreamSchema.prefault({}),
    conversation: conversationSchema.prefault({}),
    admin: adminSchema.prefault({}).describe('Cross-tenant access to the conversation API.'),
    storage: storageSchema.prefault({}).describe('With neither redis nor mongodb set, contextd runs on the embedded store.'),
    defaults: defaultsSchema.prefault({}).describe('Policies every route inherits and may override.'),
    routes: z.array(routeSchema).prefault([]).describe('First match wins; requests no route matches use the defaults (route "default").'),
  })
  .describe('contextd configuration. Durations: 250ms, 10s, 5m, 24h, 7d or milliseconds. Sizes: 512kb, 10mb, 1gb (1024-based) or bytes.');

/** What the YAML holds once validated: values parsed, sections renamed, routes not yet merged. */
export type ConfigFile = z.output<typeof configFileSchema>;

// ── The normalised config ───────────────────────────────────────────────────

export interface BudgetPolicy {
  maxContextTokens: number;
  summaryMaxTokens: number;
  onOverflow: 'forward' | 'reject';
  encoding: 'auto' | EncodingName;
}

export interface SummaryPolicy {
  enabled: boolean;
  model: string;
  triggerTokens: number;
  maxTokens: number;
  prompt: string;
  apiKey: string | undefined;
  timeoutMs: number;
}

export interface RouteMatch {
  path: string | undefined;
  model: string | undefined;
  /** Lowercased header name → glob on its value. */
  headers: Readonly<Record<string, string>>;
}

export interface Route {
  name: string;
  match: RouteMatch;
  budget: BudgetPolicy;
  summary: SummaryPolicy;
  onStoreDown: 'passthrough' | 'reject';
}

export interface Config {
  /** The file it was read from, or "(built-in defaults)". */
  source: string;
  server: ConfigFile['server'];
  upstream: ConfigFile['upstream'];
  conversation: ConfigFile['conversation'];
  admin: ConfigFile['admin'];
  storage: ConfigFile['storage'];
  /** User routes with the defaults merged in, then the catch-all route "default". */
  routes: readonly Route[];
}

export const DEFAULT_ROUTE_NAME = 'default';

export interface ConfigProblem {
  path: ConfigPath;
  message: string;
}

export type ResolvedConfig = { kind: 'ok'; config: Config } | { kind: 'invalid'; problems: ConfigProblem[] };

type FileRoute = ConfigFile['routes'][number];
type FileDefaults = ConfigFile['defaults'];

/**
 * Checks what no single value can show (limits against each other, unique names)
 * and merges the defaults into every route. Messages carry no values: any of
 * them may have come from the environment.
 */
export function resolveConfig(file: ConfigFile, source: string): ResolvedConfig {
  const problems = findCrossFieldProblems(file);
  if (problems.length > 0) return { kind: 'invalid', problems };

  const defaultRoute = toRoute({ name: DEFAULT_ROUTE_NAME }, file.defaults);
  const config: Config = {
    source,
    server: file.server,
    upstream: file.upstream,
    conversation: file.conversation,
    admin: file.admin,
    storage: file.storage,
    routes: [...file.routes.map((route) => toRoute(route, file.defaults)), defaultRoute],
  };
  return { kind: 'ok', config };
}

const SUMMARY_FITS_BUDGET = 'must be less than budget.max_context_tokens, so that the summary leaves room for recent history';
const SUMMARY_CALL_FITS = 'summary.max_tokens must not exceed budget.summary_max_tokens, or a new summary would not fit its share of the budget';

function findCrossFieldProblems(file: ConfigFile): ConfigProblem[] {
  const problems: ConfigProblem[] = [];
  const { budget, summary } = file.defaults;

  if (budget.summary_max_tokens >= budget.max_context_tokens) {
    problems.push({ path: ['defaults', 'budget', 'summary_max_tokens'], message: SUMMARY_FITS_BUDGET });
  }
  if (summary.max_tokens !== undefined && summary.max_tokens > budget.summary_max_tokens) {
    problems.push({ path: ['defaults', 'summary', 'max_tokens'], message: SUMMARY_CALL_FITS });
  }

  const { tenant, header } = file.conversation;
  if (tenant.kind === 'header' && tenant.header === header) {
    problems.push({ path: ['conversation', 'tenant'], message: 'the tenant header must differ from conversation.header' });
  }
  if (tenant.kind === 'header' && tenant.header === 'authorization') {
    // The raw bearer token would become part of every storage key.
    problems.push({
      path: ['conversation', 'tenant'],
      message: 'header:authorization would store API keys in storage keys; use tenant: authorization, which hashes them',
    });
  }

  const firstIndexByName = new Map<string, number>();
  file.routes.forEach((route, index) => {
    const at = (...rest: (string | number)[]): ConfigPath => ['routes', index, ...rest];

    if (route.name === DEFAULT_ROUTE_NAME) {
      problems.push({ path: at('name'), message: `"${DEFAULT_ROUTE_NAME}" is the built-in catch-all route; configure it under defaults` });
    }
    const firstIndex = firstIndexByName.get(route.name);
    if (firstIndex === undefined) firstIndexByName.set(route.name, index);
    else problems.push({ path: at('name'), message: `duplicate route name: routes[${firstIndex}] has the same name` });

    const headerNames = Object.keys(route.match?.header ?? {});
    const seenHeaders = new Set<string>();
    for (const name of headerNames) {
      if (!HEADER_NAME.test(name)) {
        problems.push({ path: at('match', 'header', name), message: 'not a valid header name' });
      } else if (seenHeaders.has(name.toLowerCase())) {
        problems.push({ path: at('match', 'header', name), message: 'header listed twice (names are case-insensitive)' });
      }
      seenHeaders.add(name.toLowerCase());
    }

    if (matchesEverything(route) && index < file.routes.length - 1) {
      problems.push({
        path: at('match'),
        message: 'matches every request, so the routes after it can never match; give it a match or move it last',
      });
    }

    // Problems the defaults alone cause are reported once, above, not for every route.
    const merged = { ...budget, ...defined(route.budget ?? {}) };
    if (merged.summary_max_tokens >= merged.max_context_tokens) {
      const own = route.budget?.summary_max_tokens !== undefined ? 'summary_max_tokens' : 'max_context_tokens';
      if (route.budget?.[own] !== undefined) problems.push({ path: at('budget', own), message: ownSummaryFitsMessage(own) });
    }
    const maxTokens = route.summary?.max_tokens ?? summary.max_tokens;
    if (maxTokens !== undefined && maxTokens > merged.summary_max_tokens) {
      if (route.summary?.max_tokens !== undefined) problems.push({ path: at('summary', 'max_tokens'), message: SUMMARY_CALL_FITS });
      else if (route.budget?.summary_max_tokens !== undefined) {
        problems.push({ path: at('budget', 'summary_max_tokens'), message: SUMMARY_CALL_FITS });
      }
    }
  });
  return problems;
}

function ownSummaryFitsMessage(field: 'summary_max_tokens' | 'max_context_tokens'): string {
  return field === 'summary_max_tokens'
    ? SUMMARY_FITS_BUDGET
    : 'must be greater than budget.summary_max_tokens, so that the summary leaves room for recent history';
}

function matchesEverything(route: FileRoute): boolean {
  const match = route.match;
  return match === undefined || (match.path === undefined && match.model === undefined && Object.keys(match.header ?? {}).length === 0);
}

function toRoute(route: Pick<FileRoute, 'name'> & Partial<FileRoute>, defaults: FileDefaults): Route {
  const budget = { ...defaults.budget, ...defined(route.budget ?? {}) };
  const summary = { ...defaults.summary, ...defined(route.summary ?? {}) };
  return {
    name: route.name,
    match: {
      path: route.match?.path,
      model: route.match?.model,
      headers: Object.fromEntries(Object.entries(route.match?.header ?? {}).map(([name, value]) => [name.toLowerCase(), value])),
    },
    budget: {
      maxContextTokens: budget.max_context_tokens,
      summaryMaxTokens: budget.summary_max_tokens,
      onOverflow: budget.on_overflow,
      encoding: budget.encoding,
    },
    summary: {
      enabled: summary.enabled,
      model: summary.model,
      triggerTokens: summary.trigger_tokens,
      maxTokens: summary.max_tokens ?? budget.summary_max_tokens,
      prompt: summary.prompt,
      apiKey: summary.api_key === '' ? undefined : summary.api_key,
      timeoutMs: summary.timeout,
    },
    onStoreDown: route.on_store_down ?? defaults.on_store_down,
  };
}

/** Drops keys whose value is undefined, so that spreading an override keeps what it leaves out. */
function defined<T extends object>(value: T): Partial<T> {
  return Object.fromEntries(Object.entries(value).filter(([, item]) => item !== undefined)) as Partial<T>;
}

function describeMs(ms: number): string {
  const days = ms / 86_400_000;
  return days >= 1 ? `${Math.floor(days)}d` : `${ms}ms`;
}
