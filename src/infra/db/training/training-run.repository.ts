import { type DataSource } from 'typeorm';
import { type Page, type PageRequest } from '../../../domain/shared/pagination';
import { type ArtifactRef } from '../../../domain/artifacts/artifact-store';
import {
  type HardwareSample,
  type MetricPoint,
  type RunCheckpoint,
  type RunStatus,
  type TrainerSpec,
  type TrainingRun,
} from '../../../domain/training/training-run';
import {
  type NewRun,
  type TrainingRunRepository,
} from '../../../domain/training/training-run.repository';
import { sqlKeysetPage } from '../features/sql-keyset';

interface Row {
  id: string;
  seq: string;
  experiment_id: string;
  experiment_name: string;
  trainer: TrainerSpec;
  trainer_version: string | null;
  dataset_id: string;
  hyperparameters: Record<string, unknown>;
  gpu_count: number;
  gpu_memory_mb: number | null;
  max_retries: number;
  failures: number;
  git_commit: string | null;
  status: RunStatus;
  runner_id: string | null;
  gpus: number[];
  lease_expires_at: Date | null;
  cancel_requested_at: Date | null;
  error: string | null;
  log_tail: string | null;
  created_at: Date;
  started_at: Date | null;
  finished_at: Date | null;
  epochs_done: number;
  epochs_total: number | null;
  summary: Record<string, number>;
  model: ArtifactRef | null;
  register_as: string | null;
  model_version_id: string | null;
  resume_from_run_id: string | null;
}

/** Runs with their experiment's name: what every read returns. */
const RUNS = `(SELECT r.*, e.name AS experiment_name FROM training_run r JOIN experiment e ON e.id = r.experiment_id) runs`;

/** Raw SQL: every transition is one conditional UPDATE … RETURNING. */
export class SqlTrainingRunRepository implements TrainingRunRepository {
  constructor(private readonly ds: DataSource) {}

  async insert(run: NewRun): Promise<{ run: TrainingRun; created: boolean }> {
    const rows: Row[] = await this.ds.query(
      `WITH e AS (
         INSERT INTO experiment (name) VALUES ($1)
         ON CONFLICT (name) DO UPDATE SET name = EXCLUDED.name
         RETURNING id, name
       )
       INSERT INTO training_run (experiment_id, trainer, trainer_version, dataset_id, hyperparameters,
                                 gpu_count, gpu_memory_mb, max_retries, git_commit, status, register_as,
                                 idempotency_key, resume_from_run_id)
       SELECT e.id, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13 FROM e
       ON CONFLICT (idempotency_key) DO NOTHING
       RETURNING *, (SELECT name FROM e) AS experiment_name`,
      [
        run.experimentName,
        JSON.stringify(run.trainer),
        run.trainerVersion,
        run.datasetId,
        JSON.stringify(run.hyperparameters),
        run.gpuCount,
        run.gpuMemoryMb,
        run.maxRetries,
        run.gitCommit,
        run.status,
        run.registerAs,
        run.idempotencyKey,
        run.resumeFromRunId,
      ],
    );
    if (rows[0]) return { run: toRun(rows[0]), created: true };
    const earlier = run.idempotencyKey ? await this.findByIdempotencyKey(run.idempotencyKey) : null;
    if (!earlier) throw new Error('training_run insert returned no row');
    return { run: earlier, created: false };
  }

  async findByIdempotencyKey(key: string): Promise<TrainingRun | null> {
    const rows: Row[] = await this.ds.query(`SELECT * FROM ${RUNS} WHERE idempotency_key = $1`, [
      key,
    ]);
    return rows[0] ? toRun(rows[0]) : null;
  }

  async findByIds(ids: readonly string[]): Promise<TrainingRun[]> {
    if (ids.length === 0) return [];
    const rows: Row[] = await this.ds.query(`SELECT * FROM ${RUNS} WHERE id = ANY($1::uuid[])`, [
      ids,
    ]);
    return rows.map(toRun);
  }

  async list(
    page: PageRequest,
    filter: { experiment?: string; status?: RunStatus },
  ): Promise<Page<TrainingRun>> {
    const conds: string[] = [];
    const params: unknown[] = [];
    if (filter.experiment !== undefined) {
      params.push(filter.experiment);
      conds.push(`experiment_name = $${params.length}`);
    }
    if (filter.status !== undefined) {
      params.push(filter.status);
      conds.push(`status = $${params.length}`);
    }
    const p = await sqlKeysetPage<Row>(this.ds, RUNS, conds, params, page);
    return { ...p, items: p.items.map(toRun) };
  }

  async queued(): Promise<
    { id: string; seq: number; gpuCount: number; gpuMemoryMb: number | null }[]
  > {
    const rows: { id: string; seq: string; gpu_count: number; gpu_memory_mb: number | null }[] =
      await this.ds.query(
        `SELECT id, seq, gpu_count, gpu_memory_mb FROM training_run WHERE status = 'QUEUED' ORDER BY seq`,
      );
    return rows.map((r) => ({
      id: r.id,
      seq: Number(r.seq),
      gpuCount: r.gpu_count,
      gpuMemoryMb: r.gpu_memory_mb,
    }));
  }

