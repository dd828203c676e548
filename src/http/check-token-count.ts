import type { Logger } from 'pino';
import type { Metrics } from '../ops/metrics.js';
import type { Route } from '../routing/route.js';

export interface TokenCountCheck {
  route: Route;
  /** The model the request named (the deployment on Azure); `unknown` when it named none. */
  model: string | undefined;
  /** contextd's count of the prompt it sent. */
  countedTokens: number;
  /** The upstream's usage.prompt_tokens (input_tokens on the Responses API). */
  reportedTokens: number;
  requestId: string;
}

/**
 * After the reply: contextd's count of the prompt it sent against the
 * upstream's own. The ratio goes to contextd_token_count_drift_ratio; one
 * beyond the route's budget.drift_warning is logged, since a count that comes
 * out low can send a prompt over the model's window.
 */
export function checkTokenCount(check: TokenCountCheck, metrics: Pick<Metrics, 'observeTokenDrift'>, logger: Logger): number | undefined {
  if (check.reportedTokens <= 0) return undefined;
  const ratio = (check.countedTokens - check.reportedTokens) / check.reportedTokens;
  metrics.observeTokenDrift(check.route.name, check.model ?? 'unknown', ratio);
  if (Math.abs(ratio) > check.route.budget.driftWarning) {
    logger.warn(
      {
        requestId: check.requestId,
        route: check.route.name,
        model: check.model,
        countedTokens: check.countedTokens,
        reportedTokens: check.reportedTokens,
        drift: Number(ratio.toFixed(4)),
        driftWarning: check.route.budget.driftWarning,
      },
      ratio < 0
        ? "contextd counted fewer prompt tokens than the upstream reported: the budget may be exceeded; set the route's budget.safety_margin"
        : 'contextd counted more prompt tokens than the upstream reported',
    );
  }
  return ratio;
}
