import { type DataSource } from 'typeorm';
import {
  type FeatureViewMetadata,
  type FeatureViewSchema,
  type FeatureViewVersion,
} from '../../../domain/features/feature-definition';
import {
  type FeatureEntity,
  type FeatureRegistryRepository,
  type FeatureView,
  type VersionConsumer,
} from '../../../domain/features/feature-store.ports';
import { type Page, type PageRequest } from '../../../domain/shared/pagination';
import { returnedRows } from '../returned-rows';
import { sqlKeysetPage } from './sql-keyset';

interface ViewRow {
  id: string;
  name: string;
  entity: string;
  description: string;
  owner: string;
  tags: string[];
  created_at: Date;
  updated_at: Date;
}

interface VersionRow {
  id: string;
  view_id: string;
  view_name: string;
  version: number;
  schema: FeatureViewSchema;
  fingerprint: string;
  created_at: Date;
  retired_at: Date | null;
}

const VERSION_SELECT = `SELECT v.id, v.view_id, f.name AS view_name, v.version, v.schema, v.fingerprint, v.created_at, v.retired_at
  FROM feature_view_version v JOIN feature_view f ON f.id = v.view_id`;

/** Raw SQL: the registry is small, and keyset pages and row locks read clearer in SQL. */
export class SqlFeatureRegistryRepository implements FeatureRegistryRepository {
  constructor(private readonly ds: DataSource) {}

  async createEntity(e: {
    name: string;
    joinKeys: string[];
    description: string;
  }): Promise<FeatureEntity | null> {
    const rows: { id: string; created_at: Date }[] = await this.ds.query(
      `INSERT INTO feature_entity (name, join_keys, description) VALUES ($1, $2, $3)
       ON CONFLICT (name) DO NOTHING RETURNING id, created_at`,
      [e.name, JSON.stringify(e.joinKeys), e.description],
    );
    return rows[0]
      ? {
          id: rows[0].id,
          name: e.name,
          joinKeys: e.joinKeys,
          description: e.description,
          createdAt: rows[0].created_at,
        }
      : null;
  }

  async findEntity(name: string): Promise<FeatureEntity | null> {
    const rows = await this.ds.query(`SELECT * FROM feature_entity WHERE name = $1`, [name]);
    return rows[0] ? toEntity(rows[0]) : null;
  }

  async findEntitiesByIds(ids: readonly string[]): Promise<FeatureEntity[]> {
    if (!ids.length) return [];
    return (
      (await this.ds.query(`SELECT * FROM feature_entity WHERE id = ANY($1::uuid[])`, [
        ids,
      ])) as EntityRow[]
    ).map(toEntity);
  }

  async listEntities(page: PageRequest): Promise<Page<FeatureEntity>> {
    const p = await sqlKeysetPage<EntityRow>(this.ds, 'feature_entity', [], [], page);
    return { ...p, items: p.items.map(toEntity) };
  }

  async createView(
    v: { name: string; entity: string } & FeatureViewMetadata,
    schema: FeatureViewSchema,
    fingerprint: string,
  ): Promise<{ view: FeatureView; version: FeatureViewVersion } | null> {
    return this.ds.transaction(async (m) => {
      const rows: ViewRow[] = await m.query(
        `INSERT INTO feature_view (name, entity, description, owner, tags) VALUES ($1, $2, $3, $4, $5)
         ON CONFLICT (name) WHERE deleted_at IS NULL DO NOTHING RETURNING *`,
        [v.name, v.entity, v.description, v.owner, JSON.stringify(v.tags)],
      );
      if (!rows[0]) return null;
      const ver: VersionRow[] = await m.query(
        `INSERT INTO feature_view_version (view_id, version, schema, fingerprint, source) VALUES ($1, 1, $2, $3, $4)
         RETURNING id, view_id, $5::text AS view_name, version, schema, fingerprint, created_at, retired_at`,
        [rows[0].id, JSON.stringify(schema), fingerprint, schema.source, v.name],
      );
      return { view: toView(rows[0]), version: toVersion(ver[0]) };
    });
  }

  async findView(name: string): Promise<FeatureView | null> {
    const rows: ViewRow[] = await this.ds.query(
      `SELECT * FROM feature_view WHERE name = $1 AND deleted_at IS NULL`,
      [name],
    );
    return rows[0] ? toView(rows[0]) : null;
  }

  async findViewsByIds(ids: readonly string[]): Promise<FeatureView[]> {
    if (!ids.length) return [];
    return (
      (await this.ds.query(`SELECT * FROM feature_view WHERE id = ANY($1::uuid[])`, [
        ids,
      ])) as ViewRow[]
    ).map(toView);
  }

  async listViews(page: PageRequest): Promise<Page<FeatureView>> {
    const p = await sqlKeysetPage<ViewRow>(
      this.ds,
      'feature_view',
      ['deleted_at IS NULL'],
      [],
      page,
    );
    return { ...p, items: p.items.map(toView) };
  }

  async updateMetadata(viewId: string, meta: FeatureViewMetadata, at: Date): Promise<FeatureView> {
    const res: unknown = await this.ds.query(
      `UPDATE feature_view SET description = $2, owner = $3, tags = $4, updated_at = $5 WHERE id = $1 RETURNING *`,
      [viewId, meta.description, meta.owner, JSON.stringify(meta.tags), at],
    );
    return toView(returnedRows<ViewRow>(res)[0]);
  }

