import {
  Field,
  Float64,
  Schema,
  Table,
  TimestampMillisecond,
  Utf8,
  tableToIPC,
  vectorFromArray,
} from 'apache-arrow';
import { Role } from '../src/domain/auth/role';
import { ManualClock } from '../src/domain/shared/clock';
import { writeParquet } from '../src/infra/datasets/parquet';
import {
  BackfillFeaturesDocument,
  BuildDatasetDocument,
  CreateFeatureEntityDocument,
  CreateFeatureViewDocument,
  type FeatureRecordInput,
  IngestFeaturesDocument,
  OnlineFeaturesDocument,
} from './generated/graphql';
import { readSnapshot } from './support/datasets';
import { GraphQLTestClient } from './support/graphql-client';
import { startTestApp, type TestApp } from './support/test-app';

/**
 * Loading history: records older than the allowed lateness get in only through a backfill,
 * with the known times they carry; files come from the artifact store.
 */
const T0 = Date.parse('2026-09-01T00:00:00Z');
const H = 3_600_000;
const D = 24 * H;
const clock = new ManualClock(T0 + 100 * D);
let app: TestApp;
let gql: GraphQLTestClient;

const rec = (
  entityKey: string,
  eventId: string,
  eventH: number,
  x: number,
  knownAtH?: number,
): FeatureRecordInput => ({
  entityKey,
  eventId,
  eventTime: new Date(T0 + eventH * H).toISOString(),
  fields: { x },
  ...(knownAtH === undefined ? {} : { knownAt: new Date(T0 + knownAtH * H).toISOString() }),
});

async function pit(view: string, entityKey: string, hours: number[]) {
  const ds = await gql.ok(BuildDatasetDocument, {
    input: {
      name: `${view}-${entityKey}`,
      featureRefs: [`${view}:x`, `${view}:n_1d`],
      rows: hours.map((h) => ({ entityKey, timestamp: new Date(T0 + h * H).toISOString() })),
    },
    wait: true,
  });
  const rows = await readSnapshot(app.services.artifacts, ds.buildDataset.artifactKey as string);
  return rows.map((r) => [r[`${view}@1:x`], r[`${view}@1:n_1d`]]);
}

beforeAll(async () => {
  app = await startTestApp(__filename, {
    overrides: { clock },
    env: { FEATURE_STREAM_CONSUMER: 'off' },
  });
  gql = new GraphQLTestClient(app.url, app.adminToken);
  await gql.ok(CreateFeatureEntityDocument, { input: { name: 'shop', joinKeys: ['shop_id'] } });
  for (const name of ['sales', 'filed'])
    await gql.ok(CreateFeatureViewDocument, {
      input: {
        name,
        entity: 'shop',
        source: `${name}_src`,
        ttlSeconds: 30 * 24 * 3600,
        allowedLatenessSeconds: 3600,
        features: [
          { name: 'x', type: 'FLOAT', validation: { min: 0 } },
          {
            name: 'n_1d',
            type: 'FLOAT',
            source: 'x',
            aggregation: { fn: 'COUNT', windowSeconds: 24 * 3600 },
          },
        ],
      },
    });
});
afterAll(() => app.stop());

