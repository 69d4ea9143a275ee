import { type DataSource } from 'typeorm';
import {
  FINISHED,
  type Retraining,
  type RetrainingPolicy,
  RetrainingStatus,
  type RetrainingStep,
} from '../../../domain/monitoring/retraining';
import { type RetrainingRepository } from '../../../domain/monitoring/retraining.service';
import { type Clock } from '../../../domain/shared/clock';
import { returnedRows } from '../returned-rows';

interface Row {
  id: string;
  model_id: string;
  deployment_id: string;
  alert_id: string | null;
  champion_id: string;
  cause: string;
  status: RetrainingStatus;
  policy: RetrainingPolicy;
  train_dataset_id: string | null;
  holdout_dataset_id: string | null;
  run_id: string | null;
  challenger_id: string | null;
  steps: RetrainingStep[];
  window_end: Date | null;
  updated_at: Date;
  created_at: Date;
}

export class SqlRetrainingRepository implements RetrainingRepository {
  constructor(
    private readonly ds: DataSource,
    private readonly clock: Clock,
  ) {}

  async policy(modelId: string): Promise<RetrainingPolicy | null> {
    const rows: { policy: RetrainingPolicy }[] = await this.ds.query(
      `SELECT policy FROM retraining_policy WHERE model_id = $1`,
      [modelId],
    );
    return rows[0]?.policy ?? null;
  }

  async setPolicy(modelId: string, policy: RetrainingPolicy): Promise<void> {
    await this.ds.query(
      `INSERT INTO retraining_policy (model_id, policy) VALUES ($1, $2)
       ON CONFLICT (model_id) DO UPDATE SET policy = EXCLUDED.policy`,
      [modelId, JSON.stringify(policy)],
    );
  }

  async create(
    r: Pick<
      Retraining,
      'modelId' | 'deploymentId' | 'alertId' | 'championId' | 'cause' | 'policy' | 'windowEnd'
    >,
    detail: string,
  ): Promise<Retraining | null> {
    const at = this.clock.now();
    const steps: RetrainingStep[] = [
      { at: at.toISOString(), status: RetrainingStatus.TRIGGERED, detail },
    ];
    // The partial unique index allows one open retraining per model.
    const rows: Row[] = await this.ds.query(
      `INSERT INTO retraining (model_id, deployment_id, alert_id, champion_id, cause, status, policy, steps, window_end, updated_at, created_at)
       VALUES ($1, $2, $3, $4, $5, 'TRIGGERED', $6, $7, $8, $9, $9)
       ON CONFLICT (model_id) WHERE status NOT IN ('PROMOTED', 'REJECTED', 'STOPPED_BAD_DATA', 'FAILED')
       DO NOTHING RETURNING *`,
      [
        r.modelId,
        r.deploymentId,
        r.alertId,
        r.championId,
        r.cause,
        JSON.stringify(r.policy),
        JSON.stringify(steps),
        r.windowEnd,
        at,
      ],
    );
    return rows[0] ? toRetraining(rows[0]) : null;
  }

  async advance(
    id: string,
    from: RetrainingStatus,
    to: RetrainingStatus,
    detail: string,
    patch: Partial<
      Pick<Retraining, 'trainDatasetId' | 'holdoutDatasetId' | 'runId' | 'challengerId'>
    > = {},
  ): Promise<Retraining | null> {
    const at = this.clock.now();
    const step: RetrainingStep = { at: at.toISOString(), status: to, detail };
    const rows = returnedRows<Row>(
      await this.ds.query(
        `UPDATE retraining SET status = $2, steps = steps || $3::jsonb, updated_at = $4,
           train_dataset_id = COALESCE($5, train_dataset_id), holdout_dataset_id = COALESCE($6, holdout_dataset_id),
           run_id = COALESCE($7, run_id), challenger_id = COALESCE($8, challenger_id)
         WHERE id = $1 AND status = $9 RETURNING *`,
        [
          id,
          to,
          JSON.stringify([step]),
          at,
          patch.trainDatasetId ?? null,
          patch.holdoutDatasetId ?? null,
          patch.runId ?? null,
          patch.challengerId ?? null,
          from,
        ],
      ),
    );
    return rows[0] ? toRetraining(rows[0]) : null;
  }

  async find(id: string): Promise<Retraining | null> {
    const rows: Row[] = await this.ds.query(`SELECT * FROM retraining WHERE id = $1`, [id]);
    return rows[0] ? toRetraining(rows[0]) : null;
  }

  async active(): Promise<Retraining[]> {
    const rows: Row[] = await this.ds.query(
      `SELECT * FROM retraining WHERE NOT (status = ANY($1)) ORDER BY created_at, id`,
      [[...FINISHED]],
    );
    return rows.map(toRetraining);
  }

  async latestOf(modelId: string): Promise<Retraining | null> {
    const rows: Row[] = await this.ds.query(
      `SELECT * FROM retraining WHERE model_id = $1 ORDER BY created_at DESC, id DESC LIMIT 1`,
      [modelId],
    );
    return rows[0] ? toRetraining(rows[0]) : null;
  }

  async ofModel(modelId: string): Promise<Retraining[]> {
    const rows: Row[] = await this.ds.query(
      `SELECT * FROM retraining WHERE model_id = $1 ORDER BY created_at, id`,
      [modelId],
    );
    return rows.map(toRetraining);
  }
}

function toRetraining(r: Row): Retraining {
  return {
    id: r.id,
    modelId: r.model_id,
    deploymentId: r.deployment_id,
    alertId: r.alert_id,
    championId: r.champion_id,
    cause: r.cause,
    status: r.status,
    policy: r.policy,
    windowEnd: r.window_end ?? r.created_at,
    trainDatasetId: r.train_dataset_id,
    holdoutDatasetId: r.holdout_dataset_id,
    runId: r.run_id,
    challengerId: r.challenger_id,
    steps: r.steps,
    updatedAt: r.updated_at,
    createdAt: r.created_at,
  };
}
