import {
  BuildDatasetDocument,
  CreateFeatureEntityDocument,
  CreateFeatureViewDocument,
  type CreateFeatureViewInput,
  FeatureViewDocument,
  FeatureViewsDocument,
  NodeByIdDocument,
  IngestFeaturesDocument,
  OnlineFeaturesDocument,
  QuarantinedRecordsDocument,
  ReplayQuarantinedDocument,
  RetireFeatureViewVersionDocument,
  UpdateFeatureViewDocument,
} from './generated/graphql';
import { readSnapshot } from './support/datasets';
import { GraphQLTestClient } from './support/graphql-client';
import { ManualClock } from '../src/domain/shared/clock';
import { startTestApp, type TestApp } from './support/test-app';

const T0 = Date.parse('2026-01-01T00:00:00Z');
const H = 3_600_000;
const clock = new ManualClock(T0);
let app: TestApp;
let gql: GraphQLTestClient;

beforeAll(async () => {
  app = await startTestApp(__filename, {
    overrides: { clock },
    env: { FEATURE_STREAM_CONSUMER: 'off' },
  });
  gql = new GraphQLTestClient(app.url, app.adminToken);
  await gql.ok(CreateFeatureEntityDocument, { input: { name: 'user', joinKeys: ['user_id'] } });
});
afterAll(() => app.stop());

const ageView = (
  name: string,
  closed: 'LEFT' | 'RIGHT',
  edges = [0, 18, 35, 50, 100],
): CreateFeatureViewInput => ({
  name,
  entity: 'user',
  source: `${name}_src`,
  ttlSeconds: 24 * 3600,
  allowedLatenessSeconds: 7 * 24 * 3600,
  owner: 'growth',
  features: [
    { name: 'age', type: 'INT', validation: { min: 0, max: 120 } },
    { name: 'age_bucket', type: 'INT', source: 'age', transform: { kind: 'BIN', edges, closed } },
  ],
});

const record = (
  entityKey: string,
  eventId: string,
  at: number,
  fields: Record<string, unknown>,
) => ({
  entityKey,
  eventId,
  eventTime: new Date(at).toISOString(),
  fields,
});

describe('boundary parity', () => {
  it('gives the same bucket online and offline for every bin edge', async () => {
    await gql.ok(CreateFeatureViewDocument, { input: ageView('ages', 'RIGHT') });
    const ages = [0, 1, 17, 18, 19, 34, 35, 36, 49, 50, 51, 99, 100];
    clock.set(T0 + H);
    const report = await gql.ok(IngestFeaturesDocument, {
      view: 'ages',
      records: ages.map((a) => record(`u${a}`, `e${a}`, T0, { age: a })),
    });
    expect(report.ingestFeatures[0]).toMatchObject({
      received: ages.length,
      accepted: ages.length,
      quarantined: 0,
    });

    const keys = ages.map((a) => `u${a}`);
    const online = await gql.ok(OnlineFeaturesDocument, {
      entityKeys: keys,
      featureRefs: ['ages:age_bucket'],
    });
    const onlineBuckets = online.onlineFeatures.map((r) => r.values[0].value);
    // (0,18] → 0, (18,35] → 1, (35,50] → 2, (50,100] → 3; 0 is outside (0, …].
    expect(onlineBuckets).toEqual([null, 0, 0, 0, 1, 1, 1, 2, 2, 2, 3, 3, 3]);

    const ds = await gql.ok(BuildDatasetDocument, {
      input: {
        name: 'ages-train',
        featureRefs: ['ages@1:age_bucket'],
        rows: keys.map((k) => ({ entityKey: k, timestamp: new Date(T0 + H).toISOString() })),
      },
      wait: true,
    });
    expect(ds.buildDataset.status).toBe('READY');
    const rows = await readSnapshot(app.services.artifacts, ds.buildDataset.artifactKey as string);
    expect(rows.map((r) => r['ages@1:age_bucket'])).toEqual(onlineBuckets);
  });
});

