import { FeatureType } from '../src/domain/features/feature-definition';
import { toGlobalId } from '../src/schema/node.types';
import {
  BuildDatasetDocument,
  DatasetProgressDocument,
  type DatasetProgressSubscription,
} from './generated/graphql';
import { collect, GraphQLTestClient } from './support/graphql-client';
import { startTestApp, type TestApp } from './support/test-app';

/**
 * `datasetProgress` end to end over WebSocket: a subscriber sees the build's state when it
 * arrives, then its progress, and the subscription completes with the outcome; one that
 * arrives after the end still learns it.
 */
const T0 = Date.parse('2026-07-01T00:00:00Z');
let app: TestApp;
let gql: GraphQLTestClient;

beforeAll(async () => {
  app = await startTestApp(__filename, { env: { FEATURE_STREAM_CONSUMER: 'off' } });
  gql = new GraphQLTestClient(app.url, app.adminToken);
  const s = app.services;
  await s.featureRegistry.createEntity({ name: 'shop', joinKeys: ['shop_id'] });
  const { version } = await s.featureRegistry.createView({
    name: 'sales',
    entity: 'shop',
    source: 'sales_src',
    ttlSeconds: 90 * 86_400,
    allowedLatenessSeconds: 90 * 86_400,
    features: [
      {
        name: 'amount',
        type: FeatureType.FLOAT,
        source: 'amount',
        transform: { kind: 'IDENTITY' },
        aggregation: null,
        validation: {},
      },
    ],
  });
  const records = Array.from({ length: 9_000 }, (_, i) => ({
    entityKey: `shop${i % 3_000}`,
    eventId: `s${i}`,
    eventTs: T0 + i * 60_000,
    fields: { amount: i % 97 },
  }));
  await s.ingestion.ingest([version], records, 'test');
});

afterAll(() => app.stop());

const spine = Array.from({ length: 12_000 }, (_, i) => ({
  entityKey: `shop${i % 3_000}`,
  timestamp: new Date(T0 + 9_000 * 60_000).toISOString(),
  label: i % 2,
}));

async function build(name: string): Promise<string> {
  const r = await gql.ok(BuildDatasetDocument, {
    input: { name, featureRefs: ['sales:amount'], rows: spine },
    wait: false,
  });
  return r.buildDataset.id;
}

type Progress = DatasetProgressSubscription['datasetProgress'];

describe('datasetProgress', () => {
  it('follows a build from where it is to READY, then completes', async () => {
    const id = await build('progress-live');
    const ws = gql.ws();
    const sub = collect(ws, DatasetProgressDocument, { id });
    await sub.completed;
    await ws.dispose();
    expect(sub.errors).toEqual([]);
    const seen: Progress[] = sub.events.map((e) => e.datasetProgress);
    expect(seen.length).toBeGreaterThanOrEqual(1);
    expect(seen.every((e) => e.datasetId === id)).toBe(true);
    expect(seen[seen.length - 1]).toMatchObject({ status: 'READY', progress: 1, rowsDone: 12_000 });
    expect(seen.slice(0, -1).every((e) => e.status === 'BUILDING')).toBe(true);
    const progress = seen.map((e) => e.progress);
    expect([...progress].sort((a, b) => a - b)).toEqual(progress);
  });

  it('tells a subscriber that arrives after the end how it ended', async () => {
    const id = await build('progress-late');
    const ws = gql.ws();
    const first = collect(ws, DatasetProgressDocument, { id });
    await first.completed;
    const late = collect(ws, DatasetProgressDocument, { id });
    await late.completed;
    await ws.dispose();
    expect(late.events.map((e) => e.datasetProgress)).toEqual([
      { datasetId: id, status: 'READY', progress: 1, rowsDone: 12_000 },
    ]);
  });

  it('refuses an unknown dataset with its code', async () => {
    const ws = gql.ws();
    const sub = collect(ws, DatasetProgressDocument, {
      id: toGlobalId('DatasetSnapshot', '00000000-0000-0000-0000-000000000000'),
    });
    await sub.completed;
    await ws.dispose();
    expect(JSON.stringify(sub.errors)).toContain('DATASET_NOT_FOUND');
  });
});
