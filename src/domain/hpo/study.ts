import { type TrainerSpec } from '../training/training-run';

/**
 * Hyperparameter search (ADR 0030): a study searches a trainer's hyperparameters for the best
 * value of one metric; each trial is a training run in the shared GPU queue, or, asked for
 * and told back by a client (ask-and-tell), a trial run anywhere.
 */
export enum ParamKind {
  FLOAT = 'FLOAT',
  INT = 'INT',
  CATEGORICAL = 'CATEGORICAL',
}

/** One dimension of a search space. */
export type SearchParam =
  | { name: string; kind: ParamKind.FLOAT; low: number; high: number; log: boolean }
  | { name: string; kind: ParamKind.INT; low: number; high: number; log: boolean }
  | { name: string; kind: ParamKind.CATEGORICAL; choices: unknown[] };

export type SearchSpace = SearchParam[];

export enum Direction {
  MINIMIZE = 'MINIMIZE',
  MAXIMIZE = 'MAXIMIZE',
}

export enum SamplerKind {
  RANDOM = 'RANDOM',
  GRID = 'GRID',
  TPE = 'TPE',
}

export enum PrunerKind {
  NONE = 'NONE',
  MEDIAN = 'MEDIAN',
  ASHA = 'ASHA',
}

/**
 * How trials are stopped early (ADR 0030), judged from the per-epoch values of the objective
 * that their runs report.
 */
export type PrunerConfig =
  | { kind: PrunerKind.NONE }
  | {
      /** Optuna's MedianPruner: stop a trial whose best value so far is worse than the
       * median of the completed trials' values at the same epoch. */
      kind: PrunerKind.MEDIAN;
      /** Completed trials needed before any trial is judged. */
      startupTrials: number;
      /** Epochs 1 … warmupEpochs are never judged. */
      warmupEpochs: number;
    }
  | {
      /** Asynchronous successive halving: a trial trains to its rung's epochs, waits, and
       * resumes from its checkpoint for the next rung once it is in its rung's top 1/η. */
      kind: PrunerKind.ASHA;
      minResource: number;
      reductionFactor: number;
      maxResource: number;
      /** The hyperparameter that counts epochs (`epochs`; `trees` for gbdt). */
      resourceParam: string;
    };

export enum StudyStatus {
  RUNNING = 'RUNNING',
  /** Its budget is spent and every trial has ended. */
  COMPLETED = 'COMPLETED',
  CANCELLED = 'CANCELLED',
  /** The training set it was to build first could not be built (see `error`). */
  FAILED = 'FAILED',
}

export enum TrialState {
  /** Sampled; its run is queued or running (or, asked for, the client is running it). */
  RUNNING = 'RUNNING',
  COMPLETE = 'COMPLETE',
  PRUNED = 'PRUNED',
  FAILED = 'FAILED',
  /** Its study was cancelled while it ran. */
  CANCELLED = 'CANCELLED',
  /** ASHA: trained to its rung's epochs (checkpointed); waits to be promoted to the next. */
  PAUSED = 'PAUSED',
}

export const TRIAL_FINISHED: ReadonlySet<TrialState> = new Set([
  TrialState.COMPLETE,
  TrialState.PRUNED,
  TrialState.FAILED,
  TrialState.CANCELLED,
]);

export interface Objective {
  metric: string;
  direction: Direction;
}

export interface Budget {
  /** Trials in all (run by the queue or asked for). */
  trials: number;
  /** Seconds of device time the trials' runs may use in all (see ADR 0030), if limited. */
  gpuSeconds: number | null;
}

export interface Study {
  id: string;
  name: string;
  /** Null for an ask-and-tell study: its trials are only ever asked for. */
  trainer: TrainerSpec | null;
  trainerVersion: string | null;
  datasetId: string | null;
  /** Hyperparameters every trial gets, beside the sampled ones. */
  fixed: Record<string, unknown>;
  space: SearchSpace;
  objective: Objective;
  sampler: SamplerKind;
  pruner: PrunerConfig;
  budget: Budget;
  /** Most trials queued or running at once. */
  parallelism: number;
  seed: number;
  gpuCount: number;
  status: StudyStatus;
  /** Trials created so far (their numbers are 0 … trialsStarted - 1). */
  trialsStarted: number;
  /** Trials of the queue whose run has not ended: never above `parallelism`. */
  trialsActive: number;
  /** Device seconds the ended trials' runs used. */
  gpuSecondsUsed: number;
  /** Why it ended FAILED. */
  error: string | null;
  createdAt: Date;
  finishedAt: Date | null;
}

export interface Trial {
  id: string;
  studyId: string;
  /** 0, 1, … in the order trials were created. */
  number: number;
  params: Record<string, unknown>;
  /** The training run of a queue trial (ASHA: of its current rung); null for an asked trial. */
  runId: string | null;
  /** ASHA: the runs of the rungs before the current one, oldest first. */
  pastRunIds: string[];
  /** ASHA: the rung it trains toward or waits at (0 first); null under other pruners. */
  rung: number | null;
  /** ASHA: its objective at each rung it reached. */
  rungValues: number[];
  /** The objective after each epoch its runs reported, by epoch. */
  intermediate: IntermediateValue[];
  /** Epochs its runs trained, summed over them (a run resumed from a checkpoint counts only
   * the epochs it trained itself). */
  epochsTrained: number;
  /** The epoch at which the pruner stopped it. */
  prunedAtEpoch: number | null;
  /** Asked for by a client (ask-and-tell) rather than run in the queue. */
  asked: boolean;
  state: TrialState;
  value: number | null;
  error: string | null;
  createdAt: Date;
  finishedAt: Date | null;
}

export interface IntermediateValue {
  epoch: number;
  value: number;
}

export enum HpoErrorCode {
  INVALID_STUDY = 'INVALID_STUDY',
  INVALID_SEARCH_SPACE = 'INVALID_SEARCH_SPACE',
  STUDY_NOT_FOUND = 'STUDY_NOT_FOUND',
  STUDY_EXISTS = 'STUDY_EXISTS',
  STUDY_FINISHED = 'STUDY_FINISHED',
  /** Every trial of the budget has been created. */
  BUDGET_SPENT = 'BUDGET_SPENT',
  TRIAL_NOT_FOUND = 'TRIAL_NOT_FOUND',
  TRIAL_FINISHED = 'TRIAL_FINISHED',
  /** A trial run by the queue is told by its run, not by a client. */
  TRIAL_NOT_ASKED = 'TRIAL_NOT_ASKED',
}

export const STUDY_NAME_RE = /^[A-Za-z0-9][A-Za-z0-9._-]{0,59}$/;
export const MAX_TRIALS = 10_000;
export const MAX_PARALLELISM = 256;
export const MAX_SPACE_PARAMS = 64;
export const MAX_CHOICES = 256;

/** The experiment a study's runs are tracked in. */
export const experimentOf = (studyName: string) => `hpo/${studyName}`;

/** The completed trial with the best value (the earliest among equals), if any. */
export function bestTrial(trials: readonly Trial[], direction: Direction): Trial | null {
  let best: Trial | null = null;
  for (const t of trials) {
    if (t.state !== TrialState.COMPLETE || t.value === null) continue;
    if (
      best === null ||
      (direction === Direction.MINIMIZE
        ? t.value < (best.value as number)
        : t.value > (best.value as number))
    )
      best = t;
  }
  return best;
}