describe('versions', () => {
  it('serves v1 and v2 side by side with different logic; metadata edits keep the version', async () => {
    await gql.ok(CreateFeatureViewDocument, { input: ageView('ages_v', 'RIGHT') });
    const meta = await gql.ok(UpdateFeatureViewDocument, {
      input: { name: 'ages_v', description: 'age of the user', owner: 'risk' },
    });
    expect(meta.updateFeatureView).toMatchObject({
      newVersion: false,
      version: { version: 1 },
      view: { description: 'age of the user', owner: 'risk' },
    });

    const { name: _n, entity: _e, owner: _o, ...schema } = ageView('ages_v', 'LEFT');
    const v2 = await gql.ok(UpdateFeatureViewDocument, { input: { name: 'ages_v', schema } });
    expect(v2.updateFeatureView).toMatchObject({
      newVersion: true,
      version: { version: 2, ref: 'ages_v@2' },
    });
    // The same definition again is not a new version.
    expect(
      (await gql.ok(UpdateFeatureViewDocument, { input: { name: 'ages_v', schema } }))
        .updateFeatureView.newVersion,
    ).toBe(false);

    clock.set(T0 + H);
    const ingest = await gql.ok(IngestFeaturesDocument, {
      view: 'ages_v',
      records: [record('u18', 'a', T0, { age: 18 })],
    });
    expect(ingest.ingestFeatures.map((r) => [r.version, r.accepted])).toEqual([
      [1, 1],
      [2, 1],
    ]);
    const r = await gql.ok(OnlineFeaturesDocument, {
      entityKeys: ['u18'],
      featureRefs: ['ages_v@1:age_bucket', 'ages_v@2:age_bucket', 'ages_v:age_bucket'],
    });
    expect(r.onlineFeatures[0].values.map((v) => [v.ref, v.value])).toEqual([
      ['ages_v@1:age_bucket', 0],
      ['ages_v@2:age_bucket', 1],
      ['ages_v@2:age_bucket', 1],
    ]);
    // view@version:* is every feature of that version, in definition order.
    const all = await gql.ok(OnlineFeaturesDocument, {
      entityKeys: ['u18'],
      featureRefs: ['ages_v@2:*', 'ages_v@1:age_bucket'],
    });
    expect(all.onlineFeatures[0].values.map((v) => [v.ref, v.value])).toEqual([
      ['ages_v@2:age', 18],
      ['ages_v@2:age_bucket', 1],
      ['ages_v@1:age_bucket', 0],
    ]);
    expect(all.onlineFeatures[0].vector).toEqual([18, 1, 0]);
  });

  it('lists consumers and refuses to retire a version that still has one', async () => {
    const view = await gql.ok(FeatureViewDocument, { name: 'ages' });
    expect(view.featureView?.versions[0].consumers.map((c) => [c.kind, c.name])).toEqual([
      ['DATASET', 'ages-train'],
    ]);
    const r = await gql.request(RetireFeatureViewVersionDocument, { view: 'ages', version: 1 });
    expect(r.errors?.[0].extensions).toMatchObject({ code: 'CONFLICT', reason: 'VERSION_IN_USE' });
    const retired = await gql.ok(RetireFeatureViewVersionDocument, { view: 'ages_v', version: 1 });
    expect(retired.retireFeatureViewVersion.retiredAt).not.toBeNull();
  });
});

