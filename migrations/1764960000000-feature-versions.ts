import { type MigrationInterface, type QueryRunner } from 'typeorm';

/**
 * Corrections (ADR 0022): the offline history keeps every version of an event, one row per
 * (version, entity, event id, known time). The point-in-time index goes: history reads go by
 * sequence number, and a record is judged by a probe of the primary key. Segment swaps are
 * compared-and-set on a generation that compactions and backfills both advance (ADR 0023).
 * A snapshot keeps the Parquet copy served for download beside its Arrow file (ADR 0024).
 */
export class FeatureVersions1764960000000 implements MigrationInterface {
  name = 'FeatureVersions1764960000000';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`ALTER TABLE feature_event DROP CONSTRAINT feature_event_pkey`);
    await q.query(
      `ALTER TABLE feature_event ADD PRIMARY KEY (version_id, entity_key, event_id, created_ts)`,
    );
    await q.query(`DROP INDEX feature_event_pit_idx`);
    await q.query(`ALTER TABLE feature_compaction ADD COLUMN generation bigint NOT NULL DEFAULT 0`);
    await q.query(`ALTER TABLE dataset_snapshot ADD COLUMN parquet jsonb NULL`);
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query(`ALTER TABLE dataset_snapshot DROP COLUMN parquet`);
    await q.query(`ALTER TABLE feature_compaction DROP COLUMN generation`);
    await q.query(
      `CREATE INDEX feature_event_pit_idx ON feature_event (version_id, entity_key, event_ts, created_ts)`,
    );
    // One row per event again: its first version.
    await q.query(`
      DELETE FROM feature_event a USING feature_event b
       WHERE a.version_id = b.version_id AND a.entity_key = b.entity_key
         AND a.event_id = b.event_id AND a.created_ts > b.created_ts`);
    await q.query(`ALTER TABLE feature_event DROP CONSTRAINT feature_event_pkey`);
    await q.query(`ALTER TABLE feature_event ADD PRIMARY KEY (version_id, entity_key, event_id)`);
  }
}
