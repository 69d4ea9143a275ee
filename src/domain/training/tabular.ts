/**
 * Training tables and the preprocessing every built-in model shares. The exported ONNX graph
 * runs the same steps in float32 (impute missing with the mean, subtract it, divide by the
 * standard deviation); `standardize` emulates exactly those float32 operations, so a model
 * sees the same numbers in training as in serving.
 */
export interface Table {
  /** Rows. */
  n: number;
  /** Features per row. */
  d: number;
  /** Row-major n × d; NaN marks a missing value. */
  x: Float64Array;
  /** Labels, 0 or 1. */
  y: Float64Array;
  names: string[];
}

export interface Standardizer {
  /** Per feature, float32-representable: they become constants of the ONNX graph. */
  mean: number[];
  std: number[];
}

const f = Math.fround;

export function fitStandardizer(t: Table): Standardizer {
  const mean: number[] = [];
  const std: number[] = [];
  for (let j = 0; j < t.d; j++) {
    let n = 0;
    let sum = 0;
    for (let i = 0; i < t.n; i++) {
      const v = t.x[i * t.d + j];
      if (!Number.isNaN(v)) {
        n++;
        sum += v;
      }
    }
    const m = n ? sum / n : 0;
    let ss = 0;
    for (let i = 0; i < t.n; i++) {
      const v = t.x[i * t.d + j];
      if (!Number.isNaN(v)) ss += (v - m) * (v - m);
    }
    const s = n > 1 ? Math.sqrt(ss / n) : 0;
    mean.push(f(m));
    std.push(s > 1e-12 ? f(s) : 1);
  }
  return { mean, std };
}

/** The model's input, computed as the ONNX graph computes it (float32 at every step). */
export function standardize(t: Table, s: Standardizer): Float64Array {
  const out = new Float64Array(t.n * t.d);
  for (let i = 0; i < t.n; i++) {
    for (let j = 0; j < t.d; j++) {
      const raw = f(t.x[i * t.d + j]);
      const v = Number.isNaN(raw) ? s.mean[j] : raw;
      out[i * t.d + j] = f(f(v - s.mean[j]) / s.std[j]);
    }
  }
  return out;
}

/** Rows picked by index, for the train/validation split. */
export function takeRows(t: Table, rows: Uint32Array): Table {
  const x = new Float64Array(rows.length * t.d);
  const y = new Float64Array(rows.length);
  rows.forEach((r, i) => {
    x.set(t.x.subarray(r * t.d, (r + 1) * t.d), i * t.d);
    y[i] = t.y[r];
  });
  return { n: rows.length, d: t.d, x, y, names: t.names };
}

/**
 * The latest `fraction` of rows by time validate, the rest train: a model is judged on
 * rows after everything it learned from, as it will be in production.
 */
export function splitByTime(
  ts: Float64Array,
  fraction: number,
): { train: Uint32Array; val: Uint32Array } {
  const order = Uint32Array.from(ts.keys()).sort((a, b) => ts[a] - ts[b] || a - b);
  const nVal = Math.max(1, Math.floor(ts.length * fraction));
  return { train: order.slice(0, ts.length - nVal), val: order.slice(ts.length - nVal) };
}
