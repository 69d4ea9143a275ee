import { type MigrationInterface, type QueryRunner } from 'typeorm';

/**
 * Monitors (data drift, performance) per deployment, their reports, and alerts — at most one
 * open alert per (monitor, version) until it clears — and retraining policies and runs. Reports and alerts join the lineage
 * graph: the version and the windows a report judged point to it, a report to its alert.
 */
export class Monitoring1764700000000 implements MigrationInterface {
  name = 'Monitoring1764700000000';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`
      CREATE TABLE monitor (
        id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
        deployment_id uuid NOT NULL REFERENCES deployment (id),
        kind text NOT NULL CHECK (kind IN ('DATA_DRIFT', 'PERFORMANCE')),
        window_ms bigint NOT NULL CHECK (window_ms > 0),
        step_ms bigint NOT NULL CHECK (step_ms > 0),
        settings jsonb NOT NULL,
        last_run_at timestamptz(3) NULL,
        created_at timestamptz(3) NOT NULL DEFAULT now(),
        UNIQUE (deployment_id, kind)
      )`);
    await q.query(`
      CREATE TABLE monitor_report (
        id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
        monitor_id uuid NOT NULL REFERENCES monitor (id),
        kind text NOT NULL,
        model_version_id uuid NOT NULL REFERENCES model_version (id),
        reference_dataset_id uuid NULL REFERENCES dataset_snapshot (id),
        window_start timestamptz(3) NOT NULL,
        window_end timestamptz(3) NOT NULL,
        predictions integer NOT NULL,
        labels integer NULL,
        alerting boolean NOT NULL,
        summary text NOT NULL,
        body jsonb NOT NULL,
        created_at timestamptz(3) NOT NULL DEFAULT now()
      )`);
    await q.query(
      `CREATE INDEX monitor_report_monitor_idx ON monitor_report (monitor_id, created_at, id)`,
    );
    await q.query(`
      CREATE TABLE monitor_alert (
        id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
        monitor_id uuid NULL REFERENCES monitor (id),
        model_version_id uuid NOT NULL REFERENCES model_version (id),
        kind text NOT NULL,
        report_id uuid NULL REFERENCES monitor_report (id),
        summary text NOT NULL,
        opened_at timestamptz(3) NOT NULL,
        last_seen_at timestamptz(3) NOT NULL,
        acknowledged_at timestamptz(3) NULL,
        acknowledged_by text NULL,
        cleared_at timestamptz(3) NULL,
        created_at timestamptz(3) NOT NULL DEFAULT now()
      )`);
    // De-duplication: one open alert per monitor and version.
    await q.query(`CREATE UNIQUE INDEX monitor_alert_open_idx ON monitor_alert (monitor_id, model_version_id)
      WHERE cleared_at IS NULL AND monitor_id IS NOT NULL`);
    await q.query(`CREATE INDEX monitor_alert_created_idx ON monitor_alert (created_at, id)`);
    // Names the lineage triggers below share: a version's label, a report's node kind and label.
    await q.query(`
      CREATE FUNCTION lineage_version_label(v uuid) RETURNS text LANGUAGE sql STABLE AS $$
        SELECT m.name || '@' || mv.version FROM model_version mv JOIN model m ON m.id = mv.model_id WHERE mv.id = v
      $$`);
    await q.query(`
      CREATE FUNCTION lineage_report_kind(kind text) RETURNS text LANGUAGE sql IMMUTABLE AS $$
        SELECT CASE kind WHEN 'DATA_DRIFT' THEN 'DriftReport' ELSE 'PerformanceReport' END
      $$`);
    await q.query(`
      CREATE FUNCTION lineage_report_label(kind text, window_end timestamptz) RETURNS text LANGUAGE sql IMMUTABLE AS $$
        SELECT kind || ' ' || to_char(window_end AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"')
      $$`);
    await q.query(`
      CREATE FUNCTION lineage_monitor_report() RETURNS trigger LANGUAGE plpgsql AS $$
      DECLARE
        node_kind text := lineage_report_kind(NEW.kind);
        node text := node_kind || ':' || NEW.id;
        label text := lineage_report_label(NEW.kind, NEW.window_end);
      BEGIN
        PERFORM lineage_link('ModelVersion:' || NEW.model_version_id, 'ModelVersion',
          lineage_version_label(NEW.model_version_id), node, node_kind, label, 'judged');
        PERFORM lineage_link('Deployment:' || mo.deployment_id, 'Deployment', d.endpoint, node, node_kind, label, 'traffic')
          FROM monitor mo JOIN deployment d ON d.id = mo.deployment_id WHERE mo.id = NEW.monitor_id;
        IF NEW.reference_dataset_id IS NOT NULL THEN
          PERFORM lineage_link('DatasetSnapshot:' || NEW.reference_dataset_id, 'DatasetSnapshot',
            (SELECT name FROM dataset_snapshot WHERE id = NEW.reference_dataset_id), node, node_kind, label, 'reference');
        END IF;
        RETURN NEW;
      END $$`);
    await q.query(`CREATE TRIGGER lineage AFTER INSERT ON monitor_report
      FOR EACH ROW EXECUTE FUNCTION lineage_monitor_report()`);
    await q.query(`
      CREATE FUNCTION lineage_monitor_alert() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN
        IF NEW.report_id IS NOT NULL THEN
          PERFORM lineage_link(lineage_report_kind(r.kind) || ':' || r.id, lineage_report_kind(r.kind),
            lineage_report_label(r.kind, r.window_end), 'Alert:' || NEW.id, 'Alert', NEW.kind, 'raised')
          FROM monitor_report r WHERE r.id = NEW.report_id;
        ELSE
          PERFORM lineage_link('ModelVersion:' || NEW.model_version_id, 'ModelVersion',
            lineage_version_label(NEW.model_version_id), 'Alert:' || NEW.id, 'Alert', NEW.kind, 'raised');
        END IF;
        RETURN NEW;
      END $$`);
    await q.query(`CREATE TRIGGER lineage AFTER INSERT ON monitor_alert
      FOR EACH ROW EXECUTE FUNCTION lineage_monitor_alert()`);

    // Retraining: a policy per model, and each retraining with its timeline.
    await q.query(`
      CREATE TABLE retraining_policy (
        model_id uuid PRIMARY KEY REFERENCES model (id),
        policy jsonb NOT NULL
      )`);
    await q.query(`
      CREATE TABLE retraining (
        id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
        model_id uuid NOT NULL REFERENCES model (id),
        deployment_id uuid NOT NULL REFERENCES deployment (id),
        alert_id uuid NULL REFERENCES monitor_alert (id),
        champion_id uuid NOT NULL REFERENCES model_version (id),
        cause text NOT NULL,
        status text NOT NULL,
        policy jsonb NOT NULL,
        train_dataset_id uuid NULL REFERENCES dataset_snapshot (id),
        holdout_dataset_id uuid NULL REFERENCES dataset_snapshot (id),
        run_id uuid NULL REFERENCES training_run (id),
        challenger_id uuid NULL REFERENCES model_version (id),
        steps jsonb NOT NULL DEFAULT '[]'::jsonb,
        updated_at timestamptz(3) NOT NULL,
        created_at timestamptz(3) NOT NULL
      )`);
    await q.query(`CREATE INDEX retraining_model_idx ON retraining (model_id, created_at)`);
    // Lineage: alert → retraining → its snapshots and run (the run → version edge exists).
    await q.query(`
      CREATE FUNCTION lineage_retraining() RETURNS trigger LANGUAGE plpgsql AS $$
      DECLARE
        node text := 'Retraining:' || NEW.id;
        label text := 'retraining ' || to_char(NEW.created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS"Z"');
      BEGIN
        IF NEW.alert_id IS NOT NULL THEN
          PERFORM lineage_link('Alert:' || NEW.alert_id, 'Alert', (SELECT kind FROM monitor_alert WHERE id = NEW.alert_id),
            node, 'Retraining', label, 'triggered');
        ELSE
          PERFORM lineage_link('ModelVersion:' || NEW.champion_id, 'ModelVersion',
            lineage_version_label(NEW.champion_id), node, 'Retraining', label, 'retrained');
        END IF;
        IF NEW.train_dataset_id IS NOT NULL THEN
          PERFORM lineage_link(node, 'Retraining', label, 'DatasetSnapshot:' || NEW.train_dataset_id, 'DatasetSnapshot',
            (SELECT name FROM dataset_snapshot WHERE id = NEW.train_dataset_id), 'built');
          PERFORM lineage_link(node, 'Retraining', label, 'DatasetSnapshot:' || NEW.holdout_dataset_id, 'DatasetSnapshot',
            (SELECT name FROM dataset_snapshot WHERE id = NEW.holdout_dataset_id), 'held out');
        END IF;
        IF NEW.run_id IS NOT NULL THEN
          PERFORM lineage_link(node, 'Retraining', label, 'Run:' || NEW.run_id, 'Run', NEW.run_id::text, 'submitted');
        END IF;
        RETURN NEW;
      END $$`);
    await q.query(`CREATE TRIGGER lineage AFTER INSERT OR UPDATE ON retraining
      FOR EACH ROW EXECUTE FUNCTION lineage_retraining()`);
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query(`DROP TRIGGER lineage ON retraining`);
    await q.query(`DROP FUNCTION lineage_retraining()`);
    await q.query(`DROP TABLE retraining`);
    await q.query(`DROP TABLE retraining_policy`);
    await q.query(`DROP TRIGGER lineage ON monitor_alert`);
    await q.query(`DROP TRIGGER lineage ON monitor_report`);
    await q.query(`DROP FUNCTION lineage_monitor_alert()`);
    await q.query(`DROP FUNCTION lineage_monitor_report()`);
    await q.query(`DROP FUNCTION lineage_report_label(text, timestamptz)`);
    await q.query(`DROP FUNCTION lineage_report_kind(text)`);
    await q.query(`DROP FUNCTION lineage_version_label(uuid)`);
    for (const t of ['monitor_alert', 'monitor_report', 'monitor'])
      await q.query(`DROP TABLE ${t}`);
  }
}
