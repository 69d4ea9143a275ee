import { type WindowStats } from './canary';

/**
 * Request outcomes of the whole fleet, per deployment and version: what the canary controller,
 * the A/B figures and the autoscaler judge (docs/adr/0028). Each process counts its requests
 * in memory and adds them to a shared store a few times a second; a verdict reads the sum
 * over every process, not one process's share.
 *
 * Latencies are kept as counts in log-spaced buckets (each 25 % wider than the last, from
 * 20 µs to about two minutes), so a p99 over any window is the upper bound of the bucket
 * that holds it: at most 25 % above the true value, never below it.
 */
export const LATENCY_BOUNDS_MS: readonly number[] = (() => {
  const out: number[] = [];
  for (let b = 0.02; b < 150_000; b *= 1.25) out.push(b);
  return out;
})();

export function latencyBucket(ms: number): number {
  let lo = 0;
  let hi = LATENCY_BOUNDS_MS.length - 1;
  if (!(ms <= LATENCY_BOUNDS_MS[hi])) return hi;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (LATENCY_BOUNDS_MS[mid] >= ms) hi = mid;
    else lo = mid + 1;
  }
  return lo;
}

/** Outcomes added up over a span: requests, errors, and the latencies of the good ones. */
export interface OutcomeCounts {
  n: number;
  errors: number;
  /** Count per latency bucket (index into LATENCY_BOUNDS_MS), successful requests only. */
  latency: Map<number, number>;
  /** Start of the oldest time slot with an outcome (null when none). */
  firstAt: number | null;
  /** Sum over requests of the queue each met, and how many requests that is (autoscaler). */
  queueSum: number;
  queueArrivals: number;
}

/** What the fleet saw of a version: the canary's figures, and the queue for the autoscaler. */
export interface FleetStats extends WindowStats {
  /** Mean rows a request found waiting for a replica, fleet-wide (null: no report). */
  queueDepth: number | null;
}

export function statsOf(c: OutcomeCounts): FleetStats {
  let p99Ms: number | null = null;
  const good = c.n - c.errors;
  if (good > 0) {
    const rank = Math.floor(good * 0.99);
    let seen = 0;
    for (const b of [...c.latency.keys()].sort((x, y) => x - y)) {
      seen += c.latency.get(b) ?? 0;
      if (seen > rank) {
        p99Ms = LATENCY_BOUNDS_MS[b];
        break;
      }
    }
  }
  return {
    firstAt: c.firstAt,
    n: c.n,
    errors: c.errors,
    errorRate: c.n ? c.errors / c.n : 0,
    p99Ms,
    queueDepth: c.queueArrivals ? c.queueSum / c.queueArrivals : null,
  };
}

/** Port: the fleet's outcome counts. */
export interface OutcomeStore {
  /** Counts one request (buffered: added to the shared store within a fraction of a second). */
  record(deploymentId: string, versionId: string, ok: boolean, latencyMs: number, at: number): void;
  /**
   * Counts the queue this process's requests to the version met since its last report (the
   * runner's pressure: mean depth over `arrivals` requests).
   */
  recordPressure(
    deploymentId: string,
    versionId: string,
    meanDepth: number,
    arrivals: number,
    at: number,
  ): void;
  /** The fleet's outcomes of the version over (now - windowMs, now]. */
  stats(
    deploymentId: string,
    versionId: string,
    now: number,
    windowMs: number,
  ): Promise<FleetStats>;
  /** Adds what this process counted to the shared store now. */
  flush(): Promise<void>;
}
