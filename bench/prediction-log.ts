import { randomUUID } from 'node:crypto';
import { ServingRole } from '../src/domain/serving/deployment';
import { timeOrderedId } from '../src/domain/shared/time-ordered-id';
import { heavyDeployments } from './serving';
import { median, round, scale, writeResult } from './support/bench';
import { startBenchPlatform } from './support/platform';

/**
 * prediction-log: what the api's prediction log writer costs per row written (ADR 0037, 0038),
 * on a quiet machine, through the real writer (`SqlPredictionLog`, batches of 400 rows, each
 * flush timed end to end), for rows of 10 and of 500 inputs. Three ways, in alternating rounds
 * over the same growing table:
 * - as migrated: references checked once per INSERT, time-ordered (UUID v7) ids;
 * - baseline `fk`: the two foreign keys put back (checked row by row) and the trigger off;
 * - baseline `v4`: as migrated, but random (UUID v4) ids.
 */
const ROWS_PER_BATCH = 400;

export async function main(): Promise<void> {
  const batches = Math.max(5, Math.round(40 * scale()));
  const p = await startBenchPlatform('prediction_log', {
    FEATURE_STREAM_CONSUMER: 'off',
    CANARY_INTERVAL_MS: '0',
  });
  try {
    const s = p.app.services;
    const ds = p.app.db.dataSource;
    const admin = { keyId: 'bench', name: 'bench', role: 'ADMIN' as never };
    const { batched } = await heavyDeployments(s, admin);
    const [{ id: deploymentId }] = (await ds.query(
      `SELECT id FROM deployment WHERE endpoint = $1`,
      [batched],
    )) as { id: string }[];
    const [{ id: versionId }] = (await ds.query(`SELECT id FROM model_version`)) as {
      id: string;
    }[];

    const baseline = async (on: boolean) => {
      if (on) {
        await ds.query(`ALTER TABLE prediction_log DISABLE TRIGGER prediction_log_references`);
        await ds.query(`ALTER TABLE prediction_log ADD CONSTRAINT bench_deployment_fkey
          FOREIGN KEY (deployment_id) REFERENCES deployment (id) NOT VALID`);
        await ds.query(`ALTER TABLE prediction_log ADD CONSTRAINT bench_version_fkey
          FOREIGN KEY (model_version_id) REFERENCES model_version (id) NOT VALID`);
      } else {
        await ds.query(
          `ALTER TABLE prediction_log DROP CONSTRAINT IF EXISTS bench_deployment_fkey`,
        );
        await ds.query(`ALTER TABLE prediction_log DROP CONSTRAINT IF EXISTS bench_version_fkey`);
        await ds.query(`ALTER TABLE prediction_log ENABLE TRIGGER prediction_log_references`);
      }
    };
    /** µs per row: `batches` flushes of 400 rows through the writer. */
    const write = async (width: number, id: (ms: number) => string): Promise<number> => {
      const inputs = Float32Array.from({ length: width }, (_, i) => Math.sin(i));
      let us = 0;
      for (let b = 0; b < batches; b++) {
        const at = new Date();
        const rows = Array.from({ length: ROWS_PER_BATCH }, (_, i) => ({
          id: id(at.getTime()),
          deploymentId,
          versionId,
          role: ServingRole.PRODUCTION,
          requestKey: `user-${(b * ROWS_PER_BATCH + i) % 1_000}`,
          entityKey: 'ORD',
          inputs,
          score: Math.random(),
          latencyUs: 100,
          at,
        }));
        const t0 = performance.now();
        await s.predictionLog.append(rows);
        await s.predictionLog.flush();
        us += (performance.now() - t0) * 1_000;
      }
      return us / (batches * ROWS_PER_BATCH);
    };
    const v4 = () => randomUUID();
    const results: Record<string, number[]> = {};
    const push = (k: string, v: number) => (results[k] ??= []).push(v);
    for (let round = 0; round < 4; round++) {
      for (const width of [10, 500]) {
        push(`migrated_${width}`, await write(width, timeOrderedId));
        await baseline(true);
        push(`fk_${width}`, await write(width, timeOrderedId));
        await baseline(false);
        push(`v4_${width}`, await write(width, v4));
      }
    }
    const stats = s.predictionLog.stats();
    if (stats.deadLettered || stats.lost)
      throw new Error(`rows not written: ${JSON.stringify(stats)}`);
    const m = (k: string) => median(results[k]);
    const figures: Record<string, number> = {};
    for (const w of [10, 500]) {
      figures[`us_per_row_${w}_inputs`] = round(m(`migrated_${w}`), 1);
      figures[`us_per_row_${w}_inputs_fk_baseline`] = round(m(`fk_${w}`), 1);
      figures[`us_per_row_${w}_inputs_v4_baseline`] = round(m(`v4_${w}`), 1);
      figures[`ratio_vs_fk_${w}_inputs`] = round(m(`migrated_${w}`) / m(`fk_${w}`), 2);
      figures[`ratio_vs_v4_${w}_inputs`] = round(m(`migrated_${w}`) / m(`v4_${w}`), 2);
    }
    figures.rows_written = stats.written;
    writeResult('prediction-log', figures);
  } finally {
    await p.close();
  }
}
