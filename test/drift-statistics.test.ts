import fc from 'fast-check';
import fs from 'node:fs';
import path from 'node:path';
import {
  binCounts,
  chiSquared,
  jsDistance,
  ks2,
  psi,
  quantileEdges,
  radixSort,
  sortedSample,
  wasserstein1,
} from '../src/domain/monitoring/statistics';

/**
 * The drift statistics against values computed independently with numpy/scipy
 * (test/fixtures/monitoring/make_drift_reference.py wrote drift-reference.json; its
 * docstring says how each value was made).
 */
interface NumericCase {
  name: string;
  kind: 'numeric';
  ref: number[];
  cur: number[];
  ks: { statistic: number; pvalue: number };
  wasserstein: number;
  edges: number[];
  refCounts: number[];
  curCounts: number[];
  psi: number;
  js: number;
}
interface CategoricalCase {
  name: string;
  kind: 'categorical';
  ref: string[];
  cur: string[];
  categories: string[];
  chi2: { statistic: number; pvalue: number; dof: number };
  js: number;
}
const fixture = JSON.parse(
  fs.readFileSync(path.join(__dirname, 'fixtures/monitoring/drift-reference.json'), 'utf8'),
) as {
  bins: number;
  cases: (NumericCase | CategoricalCase)[];
  histogramCountsKsOnMeanShift: { statistic: number; pvalue: number };
};
const numeric = fixture.cases.filter((c): c is NumericCase => c.kind === 'numeric');
const categorical = fixture.cases.filter((c): c is CategoricalCase => c.kind === 'categorical');

describe.each(numeric.map((c) => [c.name, c] as const))('%s', (_, c) => {
  const ref = sortedSample(c.ref).values;
  const cur = sortedSample(c.cur).values;

  it('KS statistic and p-value as scipy (tie-aware, raw values)', () => {
    const { d, pValue } = ks2(ref, cur);
    expect(d).toBeCloseTo(c.ks.statistic, 12);
    if (pValue > 1e-9) {
      // The exact lattice-path probability, as scipy's 'exact' method.
      expect(Math.abs(pValue / c.ks.pvalue - 1)).toBeLessThan(1e-6);
    } else {
      // Far in the tail the corrected asymptotic form answers; same order of magnitude.
      expect(Math.abs(Math.log10(pValue) - Math.log10(c.ks.pvalue))).toBeLessThan(0.3);
    }
  });

  it('Wasserstein distance as scipy', () => {
    expect(wasserstein1(ref, cur)).toBeCloseTo(c.wasserstein, 9);
  });

  it("bins at the reference's quantiles, PSI and Jensen–Shannon as numpy/scipy", () => {
    const edges = quantileEdges(ref, fixture.bins);
    expect(edges.length).toBe(c.edges.length);
    edges.forEach((e, i) => expect(e).toBeCloseTo(c.edges[i], 9));
    const rc = binCounts(ref, edges);
    const cc = binCounts(cur, edges);
    expect(rc).toEqual(c.refCounts);
    expect(cc).toEqual(c.curCounts);
    expect(psi(rc, cc)).toBeCloseTo(c.psi, 10);
    expect(jsDistance(rc, cc)).toBeCloseTo(c.js, 10);
  });
});

describe.each(categorical.map((c) => [c.name, c] as const))('%s', (_, c) => {
  it('chi-squared (statistic, dof, p-value) and Jensen–Shannon as scipy', () => {
    const count = (xs: string[]) => c.categories.map((k) => xs.filter((x) => x === k).length);
    const rc = count(c.ref);
    const cc = count(c.cur);
    const chi = chiSquared(rc, cc);
    expect(chi.statistic).toBeCloseTo(c.chi2.statistic, 9);
    expect(chi.dof).toBe(c.chi2.dof);
    expect(Math.abs(chi.pValue - c.chi2.pvalue) / c.chi2.pvalue).toBeLessThan(1e-8);
    expect(jsDistance(rc, cc)).toBeCloseTo(c.js, 10);
  });
});

it('runs KS on the raw values, not on histogram counts (the classic mistake)', () => {
  const shift = numeric.find((c) => c.name.startsWith('mean 35 -> 38')) as NumericCase;
  const { d, pValue } = ks2(sortedSample(shift.ref).values, sortedSample(shift.cur).values);
  // On the raw values the 0.3 sd shift is plain at n = 1,000 ...
  expect(d).toBeCloseTo(shift.ks.statistic, 12);
  expect(pValue).toBeLessThan(1e-6);
  // ... while KS over the ten bin counts (what a histogram-based "KS" computes) sees nothing.
  expect(fixture.histogramCountsKsOnMeanShift.pvalue).toBeGreaterThan(0.05);
  expect(d).not.toBeCloseTo(fixture.histogramCountsKsOnMeanShift.statistic, 2);
});

it('counts missing values apart and sorts the rest', () => {
  const s = sortedSample([3, NaN, 1, Infinity, 2]);
  expect(Array.from(s.values)).toEqual([1, 2, 3]);
  expect(s.missing).toBe(2);
});

it('radix-sorts doubles exactly as the native sort does (negatives, ±0, ±∞, subnormals, ties)', () => {
  fc.assert(
    fc.property(
      fc.array(fc.double({ noNaN: true }), { minLength: 2_048, maxLength: 6_000 }),
      fc.array(fc.integer({ min: -3, max: 3 }), { maxLength: 2_000 }),
      (doubles, ties) => {
        const xs = Float64Array.from([...doubles, ...ties, -0, 0, 5e-324, -5e-324]);
        const expected = Float64Array.from(xs).sort();
        radixSort(xs);
        expect(Array.from(xs)).toEqual(Array.from(expected));
      },
    ),
    { numRuns: 25 },
  );
});
