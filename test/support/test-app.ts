import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { type App, type AppOverrides, startApp } from '../../src/app/app';
import { loadConfig } from '../../src/infra/config/config';
import { openDatabase } from '../../src/infra/db/data-source';
import { createLogger } from '../../src/infra/observability/logger';
import {
  deleteRedisPrefix,
  dropSchema,
  isolationName,
  onCluster,
  testClusterNodes,
  testDatabaseUrl,
  testRedisUrl,
} from './isolation';

export interface TestApp extends App {
  adminToken: string;
  schema: string;
  redisPrefix: string;
  dataDir: string;
  env: Record<string, string>;
  stop(): Promise<void>;
}

/** Environment for an api process isolated to one test file. */
export function isolatedEnv(
  testFile: string,
  extra: Record<string, string> = {},
): Record<string, string> {
  const name = isolationName(testFile);
  return {
    NODE_ENV: 'test',
    PORT: '0',
    HOST: '127.0.0.1',
    LOG_LEVEL: 'silent',
    // Tests drive one key hard; those about the budget set their own.
    RATE_LIMIT_PER_SECOND: '0',
    DATABASE_URL: testDatabaseUrl(),
    DATABASE_SCHEMA: name,
    REDIS_URL: testRedisUrl(),
    ...(onCluster() ? { REDIS_CLUSTER_NODES: testClusterNodes() } : {}),
    REDIS_PREFIX: `${name}:`,
    DATA_DIR: fs.mkdtempSync(path.join(os.tmpdir(), `aether-${name}-`)),
    ...extra,
  };
}

export async function migrateSchema(env: Record<string, string>): Promise<void> {
  const db = await openDatabase({ url: env.DATABASE_URL, schema: env.DATABASE_SCHEMA });
  try {
    await db.migrate();
  } finally {
    await db.close();
  }
}

/** A full api in this process against the real Postgres and Redis, on a free port. */
export async function startTestApp(
  testFile: string,
  opts: { env?: Record<string, string>; overrides?: AppOverrides } = {},
): Promise<TestApp> {
  const env = isolatedEnv(testFile, opts.env);
  await migrateSchema(env);
  const config = loadConfig(env);
  const app = await startApp(config, { logger: createLogger(env.LOG_LEVEL), ...opts.overrides });
  if (!app.bootstrapAdminToken)
    throw new Error('a fresh schema should have produced a bootstrap admin key');
  return {
    ...app,
    adminToken: app.bootstrapAdminToken,
    schema: env.DATABASE_SCHEMA,
    redisPrefix: env.REDIS_PREFIX,
    dataDir: env.DATA_DIR,
    env,
    async stop() {
      await app.close();
      await dropSchema(env.DATABASE_SCHEMA);
      await deleteRedisPrefix(app.redisTarget, env.REDIS_PREFIX);
      fs.rmSync(env.DATA_DIR, { recursive: true, force: true });
    },
  };
}
