import { FeatureType, type FeatureViewVersion } from '../src/domain/features/feature-definition';
import { FeatureIngestionService } from '../src/domain/features/feature-ingestion.service';
import { type OfflineStore, type OnlineStore } from '../src/domain/features/feature-store.ports';
import { type IngestRecord } from '../src/domain/features/validation';
import { PostgresOfflineStore } from '../src/infra/db/features/offline-store';
import { RedisOnlineStore } from '../src/infra/redis/online-store';
import { closeRedis, createRedisClient, type RedisClient } from '../src/infra/redis/redis-client';
import { ManualClock } from '../src/domain/shared/clock';
import { startTestApp, type TestApp } from './support/test-app';

/**
 * Ingestion writes both stores at once and acknowledges only when both succeeded; a batch
 * where one write failed is delivered again. These cases fail one store once, for real, and
 * check that the redelivery ends where a clean delivery would have.
 */
const T0 = Date.parse('2026-05-01T00:00:00Z');
const MIN = 60_000;
let app: TestApp;
let redis: RedisClient;
const clock = new ManualClock(T0 + 60 * MIN);

/** A store whose `method` fails the first time, after the real call has run to completion. */
function failingOnce<T extends object>(store: T, method: keyof T): T {
  let failed = false;
  return new Proxy(store, {
    get(target, prop, receiver) {
      const value = Reflect.get(target, prop, receiver) as unknown;
      if (prop !== method || typeof value !== 'function') return value;
      return async (...args: unknown[]) => {
        const result: unknown = await (value as (...a: unknown[]) => Promise<unknown>).apply(
          target,
          args,
        );
        if (failed) return result;
        failed = true;
        throw new Error(`${String(method)} failed (injected)`);
      };
    },
  });
}

async function view(name: string): Promise<FeatureViewVersion> {
  const { version } = await app.services.featureRegistry.createView({
    name,
    entity: 'sensor',
    source: `${name}_src`,
    ttlSeconds: 24 * 3600,
    allowedLatenessSeconds: 60,
    features: [
      {
        name: 'v',
        type: FeatureType.FLOAT,
        source: 'v',
        transform: { kind: 'IDENTITY' },
        aggregation: null,
        validation: {},
      },
    ],
  });
  return version;
}

// Two events of one entity, ten minutes apart, in one batch; the lateness allowed is 60 s.
// Judged against its own later event, the first would be late.
const batch: IngestRecord[] = [
  { entityKey: 's1', eventId: 'a', eventTs: T0, fields: { v: 1 } },
  { entityKey: 's1', eventId: 'b', eventTs: T0 + 10 * MIN, fields: { v: 2 } },
];

/** `sql` counts rows as `n` for the version given as $1. */
async function countOf(sql: string, v: FeatureViewVersion): Promise<number> {
  const rows = (await app.db.dataSource.query(sql, [v.id])) as { n: number }[];
  return rows[0].n;
}

const offlineCount = (v: FeatureViewVersion) =>
  countOf('SELECT count(*)::int AS n FROM feature_event WHERE version_id = $1', v);

beforeAll(async () => {
  app = await startTestApp(__filename, { env: { FEATURE_STREAM_CONSUMER: 'off' } });
  redis = createRedisClient(app.redisTarget, 'ingestion-failures-test');
  await app.services.featureRegistry.createEntity({ name: 'sensor', joinKeys: ['sensor_id'] });
});

afterAll(async () => {
  await closeRedis(redis);
  await app.stop();
});

function ingestion(offline: OfflineStore, online: OnlineStore): FeatureIngestionService {
  return new FeatureIngestionService(offline, online, clock);
}

describe('a batch where one store write failed, delivered again', () => {
  it('offline failed after the online write landed: same verdicts, both stores complete', async () => {
    const v = await view('offline_fails');
    const online = new RedisOnlineStore(redis, app.redisPrefix);
    const offline = new PostgresOfflineStore(app.db, app.services.artifacts);
    const flaky = ingestion(failingOnce(offline, 'append'), online);
    await expect(flaky.ingest([v], batch, 'test')).rejects.toThrow('injected');

    // The online store already holds the batch; the redelivery must not judge the first
    // event late against the second one, which is only there because of this very batch.
    const [report] = await flaky.ingest([v], batch, 'test');
    expect(report).toMatchObject({ received: 2, accepted: 2, quarantined: 0 });
    expect(await offlineCount(v)).toBe(2);
    const [row] = await app.services.onlineFeatures.read(['s1'], ['offline_fails:v']);
    expect(row.vector).toEqual([2]);
  });

  it('online failed after the offline write landed: the redelivery repairs the online store', async () => {
    const v = await view('online_fails');
    const online = new RedisOnlineStore(redis, app.redisPrefix);
    const offline = new PostgresOfflineStore(app.db, app.services.artifacts);
    const failing: OnlineStore = {
      readMany: (k) => online.readMany(k),
      newestEventTimes: (k) => online.newestEventTimes(k),
      merge: () => Promise.reject(new Error('merge failed (injected)')),
    };
    await expect(ingestion(offline, failing).ingest([v], batch, 'test')).rejects.toThrow(
      'injected',
    );
    expect(await offlineCount(v)).toBe(2);
    expect((await app.services.onlineFeatures.read(['s1'], ['online_fails:v']))[0].vector).toEqual([
      null,
    ]);

    const [report] = await ingestion(offline, online).ingest([v], batch, 'test');
    expect(report).toMatchObject({ received: 2, accepted: 2, quarantined: 0, duplicates: 2 });
    expect(await offlineCount(v)).toBe(2);
    expect((await app.services.onlineFeatures.read(['s1'], ['online_fails:v']))[0].vector).toEqual([
      2,
    ]);
  });
});

describe('a batch whose quarantine write landed, delivered again', () => {
  // Late by more than the 60 s allowed, and breaking no other rule: quarantined alone.
  const late: IngestRecord[] = [
    { entityKey: 's2', eventId: 'new', eventTs: T0 + 30 * MIN, fields: { v: 1 } },
    { entityKey: 's2', eventId: 'old', eventTs: T0, fields: { v: 2 } },
  ];
  const waiting = (v: FeatureViewVersion) =>
    countOf(
      'SELECT count(*)::int AS n FROM feature_quarantine WHERE version_id = $1 AND replayed_at IS NULL',
      v,
    );

  it('a consumer that dies before its acknowledgement: the redelivery quarantines nothing twice', async () => {
    const v = await view('quarantine_once');
    const online = new RedisOnlineStore(redis, app.redisPrefix);
    const offline = new PostgresOfflineStore(app.db, app.services.artifacts);
    const flaky = ingestion(failingOnce(offline, 'quarantine'), online);
    await flaky.ingest([v], late.slice(0, 1), 'test');
    await expect(flaky.ingest([v], late.slice(1), 'test')).rejects.toThrow('injected');
    expect(await waiting(v)).toBe(1);

    const [again] = await flaky.ingest([v], late.slice(1), 'test');
    expect(again).toMatchObject({ received: 1, accepted: 0, quarantined: 1 });
    expect(await waiting(v)).toBe(1);

    // Replayed and late again, the record waits once more, as one new row.
    const [row] = (
      await app.services.quarantine.list('quarantine_once', false, { limit: 10, backward: false })
    ).items;
    const [replayed] = await app.services.quarantine.replay([row.id], false);
    expect(replayed).toMatchObject({ received: 1, quarantined: 1 });
    expect(await waiting(v)).toBe(1);
    await expect(app.services.quarantine.replay([row.id], false)).rejects.toThrow(
      'already replayed',
    );
  });
});
