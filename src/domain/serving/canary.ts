/**
 * Canary judgement, pure: given the fleet's outcomes of the canary and of production over a
 * window (OutcomeStore), the decision to roll back (worse than the baseline by more than the policy allows), step the share up,
 * promote, or hold.
 */
export interface CanaryPolicy {
  /** Shares of traffic the canary goes through, ascending, ending at 1. */
  steps: number[];
  /** Time at one share before the next step. */
  stepMs: number;
  /** Outcomes older than this are forgotten. */
  windowMs: number;
  /** Roll back when the canary's error rate exceeds the baseline's by more than this. */
  maxErrorRateDelta: number;
  /** Roll back when the canary's p99 exceeds the baseline's times this. */
  maxP99Ratio: number;
  /** Judge only with at least this many canary outcomes in the window. */
  minSamples: number;
}

export interface WindowStats {
  /** Time of the oldest outcome counted (null when none). */
  firstAt: number | null;
  n: number;
  errors: number;
  errorRate: number;
  p99Ms: number | null;
}

export const P99_MIN_SAMPLES = 100;

export type CanaryDecision =
  | { action: 'ROLLBACK'; reason: string }
  | { action: 'STEP'; share: number; reason: string }
  | { action: 'PROMOTE'; reason: string }
  | { action: 'HOLD'; reason: string };

export function judgeCanary(
  canary: WindowStats,
  baseline: WindowStats | null,
  policy: CanaryPolicy,
  share: number,
  sinceStepMs: number,
): CanaryDecision {
  const base = baseline ?? { firstAt: null, n: 0, errors: 0, errorRate: 0, p99Ms: null };
  // Failures count even before there are enough samples for latency: errors are decisive.
  if (
    canary.errors >= Math.max(3, policy.minSamples / 10) &&
    canary.errorRate > base.errorRate + policy.maxErrorRateDelta
  )
    return {
      action: 'ROLLBACK',
      reason: `error rate ${pct(canary.errorRate)} vs baseline ${pct(base.errorRate)} (allowed +${pct(policy.maxErrorRateDelta)}) over ${canary.n} requests`,
    };
  if (canary.n < policy.minSamples)
    return {
      action: 'HOLD',
      reason: `${canary.n} of ${policy.minSamples} canary requests in the window`,
    };
  if (canary.errorRate > base.errorRate + policy.maxErrorRateDelta)
    return {
      action: 'ROLLBACK',
      reason: `error rate ${pct(canary.errorRate)} vs baseline ${pct(base.errorRate)} (allowed +${pct(policy.maxErrorRateDelta)})`,
    };
  // A p99 of fewer than 100 samples is just the slowest request (one GC pause): latency is
  // judged only once both sides have that many.
  if (
    canary.n >= P99_MIN_SAMPLES &&
    base.n >= P99_MIN_SAMPLES &&
    canary.p99Ms !== null &&
    base.p99Ms !== null &&
    canary.p99Ms > base.p99Ms * policy.maxP99Ratio
  )
    return {
      action: 'ROLLBACK',
      reason: `p99 ${canary.p99Ms.toFixed(2)} ms vs baseline ${base.p99Ms.toFixed(2)} ms (allowed ×${policy.maxP99Ratio})`,
    };
  if (sinceStepMs < policy.stepMs)
    return { action: 'HOLD', reason: 'healthy; waiting for the next step' };
  const next = policy.steps.find((s) => s > share + 1e-9);
  if (next === undefined)
    return {
      action: 'PROMOTE',
      reason: `healthy at ${pct(share)} of traffic for ${Math.round(sinceStepMs / 1000)} s`,
    };
  return {
    action: 'STEP',
    share: next,
    reason: `healthy at ${pct(share)}: stepping to ${pct(next)}`,
  };
}

const pct = (x: number) => `${(x * 100).toFixed(1)}%`;
