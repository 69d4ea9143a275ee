import { DuckDBInstance } from '@duckdb/node-api';
import {
  BuildDatasetDocument,
  CompactFeatureViewDocument,
  CreateFeatureEntityDocument,
  CreateFeatureViewDocument,
  type CreateFeatureViewInput,
  DatasetSqlDocument,
  type FeatureRecordInput,
  IngestFeaturesDocument,
  OnlineFeaturesDocument,
  QuarantinedRecordsDocument,
} from './generated/graphql';
import { readSnapshot } from './support/datasets';
import { GraphQLTestClient } from './support/graphql-client';
import { ManualClock } from '../src/domain/shared/clock';
import { appendToStream } from '../src/infra/redis/feature-stream';
import { closeRedis, createRedisClient, type RedisClient } from '../src/infra/redis/redis-client';
import { startTestApp, type TestApp } from './support/test-app';

/**
 * Corrections, through the graph: a source re-sends an event (same eventId, same event time)
 * with a new value. The same records go through the batch mutation into one view and through
 * the Redis stream into another; both must end the same, offline and online.
 */
const T0 = Date.parse('2026-06-01T00:00:00Z');
const H = 3_600_000;
const clock = new ManualClock(T0);
let app: TestApp;
let gql: GraphQLTestClient;
let redis: RedisClient;

const FEATURES = ['x', 'n_6h', 'sum_6h', 'mean_6h', 'max_6h', 'last_6h'];
const view = (name: string): CreateFeatureViewInput => ({
  name,
  entity: 'meter',
  source: `${name}_src`,
  ttlSeconds: 24 * 3600,
  allowedLatenessSeconds: 24 * 3600,
  features: [
    { name: 'x', type: 'FLOAT' },
    ...(['COUNT', 'SUM', 'MEAN', 'MAX', 'LAST'] as const).map((fn) => ({
      name: `${fn === 'COUNT' ? 'n' : fn.toLowerCase()}_6h`,
      type: 'FLOAT' as const,
      source: 'x',
      aggregation: { fn, windowSeconds: 6 * 3600 },
    })),
  ],
});

const rec = (
  eventId: string,
  eventH: number,
  x: number,
  knownAtH?: number,
): FeatureRecordInput => ({
  entityKey: 'm1',
  eventId,
  eventTime: new Date(T0 + eventH * H).toISOString(),
  fields: { x },
  ...(knownAtH === undefined ? {} : { knownAt: new Date(T0 + knownAtH * H).toISOString() }),
});

/** What each step sends, at what (ingestion) time. */
const steps: { atH: number; records: FeatureRecordInput[] }[] = [
  { atH: 2, records: [rec('a', 1, 10), rec('b', 1.5, 20)] },
  // Both events are re-reported with new values: corrections known at 3h.
  { atH: 3, records: [rec('a', 1, 15), rec('b', 1.5, 25)] },
  // A redelivery of both (nothing changes), and a record claiming a's known time of 3h
  // with another value: a conflicting duplicate.
  { atH: 4, records: [rec('a', 1, 15), rec('b', 1.5, 25), rec('a', 1, 99, 3)] },
];

