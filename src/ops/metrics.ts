import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

const MAX_MODEL_LABELS = 32;

/**
 * How often the event-loop lag is sampled (prom-client's default is 10 ms). Each
 * sample is a timer that wakes an idle process: at 10 ms that was 100 wake-ups
 * and about 10 ms of CPU a second with no request at all (bench/idle-cost.ts).
 * A stall of 100 ms or more is still seen every time; shorter ones in proportion.
 */
const EVENT_LOOP_SAMPLE_MS = 100;

const LATENCY_BUCKETS_S = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120];

/** Every metric contextd exports, created once at start-up. */
export class Metrics {
  readonly registry = new Registry();

  readonly requests = new Counter({
    name: 'contextd_requests_total',
    help: 'Requests answered, by kind (memory, passthrough, other), API on the memory path (chat, responses; empty otherwise), route and status code.',
    labelNames: ['kind', 'api', 'route', 'status'] as const,
    registers: [this.registry],
  });

  readonly upstreamLatency = new Histogram({
    name: 'contextd_upstream_latency_seconds',
    help: 'From sending the request upstream to the upstream response head.',
    labelNames: ['kind'] as const,
    buckets: LATENCY_BUCKETS_S,
    registers: [this.registry],
  });

  readonly addedLatency = new Histogram({
    name: 'contextd_added_latency_seconds',
    help: 'Time contextd spent before the request left for the upstream (load, assemble, count), by kind and API.',
    labelNames: ['kind', 'api'] as const,
    buckets: LATENCY_BUCKETS_S,
    registers: [this.registry],
  });

  readonly contextTokens = new Histogram({
    name: 'contextd_context_tokens',
    help: 'Prompt tokens of assembled requests, as contextd counts them.',
    labelNames: ['route'] as const,
    buckets: [64, 256, 512, 1000, 2000, 4000, 8000, 16000, 32000, 64000, 128000],
    registers: [this.registry],
  });

  readonly tokenCountDrift = new Histogram({
    name: 'contextd_token_count_drift_ratio',
    help: "(contextd's prompt count - the upstream's usage.prompt_tokens) / the upstream's, per route and model: below 0, contextd counted fewer tokens than the model did.",
    labelNames: ['route', 'model'] as const,
    // Out to half and twice the upstream's count, so a wrong rule does not sit in the ±0.2 buckets with every
    // smaller error. No −1: the ratio never goes below it (a count is ≥ 0), and prom-client 15's findBound
    // returns −1 for "above every bound", so a −1 bucket would count every ratio above 1 as −1.
    buckets: [-0.5, -0.2, -0.1, -0.05, -0.02, -0.01, -0.005, 0, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1],
    registers: [this.registry],
  });

  readonly windowEvictions = new Counter({
    name: 'contextd_window_evictions_total',
    help: "Requests whose window start moved on, per route: a chunked window's steps, or a sliding window leaving history out (each breaks a provider's prompt-cache prefix).",
    labelNames: ['route'] as const,
    registers: [this.registry],
  });

  readonly cacheLookups = new Counter({
    name: 'contextd_cache_lookups_total',
    help: 'Conversation loads by outcome (hit, miss, none); the hit ratio is hit / (hit + miss).',
    labelNames: ['outcome'] as const,
    registers: [this.registry],
  });

  readonly overflows = new Counter({
    name: 'contextd_overflow_total',
    help: 'Requests whose instructions and new turn alone exceeded the budget, by the action taken.',
    labelNames: ['route', 'action'] as const,
    registers: [this.registry],
  });

  readonly droppedHistoryMessages = new Counter({
    name: 'contextd_history_messages_not_sent_total',
    help: 'Stored messages not covered by a summary that did not fit a request window.',
    labelNames: ['route'] as const,
    registers: [this.registry],
  });

  readonly turnsStored = new Counter({
    name: 'contextd_turns_stored_total',
    help: 'Turns handed to the store after the reply, by outcome (queued, retry_skipped, not_stored).',
    labelNames: ['outcome'] as const,
    registers: [this.registry],
  });

  readonly memorySkipped = new Counter({
    name: 'contextd_memory_skipped_total',
    help: 'Requests that carried the conversation header but were forwarded without memory, by reason (unsupported_path, invalid_tool_sequence, unsendable_history).',
    labelNames: ['reason'] as const,
    registers: [this.registry],
  });

