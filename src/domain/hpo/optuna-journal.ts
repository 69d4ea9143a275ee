import { choiceIndex } from './search-space';
import {
  Direction,
  ParamKind,
  type SearchParam,
  type Study,
  type IntermediateValue,
  type Trial,
  TrialState,
} from './study';

/**
 * A study as an Optuna journal file (ADR 0030): the JSON lines Optuna's JournalStorage writes
 * through JournalFileBackend, so `optuna.load_study(storage=JournalStorage(JournalFileBackend(
 * path)))` and optuna-dashboard read it as one of their own. The operations are the ones
 * Optuna 5 writes when a study is created and its trials run: CREATE_STUDY, the study's user
 * attributes, then per trial CREATE_TRIAL, SET_TRIAL_PARAM for each parameter (with its
 * distribution as Optuna's JSON), SET_TRIAL_INTERMEDIATE_VALUE per epoch of its run,
 * SET_TRIAL_USER_ATTR and, once it ended, SET_TRIAL_STATE_VALUES.
 */
export enum JournalOperation {
  CREATE_STUDY = 0,
  SET_STUDY_USER_ATTR = 2,
  CREATE_TRIAL = 4,
  SET_TRIAL_PARAM = 5,
  SET_TRIAL_STATE_VALUES = 6,
  SET_TRIAL_INTERMEDIATE_VALUE = 7,
  SET_TRIAL_USER_ATTR = 8,
}

/** optuna.study.StudyDirection */
const OPTUNA_DIRECTION: Record<Direction, number> = {
  [Direction.MINIMIZE]: 1,
  [Direction.MAXIMIZE]: 2,
};

/** optuna.trial.TrialState (RUNNING 0, COMPLETE 1, PRUNED 2, FAIL 3). */
const OPTUNA_STATE: Record<TrialState, number> = {
  [TrialState.RUNNING]: 0,
  [TrialState.COMPLETE]: 1,
  [TrialState.PRUNED]: 2,
  [TrialState.FAILED]: 3,
  // Optuna has no cancelled trial: a failed one, with `aether_state` saying why.
  [TrialState.CANCELLED]: 3,
  // An ASHA trial between rungs is not finished: Optuna's RUNNING, `aether_state` PAUSED.
  [TrialState.PAUSED]: 0,
};

/** Who wrote the lines: Optuna tells its own workers' lines apart by this. */
const WORKER = 'aether-export';

/**
 * Optuna keeps categorical choices of None, bool, int, float and str; other JSON values (a
 * list of layer widths) are given to it as their JSON text.
 */
function optunaChoice(c: unknown): unknown {
  return c === null || ['boolean', 'number', 'string'].includes(typeof c) ? c : JSON.stringify(c);
}

/** Optuna's `distribution_to_json`: a JSON text of the class name and its attributes. */
export function optunaDistribution(p: SearchParam): string {
  switch (p.kind) {
    case ParamKind.FLOAT:
      return JSON.stringify({
        name: 'FloatDistribution',
        attributes: { low: p.low, high: p.high, step: null, log: p.log },
      });
    case ParamKind.INT:
      return JSON.stringify({
        name: 'IntDistribution',
        attributes: { low: p.low, high: p.high, log: p.log, step: 1 },
      });
    case ParamKind.CATEGORICAL:
      return JSON.stringify({
        name: 'CategoricalDistribution',
        attributes: { choices: p.choices.map(optunaChoice) },
      });
  }
}

/** A value in Optuna's internal representation: a choice's index, a number as a float. */
function internal(p: SearchParam, v: unknown): number | null {
  if (p.kind !== ParamKind.CATEGORICAL) return typeof v === 'number' ? v : null;
  const i = choiceIndex(p.choices, v);
  return i >= 0 ? i : null;
}

/** Optuna's datetime text (`isoformat(timespec="microseconds")` of a UTC time). */
function optunaTime(d: Date): string {
  return d.toISOString().replace('Z', '000+00:00');
}

export function optunaJournal(
  study: Study,
  trials: readonly Trial[],
  intermediate: ReadonlyMap<string, readonly IntermediateValue[]>,
): string {
  const lines: Record<string, unknown>[] = [];
  const op = (code: JournalOperation, fields: Record<string, unknown>) =>
    lines.push({ op_code: code, worker_id: WORKER, ...fields });
  op(JournalOperation.CREATE_STUDY, {
    study_name: study.name,
    directions: [OPTUNA_DIRECTION[study.objective.direction]],
  });
  const studyAttrs: Record<string, unknown> = {
    aether_study_id: study.id,
    aether_metric: study.objective.metric,
    aether_sampler: study.sampler,
    aether_pruner: study.pruner,
    aether_seed: study.seed,
    aether_status: study.status,
  };
  for (const [k, v] of Object.entries(studyAttrs))
    op(JournalOperation.SET_STUDY_USER_ATTR, { study_id: 0, user_attr: { [k]: v } });
  const ordered = [...trials].sort((a, b) => a.number - b.number);
  // In a file of one study, Optuna numbers trials 0, 1, … by their CREATE_TRIAL lines, and its
  // trial ids the same way.
  ordered.forEach((t, trialId) => {
    op(JournalOperation.CREATE_TRIAL, {
      study_id: 0,
      datetime_start: optunaTime(t.createdAt),
    });
    for (const p of study.space) {
      const v = internal(p, t.params[p.name]);
      if (v === null) continue;
      op(JournalOperation.SET_TRIAL_PARAM, {
        trial_id: trialId,
        param_name: p.name,
        param_value_internal: v,
        distribution: optunaDistribution(p),
      });
    }
    const steps = (intermediate.get(t.id) ?? []).filter((s) => Number.isFinite(s.value));
    for (const s of steps)
      op(JournalOperation.SET_TRIAL_INTERMEDIATE_VALUE, {
        trial_id: trialId,
        step: s.epoch,
        intermediate_value: s.value,
      });
    const attrs: Record<string, unknown> = {
      aether_trial_id: t.id,
      aether_run_id: t.runId,
      aether_state: t.state,
      ...(t.error ? { aether_error: t.error } : {}),
    };
    for (const [k, v] of Object.entries(attrs))
      op(JournalOperation.SET_TRIAL_USER_ATTR, { trial_id: trialId, user_attr: { [k]: v } });
    if (OPTUNA_STATE[t.state] === OPTUNA_STATE[TrialState.RUNNING]) return;
    // A pruned trial's value is its last report, as Optuna records it.
    const last = steps.length ? steps[steps.length - 1].value : null;
    const value =
      t.state === TrialState.COMPLETE
        ? t.value
        : t.state === TrialState.PRUNED
          ? (t.value ?? last)
          : null;
    op(JournalOperation.SET_TRIAL_STATE_VALUES, {
      trial_id: trialId,
      state: OPTUNA_STATE[t.state],
      values: value === null ? null : [value],
      datetime_complete: optunaTime(t.finishedAt ?? t.createdAt),
    });
  });
  return lines.map((l) => JSON.stringify(l)).join('\n') + '\n';
}
