import { type MigrationInterface, type QueryRunner } from 'typeorm';

/**
 * Studies in the lineage graph (ADR 0030): the dataset a study tunes on, each trial of the
 * study, the run each trial trains in (whose model versions the registry's trigger links), and
 * the model versions `registerBest` registered from a study's best trial. Kept by triggers in
 * the same transaction as the rows, like every other lineage edge (the model-registry
 * migration); what exists is backfilled here.
 */
export class StudyLineage1765040000000 implements MigrationInterface {
  name = 'StudyLineage1765040000000';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`
      CREATE TABLE study_registration (
        study_id uuid NOT NULL REFERENCES study (id) ON DELETE CASCADE,
        model_version_id uuid NOT NULL REFERENCES model_version (id),
        trial_id uuid NOT NULL REFERENCES study_trial (id) ON DELETE CASCADE,
        created_at timestamptz(3) NOT NULL DEFAULT now(),
        PRIMARY KEY (study_id, model_version_id)
      )`);
    await q.query(`
      CREATE FUNCTION lineage_trial_label(t uuid) RETURNS text LANGUAGE sql STABLE AS $$
        SELECT s.name || ' #' || st.number FROM study_trial st JOIN study s ON s.id = st.study_id WHERE st.id = t
      $$`);
    await q.query(`
      CREATE FUNCTION lineage_study() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN
        IF NEW.dataset_id IS NOT NULL THEN
          PERFORM lineage_link('DatasetSnapshot:' || NEW.dataset_id, 'DatasetSnapshot',
            (SELECT name FROM dataset_snapshot WHERE id = NEW.dataset_id),
            'Study:' || NEW.id, 'Study', NEW.name, 'tunes');
        ELSE
          INSERT INTO lineage_node (id, kind, label) VALUES ('Study:' || NEW.id, 'Study', NEW.name)
            ON CONFLICT (id) DO NOTHING;
        END IF;
        RETURN NEW;
      END $$`);
    await q.query(`CREATE TRIGGER lineage AFTER INSERT ON study
      FOR EACH ROW EXECUTE FUNCTION lineage_study()`);
    // A trial's node on its insert; its run's edge once the run is noted (a later UPDATE).
    await q.query(`
      CREATE FUNCTION lineage_study_trial() RETURNS trigger LANGUAGE plpgsql AS $$
      DECLARE
        label text := lineage_trial_label(NEW.id);
      BEGIN
        PERFORM lineage_link('Study:' || NEW.study_id, 'Study',
          (SELECT name FROM study WHERE id = NEW.study_id), 'Trial:' || NEW.id, 'Trial', label, 'trial');
        IF NEW.run_id IS NOT NULL THEN
          PERFORM lineage_link('Trial:' || NEW.id, 'Trial', label, 'Run:' || NEW.run_id, 'Run',
            (SELECT e.name || ' / ' || (r.trainer ->> 'name') FROM training_run r JOIN experiment e ON e.id = r.experiment_id WHERE r.id = NEW.run_id),
            'runs');
        END IF;
        RETURN NEW;
      END $$`);
    await q.query(`CREATE TRIGGER lineage AFTER INSERT OR UPDATE OF run_id ON study_trial
      FOR EACH ROW EXECUTE FUNCTION lineage_study_trial()`);
    // The best trial and its study both point at the version registered from it.
    await q.query(`
      CREATE FUNCTION lineage_study_registration() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN
        PERFORM lineage_link('Trial:' || NEW.trial_id, 'Trial', lineage_trial_label(NEW.trial_id),
          'ModelVersion:' || NEW.model_version_id, 'ModelVersion',
          lineage_version_label(NEW.model_version_id), 'best trial of');
        PERFORM lineage_link('Study:' || NEW.study_id, 'Study', (SELECT name FROM study WHERE id = NEW.study_id),
          'ModelVersion:' || NEW.model_version_id, 'ModelVersion',
          lineage_version_label(NEW.model_version_id), 'registered best');
        RETURN NEW;
      END $$`);
    await q.query(`CREATE TRIGGER lineage AFTER INSERT ON study_registration
      FOR EACH ROW EXECUTE FUNCTION lineage_study_registration()`);

    // What exists already.
    await q.query(`INSERT INTO lineage_node (id, kind, label)
      SELECT 'Study:' || id, 'Study', name FROM study ON CONFLICT (id) DO NOTHING`);
    await q.query(`SELECT lineage_link('DatasetSnapshot:' || s.dataset_id, 'DatasetSnapshot', d.name,
      'Study:' || s.id, 'Study', s.name, 'tunes')
      FROM study s JOIN dataset_snapshot d ON d.id = s.dataset_id`);
    await q.query(`SELECT lineage_link('Study:' || s.id, 'Study', s.name,
      'Trial:' || t.id, 'Trial', s.name || ' #' || t.number, 'trial')
      FROM study_trial t JOIN study s ON s.id = t.study_id`);
    await q.query(`SELECT lineage_link('Trial:' || t.id, 'Trial', s.name || ' #' || t.number,
      'Run:' || t.run_id, 'Run', e.name || ' / ' || (r.trainer ->> 'name'), 'runs')
      FROM study_trial t JOIN study s ON s.id = t.study_id JOIN training_run r ON r.id = t.run_id
      JOIN experiment e ON e.id = r.experiment_id`);
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query(`DROP TRIGGER lineage ON study_registration`);
    await q.query(`DROP TRIGGER lineage ON study_trial`);
    await q.query(`DROP TRIGGER lineage ON study`);
    await q.query(`DROP FUNCTION lineage_study_registration()`);
    await q.query(`DROP FUNCTION lineage_study_trial()`);
    await q.query(`DROP FUNCTION lineage_study()`);
    await q.query(`DROP FUNCTION lineage_trial_label(uuid)`);
    await q.query(`DROP TABLE study_registration`);
    await q.query(
      `DELETE FROM lineage_edge WHERE from_node LIKE 'Study:%' OR from_node LIKE 'Trial:%' OR to_node LIKE 'Study:%' OR to_node LIKE 'Trial:%'`,
    );
    await q.query(`DELETE FROM lineage_node WHERE kind IN ('Study', 'Trial')`);
  }
}
