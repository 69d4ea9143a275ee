import { FeatureType } from '../../src/domain/features/feature-definition';
import { DatasetStatus } from '../../src/domain/features/dataset';
import { until } from '../support/runner-process';
import { startTestApp, type TestApp } from '../support/test-app';

/**
 * A dataset build whose process died (docs/adr/0027): another process takes it over from the
 * stored spine and ends with the same bytes a whole build gives; a build that died before its
 * spine was stored fails with a reason instead of staying BUILDING for ever; a live builder's
 * build is never taken.
 */
const T0 = Date.parse('2026-07-01T00:00:00Z');
let app: TestApp;

beforeAll(async () => {
  app = await startTestApp(__filename, {
    env: { FEATURE_STREAM_CONSUMER: 'off', DATASET_BUILD_TTL_MS: '600', LEASE_TTL_MS: '1000' },
  });
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
  await s.ingestion.ingest(
    [version],
    Array.from({ length: 600 }, (_, i) => ({
      entityKey: `shop${i % 50}`,
      eventId: `s${i}`,
      eventTs: T0 + i * 60_000,
      fields: { amount: i % 97 },
    })),
    'test',
  );
});

afterAll(() => app.stop());

const spine = Array.from({ length: 200 }, (_, i) => ({
  entityKey: `shop${i % 50}`,
  ts: T0 + (i * 3 + 7) * 60_000,
  label: i % 2,
}));

/** Puts a finished build back as a process that died mid-build would have left it. */
async function dieMidBuild(id: string, keepSpine: boolean): Promise<void> {
  await app.db.dataSource.query(
    `UPDATE dataset_snapshot SET status = 'BUILDING', builder = 'dead-process', progress = 0.4,
       heartbeat_at = clock_timestamp() - interval '1 hour', content_hash = NULL, artifact = NULL,
       completed_at = NULL, spine_file = CASE WHEN $2 THEN spine_file ELSE NULL END
     WHERE id = $1`,
    [id, keepSpine],
  );
}

async function settled(id: string) {
  let d = await app.services.datasets.get(id);
  await until(async () => {
    d = await app.services.datasets.get(id);
    return d.status !== DatasetStatus.BUILDING ? true : undefined;
  }, 15_000);
  return d;
}

describe('dataset builds across processes', () => {
  it('a build whose process died is taken over from its spine and gives the same bytes', async () => {
    const { done } = await app.services.datasets.build({
      name: 'takeover',
      featureRefs: ['sales:amount'],
      spine,
    });
    const whole = await done;
    expect(whole.status).toBe(DatasetStatus.READY);
    expect(whole.spineFile).not.toBeNull();

    await dieMidBuild(whole.id, true);
    expect((await app.services.datasets.get(whole.id)).status).toBe(DatasetStatus.BUILDING);
    // The leased dataset-builds loop finds it (TTL 600 ms) without being asked.
    const resumed = await settled(whole.id);
    expect(resumed.status).toBe(DatasetStatus.READY);
    expect(resumed.contentHash).toBe(whole.contentHash);
    expect(resumed.artifact?.sha256).toBe(whole.artifact?.sha256);
  });

  it('a build recorded without a stored spine fails with a reason instead of staying BUILDING', async () => {
    const { done } = await app.services.datasets.build({
      name: 'no-spine',
      featureRefs: ['sales:amount'],
      spine,
    });
    const d = await done;
    await dieMidBuild(d.id, false);
    const ended = await settled(d.id);
    expect(ended.status).toBe(DatasetStatus.FAILED);
    expect(ended.error).toMatch(/spine/);
  });

  it('never takes a build whose holder still beats', async () => {
    const { done } = await app.services.datasets.build({
      name: 'alive',
      featureRefs: ['sales:amount'],
      spine,
    });
    const d = await done;
    await app.db.dataSource.query(
      `UPDATE dataset_snapshot SET status = 'BUILDING', builder = 'live-process',
         heartbeat_at = clock_timestamp() + interval '1 hour' WHERE id = $1`,
      [d.id],
    );
    expect(await app.services.datasets.resumeStalled()).toEqual([]);
    expect((await app.services.datasets.get(d.id)).status).toBe(DatasetStatus.BUILDING);
  });
});
