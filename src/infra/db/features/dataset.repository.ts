import { type DataSource } from 'typeorm';
import { type TableFile } from '../../../domain/features/table-file';
import { returnedRows } from '../returned-rows';
import {
  type DatasetColumn,
  type DatasetRepository,
  type DatasetSnapshot,
  type DatasetStatus,
  type JoinEngine,
} from '../../../domain/features/dataset';
import { type ArtifactRef } from '../../../domain/artifacts/artifact-store';

interface Row {
  id: string;
  name: string;
  status: DatasetStatus;
  feature_refs: string[];
  spine_sha256: string;
  row_count: number;
  columns: DatasetColumn[];
  content_hash: string | null;
  artifact: ArtifactRef | null;
  parquet: ArtifactRef | null;
  spine_file: TableFile | null;
  engine: JoinEngine;
  progress: number;
  error: string | null;
  created_at: Date;
  completed_at: Date | null;
  version_ids: string[] | null;
}

export class SqlDatasetRepository implements DatasetRepository {
  constructor(private readonly ds: DataSource) {}

  async create(
    d: Omit<DatasetSnapshot, 'id' | 'createdAt'>,
    idempotencyKey: string | null = null,
  ): Promise<{ snapshot: DatasetSnapshot; created: boolean }> {
    return this.ds.transaction(async (m) => {
      const [row]: Row[] = await m.query(
        `INSERT INTO dataset_snapshot (name, status, feature_refs, spine_sha256, row_count, columns, content_hash, artifact, progress, error, completed_at, idempotency_key, spine_file, engine)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)
         ON CONFLICT (idempotency_key) DO NOTHING RETURNING *`,
        [
          d.name,
          d.status,
          JSON.stringify(d.featureRefs),
          d.spineSha256,
          d.rowCount,
          JSON.stringify(d.columns),
          d.contentHash,
          d.artifact ? JSON.stringify(d.artifact) : null,
          d.progress,
          d.error,
          d.completedAt,
          idempotencyKey,
          d.spineFile ? JSON.stringify(d.spineFile) : null,
          d.engine,
        ],
      );
      if (!row) {
        const [earlier]: Row[] = await m.query(
          `SELECT d.*, (SELECT array_agg(version_id) FROM dataset_feature_view_version WHERE dataset_id = d.id) AS version_ids
           FROM dataset_snapshot d WHERE idempotency_key = $1`,
          [idempotencyKey],
        );
        return { snapshot: toSnapshot(earlier), created: false };
      }
      // The link makes each view version list this dataset as a consumer.
      await m.query(
        `INSERT INTO dataset_feature_view_version (dataset_id, version_id) SELECT $1, unnest($2::uuid[])`,
        [row.id, d.featureViewVersionIds],
      );
      return {
        snapshot: toSnapshot({ ...row, version_ids: d.featureViewVersionIds }),
        created: true,
      };
    });
  }

  async update(
    id: string,
    patch: Partial<
      Pick<
        DatasetSnapshot,
        | 'status'
        | 'contentHash'
        | 'artifact'
        | 'parquet'
        | 'spineFile'
        | 'progress'
        | 'error'
        | 'completedAt'
      >
    >,
  ): Promise<void> {
    const cols: Record<string, unknown> = {
      spine_file: patch.spineFile === undefined ? undefined : JSON.stringify(patch.spineFile),
      status: patch.status,
      content_hash: patch.contentHash,
      artifact: patch.artifact === undefined ? undefined : JSON.stringify(patch.artifact),
      parquet: patch.parquet === undefined ? undefined : JSON.stringify(patch.parquet),
      progress: patch.progress,
      error: patch.error,
      completed_at: patch.completedAt,
    };
    const set = Object.entries(cols).filter(([, v]) => v !== undefined);
    if (!set.length) return;
    await this.ds.query(
      `UPDATE dataset_snapshot SET ${set.map(([k], i) => `${k} = $${i + 2}`).join(', ')} WHERE id = $1`,
      [id, ...set.map(([, v]) => v)],
    );
  }