describe('backfillFeatures(records)', () => {
  it('takes history the ingestion refuses as late, at its known times; online keeps the newer', async () => {
    await gql.ok(IngestFeaturesDocument, { view: 'sales', records: [rec('s1', 'now', 2399, 7)] });
    const late = await gql.ok(IngestFeaturesDocument, {
      view: 'sales',
      records: [rec('s1', 'h10', 10, 1, 11)],
    });
    expect(late.ingestFeatures[0].byRule).toEqual([{ rule: 'LATE_EVENT', count: 1 }]);

    const [report] = (
      await gql.ok(BackfillFeaturesDocument, {
        view: 'sales',
        records: [
          rec('s1', 'h10', 10, 1, 11),
          rec('s1', 'h20', 20, 2, 30),
          rec('s1', 'h10', 10, 3, 40), // a correction of the first, known at 40h
          rec('s1', 'h30', 30, 4), // no knownAt: a backfill must say when it was known
          rec('s1', 'h31', 31, -1, 32), // out of range
        ],
      })
    ).backfillFeatures;
    expect(report).toMatchObject({
      received: 5,
      accepted: 3,
      quarantined: 2,
      corrections: 1,
    });
    expect(report.byRule).toEqual(
      expect.arrayContaining([
        { rule: 'INVALID_EVENT_TIME', count: 1 },
        { rule: 'OUT_OF_RANGE', count: 1 },
      ]),
    );
    expect(await pit('sales', 's1', [10.5, 11, 29, 30, 40, 2400])).toEqual([
      [null, 0], // happened at 10h, known only at 11h
      [1, 1],
      [1, 1],
      [2, 2], // 30h: the 20h event is known, the 10h one is still in the 1d window
      [2, 1], // 40h: 10h has left the window; its correction changes no value here
      [7, 1],
    ]);
    // The online store holds the newer 2399h event: the old history does not replace it.
    const online = await gql.ok(OnlineFeaturesDocument, {
      entityKeys: ['s1'],
      featureRefs: ['sales:x', 'sales:n_1d'],
    });
    expect(online.onlineFeatures[0].vector).toEqual([7, 1]);
  });

  it('is for admins only', async () => {
    const editor = await app.services.apiKeys.create(null, { name: 'ed', role: Role.EDITOR });
    const r = await new GraphQLTestClient(app.url, editor.token).request(BackfillFeaturesDocument, {
      view: 'sales',
      records: [rec('s1', 'x', 1, 1, 1)],
    });
    expect(r.errors?.[0].extensions).toMatchObject({ code: 'FORBIDDEN' });
    const both = await gql.request(BackfillFeaturesDocument, {
      view: 'sales',
      records: [],
      file: { artifactKey: 'x.parquet' },
    });
    expect(both.errors?.[0].extensions).toMatchObject({
      code: 'BAD_USER_INPUT',
      reason: 'INVALID_BACKFILL',
    });
  });
});

