import { type DataSource } from 'typeorm';
import { type Page, type PageRequest } from '../../../domain/shared/pagination';
import {
  type Direction,
  type IntermediateValue,
  type PrunerConfig,
  type PrunerKind,
  type SamplerKind,
  type SearchSpace,
  type Study,
  type StudyStatus,
  type Trial,
  type TrialState,
} from '../../../domain/hpo/study';
import { type NewStudy, type StudyRepository } from '../../../domain/hpo/study.repository';
import { type TrainerSpec } from '../../../domain/training/training-run';
import { sqlKeysetPage } from '../features/sql-keyset';
import { returnedRows } from '../returned-rows';

interface StudyRow {
  id: string;
  name: string;
  trainer: TrainerSpec | null;
  trainer_version: string | null;
  dataset_id: string | null;
  fixed: Record<string, unknown>;
  space: SearchSpace;
  metric: string;
  direction: Direction;
  sampler: SamplerKind;
  pruner: PrunerKind;
  pruner_config: Record<string, unknown>;
  max_trials: number;
  max_gpu_seconds: number | null;
  parallelism: number;
  seed: string;
  gpu_count: number;
  status: StudyStatus;
  trials_started: number;
  trials_active: number;
  gpu_seconds_used: number;
  error: string | null;
  created_at: Date;
  finished_at: Date | null;
}

interface TrialRow {
  id: string;
  study_id: string;
  number: number;
  params: Record<string, unknown>;
  run_id: string | null;
  asked: boolean;
  state: TrialState;
  value: number | null;
  error: string | null;
  created_at: Date;
  finished_at: Date | null;
  past_run_ids: string[];
  rung: number | null;
  rung_values: number[];
  intermediate: IntermediateValue[];
  epochs_trained: number;
  pruned_at_epoch: number | null;
}

/** Raw SQL: the study row's counters move only by conditional UPDATEs (compare-and-set). */
export class SqlStudyRepository implements StudyRepository {
  constructor(private readonly ds: DataSource) {}

  async insert(s: NewStudy): Promise<Study | null> {
    const rows: StudyRow[] = await this.ds.query(
      `INSERT INTO study (name, trainer, trainer_version, dataset_id, fixed, space, metric, direction,
                          sampler, pruner, max_trials, max_gpu_seconds, parallelism, seed, gpu_count,
                          pruner_config)
       VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)
       ON CONFLICT (name) DO NOTHING
       RETURNING *`,
      [
        s.name,
        s.trainer === null ? null : JSON.stringify(s.trainer),
        s.trainerVersion,
        s.datasetId,
        JSON.stringify(s.fixed),
        JSON.stringify(s.space),
        s.objective.metric,
        s.objective.direction,
        s.sampler,
        s.pruner.kind,
        s.budget.trials,
        s.budget.gpuSeconds,
        s.parallelism,
        s.seed,
        s.gpuCount,
        JSON.stringify({ ...s.pruner, kind: undefined }),
      ],
    );
    return rows[0] ? toStudy(rows[0]) : null;
  }

  async nameTaken(name: string): Promise<boolean> {
    const rows: unknown[] = await this.ds.query(`SELECT 1 FROM study WHERE name = $1`, [name]);
    return rows.length > 0;
  }

  async findByIds(ids: readonly string[]): Promise<Study[]> {
    if (ids.length === 0) return [];
    const rows: StudyRow[] = await this.ds.query(`SELECT * FROM study WHERE id = ANY($1::uuid[])`, [
      ids,
    ]);
    return rows.map(toStudy);
  }

  async list(page: PageRequest, filter: { status?: StudyStatus }): Promise<Page<Study>> {
    const conds: string[] = [];
    const params: unknown[] = [];
    if (filter.status !== undefined) {
      params.push(filter.status);
      conds.push(`status = $${params.length}`);
    }
    const p = await sqlKeysetPage<StudyRow>(this.ds, 'study', conds, params, page);
    return { ...p, items: p.items.map(toStudy) };
  }

  async open(): Promise<Study[]> {
    const rows: StudyRow[] = await this.ds.query(
      `SELECT * FROM study s
        WHERE s.status = 'RUNNING'
           OR EXISTS (SELECT 1 FROM study_trial t
                       WHERE t.study_id = s.id AND t.state IN ('RUNNING', 'PAUSED') AND NOT t.asked)
        ORDER BY s.created_at, s.id`,
    );
    return rows.map(toStudy);
  }

