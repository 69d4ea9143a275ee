import { type Rng } from '../training/rng';
import {
  clampInt,
  loss,
  observations,
  randomValue,
  type SamplingContext,
  trialRng,
} from './samplers';
import { ParamKind, type SearchParam } from './study';

/**
 * Tree-structured Parzen Estimator (Bergstra et al. 2011; as Optuna's TPESampler with its
 * defaults, each parameter on its own). The completed trials are split by their objective:
 * the best `gamma(n)` form l(x), the rest g(x), each a Parzen mixture of truncated Gaussians
 * (one per observation, plus a wide prior) on the parameter's own scale (log for a log
 * scale; integers widened by half a step and rounded back); categoricals get smoothed
 * counts. Candidates drawn from l are scored by l(x)/g(x), which is what maximises expected
 * improvement under TPE's model, and the best one is taken. Every draw comes from the trial's
 * own seeded generator, so a study's seed and a trial's number fix its parameters.
 */
export interface TpeOptions {
  /** Trials sampled at random before the model is used. */
  startupTrials: number;
  /** Candidates drawn from l(x) for each parameter. */
  candidates: number;
  /** How many of n observations count as good. */
  gamma: (n: number) => number;
  /** Weight of the prior component of each mixture, beside 1 per observation. */
  priorWeight: number;
}

export const TPE_DEFAULTS: TpeOptions = {
  startupTrials: 10,
  candidates: 24,
  gamma: (n) => Math.min(Math.ceil(0.1 * n), 25),
  priorWeight: 1,
};

export function tpeSample(
  ctx: SamplingContext,
  opts: TpeOptions = TPE_DEFAULTS,
): Record<string, unknown> {
  const rng = trialRng(ctx.seed, ctx.number);
  const obs = observations(ctx);
  if (obs.length < opts.startupTrials)
    return Object.fromEntries(ctx.space.map((p) => [p.name, randomValue(p, rng)]));
  const sorted = obs
    .map((o, i) => ({ o, i, l: loss(o.value, ctx.direction) }))
    .sort((a, b) => a.l - b.l || a.i - b.i)
    .map((x) => x.o);
  const nBelow = Math.max(1, Math.min(sorted.length - 1, opts.gamma(sorted.length)));
  const below = sorted.slice(0, nBelow);
  const above = sorted.slice(nBelow);
  const out: Record<string, unknown> = {};
  for (const p of ctx.space) {
    const b = below.map((o) => o.params[p.name]);
    const a = above.map((o) => o.params[p.name]);
    out[p.name] =
      p.kind === ParamKind.CATEGORICAL
        ? categorical(p.choices, b, a, rng, opts)
        : numeric(p, b, a, rng, opts);
  }
  return out;
}

function categorical(
  choices: unknown[],
  below: unknown[],
  above: unknown[],
  rng: Rng,
  opts: TpeOptions,
): unknown {
  const keys = choices.map((c) => JSON.stringify(c));
  const weights = (values: unknown[]) => {
    const w = choices.map(() => opts.priorWeight / choices.length);
    for (const v of values) {
      const i = keys.indexOf(JSON.stringify(v));
      if (i >= 0) w[i] += 1;
    }
    const total = w.reduce((s, x) => s + x, 0);
    return w.map((x) => x / total);
  };
  const l = weights(below);
  const g = weights(above);
  let best = -1;
  let bestScore = -Infinity;
  for (let k = 0; k < opts.candidates; k++) {
    const i = pick(l, rng);
    const score = Math.log(l[i]) - Math.log(g[i]);
    if (score > bestScore) {
      bestScore = score;
      best = i;
    }
  }
  return choices[best];
}

type Numeric = Extract<SearchParam, { kind: ParamKind.FLOAT | ParamKind.INT }>;

