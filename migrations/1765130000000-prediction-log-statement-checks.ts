import { type MigrationInterface, type QueryRunner } from 'typeorm';

/**
 * The prediction log's references checked once per INSERT instead of once per row (ADR 0038).
 * Its two foreign keys ran two lookups for every logged prediction (about 15 µs of the
 * database's CPU a row under load, a third of what a row cost it) although a batch names one
 * or two deployments and versions. A statement trigger now locks and checks the distinct
 * deployments and versions an INSERT wrote and fails it with the same `foreign_key_violation`
 * (23503), so the writer's poison-row isolation is unchanged. Everything else the keys refused
 * is still refused, with the same code: an UPDATE of a row's references to a missing one, and
 * a DELETE, an UPDATE of the id or a TRUNCATE of a deployment or version the log names.
 */
export class PredictionLogStatementChecks1765130000000 implements MigrationInterface {
  name = 'PredictionLogStatementChecks1765130000000';

  async up(q: QueryRunner): Promise<void> {
    // Every lock this migration needs, at once and in one order: taken one by one (a trigger
    // first, then dropping the keys), it could deadlock with a transaction touching these
    // tables in another order. Behind a long reader it gives up instead of making every
    // request that reads a deployment queue behind it; the process then fails to start, and
    // the running ones go on serving.
    await q.query(`SET LOCAL lock_timeout = '10s'`);
    await q.query(`LOCK TABLE prediction_log, deployment, model_version IN ACCESS EXCLUSIVE MODE`);
    // Locks the rows named (as a foreign key does: a concurrent delete waits for this
    // transaction) and fails if one is missing.
    await q.query(`
      CREATE FUNCTION prediction_log_check_references(deployments uuid[], versions uuid[])
      RETURNS void LANGUAGE plpgsql SET search_path FROM CURRENT AS $$
      DECLARE found_deployments int; found_versions int; missing text;
      BEGIN
        PERFORM 1 FROM deployment WHERE id = ANY (deployments) FOR KEY SHARE;
        GET DIAGNOSTICS found_deployments = ROW_COUNT;
        PERFORM 1 FROM model_version WHERE id = ANY (versions) FOR KEY SHARE;
        GET DIAGNOSTICS found_versions = ROW_COUNT;
        IF found_deployments < cardinality(deployments) OR found_versions < cardinality(versions) THEN
          SELECT string_agg(what, ' and ') INTO missing FROM (
            SELECT 'deployment ' || d AS what FROM unnest(deployments) AS d
            WHERE NOT EXISTS (SELECT 1 FROM deployment WHERE id = d)
            UNION ALL
            SELECT 'model version ' || v FROM unnest(versions) AS v
            WHERE NOT EXISTS (SELECT 1 FROM model_version WHERE id = v)) AS gone;
          RAISE foreign_key_violation USING
            MESSAGE = format('prediction_log names %s, which does not exist', missing);
        END IF;
      END $$`);
    await q.query(`
      CREATE FUNCTION prediction_log_references() RETURNS trigger LANGUAGE plpgsql
      SET search_path FROM CURRENT AS $$
      BEGIN
        IF TG_LEVEL = 'ROW' THEN
          PERFORM prediction_log_check_references(ARRAY[NEW.deployment_id], ARRAY[NEW.model_version_id]);
          RETURN NEW;
        END IF;
        PERFORM prediction_log_check_references(
          (SELECT array_agg(DISTINCT deployment_id) FROM inserted),
          (SELECT array_agg(DISTINCT model_version_id) FROM inserted));
        RETURN NULL;
      END $$`);
    await q.query(`
      CREATE TRIGGER prediction_log_references AFTER INSERT ON prediction_log
      REFERENCING NEW TABLE AS inserted FOR EACH STATEMENT
      EXECUTE FUNCTION prediction_log_references()`);
    await q.query(`
      CREATE TRIGGER prediction_log_references_updated
      BEFORE UPDATE OF deployment_id, model_version_id ON prediction_log FOR EACH ROW
      WHEN (NEW.deployment_id IS DISTINCT FROM OLD.deployment_id
            OR NEW.model_version_id IS DISTINCT FROM OLD.model_version_id)
      EXECUTE FUNCTION prediction_log_references()`);
    await q.query(`
      CREATE FUNCTION prediction_log_referenced() RETURNS trigger LANGUAGE plpgsql
      SET search_path FROM CURRENT AS $$
      BEGIN
        IF TG_OP = 'TRUNCATE' THEN
          IF EXISTS (SELECT 1 FROM prediction_log) THEN
            RAISE foreign_key_violation USING
              MESSAGE = format('%s is named by the prediction log', TG_TABLE_NAME);
          END IF;
          RETURN NULL;
        END IF;
        IF (TG_TABLE_NAME = 'deployment'
            AND EXISTS (SELECT 1 FROM prediction_log WHERE deployment_id = OLD.id))
           OR (TG_TABLE_NAME = 'model_version'
            AND EXISTS (SELECT 1 FROM prediction_log WHERE model_version_id = OLD.id)) THEN
          RAISE foreign_key_violation USING
            MESSAGE = format('%s %s is named by the prediction log', TG_TABLE_NAME, OLD.id);
        END IF;
        RETURN CASE TG_OP WHEN 'DELETE' THEN OLD ELSE NEW END;
      END $$`);
    for (const t of ['deployment', 'model_version']) {
      await q.query(`
        CREATE TRIGGER prediction_log_referenced BEFORE DELETE ON ${t}
        FOR EACH ROW EXECUTE FUNCTION prediction_log_referenced()`);
      await q.query(`
        CREATE TRIGGER prediction_log_referenced_id BEFORE UPDATE OF id ON ${t}
        FOR EACH ROW WHEN (NEW.id IS DISTINCT FROM OLD.id)
        EXECUTE FUNCTION prediction_log_referenced()`);
      await q.query(`
        CREATE TRIGGER prediction_log_referenced_truncate BEFORE TRUNCATE ON ${t}
        FOR EACH STATEMENT EXECUTE FUNCTION prediction_log_referenced()`);
    }
    await q.query(`ALTER TABLE prediction_log DROP CONSTRAINT prediction_log_deployment_id_fkey`);
    await q.query(
      `ALTER TABLE prediction_log DROP CONSTRAINT prediction_log_model_version_id_fkey`,
    );
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query(`SET LOCAL lock_timeout = '10s'`);
    await q.query(`LOCK TABLE prediction_log, deployment, model_version IN ACCESS EXCLUSIVE MODE`);
    // NOT VALID: checked for every row written from now on, as before, while rows that came
    // in meanwhile unchecked (replication applies rows without triggers) do not stop a downgrade.
    await q.query(`
      ALTER TABLE prediction_log ADD CONSTRAINT prediction_log_deployment_id_fkey
      FOREIGN KEY (deployment_id) REFERENCES deployment (id) NOT VALID`);
    await q.query(`
      ALTER TABLE prediction_log ADD CONSTRAINT prediction_log_model_version_id_fkey
      FOREIGN KEY (model_version_id) REFERENCES model_version (id) NOT VALID`);
    for (const t of ['deployment', 'model_version'])
      for (const g of ['', '_id', '_truncate'])
        await q.query(`DROP TRIGGER prediction_log_referenced${g} ON ${t}`);
    await q.query(`DROP FUNCTION prediction_log_referenced()`);
    await q.query(`DROP TRIGGER prediction_log_references_updated ON prediction_log`);
    await q.query(`DROP TRIGGER prediction_log_references ON prediction_log`);
    await q.query(`DROP FUNCTION prediction_log_references()`);
    await q.query(`DROP FUNCTION prediction_log_check_references(uuid[], uuid[])`);
  }
}
