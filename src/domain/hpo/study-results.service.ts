import { type Principal } from '../auth/api-key';
import { type ModelVersion } from '../registry/model';
import { ConflictError } from '../shared/domain-error';
import { type MetricPoint, type TrainingRun } from '../training/training-run';
import { optunaJournal } from './optuna-journal';
import { intermediateOf } from './pruners';
import { bestTrial, type IntermediateValue, type Study, type Trial } from './study';

export enum StudyResultErrorCode {
  /** No trial of the study has completed with a value. */
  NO_COMPLETE_TRIAL = 'NO_COMPLETE_TRIAL',
  /** The best trial was asked for and told: no run of Aether's trained it. */
  BEST_TRIAL_HAS_NO_RUN = 'BEST_TRIAL_HAS_NO_RUN',
  /** The best trial's run uploaded no model (a command trainer that writes none). */
  BEST_TRIAL_HAS_NO_MODEL = 'BEST_TRIAL_HAS_NO_MODEL',
}

/** Port: which model versions were registered from which study, for the lineage (ADR 0030). */
export interface StudyRegistrations {
  /** Idempotent: the same study and version once. */
  record(studyId: string, trialId: string, modelVersionId: string): Promise<void>;
}

export interface StudyResultsDeps {
  studies: { get(id: string): Promise<Study>; trials(studyId: string): Promise<Trial[]> };
  runs: {
    byIds(ids: readonly string[]): Promise<TrainingRun[]>;
    metricsOf(runIds: readonly string[]): Promise<Map<string, MetricPoint[]>>;
  };
  registry: {
    registerFromRun(
      actor: Principal | null,
      modelName: string,
      runId: string,
      reason?: string,
    ): Promise<ModelVersion>;
  };
  registrations: StudyRegistrations;
}

/**
 * What a study leaves behind: its best trial's model registered as a model version (and in the
 * lineage), and the study as an Optuna journal file.
 */
export class StudyResultsService {
  constructor(private readonly d: StudyResultsDeps) {}

  /**
   * Registers the model of the best complete trial's run as the next version of `modelName`,
   * through the model registry (file verified and copied first; a run already registered
   * under that model gives its version back), and records that the study registered it.
   * Repeating it is safe: the same run gives the same version, the record is kept once.
   */
  async registerBest(
    actor: Principal,
    studyId: string,
    modelName: string,
    reason = '',
  ): Promise<{ trial: Trial; version: ModelVersion }> {
    const study = await this.d.studies.get(studyId);
    const trial = bestTrial(await this.d.studies.trials(studyId), study.objective.direction);
    if (!trial)
      throw new ConflictError(
        StudyResultErrorCode.NO_COMPLETE_TRIAL,
        `Study ${study.name} has no complete trial yet: nothing to register`,
        { study: study.id },
      );
    const details = { study: study.id, trial: trial.id, number: trial.number, run: trial.runId };
    if (!trial.runId)
      throw new ConflictError(
        StudyResultErrorCode.BEST_TRIAL_HAS_NO_RUN,
        `The best trial of ${study.name} (#${trial.number}) was asked for and told, not run by Aether: there is no model to register`,
        details,
      );
    const [run] = await this.d.runs.byIds([trial.runId]);
    if (!run?.model)
      throw new ConflictError(
        StudyResultErrorCode.BEST_TRIAL_HAS_NO_MODEL,
        `The run of the best trial of ${study.name} (#${trial.number}) uploaded no model`,
        details,
      );
    const version = await this.d.registry.registerFromRun(
      actor,
      modelName,
      run.id,
      reason ||
        `best trial #${trial.number} of study ${study.name}: ${study.objective.metric} ${trial.value}`,
    );
    await this.d.registrations.record(study.id, trial.id, version.id);
    return { trial, version };
  }

  /**
   * The study as Optuna's journal file: each trial with the per-epoch objective of its runs
   * (under ASHA, every rung's run; a later run's epoch replaces an earlier one's).
   */
  async optunaJournal(studyId: string): Promise<string> {
    const study = await this.d.studies.get(studyId);
    const trials = await this.d.studies.trials(studyId);
    const runsOf = (t: Trial) => [...t.pastRunIds, ...(t.runId ? [t.runId] : [])];
    const runIds = trials.flatMap(runsOf);
    const metrics = runIds.length ? await this.d.runs.metricsOf(runIds) : new Map();
    const intermediate = new Map<string, IntermediateValue[]>();
    for (const t of trials)
      intermediate.set(
        t.id,
        intermediateOf(
          study.objective.metric,
          runsOf(t).map((id) => (metrics.get(id) ?? []) as MetricPoint[]),
        ).intermediate,
      );
    return optunaJournal(study, trials, intermediate);
  }
}
