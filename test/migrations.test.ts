import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { type Database, openDatabase } from '../src/infra/db/data-source';
import { randomUUID } from 'node:crypto';
import { type DataSource } from 'typeorm';
import { ServingRole } from '../src/domain/serving/deployment';
import { SqlPredictionLog } from '../src/infra/db/serving/prediction-log';
import { migrations } from '../migrations';
import { dropSchema, isolationName, testDatabaseUrl } from './support/isolation';

/** The same migrations, applied to PGlite (the embedded default) and to a PostgreSQL server. */
const pgliteDir = fs.mkdtempSync(path.join(os.tmpdir(), 'aether-migrations-pglite-'));
const schema = isolationName(__filename);
let pglite: Database;
let postgres: Database;

beforeAll(async () => {
  pglite = await openDatabase({ pgliteDir: path.join(pgliteDir, 'pg') });
  postgres = await openDatabase({ url: testDatabaseUrl(), schema });
});
afterAll(async () => {
  await pglite.close();
  await postgres.close();
  await dropSchema(schema);
  fs.rmSync(pgliteDir, { recursive: true, force: true });
});

async function describeSchema(db: Database, schemaName: string): Promise<unknown[]> {
  const columns = await db.dataSource.query(
    `SELECT table_name, column_name, data_type, datetime_precision, is_nullable, column_default
       FROM information_schema.columns WHERE table_schema = $1 ORDER BY table_name, column_name`,
    [schemaName],
  );
  const indexes = await db.dataSource.query(
    `SELECT tablename, indexname, regexp_replace(indexdef, ' ON [a-z0-9_]+\\.', ' ON ') AS def
       FROM pg_indexes WHERE schemaname = $1 ORDER BY tablename, indexname`,
    [schemaName],
  );
  const triggers = await db.dataSource.query(
    `SELECT c.relname, t.tgname, t.tgtype, t.tgenabled FROM pg_trigger t
       JOIN pg_class c ON c.oid = t.tgrelid JOIN pg_namespace n ON n.oid = c.relnamespace
      WHERE n.nspname = $1 AND NOT t.tgisinternal ORDER BY 1, 2`,
    [schemaName],
  );
  return [columns, indexes, triggers];
}

it('runs on PostgreSQL and on PGlite and yields the same schema', async () => {
  const pgVersion: [{ server_version: string }] =
    await postgres.dataSource.query('SHOW server_version');
  const liteVersion: [{ server_version: string }] =
    await pglite.dataSource.query('SHOW server_version');
  expect(Number(pgVersion[0].server_version.split('.')[0])).toBeGreaterThanOrEqual(15);
  expect(Number(liteVersion[0].server_version.split('.')[0])).toBeGreaterThanOrEqual(15);

  const names = migrations.map((m) => new m().name);
  expect(await postgres.migrate()).toEqual(names);
  expect(await pglite.migrate()).toEqual(names);
  // Applying again is a no-op on both.
  expect(await postgres.migrate()).toEqual([]);
  expect(await pglite.migrate()).toEqual([]);

  const onPostgres = await describeSchema(postgres, schema);
  const onPglite = await describeSchema(pglite, 'public');
  expect((onPostgres[0] as unknown[]).length).toBeGreaterThan(10);
  expect((onPostgres[2] as unknown[]).length).toBeGreaterThan(5);
  expect(onPglite).toEqual(onPostgres);
});

