import { type MigrationInterface, type QueryRunner } from 'typeorm';

/**
 * Columnar segments of the offline history (ADR 0010): every appended row gets a sequence
 * number; a compaction moves rows up to a watermark into per-bucket Arrow segments in the
 * artifact store, which point-in-time reads scan instead of the rows.
 */
export class OfflineSegments1764200000000 implements MigrationInterface {
  name = 'OfflineSegments1764200000000';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`ALTER TABLE feature_event ADD COLUMN seq bigint GENERATED ALWAYS AS IDENTITY`);
    await q.query(`CREATE INDEX feature_event_seq_idx ON feature_event (version_id, seq)`);
    await q.query(`
      CREATE TABLE feature_compaction (
        version_id uuid PRIMARY KEY REFERENCES feature_view_version (id),
        through_seq bigint NOT NULL,
        compacted_rows bigint NOT NULL,
        compacted_at timestamptz(3) NOT NULL
      )`);
    await q.query(`
      CREATE TABLE feature_segment (
        version_id uuid NOT NULL REFERENCES feature_view_version (id),
        bucket int NOT NULL,
        artifact_key text NOT NULL,
        sha256 text NOT NULL,
        size bigint NOT NULL,
        row_count bigint NOT NULL,
        PRIMARY KEY (version_id, bucket)
      )`);
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query(`DROP TABLE feature_segment`);
    await q.query(`DROP TABLE feature_compaction`);
    await q.query(`DROP INDEX feature_event_seq_idx`);
    await q.query(`ALTER TABLE feature_event DROP COLUMN seq`);
  }
}