describe('validation and quarantine', () => {
  it('quarantines wrong types, out-of-range values and a null-fraction breach, stores the rest, and replays', async () => {
    await gql.ok(CreateFeatureViewDocument, {
      input: {
        name: 'profiles',
        entity: 'user',
        source: 'profiles_src',
        ttlSeconds: 3600,
        features: [
          { name: 'age', type: 'INT', validation: { min: 0, max: 120 } },
          { name: 'score', type: 'FLOAT', validation: { maxNullFraction: 0.2 } },
        ],
      },
    });
    clock.set(T0 + 2 * H);
    const records = [
      record('p1', '1', T0 + H, { age: 30, score: 0.5 }),
      record('p2', '2', T0 + H, { age: 'thirty', score: 0.5 }),
      record('p3', '3', T0 + H, { age: 150, score: 0.5 }),
      record('p4', '4', T0 + H, { age: 40 }),
      record('p5', '5', T0 + H, { age: 41, score: null }),
      record('p6', '6', T0 + H, { age: 42, score: 0.9 }),
    ];
    const [report] = (await gql.ok(IngestFeaturesDocument, { view: 'profiles', records }))
      .ingestFeatures;
    expect(report.accepted + report.quarantined).toBe(report.received);
    expect(report).toMatchObject({ received: 6, accepted: 2, quarantined: 4 });
    expect(Object.fromEntries(report.byRule.map((b) => [b.rule, b.count]))).toEqual({
      WRONG_TYPE: 1,
      OUT_OF_RANGE: 1,
      NULL_FRACTION_EXCEEDED: 2,
    });

    const q = await gql.ok(QuarantinedRecordsDocument, { view: 'profiles', first: 50 });
    const byEntity = Object.fromEntries(
      q.quarantinedRecords.edges.map((e) => [e.node.entityKey, e.node]),
    );
    expect(byEntity.p2.violations[0]).toMatchObject({ rule: 'WRONG_TYPE', feature: 'age' });
    expect(byEntity.p3.violations[0].message).toContain('150 is outside [0, 120]');
    expect(byEntity.p2.payload).toMatchObject({ entityKey: 'p2', fields: { age: 'thirty' } });

    const online = await gql.ok(OnlineFeaturesDocument, {
      entityKeys: ['p1', 'p3'],
      featureRefs: ['profiles:age'],
    });
    expect(online.onlineFeatures.map((r) => r.values[0].value)).toEqual([30, null]);

    // The range was too strict: widen it (a new version) and replay the out-of-range record.
    await gql.ok(UpdateFeatureViewDocument, {
      input: {
        name: 'profiles',
        schema: {
          source: 'profiles_src',
          ttlSeconds: 3600,
          features: [
            { name: 'age', type: 'INT', validation: { min: 0, max: 200 } },
            { name: 'score', type: 'FLOAT', validation: { maxNullFraction: 0.2 } },
          ],
        },
      },
    });
    const replay = await gql.ok(ReplayQuarantinedDocument, {
      ids: [byEntity.p3.id, byEntity.p2.id],
      toLatestVersion: true,
    });
    expect(replay.replayQuarantined).toEqual([
      { view: 'profiles', version: 2, received: 2, accepted: 1, quarantined: 1 },
    ]);
    const after = await gql.ok(OnlineFeaturesDocument, {
      entityKeys: ['p3'],
      featureRefs: ['profiles@2:age'],
    });
    expect(after.onlineFeatures[0].values[0].value).toBe(150);
    const still = await gql.ok(QuarantinedRecordsDocument, { view: 'profiles', first: 50 });
    expect(still.quarantinedRecords.edges.map((e) => e.node.entityKey).sort()).toEqual([
      'p2',
      'p4',
      'p5',
    ]);
    // Replaying twice is refused: nothing is ingested twice.
    const again = await gql.request(ReplayQuarantinedDocument, { ids: [byEntity.p3.id] });
    expect(again.errors?.[0].extensions).toMatchObject({
      code: 'NOT_FOUND',
      reason: 'QUARANTINE_NOT_FOUND',
    });
  });
});

