import {
  binCounts,
  chiSquared,
  jsDistance,
  ks2,
  psi,
  quantileEdges,
  type SortedSample,
  sortedSample,
  standardDeviation,
  wasserstein1,
} from './statistics';

/**
 * Data drift per feature: the recent inputs of a deployed version against its reference (the
 * training snapshot it was fitted on).
 *
 * The default rule needs both evidence and size. At small n a p-value is the guard (a large
 * effect on 40 rows is noise until the test says otherwise); at large n every p-value is tiny
 * and flags nothing that matters, so the effect must also be material:
 *
 * - numeric: KS p < 0.01 **and** Wasserstein ≥ 0.1 reference standard deviations;
 * - categorical: chi-squared p < 0.01 **and** Jensen–Shannon distance ≥ 0.1.
 *
 * A monitor may name one test and threshold instead (for all features or per feature):
 * KS (D >), PSI (>), JS (>), WASSERSTEIN (normalised, >) or CHI2 (p <). Every verdict says
 * which rule decided and the figures it looked at.
 */
export enum DriftTest {
  DEFAULT = 'DEFAULT',
  KS = 'KS',
  PSI = 'PSI',
  JS = 'JS',
  WASSERSTEIN = 'WASSERSTEIN',
  CHI2 = 'CHI2',
}

export interface DriftRule {
  test: DriftTest;
  /** Ignored by DEFAULT. */
  threshold: number;
}

export interface DriftSettings {
  rule: DriftRule;
  perFeature: Record<string, DriftRule>;
  /** Features whose values are category codes (chi-squared and JS on the codes' counts). */
  categorical: string[];
  bins: number;
  /** Fewer current values than this: the feature is not judged. */
  minSamples: number;
}

export const DEFAULT_DRIFT_SETTINGS: DriftSettings = {
  rule: { test: DriftTest.DEFAULT, threshold: 0 },
  perFeature: {},
  categorical: [],
  bins: 10,
  minSamples: 100,
};

export const DEFAULT_P_VALUE = 0.01;
export const DEFAULT_MIN_WASSERSTEIN_SD = 0.1;
export const DEFAULT_MIN_JS = 0.1;

export interface FeatureDrift {
  feature: string;
  categorical: boolean;
  referenceCount: number;
  currentCount: number;
  referenceMissing: number;
  currentMissing: number;
  ksStatistic: number | null;
  ksPValue: number | null;
  psi: number;
  jsDistance: number;
  wasserstein: number | null;
  /** Wasserstein over the reference's standard deviation. */
  wassersteinNormalized: number | null;
  chi2Statistic: number | null;
  chi2PValue: number | null;
  /**
   * Both windows' histograms over the same bins: numeric bins are cut at the reference's
   * quantiles (`edges`, bins (−∞, e₁], (e₁, e₂], …); categorical ones are the codes seen.
   */
  edges: number[];
  categories: number[];
  referenceCounts: number[];
  currentCounts: number[];
  drifted: boolean;
  /** The rule that decided, with the figures: "default: KS p=3.9e-8 < 0.01 and …". */
  rule: string;
}

/** One feature's statistics and verdict; `reference` may be given pre-sorted (reused). */
export function featureDrift(
  feature: string,
  reference: SortedSample | ArrayLike<number>,
  current: ArrayLike<number>,
  settings: DriftSettings,
): FeatureDrift {
  const ref = 'missing' in reference ? reference : sortedSample(reference);
  const cur = sortedSample(current);
  const categorical = settings.categorical.includes(feature);
  const rule = settings.perFeature[feature] ?? settings.rule;
  const base = {
    feature,
    categorical,
    referenceCount: ref.values.length,
    currentCount: cur.values.length,
    referenceMissing: ref.missing,
    currentMissing: cur.missing,
  };
  if (categorical) {
    const categories = distinct(ref.values, cur.values);
    const rc = codeCounts(ref.values, categories);
    const cc = codeCounts(cur.values, categories);
    const chi = chiSquared(rc, cc);
    const stats = {
      ...base,
      ksStatistic: null,
      ksPValue: null,
      psi: psi(rc, cc),
      jsDistance: jsDistance(rc, cc),
      wasserstein: null,
      wassersteinNormalized: null,
      chi2Statistic: chi.statistic,
      chi2PValue: chi.pValue,
      edges: [],
      categories,
      referenceCounts: rc,
      currentCounts: cc,
    };
    return { ...stats, ...verdict(stats, rule, settings.minSamples) };
  }
  const edges = quantileEdges(ref.values, settings.bins);
  const rc = binCounts(ref.values, edges);
  const cc = binCounts(cur.values, edges);
  const ks = ks2(ref.values, cur.values);
  const w = wasserstein1(ref.values, cur.values);
  const sd = standardDeviation(ref.values);
  const stats = {
    ...base,
    ksStatistic: ks.d,
    ksPValue: ks.pValue,
    psi: psi(rc, cc),
    jsDistance: jsDistance(rc, cc),
    wasserstein: w,
    wassersteinNormalized: sd > 0 ? w / sd : w === 0 ? 0 : Number.POSITIVE_INFINITY,
    chi2Statistic: null,
    chi2PValue: null,
    edges,
    categories: [],
    referenceCounts: rc,
    currentCounts: cc,
  };
  return { ...stats, ...verdict(stats, rule, settings.minSamples) };
}

