// A route's policy, as the request path and the background jobs use it: plain
// values, made once from the config file (src/config/resolve-config.ts).

import type { EncodingName } from '../tokens/encoding-for-model.js';

export interface BudgetPolicy {
  maxContextTokens: number;
  summaryMaxTokens: number;
  onOverflow: 'forward' | 'reject';
  encoding: 'auto' | EncodingName;
  /** Kept free of max_context_tokens, to absorb a model's known count drift. */
  safetyMarginTokens: number;
  /** Share by which the upstream's prompt_tokens may differ from contextd's count before a warning is logged. */
  driftWarning: number;
}

/** What the prompt is assembled within: max_context_tokens less the safety margin. */
export function assemblyBudget(budget: BudgetPolicy): number {
  return budget.maxContextTokens - budget.safetyMarginTokens;
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
  /** previous_response_id: forwarded as it came (pass), or answered from memory (emulate; docs/responses.md). */
  responses: { state: 'pass' | 'emulate' };
  /** Which history goes out: the most recent that fits (sliding), or chunks that keep the prompt prefix stable (context/window-policy.ts). */
  window: WindowPolicy;
}

export interface WindowPolicy {
  eviction: 'sliding' | 'chunked';
  /** chunked: the share of the window an eviction leaves. */
  lowWatermark: number;
}

/** The catch-all route every request falls back to; its policy is the config's `defaults`. */
export const DEFAULT_ROUTE_NAME = 'default';
