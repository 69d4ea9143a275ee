/**
 * Per-key request budgets: a generic cell rate (GCRA) of `perSecond` sustained with bursts of
 * `burst`, shared by every api process. A refused request is answered 429 with Retry-After.
 */
export interface RateLimitPolicy {
  /** 0 turns limiting off. */
  perSecond: number;
  burst: number;
}

export interface RateDecision {
  allowed: boolean;
  /** When a refused caller may try again. */
  retryAfterMs: number;
}

/** Port: takes one request from a key's budget. */
export interface RateLimiter {
  take(keyId: string): Promise<RateDecision>;
}

export const UNLIMITED: RateLimiter = { take: async () => ({ allowed: true, retryAfterMs: 0 }) };