describe('leakage', () => {
  it('excludes events after t, backfills learned after t, values beyond the TTL, and aggregates after t', async () => {
    await gql.ok(CreateFeatureViewDocument, {
      input: {
        name: 'txns',
        entity: 'user',
        source: 'txns_src',
        ttlSeconds: 10 * 3600,
        allowedLatenessSeconds: 30 * 24 * 3600,
        features: [
          { name: 'amount', type: 'FLOAT' },
          {
            name: 'n_24h',
            type: 'FLOAT',
            source: 'amount',
            aggregation: { fn: 'COUNT', windowSeconds: 24 * 3600 },
          },
          {
            name: 'sum_24h',
            type: 'FLOAT',
            source: 'amount',
            aggregation: { fn: 'SUM', windowSeconds: 24 * 3600 },
          },
        ],
      },
    });
    const ingestAt = async (createdH: number, id: string, eventH: number, amount: number) => {
      clock.set(T0 + createdH * H);
      await gql.ok(IngestFeaturesDocument, {
        view: 'txns',
        records: [record('x', id, T0 + eventH * H, { amount })],
      });
    };
    await ingestAt(1, 'a', 1, 10);
    await ingestAt(5, 'b', 5, 50);
    await ingestAt(20, 'backfill', 3, 1000); // happened at 3h, learned at 20h
    await ingestAt(20.5, 'c', 20.5, 5);

    const at = [2, 4, 5, 14.9, 15.5, 21];
    const ds = await gql.ok(BuildDatasetDocument, {
      input: {
        name: 'leak',
        featureRefs: ['txns:amount', 'txns:n_24h', 'txns:sum_24h'],
        rows: at.map((h) => ({ entityKey: 'x', timestamp: new Date(T0 + h * H).toISOString() })),
      },
      wait: true,
    });
    const rows = await readSnapshot(app.services.artifacts, ds.buildDataset.artifactKey as string);
    expect(rows.map((r) => [r['txns@1:amount'], r['txns@1:n_24h'], r['txns@1:sum_24h']])).toEqual([
      [10, 1, 10], // 2h: only a
      [10, 1, 10], // 4h: b has not happened, the 3h backfill is not known yet
      [50, 2, 60], // 5h: b counts at exactly its event time
      [50, 2, 60], // 14.9h: b is 9.9h old, inside the 10h TTL
      // 15.5h: the newest known event is 10.5h old, beyond the TTL: no latest value; the 24h
      // window still holds a and b (a window says how fresh it is itself).
      [null, 2, 60],
      [5, 4, 1065], // 21h: the backfill is known now and falls in the 24h window
    ]);
  });
});

describe('replaying history with knownAt', () => {
  it('uses the known-at time for point-in-time visibility, never later than ingestion', async () => {
    await gql.ok(CreateFeatureViewDocument, {
      input: {
        name: 'hist',
        entity: 'user',
        source: 'hist_src',
        ttlSeconds: 200 * 3600,
        allowedLatenessSeconds: 30 * 24 * 3600,
        features: [{ name: 'x', type: 'FLOAT' }],
      },
    });
    clock.set(T0 + 100 * H);
    await gql.ok(IngestFeaturesDocument, {
      view: 'hist',
      records: [
        {
          ...record('h', 'past', T0 + 10 * H, { x: 1 }),
          knownAt: new Date(T0 + 11 * H).toISOString(),
        },
        // Claims to be known in the future: clamped to the ingestion time (100h).
        {
          ...record('h', 'future', T0 + 20 * H, { x: 2 }),
          knownAt: new Date(T0 + 500 * H).toISOString(),
        },
      ],
    });
    const bad = await gql.ok(IngestFeaturesDocument, {
      view: 'hist',
      records: [
        {
          ...record('h', 'before', T0 + 30 * H, { x: 3 }),
          knownAt: new Date(T0 + 29 * H).toISOString(),
        },
      ],
    });
    expect(bad.ingestFeatures[0].byRule).toEqual([{ rule: 'INVALID_EVENT_TIME', count: 1 }]);
    const ds = await gql.ok(BuildDatasetDocument, {
      input: {
        name: 'hist',
        featureRefs: ['hist:x'],
        rows: [10.5, 11, 60, 100].map((h) => ({
          entityKey: 'h',
          timestamp: new Date(T0 + h * H).toISOString(),
        })),
      },
      wait: true,
    });
    const rows = await readSnapshot(app.services.artifacts, ds.buildDataset.artifactKey as string);
    expect(rows.map((r) => r['hist@1:x'])).toEqual([null, 1, 1, 2]);
  });
});

describe('datasets', () => {
  it('gives the same content hash for the same spec over the same data', async () => {
    const input = {
      name: 'det',
      featureRefs: ['ages@1:age', 'ages@1:age_bucket'],
      rows: [18, 35, 50].map((a) => ({
        entityKey: `u${a}`,
        timestamp: new Date(T0 + H).toISOString(),
        label: a > 30 ? 1 : 0,
      })),
    };
    const a = await gql.ok(BuildDatasetDocument, { input, wait: true });
    const b = await gql.ok(BuildDatasetDocument, { input, wait: true });
    expect(a.buildDataset.contentHash).toMatch(/^[0-9a-f]{64}$/);
    expect(b.buildDataset.contentHash).toBe(a.buildDataset.contentHash);
    expect(a.buildDataset.columns.map((c) => c.name)).toEqual([
      'entity_key',
      'ts',
      'label',
      'ages@1:age',
      'ages@1:age_bucket',
    ]);
    const rows = await readSnapshot(app.services.artifacts, a.buildDataset.artifactKey as string);
    expect(rows.map((r) => [r.entity_key, r.label, r['ages@1:age']])).toEqual([
      ['u18', 0, 18],
      ['u35', 1, 35],
      ['u50', 1, 50],
    ]);
  });
});

