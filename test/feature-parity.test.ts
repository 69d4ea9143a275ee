import { columnValue } from '../src/domain/features/dataset';
import fc from 'fast-check';
import {
  CONSUMER_GROUP,
  appendToStream,
  streamEntryFields,
  streamKey,
} from '../src/infra/redis/feature-stream';
import { closeRedis, createRedisClient, type RedisClient } from '../src/infra/redis/redis-client';
import {
  type Aggregation,
  AggregationFn,
  BinClosure,
  type FeatureSpec,
  FeatureType,
  type FeatureViewSchema,
  type Transform,
} from '../src/domain/features/feature-definition';
import { type ResolvedRef } from '../src/domain/features/feature-registry.service';
import { type IngestRecord } from '../src/domain/features/validation';
import { FeatureStreamsDocument, OnlineFeaturesDocument } from './generated/graphql';
import { GraphQLTestClient } from './support/graphql-client';
import { ManualClock } from '../src/domain/shared/clock';
import { startTestApp, type TestApp } from './support/test-app';

const T0 = Date.parse('2026-03-01T00:00:00Z');
const MIN = 60_000;
const clock = new ManualClock(T0);
let app: TestApp;
let redis: RedisClient;

/** A FLOAT feature over the record field `v`. */
const feature = (
  name: string,
  transform: Transform,
  aggregation: Aggregation | null = null,
): FeatureSpec => ({
  name,
  type: FeatureType.FLOAT,
  source: 'v',
  transform,
  aggregation,
  validation: {},
});
const identity: Transform = { kind: 'IDENTITY' };
const bins = (closed: BinClosure): Transform => ({ kind: 'BIN', edges: [-50, 0, 10, 50], closed });

const schema = (source: string): Omit<FeatureViewSchema, 'entity'> => ({
  source,
  ttlSeconds: 2 * 3600,
  allowedLatenessSeconds: 3600,
  features: [
    feature('v', identity),
    feature('v_bin', bins(BinClosure.LEFT)),
    feature('n_1h', identity, { fn: AggregationFn.COUNT, windowSeconds: 3600 }),
    feature('mean_1h', identity, { fn: AggregationFn.MEAN, windowSeconds: 3600 }),
    feature('sum_3h', identity, { fn: AggregationFn.SUM, windowSeconds: 3 * 3600 }),
    feature('max_3h', identity, { fn: AggregationFn.MAX, windowSeconds: 3 * 3600 }),
    feature('last_bin_2h', bins(BinClosure.RIGHT), {
      fn: AggregationFn.LAST,
      windowSeconds: 2 * 3600,
    }),
  ],
});
const FEATURES = ['v', 'v_bin', 'n_1h', 'mean_1h', 'sum_3h', 'max_3h', 'last_bin_2h'];

beforeAll(async () => {
  app = await startTestApp(__filename, {
    overrides: { clock },
    env: { FEATURE_STREAM_CLAIM_IDLE_MS: '200' },
  });
  redis = createRedisClient(app.redisTarget, 'test');
  await app.services.featureRegistry.createEntity({ name: 'station', joinKeys: ['station_id'] });
  await app.services.featureRegistry.createView({
    name: 'pp',
    entity: 'station',
    ...schema('pp_src'),
  });
  await app.services.featureRegistry.createView({
    name: 'sw',
    entity: 'station',
    ...schema('sw_src'),
  });
});
afterAll(async () => {
  await closeRedis(redis);
  await app.stop();
});

async function refs(view: string): Promise<ResolvedRef[]> {
  return app.services.featureRegistry.resolveRefs(FEATURES.map((f) => `${view}:${f}`));
}

async function offlineAt(resolved: ResolvedRef[], rows: { entityKey: string; ts: number }[]) {
  const cols = await app.services.datasets.pointInTimeJoin(
    { id: '00000000-0000-0000-0000-000000000000', rowCount: rows.length },
    resolved,
    rows.map((r) => ({ ...r, label: null })),
  );
  return rows.map((_, i) => cols.map((c) => columnValue(c, i)));
}

/** Features 2.. are windowed aggregates: they keep their window's value beyond the TTL. */
const AGGREGATES_FROM = 2;

type Step =
  | { kind: 'event'; gapMin: number; lagMin: number; v: number }
  | {
      kind: 'correct';
      gapMin: number;
      target: number;
      v: number;
      moveMin: number | null;
      knownLagMin: number | null;
    }
  | { kind: 'resend'; gapMin: number; target: number };