  async pending(): Promise<{ id: string; datasetId: string }[]> {
    const rows: { id: string; dataset_id: string }[] = await this.ds.query(
      `SELECT id, dataset_id FROM training_run WHERE status = 'PENDING' ORDER BY seq`,
    );
    return rows.map((r) => ({ id: r.id, datasetId: r.dataset_id }));
  }

  async leaseExpired(before: Date): Promise<string[]> {
    const rows: { id: string }[] = await this.ds.query(
      `SELECT id FROM training_run WHERE status = 'RUNNING' AND lease_expires_at < $1 ORDER BY seq LIMIT 1000`,
      [before],
    );
    return rows.map((r) => r.id);
  }

  markQueued(id: string): Promise<TrainingRun | null> {
    return this.transition(`status = 'QUEUED'`, `status = 'PENDING'`, [id]);
  }

  markRunning(
    id: string,
    r: { runnerId: string; gpus: number[]; leaseExpiresAt: Date; at: Date },
  ): Promise<TrainingRun | null> {
    return this.transition(
      `status = 'RUNNING', runner_id = $2, gpus = $3, lease_expires_at = $4,
       started_at = coalesce(started_at, $5)`,
      `status = 'QUEUED'`,
      [id, r.runnerId, JSON.stringify(r.gpus), r.leaseExpiresAt, r.at],
    );
  }

  renewLease(id: string, runnerId: string, leaseExpiresAt: Date): Promise<TrainingRun | null> {
    return this.transition(`lease_expires_at = $3`, `status = 'RUNNING' AND runner_id = $2`, [
      id,
      runnerId,
      leaseExpiresAt,
    ]);
  }

  backToQueue(
    id: string,
    r: { failed: boolean; error: string | null; logTail: string | null },
  ): Promise<TrainingRun | null> {
    return this.transition(
      `status = 'QUEUED', runner_id = NULL, gpus = '[]'::jsonb, lease_expires_at = NULL,
       failures = failures + CASE WHEN $2 THEN 1 ELSE 0 END,
       error = coalesce($3, error), log_tail = coalesce($4, log_tail)`,
      `status = 'RUNNING'`,
      [id, r.failed, r.error, r.logTail],
    );
  }

  finish(
    id: string,
    r: { status: RunStatus; error: string | null; logTail: string | null; at: Date },
  ): Promise<TrainingRun | null> {
    return this.transition(
      `status = $2, error = coalesce($3, error), log_tail = coalesce($4, log_tail),
       finished_at = $5, lease_expires_at = NULL`,
      `status IN ('PENDING', 'QUEUED', 'RUNNING')`,
      [id, r.status, r.error, r.logTail, r.at],
    );
  }

  requestCancel(id: string, at: Date): Promise<TrainingRun | null> {
    return this.transition(
      `cancel_requested_at = coalesce(cancel_requested_at, $2)`,
      `status = 'RUNNING'`,
      [id, at],
    );
  }

  async addMetrics(
    runId: string,
    points: MetricPoint[],
    progress: { epochsDone: number; epochsTotal: number | null } | null,
  ): Promise<void> {
    await this.ds.transaction(async (m) => {
      if (points.length) {
        await m.query(
          `INSERT INTO run_metric (run_id, epoch, step, name, value)
           SELECT $1, e, s, n, v FROM unnest($2::int[], $3::int[], $4::text[], $5::float8[]) AS t(e, s, n, v)
           ON CONFLICT (run_id, name, epoch, step) DO UPDATE SET value = EXCLUDED.value`,
          [
            runId,
            points.map((p) => p.epoch),
            points.map((p) => p.step ?? -1),
            points.map((p) => p.name),
            points.map((p) => p.value),
          ],
        );
      }
      // The summary holds each metric's value at the latest epoch reported.
      const latest = new Map<string, { epoch: number; value: number }>();
      for (const p of points) {
        if (p.step !== null) continue;
        const cur = latest.get(p.name);
        if (!cur || p.epoch >= cur.epoch) latest.set(p.name, p);
      }
      await m.query(
        `UPDATE training_run SET summary = summary || $2::jsonb,
           epochs_done = greatest(epochs_done, coalesce($3, 0)),
           epochs_total = coalesce($4, epochs_total)
         WHERE id = $1`,
        [
          runId,
          JSON.stringify(Object.fromEntries([...latest].map(([k, v]) => [k, v.value]))),
          progress?.epochsDone ?? null,
          progress?.epochsTotal ?? null,
        ],
      );
    });
  }

  async metricsOf(runIds: readonly string[]): Promise<Map<string, MetricPoint[]>> {
    const rows: { run_id: string; epoch: number; step: number; name: string; value: number }[] =
      runIds.length
        ? await this.ds.query(
            `SELECT run_id, epoch, step, name, value FROM run_metric WHERE run_id = ANY($1::uuid[])
             ORDER BY epoch, step, name`,
            [runIds],
          )
        : [];
    const out = new Map<string, MetricPoint[]>(runIds.map((id) => [id, []]));
    for (const r of rows)
      out.get(r.run_id)?.push({
        epoch: r.epoch,
        step: r.step < 0 ? null : r.step,
        name: r.name,
        value: r.value,
      });
    return out;
  }

