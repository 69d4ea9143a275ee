import { type DataSource } from 'typeorm';
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
  created_at: Date;
}

export class SqlDeploymentRepository implements DeploymentRepository {
  constructor(private readonly ds: DataSource) {}

  async create(d: Omit<Deployment, 'id' | 'createdAt'>): Promise<Deployment> {
    const rows: Row[] = await this.ds.query(
      `INSERT INTO deployment (endpoint, model_id, canary_share, max_batch, max_wait_us, warmup_requests)
       VALUES ($1, $2, $3, $4, $5, $6) RETURNING *`,
      [d.endpoint, d.modelId, d.canaryShare, d.maxBatch, d.maxWaitUs, d.warmupRequests],
    );
    return toDeployment(rows[0]);
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
    createdAt: r.created_at,
  };
}
