import { Rng } from '../training/rng';
import {
  Direction,
  ParamKind,
  SamplerKind,
  type SearchParam,
  type SearchSpace,
  TrialState,
} from './study';
import { tpeSample } from './tpe';

/** What a sampler sees: the space, the direction, and every trial so far. */
export interface SamplingContext {
  space: SearchSpace;
  direction: Direction;
  seed: number;
  /** The number of the trial being sampled: with the seed, it fixes every random draw. */
  number: number;
  history: readonly {
    params: Record<string, unknown>;
    state: TrialState;
    value: number | null;
    /** The objective after each epoch it reported (TPE ranks pruned trials by the last). */
    intermediate?: readonly { epoch: number; value: number }[];
  }[];
}

export type Sampler = (ctx: SamplingContext) => Record<string, unknown>;

/** A generator for trial `number` of a study seeded `seed`: the same pair, the same draws. */
export function trialRng(seed: number, number: number): Rng {
  // murmur3's finalizer over the pair, so neighbouring trials get unrelated streams.
  let h = (Math.imul(seed >>> 0, 0x9e3779b1) ^ Math.imul(number + 1, 0x85ebca6b)) >>> 0;
  h = Math.imul(h ^ (h >>> 16), 0x85ebca6b);
  h = Math.imul(h ^ (h >>> 13), 0xc2b2ae35);
  return new Rng((h ^ (h >>> 16)) >>> 0);
}

/** One value of a dimension, uniformly (log-uniformly on a log scale). */
export function randomValue(p: SearchParam, rng: Rng): unknown {
  switch (p.kind) {
    case ParamKind.CATEGORICAL:
      return p.choices[Math.min(p.choices.length - 1, Math.floor(rng.next() * p.choices.length))];
    case ParamKind.FLOAT: {
      const u = rng.next();
      return p.log
        ? Math.min(p.high, Math.exp(Math.log(p.low) + u * (Math.log(p.high) - Math.log(p.low))))
        : p.low + u * (p.high - p.low);
    }
    case ParamKind.INT: {
      const u = rng.next();
      if (!p.log) return p.low + Math.min(p.high - p.low, Math.floor(u * (p.high - p.low + 1)));
      const a = Math.log(p.low - 0.5);
      const b = Math.log(p.high + 0.5);
      return clampInt(Math.round(Math.exp(a + u * (b - a))), p.low, p.high);
    }
  }
}

export const randomSampler: Sampler = (ctx) => {
  const rng = trialRng(ctx.seed, ctx.number);
  return Object.fromEntries(ctx.space.map((p) => [p.name, randomValue(p, rng)]));
};

/** FLOAT axes of a grid get this many points (log-spaced on a log scale). */
export const GRID_FLOAT_POINTS = 5;
/** An INT axis of a grid takes every integer; wider ones must be searched otherwise. */
export const GRID_INT_MAX_VALUES = 64;
export const GRID_MAX_POINTS = 100_000;

/** The values of each axis of the grid; null with the reason when the space has no grid. */
export function gridAxes(space: SearchSpace): { axes: unknown[][] } | { problem: string } {
  const axes: unknown[][] = [];
  for (const p of space) {
    if (p.kind === ParamKind.CATEGORICAL) axes.push(p.choices);
    else if (p.kind === ParamKind.INT) {
      if (p.high - p.low + 1 > GRID_INT_MAX_VALUES)
        return {
          problem: `${p.name} has more than ${GRID_INT_MAX_VALUES} integers: a grid takes every one; search it as CATEGORICAL or with RANDOM or TPE`,
        };
      axes.push(Array.from({ length: p.high - p.low + 1 }, (_, i) => p.low + i));
    } else {
      const at = (i: number) => i / (GRID_FLOAT_POINTS - 1);
      axes.push(
        Array.from({ length: GRID_FLOAT_POINTS }, (_, i) =>
          p.log
            ? Math.exp(Math.log(p.low) + at(i) * (Math.log(p.high) - Math.log(p.low)))
            : p.low + at(i) * (p.high - p.low),
        ),
      );
    }
  }
  const size = axes.reduce((n, a) => n * a.length, 1);
  if (size > GRID_MAX_POINTS)
    return { problem: `the grid has ${size} points, more than ${GRID_MAX_POINTS}` };
  return { axes };
}

/**
 * Every point of the grid once, in an order shuffled by the seed (so a study stopped early has
 * spread over the grid rather than walked one corner of it).
 */
export const gridSampler: Sampler = (ctx) => {
  const g = gridAxes(ctx.space);
  if ('problem' in g) throw new Error(g.problem);
  const size = g.axes.reduce((n, a) => n * a.length, 1);
  const order = new Rng(ctx.seed).shuffle(Uint32Array.from({ length: size }, (_, i) => i));
  let index = order[ctx.number % size];
  const out: Record<string, unknown> = {};
  for (let i = ctx.space.length - 1; i >= 0; i--) {
    const axis = g.axes[i];
    out[ctx.space[i].name] = axis[index % axis.length];
    index = Math.floor(index / axis.length);
  }
  return out;
};

export const SAMPLERS: Record<SamplerKind, Sampler> = {
  [SamplerKind.RANDOM]: randomSampler,
  [SamplerKind.GRID]: gridSampler,
  [SamplerKind.TPE]: (ctx) => tpeSample(ctx),
};

export function clampInt(x: number, low: number, high: number): number {
  return Math.max(low, Math.min(high, Math.round(x)));
}

/** Lower is better: a maximized objective is negated. */
export function loss(value: number, direction: Direction): number {
  return direction === Direction.MINIMIZE ? value : -value;
}
