import os from 'node:os';
import {
  AggregationFn,
  FeatureType,
  type FeatureSpec,
} from '../src/domain/features/feature-definition';
import {
  appendToStream,
  DEFAULT_STREAM_BATCH,
  entryAgeMs,
  FeatureStreamConsumer,
  parseStreamEntry,
  type StreamRecordInput,
  streamKey,
} from '../src/infra/redis/feature-stream';
import { createLogger } from '../src/infra/observability/logger';
import { closeRedis, createRedisClient } from '../src/infra/redis/redis-client';
import { median, percentile, round, scale, writeResult } from './support/bench';
import { startBenchPlatform } from './support/platform';

/**
 * features-ingest: records appended to a Redis Stream, consumed by the ingestion consumer,
 * validated, appended to PostgreSQL and merged into the Redis online state, for a view with
 * three aggregate windows (1h, 6h, 24h). Throughput: a preloaded backlog drained end to end.
 * Freshness: a steady producer at half that rate; for each record, the time from its append
 * (the stream entry id) to being readable online (after both stores were written).
 * Baseline in the same run (`ratio_vs_bare_pipeline`, target >= 0.5): a bare consumer that
 * reads the same backlog with XREADGROUP and writes the same rows to PostgreSQL (one
 * multi-row insert per batch) and Redis (one HSET per record, pipelined), with no
 * validation, versioning or aggregation.
 */
const ENTITIES = 1_000;

export async function main(): Promise<void> {
  const backlog = Math.round(200_000 * scale());
  const p = await startBenchPlatform('features_ingest', { FEATURE_STREAM_CONSUMER: 'off' });
  const producer = createRedisClient(p.env.REDIS_URL, 'bench-producer');
  try {
    const s = p.app.services;
    await s.featureRegistry.createEntity({ name: 'airport', joinKeys: ['origin'] });
    const agg = (name: string, fn: AggregationFn, hours: number): FeatureSpec => ({
      name,
      type: FeatureType.FLOAT,
      source: 'delay',
      transform: { kind: 'IDENTITY' },
      aggregation: { fn, windowSeconds: hours * 3600 },
      validation: {},
    });
    await s.featureRegistry.createView({
      name: 'delays',
      entity: 'airport',
      source: 'flights',
      ttlSeconds: 2 * 24 * 3600,
      allowedLatenessSeconds: 3600,
      features: [
        {
          name: 'delay',
          type: FeatureType.FLOAT,
          source: 'delay',
          transform: { kind: 'IDENTITY' },
          aggregation: null,
          validation: { min: -120, max: 2000 },
        },
        agg('mean_delay_1h', AggregationFn.MEAN, 1),
        agg('mean_delay_6h', AggregationFn.MEAN, 6),
        agg('departures_24h', AggregationFn.COUNT, 24),
      ],
    });

    let seq = 0;
    // About 770k events at 0.4 s apart span 86 hours: they start 96 hours ago, so none is later
    // than the platform's time plus MAX_FUTURE_SKEW_MS (24 h). Starting 24 hours ago, every
    // event after the 432,000th was quarantined as from the future and the row check failed.
    const t0 = Date.now() - 96 * 3600_000;
    const next = (n: number): StreamRecordInput[] =>
      Array.from({ length: n }, () => {
        const i = seq++;
        // Event time advances ~1s per record across all entities: dense windows.
        return {
          entityKey: `A${i % ENTITIES}`,
          eventId: `f${i}`,
          eventTs: t0 + i * 400,
          fields: { delay: ((i * 7919) % 180) - 20 },
        };
      });

    const measure = async (batchSize: number) => {
      // Phase 1: throughput over a preloaded backlog.
      for (let done = 0; done < backlog; done += 5_000) {
        await appendToStream(
          producer,
          p.env.REDIS_PREFIX,
          'flights',
          next(Math.min(5_000, backlog - done)),
        );
      }
      let ingested = 0;
      const freshness: number[] = [];
      let measuringFreshness = false;
      const consumer = new FeatureStreamConsumer(
        createRedisClient(p.env.REDIS_URL, 'bench-consumer'),
        p.env.REDIS_PREFIX,
        s.featureRegistry,
        s.ingestion,
        createLogger('silent'),
        {
          consumer: `${os.hostname()}-bench-${batchSize}`,
          batchSize,
          blockMs: 50,
          refreshMs: 60_000,
        },
        (batch) => {
          ingested += batch.entryIds.length;
          if (measuringFreshness)
            for (const id of batch.entryIds) freshness.push(entryAgeMs(id, batch.ingestedAt));
        },
      );
      const started = Date.now();
      consumer.start();
      while (ingested < backlog) await new Promise((r) => setTimeout(r, 20));
      const eventsPerSecond = backlog / ((Date.now() - started) / 1000);

      // Phase 2: freshness under a steady load at half the measured capacity.
      const rate = Math.round(eventsPerSecond / 2);
      const seconds = Math.max(2, Math.round(10 * scale()));
      measuringFreshness = true;
      const tickMs = 20;
      const perTick = Math.max(1, Math.round((rate * tickMs) / 1000));
      const until = Date.now() + seconds * 1000;
      let produced = 0;
      while (Date.now() < until) {
        const tick = Date.now();
        await appendToStream(producer, p.env.REDIS_PREFIX, 'flights', next(perTick));
        produced += perTick;
        await new Promise((r) => setTimeout(r, Math.max(0, tickMs - (Date.now() - tick))));
      }
      const deadline = Date.now() + 30_000;
      while (ingested < backlog + produced && Date.now() < deadline)
        await new Promise((r) => setTimeout(r, 20));
      await consumer.stop();
      freshness.sort((a, b) => a - b);
      return { eventsPerSecond, rate, p50: median(freshness), p99: percentile(freshness, 99) };
    };

    const dflt = await measure(DEFAULT_STREAM_BATCH);
    const small = await measure(1_000);
    const bare = await barePipeline(
      p.env.REDIS_URL,
      p.env.REDIS_PREFIX,
      backlog,
      next,
      (sql, params) => p.app.db.dataSource.query(sql, params),
    );
    const rows = Number(
      (await p.app.db.dataSource.query('SELECT count(*) AS n FROM feature_event'))[0].n,
    );
    writeResult('features-ingest', {
      events_per_second: round(dflt.eventsPerSecond, 0),
      bare_pipeline_events_per_second: round(bare, 0),
      ratio_vs_bare_pipeline: round(dflt.eventsPerSecond / bare, 2),
      p50_freshness_ms: round(dflt.p50, 1),
      p99_freshness_ms: round(dflt.p99, 1),
      freshness_load_events_per_second: dflt.rate,
      batch_size: DEFAULT_STREAM_BATCH,
      events_per_second_batch1000: round(small.eventsPerSecond, 0),
      p99_freshness_ms_batch1000: round(small.p99, 1),
      backlog_events: backlog,
      offline_rows: rows,
      entities: ENTITIES,
    });
    if (rows !== seq - backlog)
      throw new Error(`expected ${seq - backlog} offline rows, found ${rows}`);
  } finally {
    await closeRedis(producer);
    await p.close();
  }
}

