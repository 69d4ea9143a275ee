import { InvalidInputError } from '../shared/domain-error';
import { type BuiltinTrainer } from '../training/trainers';
import { type MetricPoint } from '../training/training-run';
import {
  Direction,
  HpoErrorCode,
  type IntermediateValue,
  MAX_TRIALS,
  PrunerKind,
  type PrunerConfig,
  type SearchSpace,
  TrialState,
} from './study';

/**
 * The pruning rules (ADR 0030), pure: which trial stops early and, under ASHA, which waiting
 * trial goes on to the next rung. The study service applies them in its leased pass.
 */

/** A pruner as a client gives it: the settings of its kind, the others absent. */
export interface PrunerInput {
  kind: PrunerKind;
  startupTrials?: number | null;
  warmupEpochs?: number | null;
  minResource?: number | null;
  reductionFactor?: number | null;
  maxResource?: number | null;
}

/** Optuna's MedianPruner defaults (n_startup_trials=5, n_warmup_steps=0). */
export const MEDIAN_DEFAULTS = { startupTrials: 5, warmupEpochs: 0 } as const;
export const ASHA_DEFAULTS = { minResource: 1, reductionFactor: 3 } as const;
export const MAX_EPOCHS = 10_000;
export const MAX_REDUCTION_FACTOR = 64;

const SETTINGS: Record<PrunerKind, readonly (keyof PrunerInput)[]> = {
  [PrunerKind.NONE]: [],
  [PrunerKind.MEDIAN]: ['startupTrials', 'warmupEpochs'],
  [PrunerKind.ASHA]: ['minResource', 'reductionFactor', 'maxResource'],
};

/**
 * Checks a pruner against the study it prunes: its settings bounded, none of another kind's,
 * and a trainer whose runs report epochs (an ask-and-tell study reports none). Under ASHA the
 * pruner sets the trainer's epoch count per rung, so it is neither searched nor above what
 * the trainer accepts; `maxResource` defaults to the epochs every trial would otherwise get.
 */
export function validatePruner(
  input: PrunerInput | null | undefined,
  study: {
    hasTrainer: boolean;
    builtin: BuiltinTrainer | null;
    fixed: Record<string, unknown>;
    space: SearchSpace;
  },
): PrunerConfig {
  if (input == null || input.kind === PrunerKind.NONE) {
    for (const k of SETTINGS[PrunerKind.MEDIAN].concat(SETTINGS[PrunerKind.ASHA]))
      if (input?.[k] != null) throw invalid(`${k} is not a setting of the NONE pruner`, k);
    return { kind: PrunerKind.NONE };
  }
  if (!Object.values(PrunerKind).includes(input.kind))
    throw invalid('pruner.kind must be NONE, MEDIAN or ASHA', 'kind');
  for (const [kind, keys] of Object.entries(SETTINGS))
    for (const k of keys)
      if (kind !== input.kind && input[k] != null)
        throw invalid(`${k} is a setting of the ${kind} pruner, not of ${input.kind}`, k);
  if (!study.hasTrainer)
    throw invalid(
      `A ${input.kind} pruner judges the epochs that runs report: it needs a trainer`,
      'kind',
    );
  if (input.kind === PrunerKind.MEDIAN)
    return {
      kind: PrunerKind.MEDIAN,
      startupTrials: intIn(input, 'startupTrials', 0, MAX_TRIALS, MEDIAN_DEFAULTS.startupTrials),
      warmupEpochs: intIn(input, 'warmupEpochs', 0, MAX_EPOCHS, MEDIAN_DEFAULTS.warmupEpochs),
    };
  const resourceParam = study.builtin?.epochsParam ?? 'epochs';
  if (study.space.some((p) => p.name === resourceParam))
    throw invalid(
      `ASHA sets ${resourceParam} for each rung: it cannot be searched`,
      'space',
      resourceParam,
    );
  const declared = study.builtin?.params.find((p) => p.name === resourceParam);
  const most = declared ? declared.max : MAX_EPOCHS;
  const given = study.fixed[resourceParam] ?? declared?.default;
  const maxResource =
    input.maxResource ?? (typeof given === 'number' && Number.isInteger(given) ? given : null);
  if (maxResource == null)
    throw invalid(
      `ASHA needs maxResource (or ${resourceParam} among the hyperparameters)`,
      'maxResource',
    );
  const max = intIn({ maxResource }, 'maxResource', 2, most, 0);
  const minResource = intIn(input, 'minResource', 1, max - 1, ASHA_DEFAULTS.minResource);
  const reductionFactor = intIn(
    input,
    'reductionFactor',
    2,
    MAX_REDUCTION_FACTOR,
    ASHA_DEFAULTS.reductionFactor,
  );
  return { kind: PrunerKind.ASHA, minResource, reductionFactor, maxResource: max, resourceParam };
}

