import { type DataSource } from 'typeorm';
import { DEFAULT_AUTOSCALE_POLICY } from '../../../domain/serving/autoscaler';
import {
  type Deployment,
  type DeploymentRepository,
  type ScalingRecord,
} from '../../../domain/serving/deployment';
import { returnedRows } from '../returned-rows';
import { type Page, type PageRequest } from '../../../domain/shared/pagination';
import { sqlKeysetPage } from '../features/sql-keyset';

interface Row {
  id: string;
  endpoint: string;
  model_id: string;
  canary_share: number;
  max_batch: number;
  max_wait_us: number;
  warmup_requests: number;
  canary_policy: Deployment['canaryPolicy'];
  autoscale_policy: Partial<Deployment['autoscalePolicy']>;
  canary_stepped_at: Date | null;
  ab_arms: Deployment['abArms'];
  replicas?: Record<string, number> | null;
  created_at: Date;
}

/** A deployment with the replica counts the autoscaler decided for its versions. */
const WITH_REPLICAS = `SELECT d.*, (SELECT jsonb_object_agg(s.version_id, s.replicas)
  FROM deployment_scaling s WHERE s.deployment_id = d.id) AS replicas FROM deployment d`;

export class SqlDeploymentRepository implements DeploymentRepository {
  constructor(private readonly ds: DataSource) {}

  async create(
    d: Omit<Deployment, 'id' | 'canarySteppedAt' | 'abArms' | 'replicas'>,
  ): Promise<Deployment> {
    const rows: Row[] = await this.ds.query(
      `INSERT INTO deployment (endpoint, model_id, canary_share, max_batch, max_wait_us, warmup_requests, canary_policy, autoscale_policy, created_at)
       VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) RETURNING *`,
      [
        d.endpoint,
        d.modelId,
        d.canaryShare,
        d.maxBatch,
        d.maxWaitUs,
        d.warmupRequests,
        JSON.stringify(d.canaryPolicy),
        JSON.stringify(d.autoscalePolicy),
        d.createdAt,
      ],
    );
    return toDeployment(rows[0]);
  }

  async all(): Promise<Deployment[]> {
    const rows: Row[] = await this.ds.query(`${WITH_REPLICAS} ORDER BY d.created_at, d.id`);
    return rows.map(toDeployment);
  }

  async setArms(id: string, arms: Deployment['abArms']): Promise<void> {
    await this.ds.query(`UPDATE deployment SET ab_arms = $2 WHERE id = $1`, [
      id,
      JSON.stringify(arms),
    ]);
  }

  async setAutoscalePolicy(id: string, policy: Deployment['autoscalePolicy']): Promise<void> {
    await this.ds.query(`UPDATE deployment SET autoscale_policy = $2 WHERE id = $1`, [
      id,
      JSON.stringify(policy),
    ]);
  }

  async setCanaryShare(id: string, from: number, share: number, at: Date): Promise<boolean> {
    const res: unknown = await this.ds.query(
      `UPDATE deployment SET canary_share = $3, canary_stepped_at = $4
       WHERE id = $1 AND canary_share = $2 RETURNING id`,
      [id, from, share, at],
    );
    return returnedRows(res).length > 0;
  }

  async scaling(deploymentId: string, versionId: string): Promise<ScalingRecord | null> {
    const rows: {
      replicas: number;
      memory: ScalingRecord['memory'];
      reviewed_at: string | null;
    }[] = await this.ds.query(
      `SELECT replicas, memory, reviewed_at FROM deployment_scaling
         WHERE deployment_id = $1 AND version_id = $2`,
      [deploymentId, versionId],
    );
    const r = rows[0];
    return r
      ? {
          replicas: r.replicas,
          memory: r.memory,
          reviewedAt: r.reviewed_at === null ? null : Number(r.reviewed_at),
        }
      : null;
  }

  async saveScaling(
    deploymentId: string,
    versionId: string,
    next: ScalingRecord,
    expectedReviewedAt: number | null,
  ): Promise<boolean> {
    const res: unknown = await this.ds.query(
      `INSERT INTO deployment_scaling (deployment_id, version_id, replicas, memory, reviewed_at)
       VALUES ($1, $2, $3, $4, $5)
       ON CONFLICT (deployment_id, version_id) DO UPDATE
         SET replicas = EXCLUDED.replicas, memory = EXCLUDED.memory, reviewed_at = EXCLUDED.reviewed_at
         WHERE deployment_scaling.reviewed_at IS NOT DISTINCT FROM $6::bigint
       RETURNING version_id`,
      [
        deploymentId,
        versionId,
        next.replicas,
        JSON.stringify(next.memory),
        next.reviewedAt,
        expectedReviewedAt,
      ],
    );
    return returnedRows(res).length > 0;
  }

  async findByEndpoint(endpoint: string): Promise<Deployment | null> {
    const rows: Row[] = await this.ds.query(`${WITH_REPLICAS} WHERE d.endpoint = $1`, [endpoint]);
    return rows[0] ? toDeployment(rows[0]) : null;
  }

  async findByIds(ids: readonly string[]): Promise<Deployment[]> {
    if (!ids.length) return [];
    const rows: Row[] = await this.ds.query(`${WITH_REPLICAS} WHERE d.id = ANY($1::uuid[])`, [ids]);
    return rows.map(toDeployment);
  }

  async list(page: PageRequest): Promise<Page<Deployment>> {
    const p = await sqlKeysetPage<Row>(this.ds, 'deployment', [], [], page);
    return { ...p, items: p.items.map(toDeployment) };
  }

  async markServed(deploymentId: string, versionId: string): Promise<void> {
    await this.ds.query(
      `INSERT INTO deployment_version (deployment_id, model_version_id) VALUES ($1, $2) ON CONFLICT DO NOTHING`,
      [deploymentId, versionId],
    );
  }
}

function toDeployment(r: Row): Deployment {
  return {
    id: r.id,
    endpoint: r.endpoint,
    modelId: r.model_id,
    canaryShare: r.canary_share,
    maxBatch: r.max_batch,
    maxWaitUs: r.max_wait_us,
    warmupRequests: r.warmup_requests,
    canaryPolicy: r.canary_policy,
    autoscalePolicy: { ...DEFAULT_AUTOSCALE_POLICY, ...r.autoscale_policy },
    canarySteppedAt: r.canary_stepped_at,
    abArms: r.ab_arms,
    replicas: r.replicas ?? {},
    createdAt: r.created_at,
  };
}
