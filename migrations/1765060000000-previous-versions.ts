import { type MigrationInterface, type QueryRunner } from 'typeorm';

/**
 * The stored-version probe of ingestion (ADR 0022) as a function whose planner settings
 * allow no sort: its `ORDER BY … LIMIT 1` can then only be answered by a backward seek on the
 * primary key, whatever the statistics say about a view version loaded since the last
 * ANALYZE. As a plain statement PostgreSQL sometimes filtered each probe through
 * (version_id, seq) instead, scanning the whole version per record (a 60 s timeout).
 */
export class PreviousVersions1765060000000 implements MigrationInterface {
  name = 'PreviousVersions1765060000000';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`
      CREATE FUNCTION feature_previous_versions(
        p_version uuid, p_keys text[], p_events text[], p_known float8[])
      RETURNS TABLE (n int, ts float8, cts float8, f jsonb)
      LANGUAGE sql STABLE
      SET enable_sort = off
      SET enable_incremental_sort = off
      AS $$
        SELECT u.n::int, p.ts, p.cts, p.f
          FROM unnest(p_keys, p_events, p_known) WITH ORDINALITY AS u(k, e, known, n)
          JOIN LATERAL (
            SELECT x.version_id, x.entity_key, x.event_id,
                   (extract(epoch FROM x.event_ts) * 1000)::float8 AS ts,
                   (extract(epoch FROM x.created_ts) * 1000)::float8 AS cts, x.fields AS f
              FROM feature_event x
             WHERE (x.version_id, x.entity_key, x.event_id, x.created_ts)
                   <= (p_version, u.k, u.e, to_timestamp(u.known / 1000.0)::timestamptz(3))
             ORDER BY x.version_id DESC, x.entity_key DESC, x.event_id DESC, x.created_ts DESC
             LIMIT 1) p
            ON p.version_id = p_version AND p.entity_key = u.k AND p.event_id = u.e
      $$`);
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query(`DROP FUNCTION feature_previous_versions(uuid, text[], text[], float8[])`);
  }
}
