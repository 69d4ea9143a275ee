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
        finished_at timestamptz(3) NULL,
        epochs_done integer NOT NULL DEFAULT 0,
        epochs_total integer NULL,
        summary jsonb NOT NULL DEFAULT '{}'::jsonb,
        model jsonb NULL
      )`);
    await q.query(`CREATE INDEX training_run_created_idx ON training_run (created_at, id)`);
    await q.query(
      `CREATE INDEX training_run_experiment_idx ON training_run (experiment_id, created_at, id)`,
    );
    await q.query(
      `CREATE INDEX training_run_queued_idx ON training_run (seq) WHERE status = 'QUEUED'`,
    );
    // Per-epoch metrics (step is null) and opt-in per-step ones; a redelivered report
    // overwrites its own rows instead of adding to them.
    await q.query(`
      CREATE TABLE run_metric (
        run_id uuid NOT NULL REFERENCES training_run (id) ON DELETE CASCADE,
        epoch integer NOT NULL,
        step integer NOT NULL DEFAULT -1,
        name text NOT NULL,
        value double precision NOT NULL,
        created_at timestamptz(3) NOT NULL DEFAULT now(),
        PRIMARY KEY (run_id, name, epoch, step)
      )`);
    await q.query(`
      CREATE TABLE run_hardware (
        run_id uuid NOT NULL REFERENCES training_run (id) ON DELETE CASCADE,
        at timestamptz(3) NOT NULL,
        sample jsonb NOT NULL,
        PRIMARY KEY (run_id, at)
      )`);
    // A checkpoint is recorded only once its artifact is stored and verified.
    await q.query(`
      CREATE TABLE run_checkpoint (
        run_id uuid NOT NULL REFERENCES training_run (id) ON DELETE CASCADE,
        epoch integer NOT NULL,
        artifact jsonb NOT NULL,
        created_at timestamptz(3) NOT NULL DEFAULT now(),
        PRIMARY KEY (run_id, epoch)
      )`);
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query(`DROP TABLE run_checkpoint`);
    await q.query(`DROP TABLE run_hardware`);
    await q.query(`DROP TABLE run_metric`);
    await q.query(`DROP TABLE training_run`);
    await q.query(`DROP TABLE experiment`);
  }
}