function verdict(
  s: Omit<FeatureDrift, 'drifted' | 'rule'>,
  rule: DriftRule,
  minSamples: number,
): { drifted: boolean; rule: string } {
  if (s.currentCount < minSamples || s.referenceCount < minSamples)
    return {
      drifted: false,
      rule: `not judged: ${Math.min(s.currentCount, s.referenceCount)} values, fewer than ${minSamples}`,
    };
  const f = (x: number | null) =>
    x === null ? 'n/a' : x < 1e-3 ? x.toExponential(1) : x.toFixed(3);
  const over = (name: string, x: number | null) => {
    const drifted = x !== null && x > rule.threshold;
    return { drifted, rule: `${name} ${f(x)} ${drifted ? '>' : '≤'} ${rule.threshold}` };
  };
  switch (rule.test) {
    case DriftTest.KS:
      return over('KS D', s.ksStatistic);
    case DriftTest.PSI:
      return over('PSI', s.psi);
    case DriftTest.JS:
      return over('JS', s.jsDistance);
    case DriftTest.WASSERSTEIN:
      return over('Wasserstein/sd', s.wassersteinNormalized);
    case DriftTest.CHI2: {
      const drifted = s.chi2PValue !== null && s.chi2PValue < rule.threshold;
      return {
        drifted,
        rule: `chi-squared p ${f(s.chi2PValue)} ${drifted ? '<' : '≥'} ${rule.threshold}`,
      };
    }
    case DriftTest.DEFAULT: {
      if (s.categorical) {
        const significant = (s.chi2PValue ?? 1) < DEFAULT_P_VALUE;
        const material = s.jsDistance >= DEFAULT_MIN_JS;
        return {
          drifted: significant && material,
          rule: `default: chi-squared p ${f(s.chi2PValue)} ${significant ? '<' : '≥'} ${DEFAULT_P_VALUE} and JS ${f(s.jsDistance)} ${material ? '≥' : '<'} ${DEFAULT_MIN_JS}`,
        };
      }
      const significant = (s.ksPValue ?? 1) < DEFAULT_P_VALUE;
      const material = (s.wassersteinNormalized ?? 0) >= DEFAULT_MIN_WASSERSTEIN_SD;
      return {
        drifted: significant && material,
        rule: `default: KS p ${f(s.ksPValue)} ${significant ? '<' : '≥'} ${DEFAULT_P_VALUE} and Wasserstein ${f(s.wassersteinNormalized)} sd ${material ? '≥' : '<'} ${DEFAULT_MIN_WASSERSTEIN_SD} sd`,
      };
    }
  }
}

/** A settings problem, or null. */
export function driftSettingsProblem(s: DriftSettings): string | null {
  if (!Number.isInteger(s.bins) || s.bins < 2 || s.bins > 100) return 'bins must be 2 to 100';
  if (!Number.isInteger(s.minSamples) || s.minSamples < 1 || s.minSamples > 1_000_000)
    return 'minSamples must be an integer from 1 to 1000000';
  for (const [name, r] of [['rule', s.rule], ...Object.entries(s.perFeature)] as [
    string,
    DriftRule,
  ][]) {
    if (!Object.values(DriftTest).includes(r.test)) return `${name}: unknown test ${r.test}`;
    if (r.test !== DriftTest.DEFAULT && !(Number.isFinite(r.threshold) && r.threshold > 0))
      return `${name}: threshold must be a positive number`;
    if (r.test === DriftTest.CHI2 && r.threshold >= 1)
      return `${name}: a chi-squared threshold is a p-value below 1`;
  }
  return null;
}

function distinct(a: Float64Array, b: Float64Array): number[] {
  const s = new Set<number>();
  for (const x of a) s.add(x);
  for (const x of b) s.add(x);
  return [...s].sort((x, y) => x - y);
}

function codeCounts(sorted: Float64Array, categories: readonly number[]): number[] {
  const index = new Map(categories.map((c, i) => [c, i]));
  const counts = new Array<number>(categories.length).fill(0);
  for (const x of sorted) counts[index.get(x) as number]++;
  return counts;
}