  async addHardware(runId: string, samples: HardwareSample[]): Promise<void> {
    if (!samples.length) return;
    await this.ds.query(
      `INSERT INTO run_hardware (run_id, at, sample)
       SELECT $1, a, s FROM unnest($2::timestamptz[], $3::jsonb[]) AS t(a, s)
       ON CONFLICT DO NOTHING`,
      [
        runId,
        samples.map((s) => s.at),
        samples.map((s) =>
          JSON.stringify({ cpuPercent: s.cpuPercent, memoryMb: s.memoryMb, gpus: s.gpus }),
        ),
      ],
    );
  }

  async hardwareOf(runIds: readonly string[]): Promise<Map<string, HardwareSample[]>> {
    const rows: {
      run_id: string;
      at: Date;
      sample: Omit<HardwareSample, 'at'>;
    }[] = runIds.length
      ? await this.ds.query(
          `SELECT run_id, at, sample FROM run_hardware WHERE run_id = ANY($1::uuid[]) ORDER BY at`,
          [runIds],
        )
      : [];
    const out = new Map<string, HardwareSample[]>(runIds.map((id) => [id, []]));
    for (const r of rows) out.get(r.run_id)?.push({ at: r.at, ...r.sample });
    return out;
  }

  async addCheckpoint(runId: string, epoch: number, artifact: ArtifactRef): Promise<void> {
    await this.ds.query(
      `INSERT INTO run_checkpoint (run_id, epoch, artifact) VALUES ($1, $2, $3)
       ON CONFLICT (run_id, epoch) DO UPDATE SET artifact = EXCLUDED.artifact, created_at = now()`,
      [runId, epoch, JSON.stringify(artifact)],
    );
  }

  async checkpointsOf(runId: string): Promise<RunCheckpoint[]> {
    const rows: { epoch: number; artifact: ArtifactRef; created_at: Date }[] = await this.ds.query(
      `SELECT epoch, artifact, created_at FROM run_checkpoint WHERE run_id = $1 ORDER BY epoch DESC`,
      [runId],
    );
    return rows.map((r) => ({ epoch: r.epoch, artifact: r.artifact, createdAt: r.created_at }));
  }

  async noteError(runId: string, note: string): Promise<void> {
    await this.ds.query(
      `UPDATE training_run SET error = CASE WHEN error IS NULL THEN $2 ELSE error || '; ' || $2 END WHERE id = $1`,
      [runId, note],
    );
  }

  async setModel(runId: string, artifact: ArtifactRef): Promise<void> {
    await this.ds.query(`UPDATE training_run SET model = $2 WHERE id = $1`, [
      runId,
      JSON.stringify(artifact),
    ]);
  }

  async forComparison(
    filter: { experiments: string[]; runIds: string[] },
    limit: number,
  ): Promise<TrainingRun[]> {
    const rows: Row[] = await this.ds.query(
      `SELECT * FROM ${RUNS} WHERE experiment_name = ANY($1::text[]) OR id = ANY($2::uuid[])
       ORDER BY created_at, id LIMIT $3`,
      [filter.experiments, filter.runIds, limit],
    );
    return rows.map(toRun);
  }

  /** One conditional UPDATE; null when the run is not in the state `when` asks for. */
  private async transition(
    set: string,
    when: string,
    params: unknown[],
  ): Promise<TrainingRun | null> {
    const res = (await this.ds.query(
      `WITH u AS (UPDATE training_run SET ${set} WHERE id = $1 AND ${when} RETURNING *)
       SELECT u.*, e.name AS experiment_name FROM u JOIN experiment e ON e.id = u.experiment_id`,
      params,
    )) as Row[];
    return res[0] ? toRun(res[0]) : null;
  }
}

function toRun(r: Row): TrainingRun {
  return {
    id: r.id,
    seq: Number(r.seq),
    experimentId: r.experiment_id,
    experimentName: r.experiment_name,
    trainer: r.trainer,
    trainerVersion: r.trainer_version,
    datasetId: r.dataset_id,
    hyperparameters: r.hyperparameters,
    gpuCount: r.gpu_count,
    gpuMemoryMb: r.gpu_memory_mb,
    maxRetries: r.max_retries,
    failures: r.failures,
    gitCommit: r.git_commit,
    status: r.status,
    runnerId: r.runner_id,
    gpus: r.gpus,
    leaseExpiresAt: r.lease_expires_at,
    cancelRequestedAt: r.cancel_requested_at,
    error: r.error,
    logTail: r.log_tail,
    createdAt: r.created_at,
    startedAt: r.started_at,
    finishedAt: r.finished_at,
    epochsDone: r.epochs_done,
    epochsTotal: r.epochs_total,
    summary: r.summary,
    model: r.model,
    registerAs: r.register_as,
    modelVersionId: r.model_version_id,
    resumeFromRunId: r.resume_from_run_id,
  };
}
