import { type Rng } from '../rng';

/**
 * A built-in model: trained epoch by epoch on standardized rows, its whole state plain JSON
 * (a checkpoint is that state, the epoch and the generator's state), so training resumed
 * from a checkpoint continues exactly as the uninterrupted run would have.
 */
export interface Learner<S> {
  init(train: Rows, hp: Record<string, unknown>, rng: Rng): S;
  epochs(hp: Record<string, unknown>): number;
  epoch(s: S, train: Rows, hp: Record<string, unknown>, rng: Rng): void;
  /** Probability of the positive class per row. */
  predict(s: S, rows: Rows): Float64Array;
}

export interface Rows {
  n: number;
  d: number;
  /** Standardized, row-major. */
  x: Float64Array;
  y: Float64Array;
}

export const num = (hp: Record<string, unknown>, k: string): number => hp[k] as number;
