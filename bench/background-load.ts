import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { monitorEventLoopDelay } from 'node:perf_hooks';
import { type App, startApp } from '../src/app/app';
import { AggregationFn, FeatureType } from '../src/domain/features/feature-definition';
import { loadConfig } from '../src/infra/config/config';
import { DEFAULT_BACKGROUND_MAX_WAIT_MS } from '../src/infra/db/priority-pool';
import { createLogger } from '../src/infra/observability/logger';
import { deleteRedisPrefix } from '../test/support/isolation';
import { resolveServices } from '../test/support/services';
import { type LoadResult, round, runLoad, scale, writeResult } from './support/bench';

/**
 * background-load: the p99 of a small GraphQL query (a page of feature views, one database
 * read) on an idle api, then while background work runs on the same api: an offline
 * compaction of a 2M-row backlog and a point-in-time dataset build over that same history.
 * The api runs on its embedded default, PGlite, whose one connection everything shares (the
 * case where `npm run demo:train` used to die with ECONNRESET). `p99_ratio_busy_vs_idle`
 * (target <= 3) and `request_errors` (target 0) are the figures; the busy window lasts
 * until both background jobs have finished, and a request still in flight then counts.
 */
const ENTITIES = 50_000;
const DAY = 86_400_000;
const T0 = Date.parse('2026-03-01T00:00:00Z');
const SEED_ROWS_PER_STATEMENT = 200_000;
const CONCURRENCY = 4;
const QUERY = '{ featureViews(first: 5) { edges { node { name } } } }';

