import { type DataSource } from 'typeorm';
import { DEFAULT_AUTOSCALE_POLICY } from '../../../domain/serving/autoscaler';
import { type Deployment, type DeploymentRepository } from '../../../domain/serving/deployment';
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
  created_at: Date;
}

export class SqlDeploymentRepository implements DeploymentRepository {
  constructor(private readonly ds: DataSource) {}

  async create(d: Omit<Deployment, 'id' | 'canarySteppedAt' | 'abArms'>): Promise<Deployment> {
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
    const rows: Row[] = await this.ds.query(`SELECT * FROM deployment ORDER BY created_at, id`);
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

  async setCanaryShare(id: string, share: number, at: Date): Promise<void> {
    await this.ds.query(
      `UPDATE deployment SET canary_share = $2, canary_stepped_at = $3 WHERE id = $1`,
      [id, share, at],
    );
  }

  async findByEndpoint(endpoint: string): Promise<Deployment | null> {
    const rows: Row[] = await this.ds.query(`SELECT * FROM deployment WHERE endpoint = $1`, [
      endpoint,
    ]);
    return rows[0] ? toDeployment(rows[0]) : null;
  }

  async findByIds(ids: readonly string[]): Promise<Deployment[]> {
    if (!ids.length) return [];
    const rows: Row[] = await this.ds.query(`SELECT * FROM deployment WHERE id = ANY($1::uuid[])`, [
      ids,
    ]);
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
    createdAt: r.created_at,
  };
}