describe('registry listing', () => {
  it('pages through every view once, and reaches views and entities by node id', async () => {
    const seen: string[] = [];
    let after: string | null | undefined;
    for (;;) {
      const page = await gql.ok(FeatureViewsDocument, { first: 2, after });
      seen.push(...page.featureViews.edges.map((e) => e.node.name));
      if (!page.featureViews.pageInfo.hasNextPage) break;
      after = page.featureViews.pageInfo.endCursor;
    }
    expect(seen.length).toBeGreaterThanOrEqual(4);
    expect(new Set(seen).size).toBe(seen.length);
    const first = await gql.ok(FeatureViewsDocument, { first: 1 });
    expect(first.featureEntities.edges.map((e) => e.node)).toEqual([
      expect.objectContaining({ name: 'user', joinKeys: ['user_id'] }),
    ]);
    const node = await gql.ok(NodeByIdDocument, { id: first.featureViews.edges[0].node.id });
    expect(node.node).toMatchObject({ __typename: 'FeatureView' });
  });
});

describe('bad input', () => {
  it('answers each with a code and changes nothing', async () => {
    const bin = await gql.request(CreateFeatureViewDocument, {
      input: {
        name: 'nobin',
        entity: 'user',
        source: 's',
        ttlSeconds: 60,
        features: [{ name: 'a', type: 'INT', transform: { kind: 'BIN', edges: [0, 1] } }],
      },
    });
    expect(bin.errors?.[0]).toMatchObject({
      extensions: { code: 'BAD_USER_INPUT', reason: 'INVALID_FEATURE_DEFINITION' },
    });
    expect(bin.errors?.[0].message).toContain('explicit closure');
    const entity = await gql.request(CreateFeatureViewDocument, {
      input: { ...ageView('orphan', 'LEFT'), entity: 'ghost' },
    });
    expect(entity.errors?.[0].extensions).toMatchObject({
      code: 'NOT_FOUND',
      reason: 'ENTITY_NOT_FOUND',
    });
    const dup = await gql.request(CreateFeatureViewDocument, { input: ageView('ages', 'LEFT') });
    expect(dup.errors?.[0].extensions).toMatchObject({ code: 'CONFLICT', reason: 'VIEW_EXISTS' });
    const ref = await gql.request(OnlineFeaturesDocument, {
      entityKeys: ['u1'],
      featureRefs: ['ages:Age Bucket'],
    });
    expect(ref.errors?.[0].extensions).toMatchObject({
      code: 'BAD_USER_INPUT',
      reason: 'INVALID_FEATURE_REF',
    });
    const missing = await gql.request(OnlineFeaturesDocument, {
      entityKeys: ['u1'],
      featureRefs: ['ages@9:age'],
    });
    expect(missing.errors?.[0].extensions).toMatchObject({
      code: 'NOT_FOUND',
      reason: 'VERSION_NOT_FOUND',
    });
    const feature = await gql.request(OnlineFeaturesDocument, {
      entityKeys: ['u1'],
      featureRefs: ['ages:height'],
    });
    expect(feature.errors?.[0].extensions).toMatchObject({
      code: 'NOT_FOUND',
      reason: 'FEATURE_NOT_FOUND',
    });
    const noView = await gql.request(IngestFeaturesDocument, { view: 'nope', records: [] });
    expect(noView.errors?.[0].extensions).toMatchObject({
      code: 'NOT_FOUND',
      reason: 'VIEW_NOT_FOUND',
    });
    const viewer = await gql.ok(FeatureViewDocument, { name: 'ages' });
    expect(viewer.featureView?.versions).toHaveLength(1);
  });
});
