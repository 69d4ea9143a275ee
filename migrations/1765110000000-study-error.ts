import { type MigrationInterface, type QueryRunner } from 'typeorm';

/**
 * A study may build its training set first (ADR 0030, decision 23): when that build fails the
 * study ends FAILED, and `error` says why.
 */
export class StudyError1765110000000 implements MigrationInterface {
  name = 'StudyError1765110000000';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`ALTER TABLE study ADD COLUMN error text NULL`);
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query(`ALTER TABLE study DROP COLUMN error`);
  }
}