/** The bare pipeline's events/s over `n` records of the same shape (see the header). */
async function barePipeline(
  redisUrl: string,
  prefix: string,
  n: number,
  next: (n: number) => StreamRecordInput[],
  query: (sql: string, params?: unknown[]) => Promise<unknown>,
): Promise<number> {
  const redis = createRedisClient(redisUrl, 'bench-bare');
  const key = streamKey(prefix, 'bare_src');
  try {
    await query(
      `CREATE TABLE bare_event (entity_key text, event_id text, event_ts timestamptz(3),
         fields jsonb, PRIMARY KEY (entity_key, event_id))`,
    );
    await redis.xgroup('CREATE', key, 'bare', '0', 'MKSTREAM');
    for (let done = 0; done < n; done += 5_000)
      await appendToStream(redis, prefix, 'bare_src', next(Math.min(5_000, n - done)));
    let read = 0;
    const started = Date.now();
    while (read < n) {
      const res = (await redis.call(
        'XREADGROUP',
        'GROUP',
        'bare',
        'c1',
        'COUNT',
        DEFAULT_STREAM_BATCH,
        'BLOCK',
        50,
        'STREAMS',
        key,
        '>',
      )) as [string, [string, string[]][]][] | null;
      const entries = res?.[0]?.[1] ?? [];
      if (!entries.length) continue;
      const rows = entries.map(([id, kv]) => ({ id, ...parseStreamEntry(id, kv) }));
      await query(
        `INSERT INTO bare_event SELECT * FROM unnest($1::text[], $2::text[], $3::timestamptz[], $4::jsonb[])
         ON CONFLICT DO NOTHING`,
        [
          rows.map((r) => r.entityKey),
          rows.map((r) => r.eventId),
          rows.map((r) => new Date(r.eventTs)),
          rows.map((r) => JSON.stringify(r.fields)),
        ],
      );
      const pipe = redis.pipeline();
      for (const r of rows)
        pipe.hset(`${prefix}bare:${r.entityKey}`, r.eventId, JSON.stringify(r.fields));
      await pipe.exec();
      await redis.xack(key, 'bare', ...rows.map((r) => r.id));
      read += rows.length;
    }
    return n / ((Date.now() - started) / 1000);
  } finally {
    await closeRedis(redis);
  }
}