  async reserveTrial(studyId: string, queued: boolean): Promise<number | null> {
    const rows = returnedRows<{ number: number }>(
      await this.ds.query(
        `UPDATE study
          SET trials_started = trials_started + 1,
              trials_active = trials_active + CASE WHEN $2 THEN 1 ELSE 0 END
        WHERE id = $1 AND status = 'RUNNING'
          AND trials_started < max_trials
          AND (max_gpu_seconds IS NULL OR gpu_seconds_used < max_gpu_seconds)
          AND (NOT $2 OR trials_active < parallelism)
        RETURNING trials_started - 1 AS number`,
        [studyId, queued],
      ),
    );
    return rows[0] ? rows[0].number : null;
  }

  async insertTrial(t: {
    studyId: string;
    number: number;
    params: Record<string, unknown>;
    asked: boolean;
    rung: number | null;
  }): Promise<Trial> {
    const rows: TrialRow[] = await this.ds.query(
      `INSERT INTO study_trial (study_id, number, params, asked, rung)
       VALUES ($1, $2, $3, $4, $5) RETURNING *`,
      [t.studyId, t.number, JSON.stringify(t.params), t.asked, t.rung],
    );
    return toTrial(rows[0]);
  }

  async setTrialRun(trialId: string, runId: string): Promise<void> {
    await this.ds.query(`UPDATE study_trial SET run_id = $2 WHERE id = $1 AND run_id IS NULL`, [
      trialId,
      runId,
    ]);
  }

  async finishTrial(
    trialId: string,
    r: {
      state: TrialState;
      value: number | null;
      error: string | null;
      gpuSeconds: number;
      at: Date;
      rungValue?: number | null;
      prunedAtEpoch?: number | null;
    },
  ): Promise<Trial | null> {
    // One statement: the trial ends and (for a queue trial that held one) its slot is given
    // back, or neither. The row lock makes a concurrent second ending find it ended.
    const rows: TrialRow[] = await this.ds.query(
      `WITH old AS (
         SELECT id, state FROM study_trial
          WHERE id = $1 AND state IN ('RUNNING', 'PAUSED') FOR UPDATE
       ), t AS (
         UPDATE study_trial st SET state = $2, value = $3, error = $4, finished_at = $5,
                rung_values = CASE WHEN $7::double precision IS NULL THEN st.rung_values
                                   ELSE st.rung_values || $7::double precision END,
                pruned_at_epoch = COALESCE($8::integer, st.pruned_at_epoch)
           FROM old WHERE st.id = old.id
          RETURNING st.*, old.state AS was
       ), s AS (
         UPDATE study
            SET trials_active = trials_active - CASE WHEN t.asked OR t.was = 'PAUSED' THEN 0 ELSE 1 END,
                gpu_seconds_used = gpu_seconds_used + $6
           FROM t WHERE study.id = t.study_id
       )
       SELECT * FROM t`,
      [
        trialId,
        r.state,
        r.value,
        r.error,
        r.at,
        r.gpuSeconds,
        r.rungValue ?? null,
        r.prunedAtEpoch ?? null,
      ],
    );
    return rows[0] ? toTrial(rows[0]) : null;
  }

  async recordIntermediate(
    trialId: string,
    intermediate: IntermediateValue[],
    epochsTrained: number,
  ): Promise<void> {
    await this.ds.query(
      `UPDATE study_trial SET intermediate = $2, epochs_trained = $3
        WHERE id = $1 AND state = 'RUNNING'`,
      [trialId, JSON.stringify(intermediate), epochsTrained],
    );
  }

  async markPruned(trialId: string, at: IntermediateValue): Promise<Trial | null> {
    const rows = returnedRows<TrialRow>(
      await this.ds.query(
        `UPDATE study_trial SET pruned_at_epoch = $2, value = $3
          WHERE id = $1 AND state = 'RUNNING' AND pruned_at_epoch IS NULL
          RETURNING *`,
        [trialId, at.epoch, at.value],
      ),
    );
    return rows[0] ? toTrial(rows[0]) : null;
  }

  async pauseTrial(
    trialId: string,
    r: { value: number; gpuSeconds: number },
  ): Promise<Trial | null> {
    const rows: TrialRow[] = await this.ds.query(
      `WITH t AS (
         UPDATE study_trial SET state = 'PAUSED', rung_values = rung_values || $2::double precision
          WHERE id = $1 AND state = 'RUNNING' AND NOT asked
          RETURNING *
       ), s AS (
         UPDATE study SET trials_active = trials_active - 1, gpu_seconds_used = gpu_seconds_used + $3
           FROM t WHERE study.id = t.study_id
       )
       SELECT * FROM t`,
      [trialId, r.value, r.gpuSeconds],
    );
    return rows[0] ? toTrial(rows[0]) : null;
  }

