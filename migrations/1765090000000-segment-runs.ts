import { type MigrationInterface, type QueryRunner } from 'typeorm';

/**
 * A bucket's compacted history as a base segment and deltas (ADR 0035): `run` 0 is the base,
 * 1… the deltas, oldest first. Every segment stored so far is a base.
 */
export class SegmentRuns1765090000000 implements MigrationInterface {
  name = 'SegmentRuns1765090000000';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`ALTER TABLE feature_segment ADD COLUMN run int NOT NULL DEFAULT 0`);
    await q.query(`ALTER TABLE feature_segment DROP CONSTRAINT feature_segment_pkey`);
    await q.query(`ALTER TABLE feature_segment ADD PRIMARY KEY (version_id, bucket, run)`);
  }

  async down(q: QueryRunner): Promise<void> {
    // One segment per bucket cannot hold what deltas hold: refused until a backfill or a
    // merging compaction has folded them into their bases.
    const [{ n }] = (await q.query(
      `SELECT count(*)::int AS n FROM feature_segment WHERE run > 0`,
    )) as { n: number }[];
    if (n > 0)
      throw new Error(`${n} delta segments remain: merge them into their bases before reverting`);
    await q.query(`ALTER TABLE feature_segment DROP CONSTRAINT feature_segment_pkey`);
    await q.query(`ALTER TABLE feature_segment ADD PRIMARY KEY (version_id, bucket)`);
    await q.query(`ALTER TABLE feature_segment DROP COLUMN run`);
  }
}
