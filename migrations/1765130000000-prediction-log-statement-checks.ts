import { type MigrationInterface, type QueryRunner } from 'typeorm';

/**
 * The prediction log's references checked once per INSERT instead of once per row (ADR 0038).
 * Its two foreign keys ran two lookups for every logged prediction (about 15 µs of the
 * database's CPU a row under load, a third of what a row cost it) although a batch names one
 * or two deployments and versions. A statement trigger now checks the distinct pairs an INSERT
 * wrote and fails it with the same `foreign_key_violation` (23503), so the writer's poison-row
 * isolation is unchanged. Deployments and versions are never deleted; a guard keeps one that
 * the log names from being deleted, as the foreign keys did.
 */
export class PredictionLogStatementChecks1765130000000 implements MigrationInterface {
  name = 'PredictionLogStatementChecks1765130000000';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`
      CREATE FUNCTION prediction_log_references() RETURNS trigger LANGUAGE plpgsql AS $$
      DECLARE bad record;
      BEGIN
        SELECT d.deployment_id, d.model_version_id INTO bad
        FROM (SELECT DISTINCT deployment_id, model_version_id FROM inserted) d
        WHERE NOT EXISTS (SELECT 1 FROM deployment WHERE id = d.deployment_id)
           OR NOT EXISTS (SELECT 1 FROM model_version WHERE id = d.model_version_id)
        LIMIT 1;
        IF FOUND THEN
          RAISE foreign_key_violation USING
            MESSAGE = format('prediction_log names deployment %s and model version %s; one does not exist',
                             bad.deployment_id, bad.model_version_id);
        END IF;
        RETURN NULL;
      END $$`);
    await q.query(`
      CREATE TRIGGER prediction_log_references AFTER INSERT ON prediction_log
      REFERENCING NEW TABLE AS inserted FOR EACH STATEMENT
      EXECUTE FUNCTION prediction_log_references()`);
    await q.query(`
      CREATE FUNCTION prediction_log_referenced() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN
        IF (TG_TABLE_NAME = 'deployment'
            AND EXISTS (SELECT 1 FROM prediction_log WHERE deployment_id = OLD.id))
           OR (TG_TABLE_NAME = 'model_version'
            AND EXISTS (SELECT 1 FROM prediction_log WHERE model_version_id = OLD.id)) THEN
          RAISE foreign_key_violation USING
            MESSAGE = format('%s %s is named by the prediction log', TG_TABLE_NAME, OLD.id);
        END IF;
        RETURN OLD;
      END $$`);
    for (const t of ['deployment', 'model_version'])
      await q.query(`
        CREATE TRIGGER prediction_log_referenced BEFORE DELETE ON ${t}
        FOR EACH ROW EXECUTE FUNCTION prediction_log_referenced()`);
    await q.query(
      `ALTER TABLE prediction_log DROP CONSTRAINT IF EXISTS prediction_log_deployment_id_fkey`,
    );
    await q.query(
      `ALTER TABLE prediction_log DROP CONSTRAINT IF EXISTS prediction_log_model_version_id_fkey`,
    );
  }

  async down(q: QueryRunner): Promise<void> {
    // NOT VALID: checked for every row written from now on, as before, while rows that came
    // in meanwhile unchecked (replication applies rows without triggers) do not stop a downgrade.
    await q.query(`
      ALTER TABLE prediction_log ADD CONSTRAINT prediction_log_deployment_id_fkey
      FOREIGN KEY (deployment_id) REFERENCES deployment (id) NOT VALID`);
    await q.query(`
      ALTER TABLE prediction_log ADD CONSTRAINT prediction_log_model_version_id_fkey
      FOREIGN KEY (model_version_id) REFERENCES model_version (id) NOT VALID`);
    for (const t of ['deployment', 'model_version'])
      await q.query(`DROP TRIGGER prediction_log_referenced ON ${t}`);
    await q.query(`DROP FUNCTION prediction_log_referenced()`);
    await q.query(`DROP TRIGGER prediction_log_references ON prediction_log`);
    await q.query(`DROP FUNCTION prediction_log_references()`);
  }
}
