import { type MigrationInterface, type QueryRunner } from 'typeorm';

/**
 * A record is quarantined once per view version and source while it waits for replay: a
 * stream entry redelivered after its consumer died between the quarantine write and the
 * acknowledgement no longer adds a second row (ADR 0008). Rows already doubled keep their
 * oldest copy; the copies are the same record.
 */
export class QuarantineOnce1765100000000 implements MigrationInterface {
  name = 'QuarantineOnce1765100000000';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`
      DELETE FROM feature_quarantine d
       USING feature_quarantine k
       WHERE d.replayed_at IS NULL AND k.replayed_at IS NULL
         AND d.version_id = k.version_id AND d.source = k.source
         AND md5(d.record::text) = md5(k.record::text)
         AND (k.created_at, k.id) < (d.created_at, d.id)`);
    await q.query(
      `CREATE UNIQUE INDEX feature_quarantine_waiting_record_idx
         ON feature_quarantine (version_id, source, md5(record::text))
         WHERE replayed_at IS NULL`,
    );
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query(`DROP INDEX feature_quarantine_waiting_record_idx`);
  }
}
