import { columnValue } from '../src/domain/features/dataset';
import { AggregationFn, FeatureType } from '../src/domain/features/feature-definition';
import { type IngestionReport } from '../src/domain/features/feature-ingestion.service';
import {
  appendToStream,
  FeatureStreamConsumer,
  type StreamRecordInput,
} from '../src/infra/redis/feature-stream';
import { closeRedis, createRedisClient, type RedisClient } from '../src/infra/redis/redis-client';
import { createLogger } from '../src/infra/observability/logger';
import { startTestApp, type TestApp } from './support/test-app';

/**
 * Several consumers of one group race on the same entities: every update of an entity's
 * online state is one atomic script, and every version is stored once by its key, so however
 * the batches interleave, accepted + quarantined = sent, no update is lost or doubled, and
 * online and offline agree.
 */
const CONSUMERS = 4;
const ENTITIES = 3;
const EVENTS = 120;
let app: TestApp;
let producer: RedisClient;

beforeAll(async () => {
  app = await startTestApp(__filename, { env: { FEATURE_STREAM_CONSUMER: 'off' } });
  producer = createRedisClient(app.redisTarget, 'stream-consumers-producer');
  await app.services.featureRegistry.createEntity({ name: 'pump', joinKeys: ['pump_id'] });
  await app.services.featureRegistry.createView({
    name: 'flow',
    entity: 'pump',
    source: 'flow_src',
    ttlSeconds: 86_400,
    allowedLatenessSeconds: 86_400,
    features: [
      { name: 'x', aggregation: null },
      { name: 'n', aggregation: { fn: AggregationFn.COUNT, windowSeconds: 86_400 } },
      { name: 's', aggregation: { fn: AggregationFn.SUM, windowSeconds: 86_400 } },
    ].map((f) => ({
      ...f,
      type: FeatureType.FLOAT,
      source: 'x',
      transform: { kind: 'IDENTITY' as const },
      validation: {},
    })),
  });
});
afterAll(async () => {
  await closeRedis(producer);
  await app.stop();
});

/** A deterministic shuffle, so a failure can be replayed. */
function shuffled<T>(items: T[], seed: number): T[] {
  const out = [...items];
  let a = seed;
  for (let i = out.length - 1; i > 0; i--) {
    a = (Math.imul(a ^ (a >>> 15), 2246822519) + 0x9e3779b9) >>> 0;
    const j = a % (i + 1);
    [out[i], out[j]] = [out[j], out[i]];
  }
  return out;
}

it('several consumers of one group, racing on the same entities, lose and double nothing', async () => {
  const now = Date.now();
  const records: StreamRecordInput[] = [];
  /** Per entity: how many events, and the sum of their newest values. */
  const expected = new Map<string, { n: number; s: number }>();
  let conflicts = 0;
  let resends = 0;
  for (let i = 0; i < EVENTS; i++) {
    const entityKey = `p${i % ENTITIES}`;
    const eventTs = now - 3_600_000 + i * 1_000;
    const version = (k: number, x: number): StreamRecordInput => ({
      entityKey,
      eventId: `ev${i}`,
      eventTs,
      knownAt: eventTs + k * 100,
      fields: { x },
    });
    // Every event has an original and a correction; every third a second correction, which
    // then also meets a conflicting duplicate of the first; every fifth is sent twice.
    const versions = [version(0, i), version(1, i + 0.5)];
    if (i % 3 === 0) {
      versions.push(version(2, i + 0.75), version(1, -i - 1000));
      conflicts++;
    }
    if (i % 5 === 0) {
      versions.push(version(0, i));
      resends++;
    }
    records.push(...versions);
    const newest = i % 3 === 0 ? i + 0.75 : i + 0.5;
    const e = expected.get(entityKey) ?? { n: 0, s: 0 };
    expected.set(entityKey, { n: e.n + 1, s: e.s + newest });
  }

  const reports: IngestionReport[] = [];
  const perConsumer = new Array<number>(CONSUMERS).fill(0);
  const consumers = Array.from({ length: CONSUMERS }, (_, c) => {
    const blocking = createRedisClient(app.redisTarget, `stream-consumer-${c}`);
    return new FeatureStreamConsumer(
      blocking,
      app.redisPrefix,
      app.services.featureRegistry,
      app.services.ingestion,
      createLogger('silent'),
      { consumer: `c${c}`, batchSize: 7, blockMs: 50, refreshMs: 50 },
      (batch) => {
        reports.push(...batch.reports);
        perConsumer[c] += batch.entryIds.length;
      },
    );
  });
  for (const c of consumers) c.start();
  const stream = shuffled(records, 7);
  for (let i = 0; i < stream.length; i += 25)
    await appendToStream(producer, app.redisPrefix, 'flow_src', stream.slice(i, i + 25));

  const end = Date.now() + 30_000;
  const received = () => reports.reduce((a, r) => a + r.received, 0);
  while (received() < records.length && Date.now() < end)
    await new Promise((r) => setTimeout(r, 50));
  // stop() disconnects each consumer's blocking client.
  await Promise.all(consumers.map((c) => c.stop()));

  const sum = (k: keyof IngestionReport) => reports.reduce((a, r) => a + (r[k] as number), 0);
  expect(sum('received')).toBe(records.length);
  expect(sum('accepted') + sum('quarantined')).toBe(records.length);
  expect(sum('quarantined')).toBe(conflicts);
  expect(sum('duplicates')).toBe(resends);
  // The consumers shared the stream.
  expect(perConsumer.filter((n) => n > 0).length).toBeGreaterThan(1);

  const stored = (await app.db.dataSource.query(
    `SELECT count(*)::int AS n FROM feature_event e JOIN feature_view_version v ON v.id = e.version_id
      JOIN feature_view f ON f.id = v.view_id WHERE f.name = 'flow'`,
  )) as { n: number }[];
  expect(stored[0].n).toBe(records.length - conflicts - resends);

  const keys = [...expected.keys()];
  const refs = await app.services.featureRegistry.resolveRefs(['flow:x', 'flow:n', 'flow:s']);
  const online = await app.services.onlineFeatures.readResolved(keys, refs);
  const t = Date.now();
  const cols = await app.services.datasets.pointInTimeJoin(
    { id: '00000000-0000-0000-0000-000000000000', rowCount: keys.length },
    refs,
    keys.map((entityKey) => ({ entityKey, ts: t, label: null })),
  );
  keys.forEach((k, i) => {
    const { n, s } = expected.get(k) as { n: number; s: number };
    expect(online[i].vector.slice(1)).toEqual([n, s]);
    expect(cols.map((c) => columnValue(c, i))).toEqual(online[i].vector);
  });
});
