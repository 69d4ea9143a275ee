import { type MigrationInterface, type QueryRunner } from 'typeorm';

/**
 * Issue 13 (safe to share): key permissions, the dead-letter store for poison rows, and one
 * open alert per (version, kind) for alerts no monitor raised.
 */
export class Security1764800000000 implements MigrationInterface {
  name = 'Security1764800000000';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`ALTER TABLE api_key ADD COLUMN permissions text[] NOT NULL DEFAULT '{}'`);
    await q.query(`
      CREATE TABLE dead_letter (
        id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
        source text NOT NULL,
        error text NOT NULL,
        payload text NOT NULL,
        created_at timestamptz(3) NOT NULL DEFAULT now()
      )`);
    await q.query(`CREATE INDEX dead_letter_created_idx ON dead_letter (created_at, id)`);
    // Earlier duplicates of an open unmonitored alert are cleared, the newest kept open.
    await q.query(`
      UPDATE monitor_alert a SET cleared_at = a.last_seen_at
      WHERE a.monitor_id IS NULL AND a.cleared_at IS NULL AND EXISTS (
        SELECT 1 FROM monitor_alert b
        WHERE b.monitor_id IS NULL AND b.cleared_at IS NULL
          AND b.model_version_id = a.model_version_id AND b.kind = a.kind
          AND (b.opened_at, b.id) > (a.opened_at, a.id))`);
    await q.query(`CREATE UNIQUE INDEX monitor_alert_unmonitored_open_idx
      ON monitor_alert (model_version_id, kind) WHERE cleared_at IS NULL AND monitor_id IS NULL`);
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query(`DROP INDEX monitor_alert_unmonitored_open_idx`);
    await q.query(`DROP TABLE dead_letter`);
    await q.query(`ALTER TABLE api_key DROP COLUMN permissions`);
  }
}
