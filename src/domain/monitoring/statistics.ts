/**
 * Two-sample statistics for drift, on raw values. Numeric samples are sorted once
 * (`sortedSample`) and every statistic walks the sorted arrays: KS and Wasserstein merge
 * them, the bins are cut at the reference's quantiles and counted in one pass. Checked
 * against scipy's values in test/fixtures/monitoring (made by make_drift_reference.py).
 */

/** Finite values sorted ascending; NaN (a missing value) is counted, not sorted. */
export interface SortedSample {
  values: Float64Array;
  missing: number;
}

export function sortedSample(raw: ArrayLike<number>): SortedSample {
  const values = new Float64Array(raw.length);
  let n = 0;
  for (let i = 0; i < raw.length; i++) {
    const x = raw[i];
    if (Number.isFinite(x)) values[n++] = x;
  }
  const out = n === raw.length ? values : values.slice(0, n);
  radixSort(out);
  return { values: out, missing: raw.length - n };
}

const RADIX_MIN = 2_048;

/**
 * Sorts finite (or infinite) doubles ascending in place: a least-significant-digit radix
 * sort over the IEEE-754 bits made order-preserving (sign flipped; negatives inverted), four
 * passes of 16 bits. bench/monitoring-drift measures it inside KS on 1M vs 1M values against
 * a plain copy-sort-merge KS in the same run (0.13 s vs 0.23 s); sorting was most of a drift
 * report's time. Not for NaN.
 */
export function radixSort(values: Float64Array): void {
  const n = values.length;
  if (n < RADIX_MIN) {
    values.sort();
    return;
  }
  const words = new Uint32Array(values.buffer, values.byteOffset, n * 2);
  let lo = new Uint32Array(n);
  let hi = new Uint32Array(n);
  for (let i = 0; i < n; i++) {
    const l = words[2 * i];
    const h = words[2 * i + 1];
    if (h & 0x80000000) {
      lo[i] = ~l >>> 0;
      hi[i] = ~h >>> 0;
    } else {
      lo[i] = l;
      hi[i] = (h | 0x80000000) >>> 0;
    }
  }
  let lo2 = new Uint32Array(n);
  let hi2 = new Uint32Array(n);
  const counts = new Uint32Array(65_536);
  for (let pass = 0; pass < 4; pass++) {
    const src = pass < 2 ? lo : hi;
    const shift = pass % 2 ? 16 : 0;
    counts.fill(0);
    for (let i = 0; i < n; i++) counts[(src[i] >>> shift) & 0xffff]++;
    let sum = 0;
    for (let b = 0; b < 65_536; b++) {
      const c = counts[b];
      counts[b] = sum;
      sum += c;
    }
    for (let i = 0; i < n; i++) {
      const at = counts[(src[i] >>> shift) & 0xffff]++;
      lo2[at] = lo[i];
      hi2[at] = hi[i];
    }
    [lo, lo2] = [lo2, lo];
    [hi, hi2] = [hi2, hi];
  }
  for (let i = 0; i < n; i++) {
    const h = hi[i];
    if (h & 0x80000000) {
      words[2 * i] = lo[i];
      words[2 * i + 1] = (h & 0x7fffffff) >>> 0;
    } else {
      words[2 * i] = ~lo[i] >>> 0;
      words[2 * i + 1] = ~h >>> 0;
    }
  }
}

/**
 * Two-sample Kolmogorov–Smirnov on raw values, tie-aware: both empirical CDFs are compared
 * only after every copy of a value has been counted (as scipy's ks_2samp). The p-value is
 * exact (`ksExactPValue`) while n·m ≤ 2.5 million, else the Kolmogorov limiting distribution
 * with Stephens' finite-sample correction (scipy's exact values are matched within a few
 * percent there; the statistic exactly).
 */
export function ks2(a: Float64Array, b: Float64Array): { d: number; pValue: number } {
  const n = a.length;
  const m = b.length;
  if (!n || !m) return { d: 0, pValue: 1 };
  let i = 0;
  let j = 0;
  let d = 0;
  while (i < n && j < m) {
    const x = a[i] <= b[j] ? a[i] : b[j];
    while (i < n && a[i] === x) i++;
    while (j < m && b[j] === x) j++;
    const gap = Math.abs(i / n - j / m);
    if (gap > d) d = gap;
  }
  return { d, pValue: ksPValue(d, n, m) };
}

const EXACT_KS_CELLS = 2_500_000;

export function ksPValue(d: number, n: number, m: number): number {
  if (n * m <= EXACT_KS_CELLS) {
    const p = ksExactPValue(d, n, m);
    // Below ~1e-9 the exact sum loses its digits to cancellation; the tail formula does not.
    if (p > 1e-9) return p;
  }
  const ne = (n * m) / (n + m);
  const s = Math.sqrt(ne);
  return kolmogorovQ((s + 0.12 + 0.11 / s) * d);
}

