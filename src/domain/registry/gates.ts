import { METRIC_NAME_RE } from '../training/training-run';
import { type Evaluation, type Gate, type GateResult, ModelState } from './model';

const BOUND_STATES = new Set([
  ModelState.STAGING,
  ModelState.SHADOW,
  ModelState.CANARY,
  ModelState.PRODUCTION,
]);

/** A gate is well formed: a state it can guard, a finite threshold, a metric when needed. */
export function gateProblem(g: Gate): string | null {
  if (!BOUND_STATES.has(g.into))
    return `gates guard STAGING, SHADOW, CANARY or PRODUCTION (got ${g.into})`;
  if (!Number.isFinite(g.threshold)) return 'threshold must be a finite number';
  if (g.kind === 'MIN_METRIC' && !g.metric) return 'MIN_METRIC needs a metric';
  if (g.metric != null && !METRIC_NAME_RE.test(g.metric))
    return 'metric must be a metric name like val_auc (lower-case letters, digits, _ and .)';
  if (g.kind !== 'MIN_METRIC' && g.metric != null) return `${g.kind} takes no metric`;
  if (g.kind === 'MAX_P99_LATENCY_MS' && g.threshold <= 0)
    return 'a latency budget must be positive';
  return null;
}

/**
 * Checks the gates guarding entry into `into`. `candidate` is the version's evaluation;
 * `production` the production version's evaluation on the same snapshot (null: there is no
 * production version, and a gate relative to it passes).
 */
export function evaluateGates(
  gates: readonly Gate[],
  into: ModelState,
  candidate: Evaluation | null,
  production: Evaluation | null,
): GateResult[] {
  return gates
    .filter((g) => g.into === into)
    .map((gate) => {
      const m = candidate?.metrics;
      switch (gate.kind) {
        case 'AUC_VS_PRODUCTION': {
          if (!production)
            return {
              gate,
              passed: true,
              actual: m?.auc ?? null,
              required: -Infinity,
              detail: 'no production version to compare with',
            };
          const required = production.metrics.auc + gate.threshold;
          const actual = m?.auc ?? null;
          const passed = actual !== null && actual >= required;
          return {
            gate,
            passed,
            actual,
            required,
            detail: passed
              ? `AUC ${fmt(actual)} >= ${fmt(required)} (production ${fmt(production.metrics.auc)} ${signed(gate.threshold)})`
              : `AUC ${fmt(actual)} is ${fmt(required - (actual ?? 0))} short of ${fmt(required)} (production ${fmt(production.metrics.auc)} ${signed(gate.threshold)})`,
          };
        }
        case 'MAX_P99_LATENCY_MS': {
          const actual = m?.p99_latency_ms ?? null;
          const passed = actual !== null && actual <= gate.threshold;
          return {
            gate,
            passed,
            actual,
            required: gate.threshold,
            detail: passed
              ? `p99 ${fmt(actual)} ms within ${gate.threshold} ms`
              : `p99 ${fmt(actual)} ms is ${fmt((actual ?? 0) - gate.threshold)} ms over the ${gate.threshold} ms budget`,
          };
        }
        case 'MIN_METRIC': {
          const name = gate.metric as string;
          const actual = m?.[name] ?? null;
          const passed = actual !== null && actual >= gate.threshold;
          return {
            gate,
            passed,
            actual,
            required: gate.threshold,
            detail: passed
              ? `${name} ${fmt(actual)} >= ${gate.threshold}`
              : actual === null
                ? `${name} was not measured`
                : `${name} ${fmt(actual)} is ${fmt(gate.threshold - actual)} short of ${gate.threshold}`,
          };
        }
      }
    });
}

const fmt = (x: number | null) => (x === null ? 'unmeasured' : Number(x.toFixed(6)).toString());
const signed = (x: number) => (x >= 0 ? `+ ${x}` : `- ${-x}`);
