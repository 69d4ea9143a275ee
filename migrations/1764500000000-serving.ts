import { type MigrationInterface, type QueryRunner } from 'typeorm';

/** Deployments (an endpoint serving one model), the versions they served, the prediction log. */
export class Serving1764500000000 implements MigrationInterface {
  name = 'Serving1764500000000';

  async up(q: QueryRunner): Promise<void> {
    await q.query(`
      CREATE TABLE deployment (
        id uuid PRIMARY KEY DEFAULT gen_random_uuid(),
        endpoint text NOT NULL UNIQUE,
        model_id uuid NOT NULL REFERENCES model (id),
        canary_share double precision NOT NULL DEFAULT 0.1 CHECK (canary_share >= 0 AND canary_share <= 1),
        max_batch integer NOT NULL DEFAULT 32 CHECK (max_batch >= 1),
        max_wait_us integer NOT NULL DEFAULT 2000 CHECK (max_wait_us >= 0),
        warmup_requests integer NOT NULL DEFAULT 10 CHECK (warmup_requests >= 0),
        canary_policy jsonb NOT NULL,
        ab_arms jsonb NOT NULL DEFAULT '[]'::jsonb,
        canary_stepped_at timestamptz(3) NULL,
        created_at timestamptz(3) NOT NULL DEFAULT now()
      )`);
    await q.query(`CREATE INDEX deployment_created_idx ON deployment (created_at, id)`);
    // Every version an endpoint has served: the lineage edge version → deployment.
    await q.query(`
      CREATE TABLE deployment_version (
        deployment_id uuid NOT NULL REFERENCES deployment (id),
        model_version_id uuid NOT NULL REFERENCES model_version (id),
        first_served_at timestamptz(3) NOT NULL DEFAULT now(),
        PRIMARY KEY (deployment_id, model_version_id)
      )`);
    await q.query(`
      CREATE TABLE prediction_log (
        id uuid PRIMARY KEY,
        deployment_id uuid NOT NULL REFERENCES deployment (id),
        model_version_id uuid NOT NULL REFERENCES model_version (id),
        role text NOT NULL,
        request_key text NOT NULL,
        entity_key text NULL,
        inputs jsonb NOT NULL,
        score double precision NOT NULL,
        latency_us integer NOT NULL,
        created_at timestamptz(3) NOT NULL,
        label double precision NULL,
        label_at timestamptz(3) NULL
      )`);
    await q.query(
      `CREATE INDEX prediction_log_request_idx ON prediction_log (request_key, created_at)`,
    );
    await q.query(
      `CREATE INDEX prediction_log_version_idx ON prediction_log (model_version_id, created_at)`,
    );
    await q.query(`
      CREATE FUNCTION lineage_deployment() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN
        PERFORM lineage_link('ModelVersion:' || NEW.model_version_id, 'ModelVersion',
          (SELECT m.name || '@' || mv.version FROM model_version mv JOIN model m ON m.id = mv.model_id WHERE mv.id = NEW.model_version_id),
          'Deployment:' || NEW.deployment_id, 'Deployment',
          (SELECT endpoint FROM deployment WHERE id = NEW.deployment_id), 'deployed');
        RETURN NEW;
      END $$`);
    await q.query(`CREATE TRIGGER lineage AFTER INSERT ON deployment_version
      FOR EACH ROW EXECUTE FUNCTION lineage_deployment()`);
  }

  async down(q: QueryRunner): Promise<void> {
    await q.query(`DROP TRIGGER lineage ON deployment_version`);
    await q.query(`DROP FUNCTION lineage_deployment()`);
    await q.query(`DROP TABLE prediction_log`);
    await q.query(`DROP TABLE deployment_version`);
    await q.query(`DROP TABLE deployment`);
  }
}
