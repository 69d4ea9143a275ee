import { randomBytes } from 'node:crypto';
import path from 'node:path';
import { Cluster } from 'ioredis';
import { Client } from 'pg';
import {
  closeRedis,
  createRedisClient,
  type RedisClient,
  type RedisTarget,
} from '../../src/infra/redis/redis-client';

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

/**
 * The test files of jest's `cluster` project run against the local three-master Redis
 * Cluster that the global setup starts (docs/adr/0029); the others against one Redis.
 */
export function onCluster(): boolean {
  return process.env.AETHER_TEST_ON_CLUSTER === '1';
}

export function testClusterNodes(): string {
  const nodes = process.env.TEST_REDIS_CLUSTER_NODES;
  if (!nodes) throw new Error('TEST_REDIS_CLUSTER_NODES is not set: run the suite with `npm test`');
  return nodes;
}

/** Where this test file's Redis is: the cluster's seed nodes in the cluster project. */
export function testRedisTarget(): RedisTarget {
  return onCluster() ? testClusterTarget() : testRedisUrl();
}

/** The local Redis Cluster, for tests that always run on one (test/fleet). */
export function testClusterTarget(): RedisTarget {
  return {
    nodes: testClusterNodes()
      .split(',')
      .map((n) => ({ host: n.split(':')[0], port: Number(n.split(':')[1]) })),
  };
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

/** Deletes every Redis key under a test's or benchmark's prefix (SCAN + UNLINK, in batches; every master of a cluster). */
export async function deleteRedisPrefix(target: RedisTarget, prefix: string): Promise<number> {
  const redis = createRedisClient(target, 'test-cleanup');
  let deleted = 0;
  try {
    const servers: RedisClient[] = redis instanceof Cluster ? redis.nodes('master') : [redis];
    for (const server of servers) {
      let cursor = '0';
      do {
        const [next, keys] = await server.scan(cursor, 'MATCH', `${prefix}*`, 'COUNT', 5_000);
        cursor = next;
        // One key at a time on a cluster: UNLINK of several keys must stay in one slot.
        if (keys.length)
          deleted +=
            redis instanceof Cluster
              ? (await Promise.all(keys.map((k) => server.unlink(k)))).reduce((a, b) => a + b, 0)
              : await server.unlink(...keys);
      } while (cursor !== '0');
    }
  } finally {
    await closeRedis(redis);
  }
  return deleted;
}
