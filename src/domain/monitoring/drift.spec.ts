import { Rng } from '../training/rng';
import { DEFAULT_DRIFT_SETTINGS, DriftTest, featureDrift } from './drift';

const normal = (seed: number, n: number, mean: number, sd: number) => {
  const r = new Rng(seed);
  return Float64Array.from({ length: n }, () => mean + sd * r.normal());
};

describe('data drift verdicts', () => {
  it('detects a 35 → 38 mean shift (sd 10) at n = 1,000 under the default rule', () => {
    let detected = 0;
    for (let seed = 1; seed <= 10; seed++) {
      const f = featureDrift(
        'age',
        normal(seed, 1_000, 35, 10),
        normal(seed + 1_000, 1_000, 38, 10),
        DEFAULT_DRIFT_SETTINGS,
      );
      if (f.drifted) detected++;
      if (seed === 1)
        expect(f.rule).toMatch(/^default: KS p \S+ < 0\.01 and Wasserstein 0\.\d+ sd ≥ 0\.1 sd$/);
    }
    // The shift is 0.3 sd: KS on 1,000 raw values sees it essentially every time.
    expect(detected).toBeGreaterThanOrEqual(9);
  });

  it('does not alert on identical distributions at n = 1,000,000 (the effect-size half of the rule)', () => {
    let alerts = 0;
    for (let seed = 1; seed <= 2; seed++) {
      const f = featureDrift(
        'x',
        normal(seed, 1_000_000, 35, 10),
        normal(seed + 50, 1_000_000, 35, 10),
        DEFAULT_DRIFT_SETTINGS,
      );
      if (f.drifted) alerts++;
      expect(f.wassersteinNormalized).toBeLessThan(0.01);
    }
    expect(alerts).toBe(0);
  });

  it('does not judge a window with too few values, and says so', () => {
    const f = featureDrift(
      'x',
      normal(1, 1_000, 0, 1),
      normal(2, 20, 5, 1),
      DEFAULT_DRIFT_SETTINGS,
    );
    expect(f.drifted).toBe(false);
    expect(f.rule).toBe('not judged: 20 values, fewer than 100');
  });

  it('applies a configured test and threshold, per feature', () => {
    const ref = normal(1, 5_000, 0, 1);
    const cur = normal(2, 5_000, 0.15, 1);
    const settings = {
      ...DEFAULT_DRIFT_SETTINGS,
      perFeature: { strict: { test: DriftTest.PSI, threshold: 0.01 } },
    };
    const strict = featureDrift('strict', ref, cur, settings);
    expect(strict.drifted).toBe(true);
    expect(strict.rule).toMatch(/^PSI 0\.0\d+ > 0\.01$/);
    const lax = featureDrift('other', ref, cur, {
      ...settings,
      rule: { test: DriftTest.KS, threshold: 0.2 },
    });
    expect(lax.drifted).toBe(false);
    expect(lax.rule).toMatch(/^KS D 0\.\d+ ≤ 0\.2$/);
  });

  it('judges category codes by chi-squared and JS, with their counts as the histogram', () => {
    const codes = (seed: number, n: number, p: number[]) => {
      const r = new Rng(seed);
      return Float64Array.from({ length: n }, () => {
        let u = r.next();
        let k = 0;
        while (k < p.length - 1 && u >= p[k]) u -= p[k++];
        return k;
      });
    };
    const settings = { ...DEFAULT_DRIFT_SETTINGS, categorical: ['carrier'] };
    const same = featureDrift(
      'carrier',
      codes(1, 5_000, [0.5, 0.3, 0.2]),
      codes(2, 5_000, [0.5, 0.3, 0.2]),
      settings,
    );
    expect(same.drifted).toBe(false);
    expect(same.categories).toEqual([0, 1, 2]);
    const moved = featureDrift(
      'carrier',
      codes(1, 5_000, [0.5, 0.3, 0.2]),
      codes(3, 5_000, [0.2, 0.3, 0.5]),
      settings,
    );
    expect(moved.drifted).toBe(true);
    expect(moved.rule).toMatch(/^default: chi-squared p \S+ < 0\.01 and JS 0\.\d+ ≥ 0\.1$/);
    expect(moved.currentCounts.reduce((a, b) => a + b)).toBe(5_000);
  });
});
