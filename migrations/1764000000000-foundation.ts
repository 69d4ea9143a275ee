import { type MigrationInterface, type QueryRunner } from 'typeorm';

/**
 * API keys and runner registrations. Timestamps that serve as pagination keys are
 * millisecond precision (timestamptz(3)) so a cursor built from a JS Date matches the
 * stored value exactly.
 */
export class Foundation1764000000000 implements MigrationInterface {
  name = 'Foundation1764000000000';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`
      CREATE TABLE api_key (
        id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
        name text NOT NULL,
        role text NOT NULL CHECK (role IN ('VIEWER', 'EDITOR', 'ADMIN', 'RUNNER')),
        prefix text NOT NULL UNIQUE,
        secret_hash text NOT NULL,
        created_at timestamptz(3) NOT NULL DEFAULT now(),
        created_by_id uuid NULL REFERENCES api_key (id),
        last_used_at timestamptz(3) NULL,
        revoked_at timestamptz(3) NULL
      )`);
    await q.query(`CREATE INDEX api_key_created_idx ON api_key (created_at, id)`);
    await q.query(`
      CREATE TABLE runner (
        id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
        name text NOT NULL,
        hostname text NOT NULL,
        gpus jsonb NOT NULL DEFAULT '[]'::jsonb,
        key_id uuid NOT NULL REFERENCES api_key (id),
        registered_at timestamptz(3) NOT NULL,
        last_heartbeat_at timestamptz(3) NOT NULL,
        stopped_at timestamptz(3) NULL
      )`);
    await q.query(`CREATE INDEX runner_registered_idx ON runner (registered_at, id)`);
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query(`DROP TABLE runner`);
    await q.query(`DROP TABLE api_key`);
  }
}
