import { type MigrationInterface, type QueryRunner } from 'typeorm';

/**
 * Feature registry (entities, views, immutable view versions), the append-only offline
 * history, the quarantine, and dataset snapshots with the view versions they consume.
 */
export class FeatureStore1764100000000 implements MigrationInterface {
  name = 'FeatureStore1764100000000';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`
      CREATE TABLE feature_entity (
        id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
        name text NOT NULL UNIQUE,
        join_keys jsonb NOT NULL,
        description text NOT NULL DEFAULT '',
        created_at timestamptz(3) NOT NULL DEFAULT now()
      )`);
    await q.query(`CREATE INDEX feature_entity_created_idx ON feature_entity (created_at, id)`);
    await q.query(`
      CREATE TABLE feature_view (
        id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
        name text NOT NULL,
        entity text NOT NULL REFERENCES feature_entity (name),
        description text NOT NULL DEFAULT '',
        owner text NOT NULL DEFAULT '',
        tags jsonb NOT NULL DEFAULT '[]'::jsonb,
        created_at timestamptz(3) NOT NULL DEFAULT now(),
        updated_at timestamptz(3) NOT NULL DEFAULT now(),
        deleted_at timestamptz(3) NULL
      )`);
    await q.query(
      `CREATE UNIQUE INDEX feature_view_live_name_idx ON feature_view (name) WHERE deleted_at IS NULL`,
    );
    await q.query(`CREATE INDEX feature_view_created_idx ON feature_view (created_at, id)`);
    await q.query(`
      CREATE TABLE feature_view_version (
        id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
        view_id uuid NOT NULL REFERENCES feature_view (id),
        version integer NOT NULL CHECK (version > 0),
        schema jsonb NOT NULL,
        fingerprint text NOT NULL,
        source text NOT NULL,
        created_at timestamptz(3) NOT NULL DEFAULT now(),
        retired_at timestamptz(3) NULL,
        UNIQUE (view_id, version)
      )`);
    await q.query(
      `CREATE INDEX feature_view_version_source_idx ON feature_view_version (source) WHERE retired_at IS NULL`,
    );
    await q.query(`
      CREATE TABLE feature_event (
        version_id uuid NOT NULL,
        entity_key text NOT NULL,
        event_id text NOT NULL,
        event_ts timestamptz(3) NOT NULL,
        created_ts timestamptz(3) NOT NULL,
        fields jsonb NOT NULL,
        PRIMARY KEY (version_id, entity_key, event_id)
      )`);
    await q.query(
      `CREATE INDEX feature_event_pit_idx ON feature_event (version_id, entity_key, event_ts, created_ts)`,
    );
    await q.query(`
      CREATE TABLE feature_quarantine (
        id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
        version_id uuid NOT NULL REFERENCES feature_view_version (id),
        source text NOT NULL,
        entity_key text NULL,
        event_id text NULL,
        record jsonb NOT NULL,
        violations jsonb NOT NULL,
        created_at timestamptz(3) NOT NULL DEFAULT now(),
        replayed_at timestamptz(3) NULL
      )`);
    await q.query(
      `CREATE INDEX feature_quarantine_created_idx ON feature_quarantine (created_at, id)`,
    );
    await q.query(`
      CREATE TABLE dataset_snapshot (
        id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
        name text NOT NULL,
        status text NOT NULL CHECK (status IN ('BUILDING', 'READY', 'FAILED')),
        feature_refs jsonb NOT NULL,
        spine_sha256 text NOT NULL,
        row_count integer NOT NULL,
        columns jsonb NOT NULL,
        content_hash text NULL,
        artifact jsonb NULL,
        progress double precision NOT NULL DEFAULT 0,
        error text NULL,
        created_at timestamptz(3) NOT NULL DEFAULT now(),
        completed_at timestamptz(3) NULL
      )`);
    await q.query(`CREATE INDEX dataset_snapshot_created_idx ON dataset_snapshot (created_at, id)`);
    await q.query(`
      CREATE TABLE dataset_feature_view_version (
        dataset_id uuid NOT NULL REFERENCES dataset_snapshot (id) ON DELETE CASCADE,
        version_id uuid NOT NULL REFERENCES feature_view_version (id),
        PRIMARY KEY (dataset_id, version_id)
      )`);
    await q.query(
      `CREATE INDEX dataset_fvv_version_idx ON dataset_feature_view_version (version_id)`,
    );
  }

  async down(q: QueryRunner): Promise<void> {
    for (const t of [
      'dataset_feature_view_version',
      'dataset_snapshot',
      'feature_quarantine',
      'feature_event',
      'feature_view_version',
      'feature_view',
      'feature_entity',
    ]) {
      await q.query(`DROP TABLE ${t}`);
    }
  }
}
