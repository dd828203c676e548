// The config file's one definition: the zod schema below validates the YAML
// (snake_case, every key optional) and gives the JSON Schema shipped for
// editors; its output, ConfigFile, is what src/config/resolve-config.ts
// turns into the normalised Config (src/config/config-types.ts).

import { z } from 'zod';
import { UPSTREAM_KINDS } from '../routing/api-paths.js';
import { ENCODINGS } from '../tokens/encoding-for-model.js';
import { HEADER_NAME, MAX_TIMER_MS, anyString, boolean, databaseName, durationLeaf, flushDelay, fraction, glob, headerName, httpUrl, mongodbUrl, nonNegativeInteger, oneOf, percent, port, positiveInteger, redisUrl, routeName, size, storeTimeout, tenant, text, timeout, tokensOrPercent, ttl } from './leaves.js';

// ── Sections ────────────────────────────────────────────────────────────────

const serverSchema = z
  .strictObject({
    host: text.prefault('0.0.0.0').describe('Address to listen on.'),
    port: port.prefault(8787).describe('TCP port (0 picks a free one). CONTEXTD_PORT and --port override it.'),
    body_limit: size.prefault('10mb').describe('Largest request body accepted; larger ones get a 413.'),
    shutdown_timeout: timeout.prefault('30s').describe('On SIGTERM, how long to wait for in-flight requests and pending writes.'),
    header_timeout: timeout
      .prefault('30s')
      .describe('Longest a client may take to send a request\'s headers, counted from its first byte (or from the connection, for its first request); then a 408 and the connection is closed.'),
    request_timeout: durationLeaf({ allowZero: true, maxMs: MAX_TIMER_MS })
      .prefault('5m')
      .describe(
        'Longest a client may take to send a whole request, headers and body (a 408, then the connection is closed); the reply is not counted, however long it streams. At least header_timeout; 0 turns it off (uploads passed through over a slow link).',
      ),
    idle_timeout: timeout.prefault('65s').describe('How long a keep-alive connection may sit idle between requests before contextd closes it.'),
    max_connections: positiveInteger
      .prefault(1024)
      .describe('Open client connections (WebSockets included) this process accepts; beyond it a new connection is closed at once, unanswered, and counted in contextd_connections_refused_total.'),
  })
  .transform((server) => ({
    host: server.host,
    port: server.port,
    maxBodyBytes: server.body_limit,
    shutdownTimeoutMs: server.shutdown_timeout,
    headerTimeoutMs: server.header_timeout,
    requestTimeoutMs: server.request_timeout,
    idleTimeoutMs: server.idle_timeout,
    maxConnections: server.max_connections,
  }));

const upstreamSchema = z
  .strictObject({
    kind: z
      .enum(UPSTREAM_KINDS)
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

const uiSchema = z.strictObject({
  enabled: boolean
    .prefault(true)
    .describe('Serve the inspector page at /contextd/ui/: a browser page that reads the conversation API with the API key or admin token a person enters. false answers 404 there.'),
});

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
      cold_read_timeout: storeTimeout
        .prefault('400ms')
        .describe(
          'With Redis in front: how long a request waits for MongoDB for history Redis lacks; beyond it the request goes on with what Redis holds (partial), the read finishes in the background, and turns made meanwhile are kept in Redis and merged later. Missing it does not mark MongoDB down.',
        ),
      flush_delay: flushDelay
        .prefault('100ms')
        .describe(
          'With Redis in front: the longest a turn waits in Redis before the flusher writes it to MongoDB (one of the flusher\'s rounds, 250 ms to 2 s apart, may take it sooner); turns of every conversation that arrive meanwhile go in the same insert. 0 flushes each turn at once.',
        ),
    })
    .transform((mongodb) =>
      mongodb.url === '' ? undefined : { url: mongodb.url, database: mongodb.database, timeoutMs: mongodb.timeout, coldReadTimeoutMs: mongodb.cold_read_timeout, flushDelayMs: mongodb.flush_delay },
    )
    .prefault({}),
})
  // Which stores run follows from the urls given: one choice, so no consumer checks for a store that is not there.
  .transform(({ memory, redis, mongodb }) => {
    if (redis !== undefined && mongodb !== undefined) return { kind: 'redis+mongodb' as const, redis, mongodb };
    if (redis !== undefined) return { kind: 'redis' as const, redis };
    if (mongodb !== undefined) return { kind: 'mongodb' as const, mongodb };
    return { kind: 'embedded' as const, memory };
  });

