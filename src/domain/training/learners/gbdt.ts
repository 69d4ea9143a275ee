import { sigmoid } from '../metrics';
import { type Learner, num, type Rows } from './learner';

/**
 * Gradient-boosted trees on log loss, histogram-based: each feature's values are cut at up
 * to `bins` - 1 quantile edges taken from the training values themselves (so every
 * threshold is a float32 value, compared exactly as ONNX's TreeEnsemble compares), one
 * tree per epoch, grown level by level to `maxDepth`. Leaf values are rounded to float32,
 * as the exported ensemble stores them.
 */
export interface TreeNode {
  /** -1 for a leaf. */
  feature: number;
  threshold: number;
  left: number;
  right: number;
  value: number;
}

export interface GbdtState {
  base: number;
  edges: number[][];
  trees: TreeNode[][];
}

const LAMBDA = 1;
const f = Math.fround;

/** Per process: binned training rows, and raw scores per row set (rebuilt after a resume). */
const binned = new WeakMap<Float64Array, Uint8Array>();
const scored = new WeakMap<Float64Array, { state: GbdtState; trees: number; raw: Float64Array }>();

/**
 * Raw scores of `rows`, adding only the trees grown since the last call: base, then every
 * tree in order, the same sums whether computed at once or epoch by epoch.
 */
function rawScores(s: GbdtState, rows: Rows): Float64Array {
  let c = scored.get(rows.x);
  if (!c || c.state !== s || c.trees > s.trees.length) {
    c = { state: s, trees: 0, raw: new Float64Array(rows.n).fill(s.base) };
    scored.set(rows.x, c);
  }
  for (; c.trees < s.trees.length; c.trees++) {
    const t = s.trees[c.trees];
    for (let i = 0; i < rows.n; i++) c.raw[i] += treeScore(t, rows.x, i * rows.d);
  }
  return c.raw;
}

function binsOf(s: GbdtState, train: Rows): Uint8Array {
  let b = binned.get(train.x);
  if (!b) {
    b = new Uint8Array(train.n * train.d);
    for (let j = 0; j < train.d; j++) {
      const e = s.edges[j];
      for (let i = 0; i < train.n; i++) {
        const v = train.x[i * train.d + j];
        let lo = 0;
        let hi = e.length;
        while (lo < hi) {
          const mid = (lo + hi) >> 1;
          if (v <= e[mid]) hi = mid;
          else lo = mid + 1;
        }
        b[i * train.d + j] = lo;
      }
    }
    binned.set(train.x, b);
  }
  return b;
}

function treeScore(t: TreeNode[], x: Float64Array, off: number): number {
  let k = 0;
  while (t[k].feature >= 0) k = x[off + t[k].feature] <= t[k].threshold ? t[k].left : t[k].right;
  return t[k].value;
}

export const gbdt: Learner<GbdtState> = {
  init: (train, hp) => {
    const maxBins = num(hp, 'bins');
    const edges: number[][] = [];
    for (let j = 0; j < train.d; j++) {
      const vals = Float64Array.from(
        { length: train.n },
        (_, i) => train.x[i * train.d + j],
      ).sort();
      const e: number[] = [];
      for (let k = 1; k < maxBins; k++) {
        const v = vals[Math.min(vals.length - 1, Math.floor((k * vals.length) / maxBins))];
        if (v < vals[vals.length - 1] && (e.length === 0 || v > e[e.length - 1])) e.push(v);
      }
      edges.push(e);
    }
    let pos = 0;
    for (let i = 0; i < train.n; i++) pos += train.y[i];
    const rate = Math.min(Math.max(pos / Math.max(1, train.n), 1e-6), 1 - 1e-6);
    return { base: f(Math.log(rate / (1 - rate))), edges, trees: [] };
  },
  epochs: (hp) => num(hp, 'trees'),
  epoch: (s, train, hp) => {
    const bins = binsOf(s, train);
    const F = rawScores(s, train);
    const { n, d } = train;
    const g = new Float64Array(n);
    const h = new Float64Array(n);
    for (let i = 0; i < n; i++) {
      const p = sigmoid(F[i]);
      g[i] = p - train.y[i];
      h[i] = p * (1 - p);
    }
    const lr = num(hp, 'learningRate');
    const maxDepth = num(hp, 'maxDepth');
    const minLeaf = num(hp, 'minSamplesLeaf');
    const tree: TreeNode[] = [];
    const leaf = (rows: Uint32Array): TreeNode => {
      let G = 0;
      let H = 0;
      for (const r of rows) {
        G += g[r];
        H += h[r];
      }
      return { feature: -1, threshold: 0, left: -1, right: -1, value: f((-lr * G) / (H + LAMBDA)) };
    };
    // Level by level: each open node either splits on its best gain or becomes a leaf.
    let open: { node: number; rows: Uint32Array }[] = [
      { node: 0, rows: Uint32Array.from({ length: n }, (_, i) => i) },
    ];
    tree.push(leaf(open[0].rows));
    const nb = Math.max(...s.edges.map((e) => e.length)) + 1;
    const hg = new Float64Array(nb);
    const hh = new Float64Array(nb);
    const hc = new Uint32Array(nb);
    for (let depth = 0; depth < maxDepth && open.length; depth++) {
      const next: typeof open = [];
      for (const { node, rows } of open) {
        if (rows.length < 2 * minLeaf) continue;
        let G = 0;
        let H = 0;
        for (const r of rows) {
          G += g[r];
          H += h[r];
        }
        const parent = (G * G) / (H + LAMBDA);
        let best = { gain: 1e-12, feature: -1, bin: -1 };
        for (let j = 0; j < d; j++) {
          const ne = s.edges[j].length;
          if (ne === 0) continue;
          hg.fill(0, 0, ne + 1);
          hh.fill(0, 0, ne + 1);
          hc.fill(0, 0, ne + 1);
          for (const r of rows) {
            const b = bins[r * d + j];
            hg[b] += g[r];
            hh[b] += h[r];
            hc[b]++;
          }
          let gl = 0;
          let hl = 0;
          let cl = 0;
          for (let b = 0; b < ne; b++) {
            gl += hg[b];
            hl += hh[b];
            cl += hc[b];
            const cr = rows.length - cl;
            if (cl < minLeaf || cr < minLeaf) continue;
            const gr = G - gl;
            const hr = H - hl;
            const gain = (gl * gl) / (hl + LAMBDA) + (gr * gr) / (hr + LAMBDA) - parent;
            if (gain > best.gain) best = { gain, feature: j, bin: b };
          }
        }
        if (best.feature < 0) continue;
        const left: number[] = [];
        const right: number[] = [];
        for (const r of rows) (bins[r * d + best.feature] <= best.bin ? left : right).push(r);
        const l = Uint32Array.from(left);
        const rr = Uint32Array.from(right);
        tree[node] = {
          feature: best.feature,
          threshold: s.edges[best.feature][best.bin],
          left: tree.length,
          right: tree.length + 1,
          value: 0,
        };
        tree.push(leaf(l), leaf(rr));
        next.push({ node: tree[node].left, rows: l }, { node: tree[node].right, rows: rr });
      }
      open = next;
    }
    s.trees.push(tree);
  },
  predict: (s, rows) => rawScores(s, rows).map(sigmoid),
};