describe('backfillFeatures(file)', () => {
  /** The same history as a table: two shops, a correction, a conflict, a bad row. */
  const rows = [
    { e: 'f1', id: 'a', ts: 1, known: 1, x: 10 },
    { e: 'f1', id: 'b', ts: 5, known: 6, x: 20 },
    { e: 'f1', id: 'a', ts: 1, known: 8, x: 11 }, // correction of a
    { e: 'f1', id: 'a', ts: 1, known: 8, x: 12 }, // same known time, another value: conflict
    { e: 'f2', id: 'c', ts: 2, known: 3, x: -5 }, // out of range
    { e: 'f2', id: 'd', ts: 2399.5, known: 2399.5, x: 9 }, // newer than anything online
  ];
  const table = () =>
    new Table(
      new Schema([
        new Field('entity_key', new Utf8()),
        new Field('event_id', new Utf8()),
        new Field('event_ts', new TimestampMillisecond()),
        new Field('known_at', new TimestampMillisecond()),
        new Field('x', new Float64()),
      ]),
      {
        entity_key: vectorFromArray(
          rows.map((r) => r.e),
          new Utf8(),
        ),
        event_id: vectorFromArray(
          rows.map((r) => r.id),
          new Utf8(),
        ),
        event_ts: vectorFromArray(
          rows.map((r) => T0 + r.ts * H),
          new TimestampMillisecond(),
        ),
        known_at: vectorFromArray(
          rows.map((r) => T0 + r.known * H),
          new TimestampMillisecond(),
        ),
        x: vectorFromArray(
          rows.map((r) => r.x),
          new Float64(),
        ),
      },
    );
  const csv = [
    'entity_key,event_id,event_ts,known_at,x',
    ...rows.map(
      (r) => `${r.e},${r.id},${new Date(T0 + r.ts * H).toISOString()},${T0 + r.known * H},${r.x}`,
    ),
  ].join('\n');

  it.each([
    ['parquet', async () => writeParquet(table())],
    ['arrow', async () => tableToIPC(table(), 'file')],
    ['csv', async () => Buffer.from(csv)],
  ])(
    'loads %s into segments with the same verdicts, values and online update',
    async (ext, bytes) => {
      const key = `uploads/history-${ext}.${ext}`;
      await app.services.artifacts.put(key, await bytes());
      // Each format into a fresh view version: the same file gives the same result.
      const { version } = await app.services.featureRegistry.updateView('filed', {
        schema: {
          source: 'filed_src',
          ttlSeconds: 30 * 24 * 3600 + ['parquet', 'arrow', 'csv'].indexOf(ext) + 1,
          allowedLatenessSeconds: 3600,
          features: (await app.services.featureRegistry.liveVersions('filed'))[0].schema.features,
        },
        metadata: {},
      });
      const reports = (
        await gql.ok(BackfillFeaturesDocument, { view: 'filed', file: { artifactKey: key } })
      ).backfillFeatures;
      const report = reports.find((r) => r.version === version.version);
      expect(report).toMatchObject({
        received: 6,
        accepted: 4,
        quarantined: 2,
        corrections: 1,
        byRule: expect.arrayContaining([
          { rule: 'CONFLICTING_DUPLICATE', count: 1 },
          { rule: 'OUT_OF_RANGE', count: 1 },
        ]),
      });
      const ref = `filed@${version.version}`;
      const ds = await gql.ok(BuildDatasetDocument, {
        input: {
          name: `filed-${ext}`,
          featureRefs: [`${ref}:x`, `${ref}:n_1d`],
          rows: [0.5, 1, 6, 8, 2400].map((h) => ({
            entityKey: h === 2400 ? 'f2' : 'f1',
            timestamp: new Date(T0 + h * H).toISOString(),
          })),
        },
        wait: true,
      });
      const got = await readSnapshot(app.services.artifacts, ds.buildDataset.artifactKey as string);
      expect(got.map((r) => [r[`${ref}:x`], r[`${ref}:n_1d`]])).toEqual([
        [null, 0],
        [10, 1],
        [20, 2],
        [20, 2], // a's correction (11) changes the window's members, not the latest (b)
        [9, 1],
      ]);
      const history = await app.db.dataSource.query(
        `SELECT c.compacted_rows::int AS n FROM feature_compaction c WHERE c.version_id = $1`,
        [version.id],
      );
      expect(history).toEqual([{ n: 4 }]); // written as segments, no row through the log
      const online = await gql.ok(OnlineFeaturesDocument, {
        entityKeys: ['f1', 'f2'],
        featureRefs: [`${ref}:x`],
      });
      expect(online.onlineFeatures.map((r) => r.vector[0])).toEqual([20, 9]);
    },
  );

  it('names a missing column and an unreadable file', async () => {
    await app.services.artifacts.put('uploads/bad.csv', Buffer.from('entity_key,x\nf1,1\n'));
    const missing = await gql.request(BackfillFeaturesDocument, {
      view: 'filed',
      file: { artifactKey: 'uploads/bad.csv' },
    });
    expect(missing.errors?.[0].extensions).toMatchObject({
      code: 'BAD_USER_INPUT',
      reason: 'INVALID_TABLE_FILE',
    });
    expect(missing.errors?.[0].message).toContain('event_id, event_ts, known_at');
    await app.services.artifacts.put('uploads/bad.parquet', Buffer.from('not parquet'));
    const unreadable = await gql.request(BackfillFeaturesDocument, {
      view: 'filed',
      file: { artifactKey: 'uploads/bad.parquet' },
    });
    expect(unreadable.errors?.[0].extensions).toMatchObject({ reason: 'INVALID_TABLE_FILE' });
  });
});
