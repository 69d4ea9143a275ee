import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Client } from 'pg';
import { appendToStream, type StreamRecordInput } from '../../src/infra/redis/feature-stream';
import {
  closeRedis,
  createRedisClient,
  type RedisClient,
} from '../../src/infra/redis/redis-client';
import { localIdOf } from '../../src/schema/node.types';
import {
  ApiKeyEventsDocument,
  CreateApiKeyDocument,
  CreateFeatureEntityDocument,
  CompactFeatureViewDocument,
  CreateFeatureViewDocument,
  OfflineHistoryDocument,
} from '../generated/graphql';
import { type ApiProcess, spawnApi } from '../support/api-process';
import { collect, GraphQLTestClient } from '../support/graphql-client';
import {
  deleteRedisPrefix,
  dropSchema,
  testClusterNodes,
  testDatabaseUrl,
  testClusterTarget,
} from '../support/isolation';
import { until } from '../support/runner-process';
import { isolatedEnv, migrateSchema } from '../support/test-app';

/**
 * Three api processes on one PostgreSQL schema and a three-master Redis Cluster, any of
 * which may be SIGKILLed (docs/adr/0027, 0029): the outbox relay's holder dies holding
 * events it published but had not marked, and every committed event still reaches a
 * subscriber on a survivor, once; the lease passes on within twice its TTL; three stream
 * consumers, one killed mid-stream, lose and double nothing; a compaction killed before its
 * swap leaves the next one to compact every row once.
 */
const TTL_MS = 1_000;
let env: Record<string, string>;
let pg: Client;
let token: string;
const procs: ApiProcess[] = [];
const artifacts = fs.mkdtempSync(path.join(os.tmpdir(), 'aether-fleet-artifacts-'));
const dirs: string[] = [];

async function start(name: string, extra: Record<string, string> = {}): Promise<ApiProcess> {
  const dir = `${env.DATA_DIR}-${name}`;
  dirs.push(dir);
  const p = await spawnApi({ ...env, DATA_DIR: dir, ...extra });
  procs.push(p);
  return p;
}

async function holder(lease: string): Promise<string | null> {
  const r = await pg.query<{ holder: string }>(
    `SELECT holder FROM lease WHERE name = $1 AND expires_at > clock_timestamp()`,
    [lease],
  );
  return r.rows[0]?.holder ?? null;
}

/** The lease's holder is named by host and pid (src/app/app.ts). */
const pidOf = (h: string | null) => (h ? Number(/-(\d+)-[0-9a-f]+$/.exec(h)?.[1]) : null);

beforeAll(async () => {
  env = isolatedEnv(__filename, {
    REDIS_CLUSTER_NODES: testClusterNodes(),
    LEASE_TTL_MS: String(TTL_MS),
    RELAY_INTERVAL_MS: '100',
    FEATURE_STREAM_CLAIM_IDLE_MS: '1000',
    ARTIFACT_STORE_URL: `file://${artifacts}`,
    MONITOR_INTERVAL_MS: '0',
    CANARY_INTERVAL_MS: '0',
  });
  await migrateSchema(env);
  pg = new Client({ connectionString: testDatabaseUrl() });
  await pg.connect();
  await pg.query(`SET search_path TO "${env.DATABASE_SCHEMA}"`);
}, 60_000);

afterAll(async () => {
  for (const p of procs)
    if (p.child.exitCode === null && p.child.signalCode === null) await p.stop();
  await pg.end();
  await dropSchema(env.DATABASE_SCHEMA);
  await deleteRedisPrefix(testClusterTarget(), env.REDIS_PREFIX);
  for (const d of [...dirs, artifacts, env.DATA_DIR])
    fs.rmSync(d, { recursive: true, force: true });
});

it('the relay holder dies holding published events: every event arrives once, the lease moves within 2 × TTL', async () => {
  // The first process holds the relay lease and dies right after publishing a batch,
  // before marking it published.
  // A first start creates the admin key (and relays its event); it then steps aside.
  const boot = await start('boot');
  token = fs.readFileSync(path.join(`${env.DATA_DIR}-boot`, 'admin-key'), 'utf8').trim();
  expect(await boot.stop()).toBe(0);
  procs.splice(procs.indexOf(boot), 1);
  const first = await start('a', { AETHER_FAILPOINTS: 'outbox-relay:published' });
  await until(async () =>
    pidOf(await holder('outbox-relay')) === first.child.pid ? true : undefined,
  );
  // Its first pass had nothing to publish; the next event kills it.
  const b = await start('b');
  const c = await start('c');
  const onB = new GraphQLTestClient(b.url, token);
  const onC = new GraphQLTestClient(c.url, token);
  const ws = onB.ws();
  const sub = collect(ws, ApiKeyEventsDocument);
  await new Promise((r) => setTimeout(r, 500));

  const created: string[] = [];
  const mint = async (i: number) =>
    created.push(
      (await onC.ok(CreateApiKeyDocument, { input: { name: `k${i}`, role: 'VIEWER' } }))
        .createApiKey.apiKey.id,
    );
  await mint(0);
  const died = await until(async () =>
    first.child.signalCode === 'SIGKILL' ? Date.now() : undefined,
  );
  // While no process holds the relay, changes still commit, with their events.
  for (let i = 1; i <= 5; i++) await mint(i);
  const taken = await until(async () => {
    const h = pidOf(await holder('outbox-relay'));
    return h && h !== first.child.pid ? Date.now() : undefined;
  });
  expect((taken - died) / 1_000).toBeLessThanOrEqual((2 * TTL_MS) / 1_000);

  await until(async () => {
    const seen = new Set(sub.events.map((e) => e.apiKeyEvents.keyId));
    return created.every((id) => seen.has(id) || seen.has(localIdOf(id, 'ApiKey')))
      ? true
      : undefined;
  }, 15_000);
  await new Promise((r) => setTimeout(r, 500));
  sub.dispose();
  await ws.dispose();
  const createdEvents = sub.events.filter((e) => e.apiKeyEvents.kind === 'CREATED');
  // Once each: the survivor republished what the dead relay had not marked, and the
  // subscriber dropped the repeat by its sequence number.
  expect(createdEvents.length).toBe(created.length);
}, 90_000);

