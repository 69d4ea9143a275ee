import { type MigrationInterface, type QueryRunner } from 'typeorm';

/**
 * Models and their versions, the promotion history, evaluations, and the lineage graph.
 *
 * Lineage is kept by triggers on the tables whose rows are its nodes, so an edge is written
 * in the same transaction as the row that implies it and no service can forget one; the
 * history that exists is backfilled here.
 */
export class ModelRegistry1764400000000 implements MigrationInterface {
  name = 'ModelRegistry1764400000000';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`
      CREATE TABLE model (
        id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
        name text NOT NULL UNIQUE,
        gates jsonb NOT NULL DEFAULT '[]'::jsonb,
        production_version_id uuid NULL,
        previous_production_version_id uuid NULL,
        created_at timestamptz(3) NOT NULL DEFAULT now()
      )`);
    await q.query(`CREATE INDEX model_created_idx ON model (created_at, id)`);
    await q.query(`
      CREATE TABLE model_version (
        id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
        model_id uuid NOT NULL REFERENCES model (id),
        version integer NOT NULL CHECK (version > 0),
        state text NOT NULL,
        run_id uuid NULL REFERENCES training_run (id),
        artifact jsonb NOT NULL,
        dataset_id uuid NULL REFERENCES dataset_snapshot (id),
        dataset_hash text NULL,
        feature_refs jsonb NOT NULL,
        hyperparameters jsonb NOT NULL,
        metrics jsonb NOT NULL,
        git_commit text NULL,
        trainer jsonb NULL,
        signature jsonb NOT NULL,
        created_at timestamptz(3) NOT NULL DEFAULT now(),
        state_changed_at timestamptz(3) NOT NULL DEFAULT now(),
        UNIQUE (model_id, version)
      )`);
    await q.query(`CREATE INDEX model_version_created_idx ON model_version (created_at, id)`);
    await q.query(`CREATE INDEX model_version_run_idx ON model_version (run_id)`);
    await q.query(`
      CREATE TABLE model_version_feature_view_version (
        model_version_id uuid NOT NULL REFERENCES model_version (id),
        version_id uuid NOT NULL REFERENCES feature_view_version (id),
        PRIMARY KEY (model_version_id, version_id)
      )`);
    await q.query(
      `CREATE INDEX mvfvv_version_idx ON model_version_feature_view_version (version_id)`,
    );
    await q.query(`
      CREATE TABLE model_transition (
        id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        model_version_id uuid NOT NULL REFERENCES model_version (id),
        from_state text NULL,
        to_state text NOT NULL,
        actor text NOT NULL,
        reason text NOT NULL DEFAULT '',
        gates jsonb NOT NULL DEFAULT '[]'::jsonb,
        at timestamptz(3) NOT NULL DEFAULT now()
      )`);
    await q.query(
      `CREATE INDEX model_transition_version_idx ON model_transition (model_version_id, id)`,
    );
    await q.query(`
      CREATE TABLE model_evaluation (
        model_version_id uuid NOT NULL REFERENCES model_version (id),
        dataset_id uuid NOT NULL REFERENCES dataset_snapshot (id),
        metrics jsonb NOT NULL,
        at timestamptz(3) NOT NULL DEFAULT now(),
        PRIMARY KEY (model_version_id, dataset_id)
      )`);
    await q.query(`ALTER TABLE training_run ADD COLUMN register_as text NULL`);
    await q.query(`ALTER TABLE training_run ADD COLUMN model_version_id uuid NULL`);

    // Lineage: nodes are "Kind:id" (the GraphQL type and local id), edges point downstream.
    await q.query(`
      CREATE TABLE lineage_node (
        id text PRIMARY KEY,
        kind text NOT NULL,
        label text NOT NULL,
        created_at timestamptz(3) NOT NULL DEFAULT now()
      )`);
    await q.query(`
      CREATE TABLE lineage_edge (
        from_node text NOT NULL REFERENCES lineage_node (id),
        to_node text NOT NULL REFERENCES lineage_node (id),
        relation text NOT NULL,
        PRIMARY KEY (from_node, to_node)
      )`);
    await q.query(`CREATE INDEX lineage_edge_to_idx ON lineage_edge (to_node, from_node)`);
    await q.query(`
      CREATE FUNCTION lineage_link(f text, f_kind text, f_label text, t text, t_kind text, t_label text, rel text)
      RETURNS void LANGUAGE sql AS $$
        INSERT INTO lineage_node (id, kind, label) VALUES (f, f_kind, f_label), (t, t_kind, t_label)
          ON CONFLICT (id) DO NOTHING;
        INSERT INTO lineage_edge (from_node, to_node, relation) VALUES (f, t, rel)
          ON CONFLICT DO NOTHING;
      $$`);
    // A source feeds each version that materializes it.
    await q.query(`
      CREATE FUNCTION lineage_feature_view_version() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN
        PERFORM lineage_link('Source:' || NEW.source, 'Source', NEW.source,
          'FeatureViewVersion:' || NEW.id, 'FeatureViewVersion',
          (SELECT name FROM feature_view WHERE id = NEW.view_id) || '@' || NEW.version, 'materializes');
        RETURN NEW;
      END $$`);
    await q.query(`CREATE TRIGGER lineage AFTER INSERT ON feature_view_version
      FOR EACH ROW EXECUTE FUNCTION lineage_feature_view_version()`);
    // Feature view versions feed the datasets built from them.
    await q.query(`
      CREATE FUNCTION lineage_dataset() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN
        PERFORM lineage_link('FeatureViewVersion:' || NEW.version_id, 'FeatureViewVersion',
          (SELECT v.name || '@' || fv.version FROM feature_view_version fv JOIN feature_view v ON v.id = fv.view_id WHERE fv.id = NEW.version_id),
          'DatasetSnapshot:' || NEW.dataset_id, 'DatasetSnapshot',
          (SELECT name FROM dataset_snapshot WHERE id = NEW.dataset_id), 'builds');
        RETURN NEW;
      END $$`);
    await q.query(`CREATE TRIGGER lineage AFTER INSERT ON dataset_feature_view_version
      FOR EACH ROW EXECUTE FUNCTION lineage_dataset()`);
    // A dataset trains the runs that use it.
    await q.query(`
      CREATE FUNCTION lineage_run() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN
        PERFORM lineage_link('DatasetSnapshot:' || NEW.dataset_id, 'DatasetSnapshot',
          (SELECT name FROM dataset_snapshot WHERE id = NEW.dataset_id),
          'Run:' || NEW.id, 'Run',
          (SELECT name FROM experiment WHERE id = NEW.experiment_id) || ' / ' || (NEW.trainer ->> 'name'), 'trains');
        RETURN NEW;
      END $$`);
    await q.query(`CREATE TRIGGER lineage AFTER INSERT ON training_run
      FOR EACH ROW EXECUTE FUNCTION lineage_run()`);
    // A run produces the model versions registered from it.
    await q.query(`
      CREATE FUNCTION lineage_model_version() RETURNS trigger LANGUAGE plpgsql AS $$
      DECLARE label text := (SELECT name FROM model WHERE id = NEW.model_id) || '@' || NEW.version;
      BEGIN
        IF NEW.run_id IS NOT NULL THEN
          PERFORM lineage_link('Run:' || NEW.run_id, 'Run',
            (SELECT e.name || ' / ' || (r.trainer ->> 'name') FROM training_run r JOIN experiment e ON e.id = r.experiment_id WHERE r.id = NEW.run_id),
            'ModelVersion:' || NEW.id, 'ModelVersion', label, 'produces');
        ELSE
          INSERT INTO lineage_node (id, kind, label) VALUES ('ModelVersion:' || NEW.id, 'ModelVersion', label)
            ON CONFLICT (id) DO NOTHING;
        END IF;
        RETURN NEW;
      END $$`);
    await q.query(`CREATE TRIGGER lineage AFTER INSERT ON model_version
      FOR EACH ROW EXECUTE FUNCTION lineage_model_version()`);
    // The feature view versions a model version reads when it serves.
    await q.query(`
      CREATE FUNCTION lineage_model_features() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN
        PERFORM lineage_link('FeatureViewVersion:' || NEW.version_id, 'FeatureViewVersion',
          (SELECT v.name || '@' || fv.version FROM feature_view_version fv JOIN feature_view v ON v.id = fv.view_id WHERE fv.id = NEW.version_id),
          'ModelVersion:' || NEW.model_version_id, 'ModelVersion',
          (SELECT m.name || '@' || mv.version FROM model_version mv JOIN model m ON m.id = mv.model_id WHERE mv.id = NEW.model_version_id),
          'serves');
        RETURN NEW;
      END $$`);
    await q.query(`CREATE TRIGGER lineage AFTER INSERT ON model_version_feature_view_version
      FOR EACH ROW EXECUTE FUNCTION lineage_model_features()`);

    // What exists already.
    await q.query(`SELECT lineage_link('Source:' || fv.source, 'Source', fv.source,
      'FeatureViewVersion:' || fv.id, 'FeatureViewVersion', v.name || '@' || fv.version, 'materializes')
      FROM feature_view_version fv JOIN feature_view v ON v.id = fv.view_id`);
    await q.query(`SELECT lineage_link('FeatureViewVersion:' || l.version_id, 'FeatureViewVersion', v.name || '@' || fv.version,
      'DatasetSnapshot:' || l.dataset_id, 'DatasetSnapshot', d.name, 'builds')
      FROM dataset_feature_view_version l JOIN feature_view_version fv ON fv.id = l.version_id
      JOIN feature_view v ON v.id = fv.view_id JOIN dataset_snapshot d ON d.id = l.dataset_id`);
    await q.query(`SELECT lineage_link('DatasetSnapshot:' || r.dataset_id, 'DatasetSnapshot', d.name,
      'Run:' || r.id, 'Run', e.name || ' / ' || (r.trainer ->> 'name'), 'trains')
      FROM training_run r JOIN dataset_snapshot d ON d.id = r.dataset_id JOIN experiment e ON e.id = r.experiment_id`);
  }

  async down(q: QueryRunner): Promise<void> {
    for (const t of ['feature_view_version', 'dataset_feature_view_version', 'training_run'])
      await q.query(`DROP TRIGGER lineage ON ${t}`);
    for (const f of [
      'lineage_feature_view_version',
      'lineage_dataset',
      'lineage_run',
      'lineage_model_version',
      'lineage_model_features',
    ])
      await q.query(`DROP FUNCTION ${f}() CASCADE`);
    await q.query(`DROP FUNCTION lineage_link(text, text, text, text, text, text, text)`);
    await q.query(`DROP TABLE lineage_edge`);
    await q.query(`DROP TABLE lineage_node`);
    await q.query(`ALTER TABLE training_run DROP COLUMN model_version_id`);
    await q.query(`ALTER TABLE training_run DROP COLUMN register_as`);
    for (const t of [
      'model_evaluation',
      'model_transition',
      'model_version_feature_view_version',
      'model_version',
      'model',
    ])
      await q.query(`DROP TABLE ${t}`);
  }
}