it("keeps the logged inputs when the prediction log changes their type, both ways, and packs a previous release's rows, on both", async () => {
  const at = migrations.findIndex((m) => new m().name === 'PredictionInputs1765120000000');
  const back = async (db: Database) => {
    for (let i = at; i < migrations.length; i++)
      await db.dataSource.undoLastMigration({ transaction: 'each' });
  };
  const [id, late] = [
    '00000000-0000-4000-8000-000000000001',
    '00000000-0000-4000-8000-000000000002',
  ];
  const read = async (db: Database, column: string, which = id) =>
    (
      (await db.dataSource.query(`SELECT ${column} AS x FROM prediction_log WHERE id = $1`, [
        which,
      ])) as { x: unknown }[]
    )[0].x;
  /** A row as the previous release writes it: inputs as jsonb (deployment and version need not exist). */
  const writeAsBefore = (db: Database, rowId: string, inputs: unknown[]) =>
    db.dataSource.transaction(async (m) => {
      await m.query(`SET LOCAL session_replication_role = replica`);
      await m.query(
        `INSERT INTO prediction_log (id, deployment_id, model_version_id, role, request_key, inputs, score, latency_us, created_at)
         VALUES ($1, $1, $1, 'PRODUCTION', 'k', $2, 0.5, 1, now())`,
        [rowId, JSON.stringify(inputs)],
      );
    });
  const given = [0.25, null, -1.5, 1e-7, 3.5e38, 1e-50, 7.006492321624085e-46];
  const asFloat32 = [0.25, null, -1.5, Math.fround(1e-7), Infinity, 0, 0];
  for (const db of [postgres, pglite]) {
    await back(db);
    await writeAsBefore(db, id, given);
    await db.migrate();
    expect(await read(db, 'prediction_inputs(inputs_f32)')).toEqual(asFloat32);
    expect(await read(db, 'inputs')).toBeNull();
    // A process of the previous release, still running during the upgrade, writes jsonb.
    await writeAsBefore(db, late, [1, null]);
    expect(await read(db, 'prediction_inputs(inputs_f32)', late)).toEqual([1, null]);
    await back(db);
    // JSON has no infinities: back as null, like a missing value.
    expect(await read(db, 'inputs')).toEqual([0.25, null, -1.5, Math.fround(1e-7), null, 0, 0]);
    expect(await read(db, 'inputs', late)).toEqual([1, null]);
    await db.migrate();
    await db.dataSource.query(`DELETE FROM prediction_log WHERE id = ANY($1)`, [[id, late]]);
  }
});

it('writes the prediction log in one statement, inputs in binary, the same on both', async () => {
  const deadLetters = { put: () => Promise.reject(new Error('no row is poison here')) };
  const row = (inputs: Float32Array, requestKey: string) => ({
    id: randomUUID(),
    deploymentId: randomUUID(),
    versionId: randomUUID(),
    role: ServingRole.PRODUCTION,
    requestKey,
    entityKey: null,
    inputs,
    score: 0.5,
    latencyUs: 1,
    at: new Date(),
  });
  // Rows of different widths, an empty one, and a view on the middle of a larger buffer.
  const wide = Float32Array.from({ length: 600 }, (_, i) => Math.sin(i));
  const rows = [
    row(Float32Array.of(0.25, Number.NaN, -1.5), 'a'),
    row(new Float32Array(0), 'b'),
    row(wide.subarray(100, 600), 'c'),
  ];
  for (const db of [postgres, pglite]) {
    const got = await db.dataSource.transaction(async (m) => {
      // The rows' deployment and version need not exist here.
      await m.query(`SET LOCAL session_replication_role = replica`);
      const log = new SqlPredictionLog(m as unknown as DataSource, deadLetters as never);
      await log.append(rows);
      await log.close();
      expect(log.stats()).toMatchObject({ written: 3, deadLettered: 0 });
      return (await m.query(
        `SELECT request_key AS k, prediction_inputs(inputs_f32) AS x FROM prediction_log WHERE id = ANY($1) ORDER BY request_key`,
        [rows.map((r) => r.id)],
      )) as { k: string; x: (number | null)[] }[];
    });
    expect(got).toEqual([
      { k: 'a', x: [0.25, null, -1.5] },
      { k: 'b', x: [] },
      { k: 'c', x: Array.from(wide.subarray(100, 600)) },
    ]);
    await db.dataSource.query(`DELETE FROM prediction_log WHERE id = ANY($1)`, [
      rows.map((r) => r.id),
    ]);
  }
});

it('reverts cleanly on both', async () => {
  for (const db of [postgres, pglite]) {
    for (let i = 0; i < migrations.length; i++)
      await db.dataSource.undoLastMigration({ transaction: 'each' });
  }
  const left = async (db: Database, s: string) =>
    (
      await db.dataSource.query(
        `SELECT table_name FROM information_schema.tables WHERE table_schema = $1 AND table_name <> 'aether_migrations'`,
        [s],
      )
    ).length;
  expect(await left(postgres, schema)).toBe(0);
  expect(await left(pglite, 'public')).toBe(0);
});