function intIn(
  input: Partial<Record<keyof PrunerInput, unknown>>,
  key: keyof PrunerInput,
  low: number,
  high: number,
  fallback: number,
): number {
  const v = input[key] ?? fallback;
  if (typeof v !== 'number' || !Number.isInteger(v) || v < low || v > high)
    throw invalid(`${key} must be an integer from ${low} to ${high}`, key);
  return v;
}

function invalid(message: string, key: string, param?: string): InvalidInputError {
  const field = key === 'space' ? 'space' : `pruner.${key}`;
  return new InvalidInputError(HpoErrorCode.INVALID_STUDY, message, {
    field,
    ...(param ? { param } : {}),
  });
}

const better = (d: Direction) => (a: number, b: number) =>
  d === Direction.MINIMIZE ? a < b : a > b;

/** The median of the values (the mean of the two middle ones for an even count). */
export function median(values: readonly number[]): number {
  const s = [...values].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

/**
 * MEDIAN (Optuna's MedianPruner, epochs as steps): the first epoch after `after` at which the
 * trial is pruned, or null. At epoch e (judged only past the warmup, and once `startupTrials`
 * trials are complete) it is pruned when the best value it has reached by e is worse than the
 * median of the completed trials' values at e (those that reported e; none: not judged).
 */
export function medianVerdict(
  cfg: { startupTrials: number; warmupEpochs: number },
  direction: Direction,
  values: readonly IntermediateValue[],
  after: number,
  completed: readonly (readonly IntermediateValue[])[],
): IntermediateValue | null {
  if (completed.length === 0 || completed.length < cfg.startupTrials) return null;
  const isBetter = better(direction);
  const sorted = [...values].sort((a, b) => a.epoch - b.epoch);
  let best: number | null = null;
  for (const v of sorted) {
    if (best === null || isBetter(v.value, best)) best = v.value;
    if (v.epoch <= after || v.epoch <= cfg.warmupEpochs) continue;
    const others = completed.flatMap((c) =>
      c.filter((x) => x.epoch === v.epoch).map((x) => x.value),
    );
    if (others.length === 0) continue;
    const m = median(others);
    if (isBetter(m, best)) return v;
  }
  return null;
}

/** ASHA's rungs: the epochs a trial trains to at each, r_min·η^k, the last one r_max. */
export function ashaRungs(cfg: {
  minResource: number;
  reductionFactor: number;
  maxResource: number;
}): number[] {
  const rungs: number[] = [];
  for (let r = cfg.minResource; r < cfg.maxResource; r *= cfg.reductionFactor) rungs.push(r);
  rungs.push(cfg.maxResource);
  return rungs;
}

/** A trial as ASHA sees it. */
export interface AshaTrial {
  id: string;
  number: number;
  state: TrialState;
  /** The rung it trains toward (RUNNING) or waits at (PAUSED). */
  rung: number;
  /** Its objective at each rung it reached. */
  rungValues: readonly number[];
}

export interface AshaPlan {
  /** Waiting trials in their rung's top 1/η: to resume for the next rung, highest rung first,
   * best first, as far as the study's parallelism allows. */
  promote: string[];
  /** Waiting trials that can never be promoted: PRUNED at their rung. */
  prune: { id: string; rung: number }[];
}

/**
 * Asynchronous successive halving over the study's trials. Rung k's population is every trial
 * that reached it (whatever happened to it since); its top ⌊n/η⌋ go on to rung k+1 — or the
 * best one, once no other trial can still reach rung k and ⌊n/η⌋ is 0, so a study always gets
 * a trial to the top rung. A waiting trial that cannot get into its rung's top, however many
 * trials of the budget still arrive (⌊budget/η⌋ better ones are already there) or because
 * none can (no new trial may start and none is training toward a rung up to k), is pruned; so
 * when nothing runs and nothing may start, every waiting trial is promoted or pruned.
 */
export function ashaPlan(
  cfg: { reductionFactor: number; minResource: number; maxResource: number },
  direction: Direction,
  trials: readonly AshaTrial[],
  budgetTrials: number,
  canStartMore: boolean,
): AshaPlan {
  const eta = cfg.reductionFactor;
  const top = ashaRungs(cfg).length - 1;
  const isBetter = better(direction);
  const bound = Math.max(1, Math.floor(budgetTrials / eta));
  const promote: { id: string; rung: number; rank: number }[] = [];
  const prune: { id: string; rung: number }[] = [];
  // Whether a trial may still reach the rung looked at: starting, training, or waiting below.
  let arriving = canStartMore;
  for (let k = 0; k < top; k++) {
    if (trials.some((t) => t.state === TrialState.RUNNING && t.rung === k)) arriving = true;
    const population = trials
      .filter((t) => t.rungValues.length > k)
      .sort((a, b) =>
        a.rungValues[k] === b.rungValues[k]
          ? a.number - b.number
          : isBetter(a.rungValues[k], b.rungValues[k])
            ? -1
            : 1,
      );
    const n = population.length;
    const allowed = Math.max(Math.floor(n / eta), !arriving && n > 0 ? 1 : 0);
    let waitingOn = false;
    population.forEach((t, rank) => {
      if (t.state !== TrialState.PAUSED || t.rung !== k) return;
      if (rank < allowed) promote.push({ id: t.id, rung: k, rank });
      else if (!arriving || rank >= bound) prune.push({ id: t.id, rung: k });
      else waitingOn = true;
    });
    // Promoted trials, and waiting ones that may be later, can still reach the next rung.
    if (waitingOn || promote.some((p) => p.rung === k)) arriving = true;
  }
  promote.sort((a, b) => b.rung - a.rung || a.rank - b.rank);
  return { promote: promote.map((p) => p.id), prune };
}

/**
 * A trial's objective per epoch from its runs' metric points (oldest run first; a later run's
 * value for an epoch replaces an earlier one's), and the epochs its runs trained: each run
 * counts the epochs it reported itself, so a run resumed from another's checkpoint adds only
 * the epochs after it.
 */
export function intermediateOf(
  metric: string,
  runs: readonly (readonly MetricPoint[])[],
): { intermediate: IntermediateValue[]; epochsTrained: number } {
  const byEpoch = new Map<number, number>();
  let epochsTrained = 0;
  for (const points of runs) {
    const epochs = new Set<number>();
    for (const p of points)
      if (p.name === metric && p.step === null && p.epoch >= 1) {
        byEpoch.set(p.epoch, p.value);
        epochs.add(p.epoch);
      }
    epochsTrained += epochs.size;
  }
  const intermediate = [...byEpoch]
    .map(([epoch, value]) => ({ epoch, value }))
    .sort((a, b) => a.epoch - b.epoch);
  return { intermediate, epochsTrained };
}
