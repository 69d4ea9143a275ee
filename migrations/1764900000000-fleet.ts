import { type MigrationInterface, type QueryRunner } from 'typeorm';

/**
 * Issue 15 (the fleet): leases for the singleton loops, and the transactional outbox that
 * every domain event leaves through (docs/adr/0027).
 */
export class Fleet1764900000000 implements MigrationInterface {
  name = 'Fleet1764900000000';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`
      CREATE TABLE lease (
        name text PRIMARY KEY,
        holder text NOT NULL,
        token bigint NOT NULL,
        expires_at timestamptz(3) NOT NULL
      )`);
    await q.query(`
      CREATE TABLE outbox (
        id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        topic text NOT NULL,
        payload jsonb NOT NULL,
        created_at timestamptz(3) NOT NULL DEFAULT clock_timestamp(),
        seq bigint NULL UNIQUE,
        published_at timestamptz(3) NULL
      )`);
    await q.query(`CREATE SEQUENCE outbox_seq`);
    await q.query(`CREATE INDEX outbox_unnumbered_idx ON outbox (id) WHERE seq IS NULL`);
    await q.query(
      `CREATE INDEX outbox_unpublished_idx ON outbox (seq) WHERE seq IS NOT NULL AND published_at IS NULL`,
    );
    await q.query(`CREATE INDEX outbox_topic_idx ON outbox (topic, seq)`);
    await q.query(`CREATE INDEX outbox_published_idx ON outbox (published_at)`);
    // Steps of workflows carry idempotency keys: a retried step finds what it made before.
    await q.query(`ALTER TABLE training_run ADD COLUMN idempotency_key text NULL UNIQUE`);
    await q.query(`ALTER TABLE dataset_snapshot ADD COLUMN idempotency_key text NULL UNIQUE`);
    // A build is held by one process, alive while it beats; a stalled one is taken over and
    // rebuilt from the spine stored when it began.
    await q.query(`ALTER TABLE dataset_snapshot ADD COLUMN spine_file jsonb NULL`);
    await q.query(`ALTER TABLE dataset_snapshot ADD COLUMN builder text NULL`);
    await q.query(`ALTER TABLE dataset_snapshot ADD COLUMN heartbeat_at timestamptz(3) NULL`);
    // A retraining reads the labelled traffic of a fixed window, whenever its step runs.
    await q.query(`ALTER TABLE retraining ADD COLUMN window_end timestamptz(3) NULL`);
    await q.query(`CREATE UNIQUE INDEX retraining_one_open_idx ON retraining (model_id)
      WHERE status NOT IN ('PROMOTED', 'REJECTED', 'STOPPED_BAD_DATA', 'FAILED')`);
    // The autoscaler's state per deployment and version, shared by every process: the leased
    // autoscaler decides, every process runs that many replicas.
    await q.query(`
      CREATE TABLE deployment_scaling (
        deployment_id uuid NOT NULL REFERENCES deployment (id),
        version_id uuid NOT NULL REFERENCES model_version (id),
        replicas integer NOT NULL CHECK (replicas >= 0),
        memory jsonb NOT NULL,
        reviewed_at bigint NULL,
        PRIMARY KEY (deployment_id, version_id)
      )`);
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query(`DROP TABLE deployment_scaling`);
    await q.query(`DROP INDEX retraining_one_open_idx`);
    await q.query(`ALTER TABLE retraining DROP COLUMN window_end`);
    await q.query(`ALTER TABLE dataset_snapshot DROP COLUMN heartbeat_at`);
    await q.query(`ALTER TABLE dataset_snapshot DROP COLUMN builder`);
    await q.query(`ALTER TABLE dataset_snapshot DROP COLUMN spine_file`);
    await q.query(`ALTER TABLE dataset_snapshot DROP COLUMN idempotency_key`);
    await q.query(`ALTER TABLE training_run DROP COLUMN idempotency_key`);
    await q.query(`DROP TABLE outbox`);
    await q.query(`DROP SEQUENCE outbox_seq`);
    await q.query(`DROP TABLE lease`);
  }
}
