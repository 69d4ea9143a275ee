import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { type Database, openDatabase } from '../src/infra/db/data-source';
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
  return [columns, indexes];
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
  expect(onPglite).toEqual(onPostgres);
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
