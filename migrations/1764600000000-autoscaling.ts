import { type MigrationInterface, type QueryRunner } from 'typeorm';

/** Each deployment's autoscaling policy (replica bounds, targets, hysteresis, cool-down). */
export class Autoscaling1764600000000 implements MigrationInterface {
  name = 'Autoscaling1764600000000';

  async up(q: QueryRunner): Promise<void> {
    // '{}' reads as the default policy: the columns the domain leaves out take its defaults.
    await q.query(
      `ALTER TABLE deployment ADD COLUMN autoscale_policy jsonb NOT NULL DEFAULT '{}'::jsonb`,
    );
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query(`ALTER TABLE deployment DROP COLUMN autoscale_policy`);
  }
}