async function drained(source: string): Promise<void> {
  const end = Date.now() + 10_000;
  for (;;) {
    const lag = (await app.services.streamLag()).find((l) => l.source === source);
    if (lag && lag.lag === 0 && lag.pending === 0 && lag.lastDeliveredId) return;
    if (Date.now() > end) throw new Error(`stream ${source} not drained`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

const online = async (name: string) =>
  (
    await gql.ok(OnlineFeaturesDocument, {
      entityKeys: ['m1'],
      featureRefs: FEATURES.map((f) => `${name}:${f}`),
    })
  ).onlineFeatures[0].vector;

const LABELS = [2, 2.999, 3, 3.5, 4.5];

async function offline(name: string) {
  const ds = await gql.ok(BuildDatasetDocument, {
    input: {
      name: `${name}-pit`,
      featureRefs: FEATURES.map((f) => `${name}:${f}`),
      rows: LABELS.map((h) => ({ entityKey: 'm1', timestamp: new Date(T0 + h * H).toISOString() })),
    },
    wait: true,
  });
  const rows = await readSnapshot(app.services.artifacts, ds.buildDataset.artifactKey as string);
  return {
    hash: ds.buildDataset.contentHash,
    values: rows.map((r) => FEATURES.map((f) => r[`${name}@1:${f}`])),
  };
}

beforeAll(async () => {
  app = await startTestApp(__filename, { overrides: { clock } });
  gql = new GraphQLTestClient(app.url, app.adminToken);
  redis = createRedisClient(app.redisTarget, 'feature-corrections-test');
  await gql.ok(CreateFeatureEntityDocument, { input: { name: 'meter', joinKeys: ['meter_id'] } });
  await gql.ok(CreateFeatureViewDocument, { input: view('cb') });
  await gql.ok(CreateFeatureViewDocument, { input: view('cs') });
});
afterAll(async () => {
  await closeRedis(redis);
  await app.stop();
});

describe('a correction', () => {
  const reports: Record<string, unknown>[] = [];
  const onlineAfter: Record<string, unknown[][]> = { cb: [], cs: [] };

  it('is taken by the batch mutation and the stream alike, step by step', async () => {
    for (const step of steps) {
      clock.set(T0 + step.atH * H);
      const [report] = (await gql.ok(IngestFeaturesDocument, { view: 'cb', records: step.records }))
        .ingestFeatures;
      reports.push(report);
      await appendToStream(
        redis,
        app.redisPrefix,
        'cs_src',
        step.records.map((r) => ({
          entityKey: r.entityKey,
          eventId: r.eventId,
          eventTs: Date.parse(r.eventTime as string),
          fields: r.fields as Record<string, unknown>,
          ...(r.knownAt ? { knownAt: Date.parse(r.knownAt as string) } : {}),
        })),
      );
      await drained('cs_src');
      onlineAfter.cb.push(await online('cb'));
      onlineAfter.cs.push(await online('cs'));
    }
    expect(reports.map((r) => [r.accepted, r.quarantined, r.duplicates, r.corrections])).toEqual([
      [2, 0, 0, 0],
      [2, 0, 0, 2],
      [2, 1, 2, 0],
    ]);
    expect(reports[2].byRule).toEqual([{ rule: 'CONFLICTING_DUPLICATE', count: 1 }]);
  });

  it('online: serves the newest version; a redelivery and a conflict change nothing', () => {
    const before = [20, 2, 30, 15, 20, 20];
    const after = [25, 2, 40, 20, 25, 25];
    expect(onlineAfter.cb).toEqual([before, after, after]);
    expect(onlineAfter.cs).toEqual(onlineAfter.cb);
  });

  it('offline: changes the value at label times from its knownAt on, not before, in the value and every window', async () => {
    const before = [20, 2, 30, 15, 20, 20];
    const after = [25, 2, 40, 20, 25, 25];
    const batch = await offline('cb');
    expect(batch.values).toEqual([before, before, after, after, after]);
    expect((await offline('cs')).values).toEqual(batch.values);
  });

  it('keeps every version through compaction: the same snapshot, the same content hash', async () => {
    const first = await offline('cb');
    const compacted = await gql.ok(CompactFeatureViewDocument, { view: 'cb' });
    expect(compacted.compactFeatureView.rows).toBe(4); // a, b and their corrections
    const again = await offline('cb');
    expect(again.hash).toBe(first.hash);
    expect(again.values).toEqual(first.values);
  });

  it('quarantines the conflicting duplicate with its own rule and its payload', async () => {
    const q = await gql.ok(QuarantinedRecordsDocument, { view: 'cb', first: 10 });
    expect(
      q.quarantinedRecords.edges.map((e) => [e.node.eventId, e.node.violations[0].rule]),
    ).toEqual([['a', 'CONFLICTING_DUPLICATE']]);
    expect(q.quarantinedRecords.edges[0].node.payload).toMatchObject({ fields: { x: 99 } });
  });

  it('gives the same values from datasetSql run on DuckDB over the stored history', async () => {
    const { datasetSql } = await gql.ok(DatasetSqlDocument, {
      featureRefs: FEATURES.map((f) => `cb:${f}`),
      dialect: 'DUCKDB' as never,
    });
    const [spine, history] = datasetSql.relations;
    expect([spine.name, history.name, history.view, history.version]).toEqual([
      'aether_spine',
      'aether_history_cb_v1',
      'cb',
      1,
    ]);
    // The history as the offline store holds it: every version, with its known time.
    const stored = (await app.db.dataSource.query(
      `SELECT e.entity_key, e.event_id, (extract(epoch FROM e.event_ts) * 1000)::bigint AS ts,
              (extract(epoch FROM e.created_ts) * 1000)::bigint AS known, e.fields
         FROM feature_event e JOIN feature_view_version v ON v.id = e.version_id
        WHERE v.source = 'cb_src'`,
    )) as {
      entity_key: string;
      event_id: string;
      ts: string;
      known: string;
      fields: { x: number };
    }[];
    expect(stored).toHaveLength(4);
    const instance = await DuckDBInstance.create(':memory:');
    const duck = await instance.connect();
    try {
      for (const r of datasetSql.relations)
        await duck.run(
          `CREATE TABLE ${r.name} (${r.columns.map((c) => `"${c.name}" ${c.type}`).join(', ')})`,
        );
      await duck.run(
        `INSERT INTO aether_history_cb_v1 VALUES ${stored
          .map((r) => `('${r.entity_key}', '${r.event_id}', ${r.ts}, ${r.known}, ${r.fields.x})`)
          .join(', ')}`,
      );
      await duck.run(
        `INSERT INTO aether_spine VALUES ${LABELS.map((h, i) => `(${i}, 'm1', ${T0 + h * H}, NULL)`).join(', ')}`,
      );
      const rows = (await duck.runAndReadAll(datasetSql.sql)).getRowObjects();
      const values = rows.map((r) =>
        FEATURES.map((f) => {
          const v = r[`cb@1:${f}`];
          return typeof v === 'bigint' ? Number(v) : v;
        }),
      );
      expect(values).toEqual((await offline('cb')).values);
    } finally {
      duck.closeSync();
      instance.closeSync();
    }
  });
});

it('refuses a feature named twice and more features than a join may take, with their codes', async () => {
  const codes = async (featureRefs: string[]) => {
    const r = await gql.request(DatasetSqlDocument, { featureRefs, dialect: 'TRINO' as never });
    return r.errors?.map((e) => [e.extensions?.code, e.extensions?.reason]);
  };
  expect(await codes(['cb:x', 'cb@1:x'])).toEqual([['BAD_USER_INPUT', 'DUPLICATE_FEATURE']]);
  expect(await codes(Array.from({ length: 10_001 }, () => 'cb:x'))).toEqual([
    ['BAD_USER_INPUT', 'TOO_MANY_FEATURES'],
  ]);
});