function numeric(
  p: Numeric,
  below: unknown[],
  above: unknown[],
  rng: Rng,
  opts: TpeOptions,
): number {
  const isInt = p.kind === ParamKind.INT;
  const low = isInt ? p.low - 0.5 : p.low;
  const high = isInt ? p.high + 0.5 : p.high;
  const to = (x: number) => (p.log ? Math.log(x) : x);
  const lo = to(low);
  const hi = to(high);
  const inside = (vs: unknown[]) =>
    vs.filter((v): v is number => typeof v === 'number' && v >= p.low && v <= p.high).map(to);
  const l = parzen(inside(below), lo, hi, opts.priorWeight);
  const g = parzen(inside(above), lo, hi, opts.priorWeight);
  let best = NaN;
  let bestScore = -Infinity;
  for (let k = 0; k < opts.candidates; k++) {
    const x = sampleMixture(l, lo, hi, rng);
    const score = logDensity(l, x, lo, hi) - logDensity(g, x, lo, hi);
    if (score > bestScore || Number.isNaN(best)) {
      bestScore = score;
      best = x;
    }
  }
  const v = p.log ? Math.exp(best) : best;
  return isInt ? clampInt(v, p.low, p.high) : Math.max(p.low, Math.min(p.high, v));
}

interface Mixture {
  mus: number[];
  sigmas: number[];
  weights: number[];
}

/**
 * One truncated Gaussian per observation, its width the larger gap to its neighbours (the
 * bounds count as neighbours), clipped to [range / min(100, n + 1), range]; plus the prior,
 * centred with the whole range as its width.
 */
export function parzen(xs: number[], lo: number, hi: number, priorWeight: number): Mixture {
  const range = hi - lo;
  const mus = [...xs, (lo + hi) / 2];
  const order = mus.map((_, i) => i).sort((a, b) => mus[a] - mus[b] || a - b);
  const sigmas = new Array<number>(mus.length).fill(range);
  const minSigma = range / Math.min(100, xs.length + 1);
  for (let k = 0; k < order.length; k++) {
    const i = order[k];
    if (i === mus.length - 1) continue;
    const left = k > 0 ? mus[order[k - 1]] : lo;
    const right = k < order.length - 1 ? mus[order[k + 1]] : hi;
    sigmas[i] = Math.min(range, Math.max(minSigma, mus[i] - left, right - mus[i]));
  }
  const weights = mus.map((_, i) => (i === mus.length - 1 ? priorWeight : 1));
  const total = weights.reduce((s, w) => s + w, 0);
  return { mus, sigmas, weights: weights.map((w) => w / total) };
}

function sampleMixture(m: Mixture, lo: number, hi: number, rng: Rng): number {
  const i = pick(m.weights, rng);
  for (let tries = 0; tries < 64; tries++) {
    const x = m.mus[i] + m.sigmas[i] * rng.normal();
    if (x >= lo && x <= hi) return x;
  }
  // A component almost wholly outside the range: its mass inside is near uniform.
  return lo + rng.next() * (hi - lo);
}

export function logDensity(m: Mixture, x: number, lo: number, hi: number): number {
  let p = 0;
  for (let i = 0; i < m.mus.length; i++) {
    const s = m.sigmas[i];
    const z = (x - m.mus[i]) / s;
    const mass = Phi((hi - m.mus[i]) / s) - Phi((lo - m.mus[i]) / s);
    p +=
      (m.weights[i] * Math.exp(-0.5 * z * z)) /
      (s * Math.sqrt(2 * Math.PI) * Math.max(mass, 1e-12));
  }
  return Math.log(Math.max(p, 1e-300));
}

function pick(weights: number[], rng: Rng): number {
  let u = rng.next();
  for (let i = 0; i < weights.length; i++) {
    u -= weights[i];
    if (u < 0) return i;
  }
  return weights.length - 1;
}

/** Standard normal CDF (Abramowitz and Stegun 7.1.26; absolute error below 1.5e-7). */
function Phi(z: number): number {
  const x = Math.abs(z) / Math.SQRT2;
  const t = 1 / (1 + 0.3275911 * x);
  const erf =
    1 -
    ((((1.061405429 * t - 1.453152027) * t + 1.421413741) * t - 0.284496736) * t + 0.254829592) *
      t *
      Math.exp(-x * x);
  return 0.5 * (1 + (z >= 0 ? erf : -erf));
}
