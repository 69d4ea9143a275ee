import { sigmoid } from '../metrics';
import { type Rng } from '../rng';
import { type Learner, num, type Rows } from './learner';

/**
 * Dense layers ending in one sigmoid unit: logistic regression is the case with no hidden
 * layer. One forward pass serves training and prediction; the ONNX export writes the same
 * layers (MatMul, Add, Relu, Sigmoid).
 */
export interface DenseState {
  /** Per layer: weights (in × out, row-major) and biases. */
  layers: { w: number[]; b: number[]; in: number; out: number }[];
  /** Adam moments, same shapes as the parameters; absent for plain SGD. */
  adam?: { m: number[][]; v: number[][]; t: number };
}

function forward(s: DenseState, x: Float64Array, row: number, acts: Float64Array[]): number {
  const d = s.layers[0].in;
  acts[0].set(x.subarray(row * d, (row + 1) * d));
  for (let l = 0; l < s.layers.length; l++) {
    const { w, b, in: nin, out } = s.layers[l];
    const a = acts[l];
    const z = acts[l + 1];
    for (let o = 0; o < out; o++) {
      let sum = b[o];
      for (let i = 0; i < nin; i++) sum += a[i] * w[i * out + o];
      z[o] = l === s.layers.length - 1 ? sum : sum > 0 ? sum : 0;
    }
  }
  return sigmoid(acts[s.layers.length][0]);
}

function buffers(s: DenseState): Float64Array[] {
  return [new Float64Array(s.layers[0].in), ...s.layers.map((l) => new Float64Array(l.out))];
}

function predictDense(s: DenseState, rows: Rows): Float64Array {
  const acts = buffers(s);
  const p = new Float64Array(rows.n);
  for (let r = 0; r < rows.n; r++) p[r] = forward(s, rows.x, r, acts);
  return p;
}

/**
 * One epoch of mini-batch gradient descent on log loss (+ L2 on weights): plain steps, or
 * Adam when the state carries moments.
 */
function epochDense(s: DenseState, train: Rows, hp: Record<string, unknown>, rng: Rng): void {
  const lr = num(hp, 'learningRate');
  const l2 = (hp.l2 as number | undefined) ?? 0;
  const batch = num(hp, 'batchSize');
  const order = rng.shuffle(Uint32Array.from({ length: train.n }, (_, i) => i));
  const acts = buffers(s);
  const deltas = s.layers.map((l) => new Float64Array(l.out));
  const gw = s.layers.map((l) => new Float64Array(l.w.length));
  const gb = s.layers.map((l) => new Float64Array(l.b.length));
  for (let start = 0; start < train.n; start += batch) {
    const end = Math.min(train.n, start + batch);
    gw.forEach((g) => g.fill(0));
    gb.forEach((g) => g.fill(0));
    for (let k = start; k < end; k++) {
      const r = order[k];
      const p = forward(s, train.x, r, acts);
      // Backpropagation; the output delta of log loss through a sigmoid is p - y.
      const last = s.layers.length - 1;
      deltas[last][0] = p - train.y[r];
      for (let l = last; l >= 0; l--) {
        const { w, in: nin, out } = s.layers[l];
        const a = acts[l];
        const dl = deltas[l];
        for (let o = 0; o < out; o++) {
          gb[l][o] += dl[o];
          for (let i = 0; i < nin; i++) gw[l][i * out + o] += a[i] * dl[o];
        }
        if (l > 0) {
          const prev = deltas[l - 1];
          for (let i = 0; i < nin; i++) {
            let sum = 0;
            for (let o = 0; o < out; o++) sum += w[i * out + o] * dl[o];
            prev[i] = a[i] > 0 ? sum : 0;
          }
        }
      }
    }
    const m = end - start;
    if (s.adam) s.adam.t++;
    s.layers.forEach((layer, l) => {
      step(s, 2 * l, layer.w, gw[l], m, lr, l2);
      step(s, 2 * l + 1, layer.b, gb[l], m, lr, 0);
    });
  }
}

const B1 = 0.9;
const B2 = 0.999;
const EPS = 1e-8;

function step(
  s: DenseState,
  slot: number,
  p: number[],
  g: Float64Array,
  m: number,
  lr: number,
  l2: number,
): void {
  if (!s.adam) {
    for (let i = 0; i < p.length; i++) p[i] -= lr * (g[i] / m + l2 * p[i]);
    return;
  }
  const mo = s.adam.m[slot];
  const ve = s.adam.v[slot];
  const c1 = 1 - B1 ** s.adam.t;
  const c2 = 1 - B2 ** s.adam.t;
  for (let i = 0; i < p.length; i++) {
    const gi = g[i] / m + l2 * p[i];
    mo[i] = B1 * mo[i] + (1 - B1) * gi;
    ve[i] = B2 * ve[i] + (1 - B2) * gi * gi;
    p[i] -= (lr * (mo[i] / c1)) / (Math.sqrt(ve[i] / c2) + EPS);
  }
}

export const logisticRegression: Learner<DenseState> = {
  init: (train) => ({
    layers: [{ w: new Array<number>(train.d).fill(0), b: [0], in: train.d, out: 1 }],
  }),
  epochs: (hp) => num(hp, 'epochs'),
  epoch: epochDense,
  predict: predictDense,
};

export const mlp: Learner<DenseState> = {
  init: (train, hp, rng) => {
    const sizes = [train.d, ...(hp.hiddenUnits as number[]), 1];
    const layers = sizes.slice(1).map((out, l) => {
      const nin = sizes[l];
      const scale = Math.sqrt(2 / nin); // He initialization for ReLU
      return {
        w: Array.from({ length: nin * out }, () => rng.normal() * scale),
        b: new Array<number>(out).fill(0),
        in: nin,
        out,
      };
    });
    const zeros = () => layers.flatMap((l) => [l.w.map(() => 0), l.b.map(() => 0)]);
    return { layers, adam: { m: zeros(), v: zeros(), t: 0 } };
  },
  epochs: (hp) => num(hp, 'epochs'),
  epoch: epochDense,
  predict: predictDense,
};