it('three stream consumers, one killed mid-stream: accepted + quarantined = sent, nothing doubled', async () => {
  const [, b] = procs;
  const gql = new GraphQLTestClient(b.url, token);
  await gql.ok(CreateFeatureEntityDocument, { input: { name: 'pump', joinKeys: ['pump_id'] } });
  await gql.ok(CreateFeatureViewDocument, {
    input: {
      name: 'flow',
      entity: 'pump',
      source: 'flow_src',
      ttlSeconds: 86_400,
      allowedLatenessSeconds: 86_400,
      features: [{ name: 'x', type: 'FLOAT', validation: { min: 0 } }],
    },
  });
  // A third consumer, to be killed while it holds entries it has read.
  const victim = await start('d');
  const producer: RedisClient = createRedisClient(testClusterTarget(), 'fleet-producer');
  const now = Date.now();
  const records: StreamRecordInput[] = Array.from({ length: 900 }, (_, i) => ({
    entityKey: `p${i % 30}`,
    eventId: `ev${i}`,
    eventTs: now - 3_600_000 + i * 1_000,
    // Every tenth breaks the rule (x >= 0) and is quarantined.
    fields: { x: i % 10 === 0 ? -1 : i },
  }));
  const bad = records.filter((r) => (r.fields.x as number) < 0).length;
  try {
    for (let i = 0; i < records.length; i += 50) {
      await appendToStream(producer, env.REDIS_PREFIX, 'flow_src', records.slice(i, i + 50));
      if (i === 300) victim.child.kill('SIGKILL');
      await new Promise((r) => setTimeout(r, 20));
    }
  } finally {
    await closeRedis(producer);
  }
  const counts = async () => {
    const r = await pg.query<{ events: number; quarantined: number }>(
      `SELECT (SELECT count(*)::int FROM feature_event e JOIN feature_view_version v ON v.id = e.version_id
                 JOIN feature_view f ON f.id = v.view_id WHERE f.name = 'flow') AS events,
              (SELECT count(*)::int FROM feature_quarantine WHERE source = 'flow_src') AS quarantined`,
    );
    return r.rows[0];
  };
  // The killed consumer's unacknowledged entries are claimed by a survivor once idle.
  await until(async () => {
    const c = await counts();
    return c.events + c.quarantined >= records.length ? c : undefined;
  }, 30_000).catch(async (e: unknown) => {
    throw new Error(`${String(e)}: ${JSON.stringify(await counts())}`);
  });
  await new Promise((r) => setTimeout(r, 1_500));
  expect(await counts()).toEqual({ events: records.length - bad, quarantined: bad });
}, 90_000);

it('the process compacting dies before its swap: the next compaction neither skips nor doubles a row', async () => {
  const [, , c] = procs;
  const victim = await start('e', { AETHER_FAILPOINTS: 'compaction:written' });
  const res = await fetch(victim.url, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` },
    body: JSON.stringify({ query: 'mutation { compactFeatureView(view: "flow") { rows } }' }),
  }).catch((e: unknown) => e);
  expect(String(res)).toMatch(/fetch failed/);
  await until(async () => (victim.child.signalCode === 'SIGKILL' ? true : undefined));
  const gql = new GraphQLTestClient(c.url, token);
  const report = (await gql.ok(CompactFeatureViewDocument, { view: 'flow' })).compactFeatureView;
  const events = 900 - 90;
  expect(report.compactedRows).toBe(events);
  const stored = await pg.query<{ rows: number }>(
    `SELECT sum(s.row_count)::int AS rows FROM feature_segment s
       JOIN feature_view_version v ON v.id = s.version_id
       JOIN feature_view f ON f.id = v.view_id WHERE f.name = 'flow'`,
  );
  expect(stored.rows[0].rows).toBe(events);
  const history = (await gql.ok(OfflineHistoryDocument, { name: 'flow' })).featureView;
  expect(history?.versions[0].offlineHistory).toMatchObject({
    compactedRows: events,
    pendingRows: 0,
  });
}, 60_000);