  readonly turnsDropped = new Counter({
    name: 'contextd_turns_dropped_total',
    help: 'Turns that could not be stored, by reason.',
    labelNames: ['reason'] as const,
    registers: [this.registry],
  });

  #pendingWrites: () => number = () => 0;
  readonly pendingWrites: Gauge = new Gauge({
    name: 'contextd_pending_writes',
    help: 'Turns waiting to be written to the store.',
    registers: [this.registry],
    collect: (): void => this.pendingWrites.set(this.#pendingWrites()),
  });

  #openConnections: () => Promise<number> = () => Promise.resolve(0);
  readonly openConnections: Gauge = new Gauge({
    name: 'contextd_connections',
    help: 'Open client connections (WebSockets included); at server.max_connections new ones are refused.',
    registers: [this.registry],
    collect: async (): Promise<void> => this.openConnections.set(await this.#openConnections()),
  });

  readonly connectionsRefused = new Counter({
    name: 'contextd_connections_refused_total',
    help: 'Client connections closed unanswered because server.max_connections were open.',
    registers: [this.registry],
  });

  readonly summaries = new Counter({
    name: 'contextd_summaries_total',
    help: 'Summary jobs by outcome: stored, not_needed (under trigger_tokens), locked (another job runs), stale, retrying, failed, dropped (queue full).',
    labelNames: ['route', 'outcome'] as const,
    registers: [this.registry],
  });

  readonly storeUp = new Gauge({
    name: 'contextd_store_up',
    help: 'Whether each configured store tier is up (1) or down (0).',
    labelNames: ['tier'] as const,
    registers: [this.registry],
  });

  readonly flushBatchSize = new Gauge({
    name: 'contextd_flush_batch_size',
    help: 'Conversations a flush round claims: 64, halved while MongoDB times rounds out, grown back as it keeps up.',
    registers: [this.registry],
  });

  readonly messagesFlushed = new Counter({
    name: 'contextd_messages_flushed_total',
    help: 'Messages the flusher moved from Redis to MongoDB.',
    registers: [this.registry],
  });

  readonly redisLoads = new Counter({
    name: 'contextd_redis_loads_total',
    help: 'Loads from Redis by how they were answered: tracked (from memory, no round trip), fast (plain reads, one round trip) or script (the LOAD script).',
    labelNames: ['path'] as const,
    registers: [this.registry],
  });

  readonly mongoCommands = new Counter({
    name: 'contextd_mongodb_commands_total',
    help: 'MongoDB commands that succeeded, by command name (find, getMore, insert, update, …).',
    labelNames: ['command'] as const,
    registers: [this.registry],
  });

  readonly mongoDocumentsRead = new Counter({
    name: 'contextd_mongodb_documents_read_total',
    help: 'Documents MongoDB returned to contextd through cursors (find, aggregate, getMore).',
    registers: [this.registry],
  });

  readonly seqConflicts = new Counter({
    name: 'contextd_seq_conflicts_total',
    help: 'Messages whose seq was taken in MongoDB by another message (kept under a new seq).',
    registers: [this.registry],
  });

  readonly storeErrors = new Counter({
    name: 'contextd_store_errors_total',
    help: 'Failed store calls, by operation.',
    labelNames: ['operation'] as const,
    registers: [this.registry],
  });

  /** Models named in the drift histogram; clients choose model names, so the label takes at most MAX_MODEL_LABELS of them, then `other`. */
  readonly #driftModels = new Set<string>();

  observeTokenDrift(route: string, model: string, ratio: number): void {
    if (!this.#driftModels.has(model) && this.#driftModels.size < MAX_MODEL_LABELS) this.#driftModels.add(model);
    this.tokenCountDrift.observe({ route, model: this.#driftModels.has(model) ? model : 'other' }, ratio);
  }

  /** Where the open-connections gauge reads its value when scraped. */
  countOpenConnections(source: () => Promise<number>): void {
    this.#openConnections = source;
  }

  /** Where the pending-writes gauge reads its value when scraped. */
  countPendingWrites(source: () => number): void {
    this.#pendingWrites = source;
  }

  constructor() {
    collectDefaultMetrics({ register: this.registry, prefix: 'contextd_process_', eventLoopMonitoringPrecision: EVENT_LOOP_SAMPLE_MS });
  }
}