/**
 * P(D ≥ d) under the null, exactly: the share of monotone lattice paths from (0, 0) to
 * (n, m) — one step per value of the pooled sample — that leave the band |i/n − j/m| < d.
 * Walked as probabilities of a uniformly random path (no binomials to overflow), one row at
 * a time: O(n·m) time, O(m) memory.
 */
export function ksExactPValue(d: number, n: number, m: number): number {
  // D·n·m is an integer (D = |i·m − j·n| / (n·m)); compare integers, not floats.
  const h = Math.round(d * n * m);
  const inside = (i: number, j: number) => Math.abs(i * m - j * n) < h;
  const row = new Float64Array(m + 1);
  row[0] = 1;
  for (let j = 1; j <= m; j++)
    row[j] = inside(0, j) ? (row[j - 1] * (m - j + 1)) / (n + m - j + 1) : 0;
  for (let i = 1; i <= n; i++) {
    // From (i−1, j) a path steps to i with probability (n−i+1)/(n+m−i−j+1) ...
    row[0] = inside(i, 0) ? (row[0] * (n - i + 1)) / (n + m - i + 1) : 0;
    for (let j = 1; j <= m; j++) {
      if (!inside(i, j)) {
        row[j] = 0;
        continue;
      }
      const left = n + m - i - j + 1;
      // ... and from (i, j−1) to j with probability (m−j+1)/(n+m−i−j+1).
      row[j] = (row[j] * (n - i + 1)) / left + (row[j - 1] * (m - j + 1)) / left;
    }
  }
  return Math.min(1, Math.max(0, 1 - row[m]));
}

/** P(K > λ) for the Kolmogorov distribution. */
export function kolmogorovQ(lambda: number): number {
  if (lambda <= 0) return 1;
  if (lambda < 1.18) {
    // The theta-function form converges fast for small λ.
    const c = (Math.PI * Math.PI) / (8 * lambda * lambda);
    let s = 0;
    for (let k = 1; k <= 9; k += 2) s += Math.exp(-k * k * c);
    return Math.min(1, Math.max(0, 1 - (Math.sqrt(2 * Math.PI) / lambda) * s));
  }
  let s = 0;
  for (let k = 1; k <= 100; k++) {
    const term = Math.exp(-2 * k * k * lambda * lambda);
    s += k % 2 ? term : -term;
    if (term < 1e-300) break;
  }
  return Math.min(1, Math.max(0, 2 * s));
}

/**
 * The 1-Wasserstein distance (earth mover's) between two samples: the area between their
 * empirical CDFs, in the values' own unit.
 */
export function wasserstein1(a: Float64Array, b: Float64Array): number {
  const n = a.length;
  const m = b.length;
  if (!n || !m) return 0;
  let i = 0;
  let j = 0;
  let area = 0;
  let x = Math.min(a[0], b[0]);
  while (i < n || j < m) {
    const next = j >= m || (i < n && a[i] <= b[j]) ? a[i] : b[j];
    area += Math.abs(i / n - j / m) * (next - x);
    x = next;
    while (i < n && a[i] === x) i++;
    while (j < m && b[j] === x) j++;
  }
  return area;
}

/** Sample standard deviation (n − 1), for normalising a Wasserstein distance. */
export function standardDeviation(sorted: Float64Array): number {
  const n = sorted.length;
  if (n < 2) return 0;
  let mean = 0;
  for (let i = 0; i < n; i++) mean += sorted[i];
  mean /= n;
  let ss = 0;
  for (let i = 0; i < n; i++) ss += (sorted[i] - mean) ** 2;
  return Math.sqrt(ss / (n - 1));
}

/**
 * Bin edges at the reference's quantiles k/bins (k = 1..bins−1, linear interpolation as
 * numpy's default), duplicates dropped (a value shared by many rows makes one edge). The
 * bins are (−∞, e₁], (e₁, e₂], …, (eₖ, ∞).
 */
export function quantileEdges(sortedRef: Float64Array, bins: number): number[] {
  const n = sortedRef.length;
  if (!n) return [];
  const edges: number[] = [];
  for (let k = 1; k < bins; k++) {
    const pos = (k / bins) * (n - 1);
    const lo = Math.floor(pos);
    const hi = Math.min(n - 1, lo + 1);
    const e = sortedRef[lo] + (sortedRef[hi] - sortedRef[lo]) * (pos - lo);
    if (!edges.length || e > edges[edges.length - 1]) edges.push(e);
  }
  return edges;
}