export async function main(): Promise<void> {
  const rows = Math.round(2_000_000 * scale());
  const spineRows = Math.round(100_000 * scale());
  const services = await resolveServices();
  const prefix = `bench_bg_${process.pid}:`;
  const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'aether-bench-bg-'));
  let app: App | null = null;
  try {
    // No DATABASE_URL: PGlite in DATA_DIR, as `npm start` runs it.
    app = await startApp(
      loadConfig({
        NODE_ENV: 'production',
        PORT: '0',
        HOST: '127.0.0.1',
        LOG_LEVEL: 'silent',
        RATE_LIMIT_PER_SECOND: '0',
        REDIS_URL: services.redisUrl,
        REDIS_PREFIX: prefix,
        DATA_DIR: dataDir,
        FEATURE_STREAM_CONSUMER: 'off',
        // The bench starts the compaction itself, at a known moment.
        OFFLINE_COMPACTION_INTERVAL_MS: '0',
        // The policy under test (its default unless set): set it to see the trade-off move.
        ...(process.env.DATABASE_BACKGROUND_MAX_WAIT_MS
          ? { DATABASE_BACKGROUND_MAX_WAIT_MS: process.env.DATABASE_BACKGROUND_MAX_WAIT_MS }
          : {}),
      }),
      { logger: createLogger('silent') },
    );
    const s = app.services;
    await s.featureRegistry.createEntity({ name: 'device', joinKeys: ['device_id'] });
    const { version } = await s.featureRegistry.createView({
      name: 'telemetry',
      entity: 'device',
      source: 'telemetry_src',
      ttlSeconds: 400 * 86_400,
      allowedLatenessSeconds: 86_400,
      features: [
        ...['temp', 'load', 'volts'].map((name) => ({
          name,
          type: FeatureType.FLOAT,
          source: name,
          transform: { kind: 'IDENTITY' as const },
          aggregation: null,
          validation: {},
        })),
        {
          name: 'mean_load_1d',
          type: FeatureType.FLOAT,
          source: 'load',
          transform: { kind: 'IDENTITY' as const },
          aggregation: { fn: AggregationFn.MEAN, windowSeconds: 86_400 },
          validation: {},
        },
      ],
    });
    // The backlog, written straight into the append log (what months of streaming leave
    // behind when nothing compacted it): `rows` events over ENTITIES devices, one per hour.
    const seedStart = Date.now();
    for (let lo = 0; lo < rows; lo += SEED_ROWS_PER_STATEMENT) {
      const hi = Math.min(rows, lo + SEED_ROWS_PER_STATEMENT) - 1;
      await app.db.dataSource.query(
        `INSERT INTO feature_event (version_id, entity_key, event_id, event_ts, created_ts, fields)
         SELECT $1, 'd' || (g % ${ENTITIES}), 'e' || g, t, t,
                jsonb_build_object('temp', (g % 97) / 3.0, 'load', (g % 89) / 7.0, 'volts', 220 + g % 11)
           FROM generate_series($2::int, $3::int) g,
                LATERAL (SELECT to_timestamp(($4 + (g / ${ENTITIES}) * 3600000.0) / 1000) AS t) x`,
        [version.id, lo, hi, T0],
      );
    }
    const seedSeconds = (Date.now() - seedStart) / 1000;
    const perEntity = Math.ceil(rows / ENTITIES);
    const spine = Array.from({ length: spineRows }, (_, i) => ({
      entityKey: `d${i % ENTITIES}`,
      ts: T0 + ((i * 7919) % (perEntity * 3600)) * 1000 + DAY / 24,
      label: i % 2,
    }));

    const load = (seconds: number, stopFile?: string): Promise<LoadResult> =>
      runLoad({
        mode: 'http',
        url: `${app?.url}`,
        headers: { authorization: `Bearer ${app?.bootstrapAdminToken}` },
        body: JSON.stringify({ query: QUERY }),
        concurrency: CONCURRENCY,
        seconds,
        warmupSeconds: 2,
        stopFile,
      });

    const idle = await load(10);

    const stopFile = path.join(dataDir, 'background-done');
    const delay = monitorEventLoopDelay({ resolution: 5 });
    const busyLoad = load(600, stopFile);
    // The load client's warm-up: the background work starts once requests are recorded.
    await new Promise((r) => setTimeout(r, 2_000));
    delay.enable();
    const compaction = (async () => {
      const t = Date.now();
      const done = await s.compaction.compactDue();
      return { seconds: (Date.now() - t) / 1000, rows: done[0]?.report.rows ?? 0 };
    })();
    const build = (async () => {
      const t = Date.now();
      const { done } = await s.datasets.build({
        name: 'background-load',
        featureRefs: ['telemetry@1:*'],
        spine,
      });
      const snap = await done;
      return { seconds: (Date.now() - t) / 1000, status: snap.status };
    })();
    const [c, b] = await Promise.all([compaction, build]);
    delay.disable();
    fs.writeFileSync(stopFile, '');
    const busy = await busyLoad;
    if (c.rows !== rows) throw new Error(`compaction moved ${c.rows} rows, not ${rows}`);
    if (b.status !== 'READY') throw new Error(`dataset build ended ${b.status}`);

    // Connection waits and holds by lane (aether_db_connection_{wait,held}_seconds), whole run.
    const pool = [
      ...(await app.metrics.dbConnectionWait.get()).values,
      ...(await app.metrics.dbConnectionHeld.get()).values,
    ];
    const figure = (lane: string, name: string) =>
      pool.find((v) => v.labels.lane === lane && v.metricName === name)?.value ?? 0;
    const mean = (lane: string, what: 'wait' | 'held') =>
      round(
        (1000 * figure(lane, `aether_db_connection_${what}_seconds_sum`)) /
          Math.max(1, figure(lane, `aether_db_connection_${what}_seconds_count`)),
        2,
      );

    writeResult('background-load', {
      backlog_rows: rows,
      spine_rows: spineRows,
      seed_seconds: round(seedSeconds, 1),
      compaction_seconds: round(c.seconds, 1),
      dataset_build_seconds: round(b.seconds, 1),
      idle_p50_ms: round(idle.p50, 2),
      idle_p99_ms: round(idle.p99, 2),
      idle_requests: idle.n,
      busy_p50_ms: round(busy.p50, 2),
      busy_p99_ms: round(busy.p99, 2),
      busy_requests: busy.n,
      busy_event_loop_delay_p99_ms: round(delay.percentile(99) / 1e6, 1),
      busy_event_loop_delay_max_ms: round(delay.max / 1e6, 1),
      background_max_wait_ms: Number(
        process.env.DATABASE_BACKGROUND_MAX_WAIT_MS ?? DEFAULT_BACKGROUND_MAX_WAIT_MS,
      ),
      request_connection_wait_mean_ms: mean('request', 'wait'),
      background_statements: figure('background', 'aether_db_connection_wait_seconds_count'),
      background_connection_wait_mean_ms: mean('background', 'wait'),
      background_connection_held_mean_ms: mean('background', 'held'),
      p99_ratio_busy_vs_idle: round(busy.p99 / idle.p99, 2),
      request_errors: idle.errors + busy.errors,
    });
  } finally {
    await app?.close();
    await deleteRedisPrefix(services.redisUrl, prefix);
    fs.rmSync(dataDir, { recursive: true, force: true });
    await services.stop();
  }
}
