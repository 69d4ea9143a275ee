import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import {
  BuildDatasetDocument,
  CompactFeatureViewDocument,
  CreateApiKeyDocument,
  CreateFeatureEntityDocument,
  CreateFeatureViewDocument,
  IngestFeaturesDocument,
  OfflineHistoryDocument,
  ViewerDocument,
} from './generated/graphql';
import { createArtifactStore } from '../src/infra/artifacts/create-artifact-store';
import { type ApiProcess, spawnApi } from './support/api-process';
import { readSnapshot } from './support/datasets';
import { GraphQLTestClient } from './support/graphql-client';

/**
 * The newcomer's path: no DATABASE_URL, no REDIS_URL. The api starts its own
 * redis-server and PGlite under DATA_DIR, migrates, creates an admin key, and cleans up.
 */
const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'aether-embedded-'));
const env = { NODE_ENV: 'test', LOG_LEVEL: 'info', HOST: '127.0.0.1', DATA_DIR: dataDir };
const pidFile = path.join(dataDir, 'redis', 'aether-redis.pid');
const pgRun = path.join(dataDir, 'pg-run');
const pgPidFile = path.join(pgRun, 'pglite-server.pid');
let api: ApiProcess | undefined;

afterAll(async () => {
  await api?.stop();
  fs.rmSync(dataDir, { recursive: true, force: true });
});

const alive = (pid: number) => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

async function waitDead(pid: number): Promise<boolean> {
  for (let i = 0; i < 50 && alive(pid); i++) await new Promise((r) => setTimeout(r, 100));
  return !alive(pid);
}

it('starts the embedded stack, serves authenticated GraphQL, and stops everything it started', async () => {
  api = await spawnApi(env, { readyTimeoutMs: 60_000 });
  expect(api.output()).toContain('"database":"pglite"');
  const keyFile = path.join(dataDir, 'admin-key');
  expect(fs.statSync(keyFile).mode & 0o777).toBe(0o600);
  const token = fs.readFileSync(keyFile, 'utf8').trim();

  const client = new GraphQLTestClient(api.url, token);
  expect((await client.ok(ViewerDocument)).viewer.role).toBe('ADMIN');
  const anon = await client.withToken(undefined).request(ViewerDocument);
  expect(anon.errors?.[0].extensions?.code).toBe('UNAUTHENTICATED');
  await client.ok(CreateApiKeyDocument, { input: { name: 'persisted', role: 'VIEWER' } });

  // PGlite runs in its own process, reached over a socket only the owner can open.
  const pgPid = Number(fs.readFileSync(pgPidFile, 'utf8'));
  expect(pgPid).not.toBe(api.child.pid);
  expect(alive(pgPid)).toBe(true);
  expect(fs.statSync(pgRun).mode & 0o777).toBe(0o700);
  expect(fs.statSync(path.join(pgRun, '.s.PGSQL.5432')).mode & 0o777).toBe(0o600);

  const redisPid = Number(fs.readFileSync(pidFile, 'utf8'));
  expect(alive(redisPid)).toBe(true);
  expect(await api.stop()).toBe(0);
  expect(await waitDead(redisPid)).toBe(true);
  expect(fs.existsSync(pidFile)).toBe(false);
  expect(await waitDead(pgPid)).toBe(true);
  expect(fs.existsSync(pgPidFile)).toBe(false);
  expect(fs.existsSync(path.join(pgRun, '.s.PGSQL.5432'))).toBe(false);

  // Restart on the same data: no lock left behind, data and key survived, no second admin key.
  api = await spawnApi(env, { readyTimeoutMs: 60_000 });
  expect(api.output()).not.toContain('created the first admin API key');
  expect(fs.readFileSync(keyFile, 'utf8').trim()).toBe(token);
  const again = new GraphQLTestClient(api.url, token);
  expect((await again.ok(ViewerDocument)).viewer.role).toBe('ADMIN');
});

