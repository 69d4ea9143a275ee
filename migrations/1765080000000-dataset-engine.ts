import { type MigrationInterface, type QueryRunner } from 'typeorm';

/**
 * Which engine runs a dataset's point-in-time join (ADR 0034): recorded when the build is,
 * so a build taken over by another process runs on the same one. Earlier builds ran on the
 * evaluator.
 */
export class DatasetEngine1765080000000 implements MigrationInterface {
  name = 'DatasetEngine1765080000000';

  async up(q: QueryRunner): Promise<void> {
    await q.query(
      `ALTER TABLE dataset_snapshot ADD COLUMN engine text NOT NULL DEFAULT 'EVALUATOR'`,
    );
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query(`ALTER TABLE dataset_snapshot DROP COLUMN engine`);
  }
}
