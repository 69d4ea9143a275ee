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
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query(`DROP TABLE outbox`);
    await q.query(`DROP SEQUENCE outbox_seq`);
    await q.query(`DROP TABLE lease`);
  }
}