  async addVersion(
    viewId: string,
    schema: FeatureViewSchema,
    fingerprint: string,
  ): Promise<FeatureViewVersion> {
    return this.ds.transaction(async (m) => {
      // The view row lock serialises version allocation: no gaps, no duplicates.
      const [view]: ViewRow[] = await m.query(
        `SELECT * FROM feature_view WHERE id = $1 FOR UPDATE`,
        [viewId],
      );
      const rows: VersionRow[] = await m.query(
        `INSERT INTO feature_view_version (view_id, version, schema, fingerprint, source)
         SELECT $1, COALESCE(MAX(version), 0) + 1, $2, $3, $4 FROM feature_view_version WHERE view_id = $1
         RETURNING id, view_id, $5::text AS view_name, version, schema, fingerprint, created_at, retired_at`,
        [viewId, JSON.stringify(schema), fingerprint, schema.source, view.name],
      );
      return toVersion(rows[0]);
    });
  }

  async versionsOf(viewIds: readonly string[]): Promise<FeatureViewVersion[]> {
    if (!viewIds.length) return [];
    const rows: VersionRow[] = await this.ds.query(
      `${VERSION_SELECT} WHERE v.view_id = ANY($1::uuid[]) ORDER BY v.view_id, v.version`,
      [viewIds],
    );
    return rows.map(toVersion);
  }

  async versionsByIds(ids: readonly string[]): Promise<FeatureViewVersion[]> {
    if (!ids.length) return [];
    const rows: VersionRow[] = await this.ds.query(
      `${VERSION_SELECT} WHERE v.id = ANY($1::uuid[])`,
      [ids],
    );
    return rows.map(toVersion);
  }

  async liveVersionsBySource(source: string): Promise<FeatureViewVersion[]> {
    const rows: VersionRow[] = await this.ds.query(
      `${VERSION_SELECT} WHERE v.source = $1 AND v.retired_at IS NULL AND f.deleted_at IS NULL ORDER BY f.name, v.version`,
      [source],
    );
    return rows.map(toVersion);
  }

  async allSources(): Promise<string[]> {
    const rows: { source: string }[] = await this.ds.query(
      `SELECT DISTINCT v.source FROM feature_view_version v JOIN feature_view f ON f.id = v.view_id
       WHERE v.retired_at IS NULL AND f.deleted_at IS NULL ORDER BY 1`,
    );
    return rows.map((r) => r.source);
  }

  async retireVersion(id: string, at: Date): Promise<void> {
    await this.ds.query(
      `UPDATE feature_view_version SET retired_at = $2 WHERE id = $1 AND retired_at IS NULL`,
      [id, at],
    );
  }

  async deleteView(id: string, at: Date): Promise<void> {
    await this.ds.transaction(async (m) => {
      await m.query(`UPDATE feature_view SET deleted_at = $2 WHERE id = $1`, [id, at]);
      await m.query(
        `UPDATE feature_view_version SET retired_at = $2 WHERE view_id = $1 AND retired_at IS NULL`,
        [id, at],
      );
    });
  }

  async consumersOf(versionIds: readonly string[]): Promise<Map<string, VersionConsumer[]>> {
    const out = new Map<string, VersionConsumer[]>(versionIds.map((id) => [id, []]));
    if (!versionIds.length) return out;
    // Datasets built from a version, and model versions (not archived) that read it.
    const rows: {
      version_id: string;
      kind: 'DATASET' | 'MODEL_VERSION';
      id: string;
      name: string;
    }[] = await this.ds.query(
      `SELECT * FROM (
         SELECT l.version_id, 'DATASET' AS kind, d.id, d.name, d.created_at
         FROM dataset_feature_view_version l JOIN dataset_snapshot d ON d.id = l.dataset_id
         WHERE l.version_id = ANY($1::uuid[]) AND d.status <> 'FAILED'
         UNION ALL
         SELECT l.version_id, 'MODEL_VERSION', mv.id, m.name || '@' || mv.version, mv.created_at
         FROM model_version_feature_view_version l JOIN model_version mv ON mv.id = l.model_version_id
         JOIN model m ON m.id = mv.model_id
         WHERE l.version_id = ANY($1::uuid[]) AND mv.state NOT IN ('ARCHIVED', 'ROLLED_BACK')
       ) c ORDER BY created_at`,
      [versionIds],
    );
    for (const r of rows) out.get(r.version_id)?.push({ kind: r.kind, id: r.id, name: r.name });
    return out;
  }
}

interface EntityRow {
  id: string;
  name: string;
  join_keys: string[];
  description: string;
  created_at: Date;
}

function toEntity(r: EntityRow): FeatureEntity {
  return {
    id: r.id,
    name: r.name,
    joinKeys: r.join_keys,
    description: r.description,
    createdAt: r.created_at,
  };
}

function toView(r: ViewRow): FeatureView {
  return {
    id: r.id,
    name: r.name,
    entity: r.entity,
    description: r.description,
    owner: r.owner,
    tags: r.tags,
    createdAt: r.created_at,
    updatedAt: r.updated_at,
  };
}

function toVersion(r: VersionRow): FeatureViewVersion {
  return {
    id: r.id,
    viewId: r.view_id,
    viewName: r.view_name,
    version: r.version,
    schema: r.schema,
    fingerprint: r.fingerprint,
    createdAt: r.created_at,
    retiredAt: r.retired_at,
  };
}
