import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import Redis from 'ioredis';
import { buildAppSchema } from '../../src/app/schema';
import { FeatureType } from '../../src/domain/features/feature-definition';
import { resolveAccess, ROUTES } from '../../src/app/routes';
import { requiredRole } from '../../src/resolvers/guard';
import { openDatabase } from '../../src/infra/db/data-source';
import { classifyDependencyError } from '../../src/infra/dependency-errors';
import { type EmbeddedRedis, startEmbeddedRedis } from '../../src/infra/redis/embedded-redis';
import { isolationName, testDatabaseUrl } from '../support/isolation';
import { startTestApp, type TestApp } from '../support/test-app';

/**
 * The REST twin of the unguarded-field walk: every route declares who may call it, and a
 * route doing what a GraphQL field does takes that field's role. Then what a dependency
 * that stalls does to a request: a coded 503 in bounded time, named by /readyz.
 */
const METRICS_KEY = 'metrics-key-0123456789';
let app: TestApp;
let redis: EmbeddedRedis;
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'aether-routes-redis-'));

beforeAll(async () => {
  redis = await startEmbeddedRedis({ dir, persist: false });
  app = await startTestApp(__filename, {
    env: { REDIS_URL: redis.url, REDIS_COMMAND_TIMEOUT_MS: '300', METRICS_KEY },
  });
});
afterAll(async () => {
  await app.stop();
  await redis.stop();
  fs.rmSync(dir, { recursive: true, force: true });
});

async function key(role: string): Promise<string> {
  return (await app.services.apiKeys.create(null, { name: `r-${role}`, role: role as never }))
    .token;
}

