/**
 * How many replicas (each with its own ONNX session on its own thread) a version of an
 * endpoint runs. Every interval the autoscaler looks at what the version saw since the last
 * decision: the rows waiting for a replica (mean queue depth seen by arriving requests,
 * per replica) and the p99 latency, and decides with hysteresis and a cool-down:
 *
 * - hot: queue depth per replica above `scaleUpQueueDepth`, or p99 above `targetP99Ms`;
 * - cold: queue depth per replica below a quarter of it and p99 below half the target
 *   (or no traffic);
 * - `upAfter` hot intervals in a row add a replica, `downAfter` cold ones remove one,
 *   anything in between resets both streaks, and no change happens within `cooldownMs` of
 *   the last one; the count always stays within [minReplicas, maxReplicas].
 */
export interface AutoscalePolicy {
  minReplicas: number;
  maxReplicas: number;
  targetP99Ms: number;
  scaleUpQueueDepth: number;
  upAfter: number;
  downAfter: number;
  cooldownMs: number;
}

export const DEFAULT_AUTOSCALE_POLICY: AutoscalePolicy = {
  minReplicas: 1,
  maxReplicas: 4,
  targetP99Ms: 50,
  scaleUpQueueDepth: 8,
  upAfter: 2,
  downAfter: 3,
  cooldownMs: 60_000,
};

/** What a version saw since the last decision. */
export interface ScaleSignal {
  replicas: number;
  /** Mean rows waiting (queued, not yet running) seen by each arriving request. */
  queueDepth: number;
  /** p99 latency of its requests; null when there were too few to tell. */
  p99Ms: number | null;
  requests: number;
}

/** What the autoscaler remembers per version between decisions. */
export interface ScaleMemory {
  hot: number;
  cold: number;
  lastChangeAt: number | null;
}

export const FRESH_SCALE_MEMORY: ScaleMemory = { hot: 0, cold: 0, lastChangeAt: null };

export interface ScaleDecision {
  replicas: number;
  memory: ScaleMemory;
  /** Why: the rule that decided, with the figures it looked at. */
  reason: string;
}

export function decideScale(
  p: AutoscalePolicy,
  s: ScaleSignal,
  m: ScaleMemory,
  now: number,
): ScaleDecision {
  const perReplica = s.queueDepth / Math.max(1, s.replicas);
  const figures = `queue ${perReplica.toFixed(1)}/replica, p99 ${
    s.p99Ms === null ? 'n/a' : `${s.p99Ms.toFixed(1)} ms`
  }, ${s.requests} requests`;
  if (s.replicas < p.minReplicas || s.replicas > p.maxReplicas) {
    const replicas = Math.min(p.maxReplicas, Math.max(p.minReplicas, s.replicas));
    return {
      replicas,
      memory: { hot: 0, cold: 0, lastChangeAt: now },
      reason: `bounds: ${s.replicas} is outside [${p.minReplicas}, ${p.maxReplicas}]`,
    };
  }
  const hot = perReplica > p.scaleUpQueueDepth || (s.p99Ms !== null && s.p99Ms > p.targetP99Ms);
  const cold =
    perReplica < p.scaleUpQueueDepth / 4 && (s.p99Ms === null || s.p99Ms < p.targetP99Ms / 2);
  const memory: ScaleMemory = {
    hot: hot ? m.hot + 1 : 0,
    cold: cold ? m.cold + 1 : 0,
    lastChangeAt: m.lastChangeAt,
  };
  const cooling = m.lastChangeAt !== null && now - m.lastChangeAt < p.cooldownMs;
  if (memory.hot >= p.upAfter && s.replicas < p.maxReplicas) {
    if (cooling)
      return { replicas: s.replicas, memory, reason: `hot but cooling down: ${figures}` };
    return {
      replicas: s.replicas + 1,
      memory: { hot: 0, cold: 0, lastChangeAt: now },
      reason: `hot for ${memory.hot} intervals: ${figures}`,
    };
  }
  if (memory.cold >= p.downAfter && s.replicas > p.minReplicas) {
    if (cooling)
      return { replicas: s.replicas, memory, reason: `cold but cooling down: ${figures}` };
    return {
      replicas: s.replicas - 1,
      memory: { hot: 0, cold: 0, lastChangeAt: now },
      reason: `cold for ${memory.cold} intervals: ${figures}`,
    };
  }
  return { replicas: s.replicas, memory, reason: `steady: ${figures}` };
}

/** A policy's problem, or null: bounds and thresholds a controller can act on. */
export function autoscalePolicyProblem(p: AutoscalePolicy): string | null {
  for (const k of ['minReplicas', 'maxReplicas', 'upAfter', 'downAfter'] as const)
    if (!Number.isInteger(p[k]) || p[k] < 1) return `${k} must be a positive integer`;
  if (p.maxReplicas < p.minReplicas) return 'maxReplicas must be at least minReplicas';
  if (p.maxReplicas > 16) return 'maxReplicas must be at most 16';
  if (!(p.targetP99Ms > 0) || !(p.scaleUpQueueDepth > 0))
    return 'targetP99Ms and scaleUpQueueDepth must be positive';
  if (!Number.isInteger(p.cooldownMs) || p.cooldownMs < 0)
    return 'cooldownMs must be a non-negative integer';
  return null;
}
