// What no single value can show (limits against each other, unique names),
// and the defaults merged into every route: the validated file becomes the
// normalised Config.

import type { ConfigPath } from './interpolate.js';
import { DEFAULT_ROUTE_NAME, type Route } from '../routing/route.js';
import { type Config, type ConfigProblem, type ResolvedConfig } from './config-types.js';
import { HEADER_NAME } from './leaves.js';
import type { ConfigFile } from './schema.js';

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
    ui: file.ui,
    storage: file.storage,
    routes: [...file.routes.map((route) => toRoute(route, file.defaults)), defaultRoute],
  };
  return { kind: 'ok', config };
}

const SUMMARY_FITS_BUDGET = 'must be less than budget.max_context_tokens, so that the summary leaves room for recent history';
const MARGIN_LEAVES_ROOM = 'budget.safety_margin must leave more of max_context_tokens than summary_max_tokens, so that history still fits';
const SUMMARY_CALL_FITS = 'summary.max_tokens must not exceed budget.summary_max_tokens, or a new summary would not fit its share of the budget';

function findCrossFieldProblems(file: ConfigFile): ConfigProblem[] {
  const problems: ConfigProblem[] = [];
  const { budget, summary } = file.defaults;

  const { headerTimeoutMs, requestTimeoutMs } = file.server;
  if (requestTimeoutMs > 0 && requestTimeoutMs < headerTimeoutMs) {
    // Node refuses to start an HTTP server with headersTimeout > requestTimeout.
    problems.push({ path: ['server', 'request_timeout'], message: 'must be at least server.header_timeout (or 0: off), since the headers are part of the request' });
  }

  if (budget.summary_max_tokens >= budget.max_context_tokens) {
    problems.push({ path: ['defaults', 'budget', 'summary_max_tokens'], message: SUMMARY_FITS_BUDGET });
  }
  if (summary.max_tokens !== undefined && summary.max_tokens > budget.summary_max_tokens) {
    problems.push({ path: ['defaults', 'summary', 'max_tokens'], message: SUMMARY_CALL_FITS });
  }
  if (budget.summary_max_tokens < budget.max_context_tokens && !marginLeavesRoom(budget)) {
    problems.push({ path: ['defaults', 'budget', 'safety_margin'], message: MARGIN_LEAVES_ROOM });
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
    if (route.budget !== undefined && merged.summary_max_tokens < merged.max_context_tokens && marginLeavesRoom(budget) && !marginLeavesRoom(merged)) {
      problems.push({ path: at('budget', route.budget.safety_margin !== undefined ? 'safety_margin' : 'max_context_tokens'), message: MARGIN_LEAVES_ROOM });
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
      safetyMarginTokens: marginTokens(budget),
      driftWarning: budget.drift_warning,
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
    responses: { state: route.responses?.state ?? defaults.responses.state },
    window: { eviction: route.window?.eviction ?? defaults.window.eviction, lowWatermark: route.window?.low_watermark ?? defaults.window.low_watermark },
  };
}

/** The safety margin in tokens: a share is of max_context_tokens, rounded up. */
function marginTokens(budget: Pick<FileDefaults['budget'], 'max_context_tokens' | 'safety_margin'>): number {
  const margin = budget.safety_margin;
  return 'tokens' in margin ? margin.tokens : Math.ceil(margin.share * budget.max_context_tokens);
}

function marginLeavesRoom(budget: Pick<FileDefaults['budget'], 'max_context_tokens' | 'summary_max_tokens' | 'safety_margin'>): boolean {
  return budget.max_context_tokens - marginTokens(budget) > budget.summary_max_tokens;
}

/** Drops keys whose value is undefined, so that spreading an override keeps what it leaves out. */
function defined<T extends object>(value: T): Partial<T> {
  return Object.fromEntries(Object.entries(value).filter(([, item]) => item !== undefined)) as Partial<T>;
}