describe('REST routes', () => {
  it('each declares its access; a twin of a GraphQL field takes that field’s role', () => {
    const schema = buildAppSchema();
    const access = resolveAccess(schema);
    for (const r of ROUTES) {
      expect(r.access).toBeDefined();
      expect(r.methods.length).toBeGreaterThan(0);
      if (r.access.kind !== 'sameAs') continue;
      const [type, field] = r.access.field.split('.');
      const f = (type === 'Query' ? schema.getQueryType() : schema.getMutationType())?.getFields()[
        field
      ];
      expect(f && requiredRole(f)).toBeTruthy();
      expect(access[r.name as 'predict' | 'runs']).toEqual(
        expect.objectContaining({ kind: 'role', role: requiredRole(f as never) }),
      );
    }
    // The console's built files are public and read-only; every request they make needs a key.
    expect(ROUTES.filter((r) => r.access.kind === 'public').map((r) => r.name)).toEqual([
      'healthz',
      'readyz',
      'console',
    ]);
    expect(ROUTES.find((r) => r.name === 'console')?.methods).toEqual(['GET', 'HEAD']);
    expect(ROUTES[ROUTES.length - 1].name).toBe('console');
  });

  it('refuses a RUNNER key on /v1/predict and a VIEWER key on /runs, as the graph does', async () => {
    const base = app.url.replace('/graphql', '');
    const predict = await fetch(`${base}/v1/predict/anything`, {
      method: 'POST',
      headers: {
        'content-type': 'application/json',
        authorization: `Bearer ${await key('RUNNER')}`,
      },
      body: JSON.stringify({ requestKey: 'k', entityKeys: ['a'] }),
    });
    expect(predict.status).toBe(403);
    expect(
      ((await predict.json()) as { errors: { extensions: unknown }[] }).errors[0].extensions,
    ).toMatchObject({
      code: 'FORBIDDEN',
      reason: 'INSUFFICIENT_ROLE',
    });
    const runs = await fetch(`${base}/runs/x/dataset?runner=y`, {
      headers: { authorization: `Bearer ${await key('VIEWER')}` },
    });
    expect(runs.status).toBe(403);
    expect((await fetch(`${base}/runs/x/dataset?runner=y`)).status).toBe(401);
  });

  it('asks for METRICS_KEY on /metrics and keeps its labels bounded whatever operation names clients send', async () => {
    const base = app.url.replace('/graphql', '');
    expect((await fetch(`${base}/metrics`)).status).toBe(401);
    for (let i = 0; i < 300; i++)
      await fetch(app.url, {
        method: 'POST',
        headers: { 'content-type': 'application/json', authorization: `Bearer ${app.adminToken}` },
        body: JSON.stringify({
          query: `query Op${i} { viewer { name } }`,
          operationName: `Op${i}`,
        }),
      });
    const text = await (
      await fetch(`${base}/metrics`, { headers: { authorization: `Bearer ${METRICS_KEY}` } })
    ).text();
    const ops = new Set(
      [...text.matchAll(/aether_graphql_requests_total\{operation="([^"]+)"/g)].map((m) => m[1]),
    );
    expect([...ops]).toEqual(['viewer']);
  });

  it('hides stack traces and internal messages unless DEBUG_ERRORS is on', async () => {
    const res = await fetch(app.url, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${app.adminToken}` },
      body: JSON.stringify({ query: '{ nope }' }),
    });
    expect(await res.text()).not.toMatch(/stacktrace|node_modules|\.ts:\d+/);
  });
});

describe('a stalled dependency', () => {
  it('fails a request needing Redis in bounded time with 503 SERVICE_UNAVAILABLE, and /readyz names Redis', async () => {
    const s = app.services;
    await s.featureRegistry.createEntity({ name: 'stall', joinKeys: ['stall_id'] });
    await s.featureRegistry.createView({
      name: 'stall',
      entity: 'stall',
      source: 'stall_src',
      ttlSeconds: 3_600,
      allowedLatenessSeconds: 3_600,
      features: [
        {
          name: 'f',
          type: FeatureType.FLOAT,
          source: 'f',
          transform: { kind: 'IDENTITY' as const },
          aggregation: null,
          validation: {},
        },
      ],
    });
    const admin = new Redis(redis.url);
    try {
      await admin.call('CLIENT', 'PAUSE', '4000', 'ALL');
      const started = Date.now();
      // An online read: Redis or nothing.
      const r = await fetch(app.url, {
        method: 'POST',
        headers: { 'content-type': 'application/json', authorization: `Bearer ${app.adminToken}` },
        body: JSON.stringify({
          query: '{ onlineFeatures(entityKeys: ["a"], featureRefs: ["stall:f"]) { entityKey } }',
        }),
      });
      const body = (await r.json()) as { errors: { extensions: unknown }[] };
      expect(body.errors[0].extensions).toMatchObject({
        code: 'SERVICE_UNAVAILABLE',
        reason: 'DEPENDENCY_UNAVAILABLE',
        details: { dependency: 'redis' },
      });
      // Well before the pause ends: the request did not wait it out.
      expect(Date.now() - started).toBeLessThan(3_500);
      const ready = await fetch(app.url.replace('/graphql', '/readyz'));
      expect(ready.status).toBe(503);
      expect(((await ready.json()) as { failing: string[] }).failing).toContain('redis');
    } finally {
      await admin.call('CLIENT', 'UNPAUSE').catch(() => undefined);
      admin.disconnect();
    }
  });

  it('cancels a PostgreSQL statement past the timeout and reports it as the database being unavailable', async () => {
    const schema = `${isolationName(__filename)}_timeout`;
    const db = await openDatabase({ url: testDatabaseUrl(), schema, queryTimeoutMs: 200 });
    try {
      const err = await db.dataSource.query('SELECT pg_sleep(2)').catch((e: unknown) => e);
      expect(classifyDependencyError(err)).toMatchObject({
        category: 'UNAVAILABLE',
        reason: 'DEPENDENCY_UNAVAILABLE',
        details: { dependency: 'postgres' },
      });
    } finally {
      await db.dataSource.query(`DROP SCHEMA IF EXISTS "${schema}" CASCADE`);
      await db.close();
    }
  });
});

it('runs the embedded redis-server behind a generated password kept out of the command line', async () => {
  const bare = new Redis({
    port: redis.port,
    host: '127.0.0.1',
    enableReadyCheck: false,
    maxRetriesPerRequest: 0,
    retryStrategy: () => null,
  });
  bare.on('error', () => undefined);
  await expect(bare.ping()).rejects.toThrow(/NOAUTH/);
  bare.disconnect();
  const cmdline = fs.readFileSync(`/proc/${redis.pid}/cmdline`, 'utf8');
  expect(cmdline).not.toContain(new URL(redis.url).password);
  expect(fs.statSync(path.join(dir, 'aether-redis.conf')).mode & 0o077).toBe(0);
});
