import { type MigrationInterface, type QueryRunner } from 'typeorm';

/**
 * Open tables (ADR 0033): each bucket segment is written a second time as a Parquet file,
 * recorded with it and swapped and deleted with it. Null for segments written before.
 */
export class OpenTables1765070000000 implements MigrationInterface {
  name = 'OpenTables1765070000000';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`
      ALTER TABLE feature_segment
        ADD COLUMN parquet_key text,
        ADD COLUMN parquet_sha256 text,
        ADD COLUMN parquet_size bigint,
        ADD COLUMN parquet_rows bigint`);
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query(`
      ALTER TABLE feature_segment
        DROP COLUMN parquet_key,
        DROP COLUMN parquet_sha256,
        DROP COLUMN parquet_size,
        DROP COLUMN parquet_rows`);
  }
}