  async promoteTrial(trialId: string): Promise<Trial | null> {
    // The trial's row is locked first, so a second promotion waits and then finds it RUNNING;
    // the study's slot is taken by a conditional UPDATE of its row, as for a new trial.
    const rows: TrialRow[] = await this.ds.query(
      `WITH tr AS (
         SELECT id, study_id FROM study_trial WHERE id = $1 AND state = 'PAUSED' FOR UPDATE
       ), s AS (
         UPDATE study SET trials_active = trials_active + 1
           FROM tr
          WHERE study.id = tr.study_id AND study.status = 'RUNNING'
            AND study.trials_active < study.parallelism
          RETURNING study.id
       ), t AS (
         UPDATE study_trial st
            SET state = 'RUNNING', rung = st.rung + 1,
                past_run_ids = CASE WHEN st.run_id IS NULL THEN st.past_run_ids
                                    ELSE st.past_run_ids || st.run_id END,
                run_id = NULL
           FROM s WHERE st.id = $1
          RETURNING st.*
       )
       SELECT * FROM t`,
      [trialId],
    );
    return rows[0] ? toTrial(rows[0]) : null;
  }

  async trialsOf(studyId: string): Promise<Trial[]> {
    const rows: TrialRow[] = await this.ds.query(
      `SELECT * FROM study_trial WHERE study_id = $1 ORDER BY number`,
      [studyId],
    );
    return rows.map(toTrial);
  }

  async trialsOfStudies(studyIds: readonly string[]): Promise<Map<string, Trial[]>> {
    const out = new Map<string, Trial[]>();
    if (studyIds.length === 0) return out;
    const rows: TrialRow[] = await this.ds.query(
      `SELECT * FROM study_trial WHERE study_id = ANY($1::uuid[]) ORDER BY study_id, number`,
      [studyIds],
    );
    for (const r of rows) {
      const list = out.get(r.study_id) ?? [];
      list.push(toTrial(r));
      out.set(r.study_id, list);
    }
    return out;
  }

  async trialsByIds(ids: readonly string[]): Promise<Trial[]> {
    if (ids.length === 0) return [];
    const rows: TrialRow[] = await this.ds.query(
      `SELECT * FROM study_trial WHERE id = ANY($1::uuid[])`,
      [ids],
    );
    return rows.map(toTrial);
  }

  async finishStudy(
    id: string,
    status: StudyStatus,
    at: Date,
    error: string | null = null,
  ): Promise<Study | null> {
    const rows = returnedRows<StudyRow>(
      await this.ds.query(
        `UPDATE study SET status = $2, finished_at = $3, error = $4
          WHERE id = $1 AND status = 'RUNNING' RETURNING *`,
        [id, status, at, error],
      ),
    );
    return rows[0] ? toStudy(rows[0]) : null;
  }
}

function toStudy(r: StudyRow): Study {
  return {
    id: r.id,
    name: r.name,
    trainer: r.trainer,
    trainerVersion: r.trainer_version,
    datasetId: r.dataset_id,
    fixed: r.fixed,
    space: r.space,
    objective: { metric: r.metric, direction: r.direction },
    sampler: r.sampler,
    pruner: { ...r.pruner_config, kind: r.pruner } as PrunerConfig,
    budget: { trials: r.max_trials, gpuSeconds: r.max_gpu_seconds },
    parallelism: r.parallelism,
    seed: Number(r.seed),
    gpuCount: r.gpu_count,
    status: r.status,
    trialsStarted: r.trials_started,
    trialsActive: r.trials_active,
    gpuSecondsUsed: r.gpu_seconds_used,
    error: r.error,
    createdAt: r.created_at,
    finishedAt: r.finished_at,
  };
}

function toTrial(r: TrialRow): Trial {
  return {
    id: r.id,
    studyId: r.study_id,
    number: r.number,
    params: r.params,
    runId: r.run_id,
    asked: r.asked,
    state: r.state,
    value: r.value,
    error: r.error,
    createdAt: r.created_at,
    finishedAt: r.finished_at,
    pastRunIds: r.past_run_ids,
    rung: r.rung,
    rungValues: r.rung_values,
    intermediate: r.intermediate,
    epochsTrained: r.epochs_trained,
    prunedAtEpoch: r.pruned_at_epoch,
  };
}