describe('online/offline parity (property-based)', () => {
  let run = 0;
  let corrections = 0;
  let duplicates = 0;
  it('the online value at t equals the point-in-time offline value at t, for random events, corrections and re-sends (with part of the history compacted)', async () => {
    const resolved = await refs('pp');
    const versions = await app.services.featureRegistry.liveVersions('pp');
    const gapMin = fc.integer({ min: 1, max: 90 });
    const v = fc.oneof(
      fc.integer({ min: -60, max: 60 }),
      fc.double({ min: -60, max: 60, noNaN: true }),
    );
    const step: fc.Arbitrary<Step> = fc.oneof(
      {
        weight: 3,
        arbitrary: fc.record({
          kind: fc.constant('event' as const),
          gapMin,
          lagMin: fc.integer({ min: 0, max: 100 }),
          v,
        }),
      },
      {
        weight: 2,
        arbitrary: fc.record({
          kind: fc.constant('correct' as const),
          gapMin,
          target: fc.nat(),
          v,
          // Some corrections move the event in time; some say when they were known.
          moveMin: fc.option(fc.integer({ min: -40, max: 40 }), { freq: 3 }),
          knownLagMin: fc.option(fc.integer({ min: 0, max: 30 }), { freq: 2 }),
        }),
      },
      {
        weight: 1,
        arbitrary: fc.record({ kind: fc.constant('resend' as const), gapMin, target: fc.nat() }),
      },
    );
    await fc.assert(
      fc.asyncProperty(
        fc.array(step, { minLength: 1, maxLength: 14 }),
        fc.integer({ min: 0, max: 200 }),
        fc.integer({ min: -1, max: 13 }),
        async (steps, tailMin, compactAfter) => {
          const entityKey = `s${run++}`;
          let created = T0 + run * 1000 * MIN;
          /** What each event was last sent as: a re-send sends it again unchanged. */
          const sent: { eventId: string; eventTs: number; v: number }[] = [];
          const reads: { entityKey: string; ts: number; online: unknown[]; stale: boolean }[] = [];
          for (let i = 0; i < steps.length; i++) {
            const s = steps[i];
            clock.set(created);
            let record: IngestRecord;
            if (s.kind === 'event' || !sent.length) {
              const e = s.kind === 'event' ? s : { lagMin: 0, v: 0 };
              sent.push({ eventId: `e${i}`, eventTs: created - e.lagMin * MIN, v: e.v });
              record = { entityKey, ...recordOf(sent[sent.length - 1]) };
            } else if (s.kind === 'correct') {
              const e = sent[s.target % sent.length];
              e.v = s.v;
              if (s.moveMin !== null) e.eventTs += s.moveMin * MIN;
              record = {
                entityKey,
                ...recordOf(e),
                // Known before its ingestion, but after every read so far: what a read has
                // seen stays what was known then.
                ...(s.knownLagMin !== null
                  ? {
                      knownAt: Math.max(
                        e.eventTs,
                        created - s.knownLagMin * MIN,
                        (reads[reads.length - 1]?.ts ?? 0) + 1,
                      ),
                    }
                  : {}),
              };
            } else record = { entityKey, ...recordOf(sent[s.target % sent.length]) };
            const [report] = await app.services.ingestion.ingest(versions, [record], 'test');
            corrections += report.corrections;
            duplicates += report.duplicates;
            // Part of the history goes into columnar segments, the rest stays in the log:
            // the offline join must read the two as one.
            if (i === compactAfter) await app.services.compaction.compact('pp', null);
            const next =
              i + 1 < steps.length
                ? created + steps[i + 1].gapMin * MIN
                : created + tailMin * MIN + 1;
            // Read at the instant of ingestion and halfway to the next one.
            for (const t of [created, Math.floor((created + next) / 2)]) {
              clock.set(t);
              const [row] = await app.services.onlineFeatures.readResolved([entityKey], resolved);
              reads.push({
                entityKey,
                ts: t,
                online: row.vector,
                stale: row.freshness[0].stale,
              });
            }
            created = next;
          }
          const offline = await offlineAt(resolved, reads);
          reads.forEach((r, i) => {
            // Offline, latest values are null beyond the TTL; windows keep their value.
            const expected = r.stale
              ? r.online.map((x, f) => (f < AGGREGATES_FROM ? null : x))
              : r.online;
            expect({ t: r.ts - T0, values: offline[i] }).toEqual({
              t: r.ts - T0,
              values: expected,
            });
          });
        },
      ),
      { numRuns: 40 },
    );
    // The runs did correct and re-send events, not only append new ones.
    expect(corrections).toBeGreaterThan(10);
    expect(duplicates).toBeGreaterThan(3);
  });
});

