import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { randomBytes } from 'node:crypto';
import { Client } from 'pg';
import { type App, type AppOverrides, startApp } from '../../src/app/app';
import { loadConfig } from '../../src/infra/config/config';
import { openDatabase } from '../../src/infra/db/data-source';
import { createLogger } from '../../src/infra/observability/logger';
import { deleteRedisPrefix } from '../../test/support/isolation';
import { resolveServices, type ResolvedServices } from '../../test/support/services';

export interface BenchPlatform {
  app: App;
  adminToken: string;
  env: Record<string, string>;
  services: ResolvedServices;
  close(): Promise<void>;
}

/**
 * A real api (PostgreSQL, Redis) in this process, in a schema and key prefix of its own,
 * found the same way the tests find their servers.
 */
export async function startBenchPlatform(
  name: string,
  extraEnv: Record<string, string> = {},
  overrides: AppOverrides = {},
): Promise<BenchPlatform> {
  const services = await resolveServices();
  const id = `bench_${name.replace(/[^a-z0-9]/g, '_')}_${randomBytes(3).toString('hex')}`;
  const env: Record<string, string> = {
    NODE_ENV: 'production',
    PORT: '0',
    HOST: '127.0.0.1',
    LOG_LEVEL: 'silent',
    // Load generators send one key's requests far past any per-key budget.
    RATE_LIMIT_PER_SECOND: '0',
    DATABASE_URL: services.databaseUrl,
    DATABASE_SCHEMA: id,
    REDIS_URL: services.redisUrl,
    REDIS_PREFIX: `${id}:`,
    DATA_DIR: fs.mkdtempSync(path.join(os.tmpdir(), `aether-${id}-`)),
    ...extraEnv,
  };
  const db = await openDatabase({ url: env.DATABASE_URL, schema: env.DATABASE_SCHEMA });
  await db.migrate();
  await db.close();
  const app = await startApp(loadConfig(env), { logger: createLogger('silent'), ...overrides });
  return {
    app,
    adminToken: app.bootstrapAdminToken as string,
    env,
    services,
    close: async () => {
      await app.close();
      const c = new Client({ connectionString: env.DATABASE_URL });
      await c.connect();
      await c.query(`DROP SCHEMA IF EXISTS "${id}" CASCADE`);
      await c.end();
      await deleteRedisPrefix(env.REDIS_URL, env.REDIS_PREFIX);
      fs.rmSync(env.DATA_DIR, { recursive: true, force: true });
      await services.stop();
    },
  };
}
