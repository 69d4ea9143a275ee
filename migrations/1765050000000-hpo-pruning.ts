import { type MigrationInterface, type QueryRunner } from 'typeorm';

/**
 * Pruning from checkpoints (ADR 0030): a pruner's settings on the study; a trial's per-epoch
 * objective, epochs trained, the epoch it was pruned at and, under ASHA, its rung, its value
 * at each rung and its earlier rungs' runs; and a run that starts from another run's newest
 * checkpoint (a trial promoted to the next rung).
 */
export class HpoPruning1765050000000 implements MigrationInterface {
  name = 'HpoPruning1765050000000';

  async up(q: QueryRunner): Promise<void> {
    await q.query(
      `ALTER TABLE training_run ADD COLUMN resume_from_run_id uuid NULL REFERENCES training_run (id)`,
    );
    await q.query(`ALTER TABLE study ADD COLUMN pruner_config jsonb NOT NULL DEFAULT '{}'`);
    await q.query(`
      ALTER TABLE study_trial
        ADD COLUMN past_run_ids uuid[] NOT NULL DEFAULT '{}',
        ADD COLUMN rung integer NULL,
        ADD COLUMN rung_values double precision[] NOT NULL DEFAULT '{}',
        ADD COLUMN intermediate jsonb NOT NULL DEFAULT '[]',
        ADD COLUMN epochs_trained integer NOT NULL DEFAULT 0,
        ADD COLUMN pruned_at_epoch integer NULL`);
    // Open trials are RUNNING or, under ASHA, PAUSED at a rung.
    await q.query(`DROP INDEX study_trial_open_idx`);
    await q.query(
      `CREATE INDEX study_trial_open_idx ON study_trial (study_id) WHERE state IN ('RUNNING', 'PAUSED')`,
    );
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query(`DROP INDEX study_trial_open_idx`);
    await q.query(
      `CREATE INDEX study_trial_open_idx ON study_trial (study_id) WHERE state = 'RUNNING'`,
    );
    await q.query(`
      ALTER TABLE study_trial
        DROP COLUMN past_run_ids, DROP COLUMN rung, DROP COLUMN rung_values,
        DROP COLUMN intermediate, DROP COLUMN epochs_trained, DROP COLUMN pruned_at_epoch`);
    await q.query(`ALTER TABLE study DROP COLUMN pruner_config`);
    await q.query(`ALTER TABLE training_run DROP COLUMN resume_from_run_id`);
  }
}
