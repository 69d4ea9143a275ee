import { type MigrationInterface, type QueryRunner } from 'typeorm';

/** Experiments and their training runs (a run is also the job that the queue schedules). */
export class Training1764300000000 implements MigrationInterface {
  name = 'Training1764300000000';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`
      CREATE TABLE experiment (
        id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
        name text NOT NULL UNIQUE,
        created_at timestamptz(3) NOT NULL DEFAULT now()
      )`);
    await q.query(`CREATE INDEX experiment_created_idx ON experiment (created_at, id)`);
    await q.query(`
      CREATE TABLE training_run (
        id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
        seq bigint GENERATED ALWAYS AS IDENTITY UNIQUE,
        experiment_id uuid NOT NULL REFERENCES experiment (id),
        trainer jsonb NOT NULL,
        trainer_version text NULL,
        dataset_id uuid NOT NULL REFERENCES dataset_snapshot (id),
        hyperparameters jsonb NOT NULL,
        gpu_count integer NOT NULL CHECK (gpu_count >= 0),
        gpu_memory_mb integer NULL,
        max_retries integer NOT NULL CHECK (max_retries >= 0),
        failures integer NOT NULL DEFAULT 0,
        git_commit text NULL,
        status text NOT NULL,
        runner_id uuid NULL REFERENCES runner (id),
        gpus jsonb NOT NULL DEFAULT '[]'::jsonb,
        lease_expires_at timestamptz(3) NULL,
        cancel_requested_at timestamptz(3) NULL,
        error text NULL,
        log_tail text NULL,
        created_at timestamptz(3) NOT NULL DEFAULT now(),
        started_at timestamptz(3) NULL,
        finished_at timestamptz(3) NULL
      )`);
    await q.query(`CREATE INDEX training_run_created_idx ON training_run (created_at, id)`);
    await q.query(
      `CREATE INDEX training_run_experiment_idx ON training_run (experiment_id, created_at, id)`,
    );
    await q.query(
      `CREATE INDEX training_run_queued_idx ON training_run (seq) WHERE status = 'QUEUED'`,
    );
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query(`DROP TABLE training_run`);
    await q.query(`DROP TABLE experiment`);
  }
}
