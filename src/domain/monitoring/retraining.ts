import { AlertKind } from './monitor';

/**
 * A model's retraining policy: which alerts trigger a retraining, how long after one another
 * may start, how far back the fresh training set reaches, what the data must pass before
 * anything is trained, and how long the challenger shadows the champion.
 */
export interface RetrainingPolicy {
  /** Alert kinds that start a retraining (performance by default; data drift alone does not). */
  triggers: AlertKind[];
  cooldownMs: number;
  /** Labelled predictions of the last `dataWindowMs` make the spine of the fresh snapshot. */
  dataWindowMs: number;
  /** The newest share of that spine is held out to judge challenger against champion. */
  holdoutShare: number;
  /** How long the challenger scores live traffic as SHADOW before its canary (0: no wait). */
  shadowMs: number;
  validation: DataValidationRules;
}

export interface DataValidationRules {
  minRows: number;
  /** Fewest rows of the rarer class. */
  minPerClass: number;
  /** Largest share of missing values a feature may have. */
  maxMissingShare: number;
}

export const DEFAULT_RETRAINING_POLICY: RetrainingPolicy = {
  triggers: [AlertKind.PERFORMANCE],
  cooldownMs: 24 * 3_600_000,
  dataWindowMs: 30 * 86_400_000,
  holdoutShare: 0.2,
  shadowMs: 0,
  validation: { minRows: 200, minPerClass: 20, maxMissingShare: 0.2 },
};

export enum RetrainingStatus {
  /** Recorded; its snapshots are about to be built from the data window's labelled traffic. */
  TRIGGERED = 'TRIGGERED',
  /** Building the training and held-out snapshots. */
  BUILDING = 'BUILDING',
  TRAINING = 'TRAINING',
  /** The new version scores the live traffic off the request path. */
  SHADOW = 'SHADOW',
  CANARY = 'CANARY',
  PROMOTED = 'PROMOTED',
  /** The gates (or the canary) said no: the champion stays. */
  REJECTED = 'REJECTED',
  /** The data failed validation: nothing was trained, an alert was raised. */
  STOPPED_BAD_DATA = 'STOPPED_BAD_DATA',
  FAILED = 'FAILED',
}

export const FINISHED: ReadonlySet<RetrainingStatus> = new Set([
  RetrainingStatus.PROMOTED,
  RetrainingStatus.REJECTED,
  RetrainingStatus.STOPPED_BAD_DATA,
  RetrainingStatus.FAILED,
]);

export interface RetrainingStep {
  at: string;
  status: RetrainingStatus;
  detail: string;
}

export interface Retraining {
  id: string;
  modelId: string;
  deploymentId: string;
  /** The alert that triggered it (null: started by hand). */
  alertId: string | null;
  /** The version it set out to replace, whose trainer and hyperparameters it reuses. */
  championId: string;
  cause: string;
  status: RetrainingStatus;
  policy: RetrainingPolicy;
  /** The end of the data window it reads (fixed when it starts, so a retried step reads the same). */
  windowEnd: Date;
  trainDatasetId: string | null;
  holdoutDatasetId: string | null;
  runId: string | null;
  challengerId: string | null;
  steps: RetrainingStep[];
  updatedAt: Date;
  createdAt: Date;
}

/** What a snapshot holds, for validation before training on it. */
export interface SnapshotProfile {
  rows: number;
  positives: number;
  /** Share of missing values per feature. */
  missingShare: Record<string, number>;
}

/** Every reason the training data is unfit (empty: fit). */
export function dataProblems(p: SnapshotProfile, rules: DataValidationRules): string[] {
  const out: string[] = [];
  if (p.rows < rules.minRows) out.push(`${p.rows} rows, fewer than ${rules.minRows}`);
  const rarer = Math.min(p.positives, p.rows - p.positives);
  if (rarer < rules.minPerClass)
    out.push(
      `${p.positives} positive and ${p.rows - p.positives} negative labels: the rarer class has fewer than ${rules.minPerClass}`,
    );
  for (const [feature, share] of Object.entries(p.missingShare))
    if (share > rules.maxMissingShare)
      out.push(
        `${feature} is missing in ${(share * 100).toFixed(1)}% of rows (allowed ${rules.maxMissingShare * 100}%)`,
      );
  return out;
}

export function retrainingPolicyProblem(p: RetrainingPolicy): string | null {
  if (p.triggers.some((t) => t !== AlertKind.PERFORMANCE && t !== AlertKind.DATA_DRIFT))
    return 'triggers are PERFORMANCE and/or DATA_DRIFT alerts';
  for (const k of ['cooldownMs', 'dataWindowMs', 'shadowMs'] as const)
    if (!Number.isInteger(p[k]) || p[k] < 0) return `${k} must be a non-negative integer`;
  if (!(p.holdoutShare > 0 && p.holdoutShare < 1)) return 'holdoutShare must be within (0, 1)';
  const v = p.validation;
  if (!Number.isInteger(v.minRows) || v.minRows < 2) return 'validation.minRows must be at least 2';
  if (!Number.isInteger(v.minPerClass) || v.minPerClass < 1)
    return 'validation.minPerClass must be positive';
  if (!(v.maxMissingShare >= 0 && v.maxMissingShare <= 1))
    return 'validation.maxMissingShare must be within [0, 1]';
  return null;
}
