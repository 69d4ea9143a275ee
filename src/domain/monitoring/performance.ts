import { auc, logLoss } from '../training/metrics';

/**
 * Concept drift: how a version does on the predictions whose labels have arrived, by
 * prediction time. Labels come late, so a window reports how many of its predictions are
 * labelled, and is judged only with at least `minLabels` of them.
 */
export interface PerformanceSettings {
  /** CLASSIFICATION (score = P(label = 1)) or REGRESSION (score = the estimate). */
  task: 'CLASSIFICATION' | 'REGRESSION';
  minLabels: number;
  /** Alert when a metric falls below its floor (auc, accuracy, precision, recall). */
  floors: Partial<Record<'auc' | 'accuracy' | 'precision' | 'recall', number>>;
  /** Alert when a metric rises above its ceiling (log_loss, mae, rmse). */
  ceilings: Partial<Record<'log_loss' | 'mae' | 'rmse', number>>;
  /** Alert when AUC is below the version's reference evaluation by more than this. */
  maxAucDrop: number;
}

export const DEFAULT_PERFORMANCE_SETTINGS: PerformanceSettings = {
  task: 'CLASSIFICATION',
  minLabels: 200,
  floors: {},
  ceilings: {},
  maxAucDrop: 0.05,
};

export type PerformanceMetrics = Record<string, number>;

/** Metrics of labelled predictions (classification at threshold 0.5). */
export function performanceMetrics(
  task: PerformanceSettings['task'],
  labels: ArrayLike<number>,
  scores: ArrayLike<number>,
): PerformanceMetrics {
  const n = labels.length;
  if (!n) return {};
  if (task === 'REGRESSION') {
    let ae = 0;
    let se = 0;
    for (let i = 0; i < n; i++) {
      const e = scores[i] - labels[i];
      ae += Math.abs(e);
      se += e * e;
    }
    return { mae: ae / n, rmse: Math.sqrt(se / n) };
  }
  let tp = 0;
  let fp = 0;
  let fn = 0;
  let tn = 0;
  for (let i = 0; i < n; i++) {
    const predicted = scores[i] >= 0.5;
    const actual = labels[i] === 1;
    if (predicted && actual) tp++;
    else if (predicted) fp++;
    else if (actual) fn++;
    else tn++;
  }
  return {
    auc: auc(labels, scores),
    accuracy: (tp + tn) / n,
    precision: tp + fp ? tp / (tp + fp) : 0,
    recall: tp + fn ? tp / (tp + fn) : 0,
    log_loss: logLoss(labels, scores),
  };
}

/** Whether the window is degraded, and every reason (empty: healthy or not judged). */
export function judgePerformance(
  s: PerformanceSettings,
  metrics: PerformanceMetrics,
  labels: number,
  reference: PerformanceMetrics | null,
): { degraded: boolean; judged: boolean; reasons: string[]; rule: string } {
  if (labels < s.minLabels)
    return {
      degraded: false,
      judged: false,
      reasons: [],
      rule: `not judged: ${labels} labels, fewer than ${s.minLabels}`,
    };
  const reasons: string[] = [];
  const f = (x: number) => x.toFixed(4);
  for (const [k, floor] of Object.entries(s.floors))
    if (floor !== undefined && metrics[k] !== undefined && metrics[k] < floor)
      reasons.push(`${k} ${f(metrics[k])} < floor ${floor}`);
  for (const [k, ceiling] of Object.entries(s.ceilings))
    if (ceiling !== undefined && metrics[k] !== undefined && metrics[k] > ceiling)
      reasons.push(`${k} ${f(metrics[k])} > ceiling ${ceiling}`);
  if (reference?.auc !== undefined && metrics.auc !== undefined)
    if (reference.auc - metrics.auc > s.maxAucDrop)
      reasons.push(
        `auc ${f(metrics.auc)} is ${f(reference.auc - metrics.auc)} below the reference evaluation's ${f(reference.auc)} (allowed ${s.maxAucDrop})`,
      );
  return {
    degraded: reasons.length > 0,
    judged: true,
    reasons,
    rule: reasons.length
      ? reasons.join('; ')
      : `healthy on ${labels} labels${reference?.auc !== undefined ? ` (reference auc ${f(reference.auc)})` : ''}`,
  };
}

export function performanceSettingsProblem(s: PerformanceSettings): string | null {
  if (s.task !== 'CLASSIFICATION' && s.task !== 'REGRESSION')
    return 'task must be CLASSIFICATION or REGRESSION';
  if (!Number.isInteger(s.minLabels) || s.minLabels < 1 || s.minLabels > 1_000_000)
    return 'minLabels must be an integer from 1 to 1000000';
  if (!(s.maxAucDrop >= 0 && s.maxAucDrop <= 1)) return 'maxAucDrop must be within [0, 1]';
  for (const [k, v] of Object.entries(s.floors))
    if (v !== undefined && !(v >= 0 && v <= 1)) return `${k} floor must be within [0, 1]`;
  for (const [k, v] of Object.entries(s.ceilings))
    if (v !== undefined && !(Number.isFinite(v) && v >= 0))
      return `${k} ceiling must be a non-negative number`;
  return null;
}
