import { randomBytes } from 'node:crypto';
import path from 'node:path';
import Redis from 'ioredis';
import { Client } from 'pg';

/**
 * Each test file gets its own Postgres schema and Redis key prefix, so files run in
 * parallel against the same servers without seeing each other.
 */
export function isolationName(testFile: string): string {
  const base = path
    .basename(testFile)
    .replace(/\.(test|spec)\.ts$/, '')
    .replace(/[^a-z0-9]/gi, '_')
    .toLowerCase();
  return `t_${base.slice(0, 40)}_${randomBytes(3).toString('hex')}`;
}

export function testDatabaseUrl(): string {
  const url = process.env.TEST_DATABASE_URL;
  if (!url) throw new Error('TEST_DATABASE_URL is not set: run the suite with `npm test`');
  return url;
}

export function testRedisUrl(): string {
  const url = process.env.TEST_REDIS_URL;
  if (!url) throw new Error('TEST_REDIS_URL is not set: run the suite with `npm test`');
  return url;
}

export async function dropSchema(schema: string): Promise<void> {
  const c = new Client({ connectionString: testDatabaseUrl() });
  await c.connect();
  try {
    await c.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
  } finally {
    await c.end();
  }
}

/** Deletes every Redis key under a test's or benchmark's prefix (SCAN + UNLINK, in batches). */
export async function deleteRedisPrefix(redisUrl: string, prefix: string): Promise<number> {
  const redis = new Redis(redisUrl, { lazyConnect: false, maxRetriesPerRequest: 1 });
  let deleted = 0;
  try {
    let cursor = '0';
    do {
      const [next, keys] = await redis.scan(cursor, 'MATCH', `${prefix}*`, 'COUNT', 5_000);
      cursor = next;
      if (keys.length) deleted += await redis.unlink(...keys);
    } while (cursor !== '0');
  } finally {
    redis.disconnect();
  }
  return deleted;
}
