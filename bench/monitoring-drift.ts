import { DEFAULT_DRIFT_SETTINGS, featureDrift } from '../src/domain/monitoring/drift';
import { ks2, sortedSample } from '../src/domain/monitoring/statistics';
import { Rng } from '../src/domain/training/rng';
import { median, round, scale, writeResult } from './support/bench';

/**
 * monitoring-drift: a drift report over 500 features with 100,000 reference and 100,000
 * current values each — every statistic of every feature (KS with p-value, PSI and JS on
 * reference-quantile bins, Wasserstein, the histograms), both samples sorted from raw — and
 * one KS of 1,000,000 vs 1,000,000 values from raw. Baseline in the same run: a plain
 * sort-and-merge KS statistic (no ties handling, no p-value) on the same 1M arrays, and the
 * same plain KS over every feature's two samples (`report_ratio_vs_plain_ks`: the whole
 * report's time over that; target <= 1.5).
 */
export async function main(): Promise<void> {
  const features = Math.max(1, Math.round(500 * scale()));
  const n = 100_000;
  const rng = new Rng(42);
  // Half the features drift a little, a tenth a lot, the rest not at all; some are integers.
  const column = (shift: number, spread: number, integer: boolean) =>
    Float64Array.from({ length: n }, () => {
      const x = shift + spread * rng.normal();
      return integer ? Math.round(x) : x;
    });
  const data = Array.from({ length: features }, (_, i) => {
    const integer = i % 5 === 0;
    const shift = i % 10 === 0 ? 1 : i % 2 === 0 ? 0.05 : 0;
    return {
      name: `f${i}`,
      reference: column(0, 3, integer),
      current: column(shift, 3, integer),
    };
  });

  const reportTimes: number[] = [];
  let drifted = 0;
  for (let run = 0; run < 3; run++) {
    const t0 = performance.now();
    const report = data.map((f) =>
      featureDrift(f.name, f.reference, f.current, DEFAULT_DRIFT_SETTINGS),
    );
    reportTimes.push((performance.now() - t0) / 1_000);
    drifted = report.filter((f) => f.drifted).length;
  }

  // Baseline for the report: the plain KS of every feature's two samples, same sizes.
  const plainReportTimes: number[] = [];
  for (let run = 0; run < 3; run++) {
    const t0 = performance.now();
    for (const f of data) plainKs(f.reference, f.current);
    plainReportTimes.push((performance.now() - t0) / 1_000);
  }

  const big = 1_000_000;
  const a = Float64Array.from({ length: big }, () => rng.normal());
  const b = Float64Array.from({ length: big }, () => rng.normal() + 0.002);
  const ksTimes: number[] = [];
  const plainTimes: number[] = [];
  let d = 0;
  let plainD = 0;
  for (let run = 0; run < 5; run++) {
    let t0 = performance.now();
    d = ks2(sortedSample(a).values, sortedSample(b).values).d;
    ksTimes.push((performance.now() - t0) / 1_000);
    t0 = performance.now();
    plainD = plainKs(a, b);
    plainTimes.push((performance.now() - t0) / 1_000);
  }
  if (Math.abs(d - plainD) > 1e-12)
    throw new Error(`KS disagrees with the baseline: ${d} vs ${plainD}`);

  writeResult('monitoring-drift', {
    features,
    values_per_window: n,
    report_seconds: round(median(reportTimes), 2),
    plain_ks_report_seconds: round(median(plainReportTimes), 2),
    report_ratio_vs_plain_ks: round(median(reportTimes) / median(plainReportTimes), 2),
    features_drifted: drifted,
    ks_1m_seconds: round(median(ksTimes), 3),
    plain_ks_1m_seconds: round(median(plainTimes), 3),
    ks_vs_plain_ratio: round(median(ksTimes) / median(plainTimes), 2),
  });
}

/** The textbook version: copy, sort, merge; continuous data assumed (no tie handling). */
function plainKs(x: Float64Array, y: Float64Array): number {
  const a = Float64Array.from(x).sort();
  const b = Float64Array.from(y).sort();
  let i = 0;
  let j = 0;
  let d = 0;
  while (i < a.length && j < b.length) {
    if (a[i] <= b[j]) i++;
    else j++;
    d = Math.max(d, Math.abs(i / a.length - j / b.length));
  }
  return d;
}
