import 'reflect-metadata';
import path from 'node:path';
import { ConfigError, loadConfig } from '../src/infra/config/config';
import { openDatabase } from '../src/infra/db/data-source';

/** `npm run migrate`: apply pending migrations to DATABASE_URL (or the embedded PGlite). */
async function main(): Promise<void> {
  const config = loadConfig();
  const db = await openDatabase({
    url: config.databaseUrl,
    schema: config.databaseSchema,
    pgliteDir: path.join(config.dataDir, 'pg'),
  });
  try {
    const applied = await db.migrate();
    console.log(applied.length ? `applied: ${applied.join(', ')}` : 'no pending migrations');
  } finally {
    await db.close();
  }
}

main().catch((e: unknown) => {
  console.error(e instanceof ConfigError ? e.message : e);
  process.exit(e instanceof ConfigError ? 2 : 1);
});