// Budget and summary fields are written once; `defaults` gives them default
// values, a route's overrides leave out what it inherits.
const budgetFields = {
  max_context_tokens: positiveInteger.describe('Upper bound on the prompt the model receives, counted as the model counts it.'),
  summary_max_tokens: positiveInteger.describe('Most of the budget the rolling summary may take; must be less than max_context_tokens.'),
  on_overflow: oneOf(['forward', 'reject'] as const).describe(
    'When instructions + new turn alone exceed the budget: forward them without history, or reject with a 400.',
  ),
  encoding: oneOf(['auto', ...ENCODINGS] as const).describe('Tokenizer; auto follows the model family.'),
  safety_margin: tokensOrPercent.describe(
    "Tokens (200) or a share of max_context_tokens (5%) kept free: the prompt is assembled within max_context_tokens less this, to absorb a model's known count drift (contextd_token_count_drift_ratio).",
  ),
  drift_warning: percent.describe("Log a warning when the upstream's prompt_tokens and contextd's count differ by more than this share."),
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

const responsesState = oneOf(['pass', 'emulate'] as const).describe(
  "previous_response_id on /v1/responses: pass forwards it untouched (the upstream's own state); emulate answers it from contextd's memory, for any upstream (docs/responses.md).",
);

const windowFields = {
  eviction: oneOf(['sliding', 'chunked'] as const).describe(
    'sliding: the most recent history that fits, every turn. chunked: when history no longer fits, drop the oldest whole turns down to low_watermark of the window in one step, then only append, so the prompt prefix stays the same between evictions (provider prompt caches).',
  ),
  low_watermark: fraction.describe('chunked: the share of the window an eviction leaves.'),
};

const defaultsSchema = z.strictObject({
  budget: z
    .strictObject({
      max_context_tokens: budgetFields.max_context_tokens.prefault(3000),
      summary_max_tokens: budgetFields.summary_max_tokens.prefault(300),
      on_overflow: budgetFields.on_overflow.prefault('forward'),
      encoding: budgetFields.encoding.prefault('auto'),
      safety_margin: budgetFields.safety_margin.prefault(0),
      drift_warning: budgetFields.drift_warning.prefault('2%'),
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
  responses: z.strictObject({ state: responsesState.prefault('pass') }).prefault({}),
  window: z.strictObject({ eviction: windowFields.eviction.prefault('sliding'), low_watermark: windowFields.low_watermark.prefault(0.6) }).prefault({}),
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
  responses: z.strictObject({ state: responsesState }).partial().optional(),
  window: z.strictObject(windowFields).partial().optional(),
});

export const configFileSchema = z
  .strictObject({
    server: serverSchema.prefault({}),
    upstream: upstreamSchema.prefault({}),
    conversation: conversationSchema.prefault({}),
    admin: adminSchema.prefault({}).describe('Cross-tenant access to the conversation API.'),
    ui: uiSchema.prefault({}).describe('The inspector page (docs/inspector.md).'),
    storage: storageSchema.prefault({}).describe('With neither redis nor mongodb set, contextd runs on the embedded store.'),
    defaults: defaultsSchema.prefault({}).describe('Policies every route inherits and may override.'),
    routes: z.array(routeSchema).prefault([]).describe('First match wins; requests no route matches use the defaults (route "default").'),
  })
  .describe('contextd configuration. Durations: 250ms, 10s, 5m, 24h, 7d or milliseconds. Sizes: 512kb, 10mb, 1gb (1024-based) or bytes.');

/** What the YAML holds once validated: values parsed, sections renamed, routes not yet merged. */
export type ConfigFile = z.output<typeof configFileSchema>;
