import { type MigrationInterface, type QueryRunner } from 'typeorm';

/**
 * Hyperparameter search (ADR 0030): studies and their trials. A study's counters are moved
 * only by conditional UPDATEs, and its CHECK makes the database itself refuse more open queue
 * trials than its parallelism or more trials than its budget.
 */
export class HyperparameterSearch1765000000000 implements MigrationInterface {
  name = 'HyperparameterSearch1765000000000';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`
      CREATE TABLE study (
        id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
        name text NOT NULL UNIQUE,
        trainer jsonb NULL,
        trainer_version text NULL,
        dataset_id uuid NULL REFERENCES dataset_snapshot (id),
        fixed jsonb NOT NULL,
        space jsonb NOT NULL,
        metric text NOT NULL,
        direction text NOT NULL,
        sampler text NOT NULL,
        pruner text NOT NULL,
        max_trials integer NOT NULL,
        max_gpu_seconds double precision NULL,
        parallelism integer NOT NULL,
        seed bigint NOT NULL,
        gpu_count integer NOT NULL,
        status text NOT NULL DEFAULT 'RUNNING',
        trials_started integer NOT NULL DEFAULT 0,
        trials_active integer NOT NULL DEFAULT 0,
        gpu_seconds_used double precision NOT NULL DEFAULT 0,
        created_at timestamptz(3) NOT NULL DEFAULT now(),
        finished_at timestamptz(3) NULL,
        CHECK (trials_active >= 0 AND trials_active <= parallelism),
        CHECK (trials_started >= 0 AND trials_started <= max_trials)
      )`);
    await q.query(`CREATE INDEX study_created_idx ON study (created_at, id)`);
    await q.query(`
      CREATE TABLE study_trial (
        id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
        study_id uuid NOT NULL REFERENCES study (id) ON DELETE CASCADE,
        number integer NOT NULL,
        params jsonb NOT NULL,
        run_id uuid NULL REFERENCES training_run (id),
        asked boolean NOT NULL,
        state text NOT NULL DEFAULT 'RUNNING',
        value double precision NULL,
        error text NULL,
        created_at timestamptz(3) NOT NULL DEFAULT now(),
        finished_at timestamptz(3) NULL,
        UNIQUE (study_id, number)
      )`);
    await q.query(`CREATE UNIQUE INDEX study_trial_run_idx ON study_trial (run_id)`);
    await q.query(
      `CREATE INDEX study_trial_open_idx ON study_trial (study_id) WHERE state = 'RUNNING'`,
    );
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query(`DROP TABLE study_trial`);
    await q.query(`DROP TABLE study`);
  }
}