/** Counts of a sorted sample in the bins `edges` cut (edges.length + 1 bins). */
export function binCounts(sorted: Float64Array, edges: readonly number[]): number[] {
  const counts = new Array<number>(edges.length + 1).fill(0);
  let bin = 0;
  for (let i = 0; i < sorted.length; i++) {
    while (bin < edges.length && sorted[i] > edges[bin]) bin++;
    counts[bin]++;
  }
  return counts;
}

/**
 * Population stability index over matching bins, each proportion smoothed by half a count
 * ((count + 0.5) / (n + 0.5·bins)) so an empty bin costs a finite amount.
 */
export function psi(ref: readonly number[], cur: readonly number[]): number {
  const k = ref.length;
  const nr = sum(ref) + 0.5 * k;
  const nc = sum(cur) + 0.5 * k;
  let out = 0;
  for (let i = 0; i < k; i++) {
    const r = (ref[i] + 0.5) / nr;
    const c = (cur[i] + 0.5) / nc;
    out += (c - r) * Math.log(c / r);
  }
  return out;
}

/** Jensen–Shannon distance (base 2, so within [0, 1]) between two count vectors. */
export function jsDistance(p: readonly number[], q: readonly number[]): number {
  const np = sum(p);
  const nq = sum(q);
  if (!np || !nq) return 0;
  let div = 0;
  for (let i = 0; i < p.length; i++) {
    const a = p[i] / np;
    const b = q[i] / nq;
    const mid = (a + b) / 2;
    if (a > 0) div += 0.5 * a * Math.log2(a / mid);
    if (b > 0) div += 0.5 * b * Math.log2(b / mid);
  }
  return Math.sqrt(Math.max(0, div));
}

/**
 * Pearson's chi-squared test of homogeneity on a 2×k table (reference counts, current
 * counts), without continuity correction; categories empty in both are left out.
 */
export function chiSquared(
  ref: readonly number[],
  cur: readonly number[],
): { statistic: number; dof: number; pValue: number } {
  const cols: [number, number][] = [];
  for (let i = 0; i < ref.length; i++) if (ref[i] + cur[i] > 0) cols.push([ref[i], cur[i]]);
  const nr = sum(cols.map((c) => c[0]));
  const nc = sum(cols.map((c) => c[1]));
  const total = nr + nc;
  if (cols.length < 2 || !nr || !nc) return { statistic: 0, dof: 0, pValue: 1 };
  let statistic = 0;
  for (const [r, c] of cols) {
    const col = r + c;
    const er = (col * nr) / total;
    const ec = (col * nc) / total;
    statistic += (r - er) ** 2 / er + (c - ec) ** 2 / ec;
  }
  const dof = cols.length - 1;
  return { statistic, dof, pValue: gammaQ(dof / 2, statistic / 2) };
}

/** Regularised upper incomplete gamma Q(a, x): series below a + 1, continued fraction above. */
export function gammaQ(a: number, x: number): number {
  if (x <= 0) return 1;
  const lnPre = -x + a * Math.log(x) - logGamma(a);
  if (x < a + 1) {
    let term = 1 / a;
    let s = term;
    for (let n = 1; n < 1_000; n++) {
      term *= x / (a + n);
      s += term;
      if (Math.abs(term) < Math.abs(s) * 1e-16) break;
    }
    return Math.max(0, 1 - s * Math.exp(lnPre));
  }
  // Lentz's method for the continued fraction.
  const tiny = 1e-300;
  let b = x + 1 - a;
  let c = 1 / tiny;
  let d = 1 / b;
  let h = d;
  for (let i = 1; i < 1_000; i++) {
    const an = -i * (i - a);
    b += 2;
    d = an * d + b;
    if (Math.abs(d) < tiny) d = tiny;
    c = b + an / c;
    if (Math.abs(c) < tiny) c = tiny;
    d = 1 / d;
    const delta = d * c;
    h *= delta;
    if (Math.abs(delta - 1) < 1e-16) break;
  }
  return Math.min(1, Math.exp(lnPre) * h);
}

const LANCZOS = [
  0.99999999999980993, 676.5203681218851, -1259.1392167224028, 771.32342877765313,
  -176.61502916214059, 12.507343278686905, -0.13857109526572012, 9.9843695780195716e-6,
  1.5056327351493116e-7,
];

/** ln Γ(x) for x > 0 (Lanczos, g = 7). */
export function logGamma(x: number): number {
  if (x < 0.5) return Math.log(Math.PI / Math.sin(Math.PI * x)) - logGamma(1 - x);
  const z = x - 1;
  let s = LANCZOS[0];
  for (let i = 1; i < 9; i++) s += LANCZOS[i] / (z + i);
  const t = z + 7.5;
  return 0.5 * Math.log(2 * Math.PI) + (z + 0.5) * Math.log(t) - t + Math.log(s);
}

function sum(xs: readonly number[]): number {
  let s = 0;
  for (const x of xs) s += x;
  return s;
}