function recordOf(e: { eventId: string; eventTs: number; v: number }) {
  return { eventId: e.eventId, eventTs: e.eventTs, fields: { v: e.v } };
}

async function drained(source: string, timeoutMs = 10_000): Promise<void> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const lag = (await app.services.streamLag()).find((l) => l.source === source);
    if (lag && lag.lag === 0 && lag.pending === 0 && lag.lastDeliveredId) return;
    if (Date.now() > end) throw new Error(`stream ${source} not drained: ${JSON.stringify(lag)}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

describe('streaming path', () => {
  const N = 60;
  const producedAt = T0 + 10 * 3600_000;
  const records = Array.from({ length: N }, (_, i) => ({
    entityKey: `w${i % 3}`,
    eventId: `ev${i}`,
    eventTs: producedAt - (N - i) * 2 * MIN,
    fields: { v: ((i * 37) % 101) - 50 },
  }));

  it('gives the same windowed aggregates by streaming as by backfill', async () => {
    clock.set(producedAt);
    await appendToStream(redis, app.redisPrefix, 'sw_src', records);
    await drained('sw_src');
    const resolved = await refs('sw');
    const online = await app.services.onlineFeatures.readResolved(['w0', 'w1', 'w2'], resolved);
    const offline = await offlineAt(
      resolved,
      ['w0', 'w1', 'w2'].map((entityKey) => ({ entityKey, ts: producedAt })),
    );
    expect(offline).toEqual(online.map((r) => r.vector));
    expect(online[0].vector[2]).toBeGreaterThan(5); // n_1h: the windows did see events
    const gql = new GraphQLTestClient(app.url, app.adminToken);
    const streams = await gql.ok(FeatureStreamsDocument);
    expect(streams.featureStreams.find((s) => s.source === 'sw_src')).toMatchObject({
      lag: 0,
      pending: 0,
    });
    const metrics = await (await fetch(app.url.replace('/graphql', '/metrics'))).text();
    expect(metrics).toContain('aether_feature_stream_lag{source="sw_src"} 0');
    expect(metrics).toMatch(
      /aether_feature_records_total\{source="sw_src",outcome="accepted"\} 60/,
    );
  });

  it('changes nothing when the same entries are delivered twice, or left behind by a dead consumer', async () => {
    const count = async () =>
      Number(
        (
          await app.db.dataSource.query(
            `SELECT count(*) AS n FROM feature_event e JOIN feature_view_version v ON v.id = e.version_id JOIN feature_view f ON f.id = v.view_id WHERE f.name = 'sw'`,
          )
        )[0].n,
      );
    const gql = new GraphQLTestClient(app.url, app.adminToken);
    const read = async () =>
      (
        await gql.ok(OnlineFeaturesDocument, {
          entityKeys: ['w0', 'w1', 'w2'],
          featureRefs: FEATURES.map((f) => `sw:${f}`),
        })
      ).onlineFeatures;
    const before = { rows: await count(), online: await read() };
    expect(before.rows).toBe(N);

    // The producer retries: the same events arrive again as new stream entries.
    await appendToStream(redis, app.redisPrefix, 'sw_src', records);
    await drained('sw_src');
    expect(await count()).toBe(N);
    expect(await read()).toEqual(before.online);

    // A consumer takes entries and dies before acknowledging them: they are claimed and
    // redelivered. Appended and taken in one transaction, so the live consumer cannot win.
    const key = streamKey(app.redisPrefix, 'sw_src');
    const tx = redis.multi();
    for (const r of records.slice(0, 10)) tx.xadd(key, '*', ...streamEntryFields(r));
    tx.xreadgroup('GROUP', CONSUMER_GROUP, 'dead-consumer', 'COUNT', 10, 'STREAMS', key, '>');
    const results = (await tx.exec()) ?? [];
    const stolen = results[results.length - 1][1] as [string, unknown[]][] | null;
    expect(stolen?.[0][1].length).toBe(10);
    await drained('sw_src');
    expect(await count()).toBe(N);
    expect(await read()).toEqual(before.online);
  });
});