it('runs the feature store on the embedded stack: ingest, compact, point-in-time dataset', async () => {
  const token = fs.readFileSync(path.join(dataDir, 'admin-key'), 'utf8').trim();
  const gql = new GraphQLTestClient((api as ApiProcess).url, token);
  await gql.ok(CreateFeatureEntityDocument, { input: { name: 'meter', joinKeys: ['meter_id'] } });
  await gql.ok(CreateFeatureViewDocument, {
    input: {
      name: 'usage',
      entity: 'meter',
      source: 'usage_src',
      ttlSeconds: 86_400,
      allowedLatenessSeconds: 86_400,
      features: [{ name: 'kwh', type: 'FLOAT' }],
    },
  });
  // Values count from the moment they were ingested (created time), so labels sit after it.
  const t0 = Date.now() - 60_000;
  const at = (ms: number) => new Date(t0 + ms).toISOString();
  const ingest = (
    records: {
      entityKey: string;
      eventId: string;
      eventTime: string;
      fields: Record<string, unknown>;
    }[],
  ) => gql.ok(IngestFeaturesDocument, { view: 'usage', records });
  await ingest([
    { entityKey: 'm1', eventId: 'a', eventTime: at(0), fields: { kwh: 1.5 } },
    { entityKey: 'm2', eventId: 'b', eventTime: at(0), fields: { kwh: 7 } },
  ]);
  const compacted = await gql.ok(CompactFeatureViewDocument, { view: 'usage' });
  expect(compacted.compactFeatureView).toMatchObject({ rows: 2, compactedRows: 2 });
  await new Promise((r) => setTimeout(r, 20));
  const between = new Date().toISOString();
  await new Promise((r) => setTimeout(r, 20));
  // After the compaction: a later value for m1, read from the log next to the segment.
  await ingest([{ entityKey: 'm1', eventId: 'c', eventTime: at(30_000), fields: { kwh: 2.5 } }]);
  const ds = await gql.ok(BuildDatasetDocument, {
    input: {
      name: 'usage-train',
      featureRefs: ['usage:kwh'],
      rows: [
        { entityKey: 'm1', timestamp: between },
        { entityKey: 'm1', timestamp: at(3_600_000) },
        { entityKey: 'm2', timestamp: at(3_600_000) },
      ],
    },
    wait: true,
  });
  expect(ds.buildDataset).toMatchObject({ status: 'READY', rowCount: 3 });
  const artifacts = createArtifactStore({ kind: 'fs', root: path.join(dataDir, 'artifacts') });
  const rows = await readSnapshot(artifacts, ds.buildDataset.artifactKey as string);
  expect(rows.map((r) => r['usage@1:kwh'])).toEqual([1.5, 2.5, 7]);
  const history = await gql.ok(OfflineHistoryDocument, { name: 'usage' });
  expect(history.featureView?.versions[0].offlineHistory).toMatchObject({
    compactedRows: 2,
    pendingRows: 1,
  });
});

it('cleans up a redis-server orphaned by a killed api on the next start', async () => {
  const current = api as ApiProcess;
  const orphan = Number(fs.readFileSync(pidFile, 'utf8'));
  const pgPid = Number(fs.readFileSync(pgPidFile, 'utf8'));
  current.child.kill('SIGKILL');
  await current.stop();
  expect(alive(orphan)).toBe(true);
  // The database process watches the api (its stdin) and stops with it, flushing PGlite.
  expect(await waitDead(pgPid)).toBe(true);
  api = await spawnApi(env, { readyTimeoutMs: 60_000 });
  expect(await waitDead(orphan)).toBe(true);
  expect(Number(fs.readFileSync(pidFile, 'utf8'))).not.toBe(orphan);
  // What was committed before the kill is still there.
  const token = fs.readFileSync(path.join(dataDir, 'admin-key'), 'utf8').trim();
  const history = await new GraphQLTestClient(api.url, token).ok(OfflineHistoryDocument, {
    name: 'usage',
  });
  expect(history.featureView?.versions[0].offlineHistory).toMatchObject({ pendingRows: 1 });
});

it.each([
  ['PORT', 'abc', 'Invalid configuration: PORT must be an integer from 0 to 65535 (got "abc")'],
  [
    'DATABASE_URL',
    'mysql://x',
    'Invalid configuration: DATABASE_URL must use postgres: or postgresql: like postgres://user:pass@host:5432/db (got "mysql:")',
  ],
  [
    'ARTIFACT_STORE_URL',
    'ftp://x',
    'Invalid configuration: ARTIFACT_STORE_URL must use file: or s3: like file://.data/artifacts or s3://bucket/prefix (got "ftp:")',
  ],
])('exits with code 2 and one clear line when %s=%s', (name, value, line) => {
  const r = spawnSync(process.execPath, [path.resolve(__dirname, '../dist/src/main.js')], {
    env: {
      PATH: process.env.PATH ?? '',
      ...env,
      DATA_DIR: path.join(dataDir, 'bad'),
      [name]: value,
    },
    encoding: 'utf8',
    timeout: 60_000,
  });
  expect(r.status).toBe(2);
  expect(r.stderr).toBe(`${line}\n`);
});