  /** Claims a build nobody holds, or (with `staleMs`) one whose holder has not beaten for that long (the database's clock, one for every process). */
  async claimBuild(id: string, builder: string, staleMs: number | null): Promise<boolean> {
    const res: unknown = await this.ds.query(
      `UPDATE dataset_snapshot SET builder = $2, heartbeat_at = clock_timestamp()
       WHERE id = $1 AND status = 'BUILDING'
         AND (builder IS NULL OR ($3::float8 IS NOT NULL
              AND coalesce(heartbeat_at, created_at) < clock_timestamp() - $3::float8 * interval '1 millisecond'))
       RETURNING id`,
      [id, builder, staleMs],
    );
    return returnedRows(res).length > 0;
  }

  async heartbeat(id: string, builder: string): Promise<boolean> {
    const res: unknown = await this.ds.query(
      `UPDATE dataset_snapshot SET heartbeat_at = clock_timestamp()
       WHERE id = $1 AND builder = $2 AND status = 'BUILDING' RETURNING id`,
      [id, builder],
    );
    return returnedRows(res).length > 0;
  }

  async finishBuild(
    id: string,
    builder: string,
    patch: Pick<DatasetSnapshot, 'status' | 'progress' | 'completedAt'> &
      Partial<Pick<DatasetSnapshot, 'contentHash' | 'artifact' | 'error'>>,
  ): Promise<boolean> {
    const res: unknown = await this.ds.query(
      `UPDATE dataset_snapshot SET status = $3, progress = $4, completed_at = $5,
         content_hash = coalesce($6, content_hash), artifact = coalesce($7::jsonb, artifact),
         error = coalesce($8, error)
       WHERE id = $1 AND builder = $2 AND status = 'BUILDING' RETURNING id`,
      [
        id,
        builder,
        patch.status,
        patch.progress,
        patch.completedAt,
        patch.contentHash ?? null,
        patch.artifact ? JSON.stringify(patch.artifact) : null,
        patch.error ?? null,
      ],
    );
    return returnedRows(res).length > 0;
  }

  async stalledBuilds(staleMs: number): Promise<DatasetSnapshot[]> {
    const rows: Row[] = await this.ds.query(
      `SELECT d.*, (SELECT array_agg(version_id) FROM dataset_feature_view_version l WHERE l.dataset_id = d.id) AS version_ids
         FROM dataset_snapshot d
        WHERE d.status = 'BUILDING'
          AND coalesce(d.heartbeat_at, d.created_at) < clock_timestamp() - $1::float8 * interval '1 millisecond'
        ORDER BY d.created_at LIMIT 100`,
      [staleMs],
    );
    return rows.map(toSnapshot);
  }

  async findByIds(ids: readonly string[]): Promise<DatasetSnapshot[]> {
    if (!ids.length) return [];
    const rows: Row[] = await this.ds.query(
      `SELECT d.*, (SELECT array_agg(version_id) FROM dataset_feature_view_version l WHERE l.dataset_id = d.id) AS version_ids
         FROM dataset_snapshot d WHERE d.id = ANY($1::uuid[])`,
      [ids],
    );
    return rows.map(toSnapshot);
  }
}

function toSnapshot(r: Row): DatasetSnapshot {
  return {
    id: r.id,
    name: r.name,
    status: r.status,
    featureRefs: r.feature_refs,
    featureViewVersionIds: r.version_ids ?? [],
    spineSha256: r.spine_sha256,
    rowCount: r.row_count,
    columns: r.columns,
    contentHash: r.content_hash,
    artifact: r.artifact,
    parquet: r.parquet,
    spineFile: r.spine_file,
    engine: r.engine,
    progress: r.progress,
    error: r.error,
    createdAt: r.created_at,
    completedAt: r.completed_at,
  };
}
