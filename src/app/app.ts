import { randomBytes } from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { type ArtifactStore } from '../domain/artifacts/artifact-store';
import { type ApiKeyEvent } from '../domain/auth/api-key.service';
import { Topics } from '../domain/events/event-bus';
import { type RunEvent } from '../domain/training/run-events';
import { FINISHED } from '../domain/training/training-run';
import { type Clock, systemClock } from '../domain/shared/clock';
import { UNLIMITED } from '../domain/auth/rate-limit';
import { createArtifactStore } from '../infra/artifacts/create-artifact-store';
import { type Config } from '../infra/config/config';
import { type Database, openDatabase } from '../infra/db/data-source';
import { ambientDataSource } from '../infra/db/ambient-transaction';
import { SqlLeases } from '../infra/db/leases';
import { OutboxEventBus } from '../infra/events/outbox-event-bus';
import { OutboxRelay } from '../infra/events/outbox-relay';
import { installFailpoints } from '../domain/shared/failpoints';
import { RedisEventBus } from '../infra/events/redis-event-bus';
import { entryAgeMs, FeatureStreamConsumer } from '../infra/redis/feature-stream';
import { createLogger, type Logger } from '../infra/observability/logger';
import { Metrics } from '../infra/observability/metrics';
import { noteStatement } from '../infra/db/request-scope';
import {
  type EmbeddedRedis,
  redactRedisUrl,
  startEmbeddedRedis,
} from '../infra/redis/embedded-redis';
import { RedisKeyTracker } from '../infra/redis/key-tracker';
import { RedisRateLimiter } from '../infra/redis/rate-limiter';
import {
  closeRedis,
  createRedisClient,
  pingRedis,
  type RedisTarget,
} from '../infra/redis/redis-client';
import { startHttpServer } from './http-server';
import { type LeasedLoop, startLeased, startPeriodic } from './leased-loop';
import { createServices, type Services } from './services';

export interface App {
  url: string;
  port: number;
  /**
   * The Redis in use (the embedded child's when neither REDIS_URL nor REDIS_CLUSTER_NODES is
   * set), and the key prefix.
   */
  redisTarget: RedisTarget;
  redisPrefix: string;
  services: Services;
  metrics: Metrics;
  db: Database;
  /** Set only on the start that created the first admin key. */
  bootstrapAdminToken: string | null;
  close(): Promise<void>;
}

export interface AppOverrides {
  clock?: Clock;
  artifacts?: ArtifactStore;
  logger?: Logger;
}

export class PendingMigrationsError extends Error {}

/**
 * Starts one `api` process worth of platform: embedded Redis and PGlite when nothing is
 * configured, migrations (embedded mode only), services, the HTTP/WebSocket server.
 * Whatever was started is stopped again, in reverse order, by `close()` or if start fails.
 */
export async function startApp(config: Config, overrides: AppOverrides = {}): Promise<App> {
  const logger = overrides.logger ?? createLogger(config.logLevel);
  const clock = overrides.clock ?? systemClock;
  const metrics = new Metrics({ defaultMetrics: config.env !== 'test' });
  const started: Array<{ name: string; stop: () => Promise<void> }> = [];
  const stack = { push: (name: string, stop: () => Promise<void>) => started.push({ name, stop }) };
  const unwind = async () => {
    while (started.length) {
      const step = started.pop() as (typeof started)[number];
      logger.debug({ step: step.name }, 'stopping');
      await step
        .stop()
        .catch((err) => logger.error({ err, step: step.name }, 'error during shutdown'));
    }
  };

  try {
    // Keys, the embedded database and the artifacts live here: no other user (a sandboxed
    // trainer on this host among them, docs/adr/0019) may read it, even if it was made
    // before with a wider mode.
    fs.mkdirSync(config.dataDir, { recursive: true, mode: 0o700 });
    fs.chmodSync(config.dataDir, 0o700);
    if (config.failpoints.length) {
      const armed = new Set(config.failpoints);
      installFailpoints((name) => {
        if (!armed.has(name)) return;
        logger.warn({ failpoint: name }, 'failpoint reached: killing this process');
        process.kill(process.pid, 'SIGKILL');
      });
    }
    let redisTarget: RedisTarget | undefined = config.redisCluster ?? config.redisUrl;
    if (!redisTarget) {
      const redis: EmbeddedRedis = await startEmbeddedRedis({
        dir: path.join(config.dataDir, 'redis'),
      });
      stack.push('embedded redis', () => redis.stop());
      redisTarget = redis.url;
      logger.info(
        { url: redactRedisUrl(redis.url), redisPid: redis.pid },
        'started embedded redis-server',
      );
    }

    const db = await openDatabase({
      url: config.databaseUrl,
      schema: config.databaseSchema,
      pgliteDir: path.join(config.dataDir, 'pg'),
      onQuery: () => {
        metrics.dbQueries.inc();
        noteStatement();
      },
      onConnectionWait: (lane, seconds) => metrics.dbConnectionWait.observe({ lane }, seconds),
      onConnectionHeld: (lane, seconds) => metrics.dbConnectionHeld.observe({ lane }, seconds),
      onSlowQuery: (sql, ms) => logger.warn({ ms, sql: sql.slice(0, 200) }, 'slow query'),
      queryTimeoutMs: config.databaseQueryTimeoutMs,
      backgroundMaxWaitMs: config.databaseBackgroundMaxWaitMs,
    });
    stack.push('database', () => db.close());
    if (db.kind === 'pglite') {
      const applied = await db.migrate();
      if (applied.length) logger.info({ applied }, 'applied migrations');
    } else if (await db.dataSource.showMigrations()) {
      throw new PendingMigrationsError(
        'The database has pending migrations: run `npm run migrate` first',
      );
    }

    const commandTimeoutMs = config.redisCommandTimeoutMs;
    const pub = createRedisClient(redisTarget, 'aether-pub', { commandTimeoutMs });
    const sub = createRedisClient(redisTarget, 'aether-sub', { subscriber: true });
    const data = createRedisClient(redisTarget, 'aether-data', { commandTimeoutMs });
    stack.push('redis clients', async () => {
      await Promise.all([closeRedis(sub), closeRedis(pub), closeRedis(data)]);
    });
    for (const c of [pub, sub, data]) {
      c.on('error', (err) => logger.debug({ err: err.message }, 'redis connection error'));
    }
    const live = new RedisEventBus(pub, sub, config.redisPrefix, (topic) =>
      metrics.eventsDropped.inc({ topic }),
    );
    const events = new OutboxEventBus(ambientDataSource(db.dataSource), live);
    const leases = new SqlLeases(db.dataSource);
    const holder = `${os.hostname()}-${process.pid}-${randomBytes(3).toString('hex')}`;
    const leased = (
      name: string,
      intervalMs: number,
      pass: () => Promise<void>,
      failure: string,
    ): LeasedLoop => {
      const loop = startLeased({
        leases,
        name,
        holder,
        ttlMs: config.leaseTtlMs,
        intervalMs,
        pass,
        onError: (err) => logger.warn({ err, lease: name }, failure),
        onChange: (holding) => logger.info({ lease: name, holding }, 'lease'),
      });
      stack.push(`${name} loop`, () => loop.stop());
      return loop;
    };
    const artifacts = overrides.artifacts ?? createArtifactStore(config.artifacts);
    // Client-side caching of online stamps and the key epoch: one Redis server only (a cluster
    // would need a tracker per node).
    const tracker =
      config.redisClientCache && typeof redisTarget === 'string'
        ? new RedisKeyTracker(redisTarget, 'aether-tracked', commandTimeoutMs)
        : null;
    if (tracker) {
      stack.push('redis key tracker', () => tracker.close());
      await tracker.ready(1_000);
    }
    const services = createServices({
      db,
      redis: data,
      keyTracker: tracker,
      redisPrefix: config.redisPrefix,
      events,
      artifacts,
      clock,
      trainingLeaseMs: config.trainingLeaseMs,
      processId: holder,
      datasetBuildTtlMs: config.datasetBuildTtlMs,
      datasetDuckDb: config.datasetDuckDb && {
        ...config.datasetDuckDb,
        tempDir: path.join(config.dataDir, 'tmp', 'duckdb'),
      },
    });
    // Unwound after the HTTP server: in-flight predictions finish, then the log is flushed.
    stack.push('prediction log and model sessions', () => services.close());
    metrics.streamLagSource = () => services.streamLag();
    services.predictionLog.onDeadLetters((rows, error) => {
      metrics.deadLetters.inc({ source: 'prediction_log' }, rows.length);
      logger.error({ rows: rows.length, error }, 'prediction log rows dead-lettered');
    });
    services.serving.observe((o) => {
      metrics.predictions.inc({
        endpoint: o.endpoint,
        version: o.version,
        role: o.role,
        outcome: o.ok ? 'ok' : 'error',
      });
      if (o.ok)
        metrics.predictionLatency.observe(
          { endpoint: o.endpoint, version: o.version, role: o.role },
          o.latencyMs / 1_000,
        );
    });

    if (config.featureStreamConsumer) {
      const blocking = createRedisClient(redisTarget, 'aether-stream');
      blocking.on('error', (err) => logger.debug({ err: err.message }, 'redis connection error'));
      const consumer = new FeatureStreamConsumer(
        blocking,
        config.redisPrefix,
        services.featureRegistry,
        services.ingestion,
        logger,
        {
          consumer: `${os.hostname()}-${process.pid}-${randomBytes(3).toString('hex')}`,
          claimIdleMs: config.featureStreamClaimIdleMs,
        },
        (batch) => {
          for (const r of batch.reports) {
            metrics.featureRecords.inc({ source: batch.source, outcome: 'accepted' }, r.accepted);
            metrics.featureRecords.inc(
              { source: batch.source, outcome: 'quarantined' },
              r.quarantined,
            );
          }
          for (const id of batch.entryIds) {
            metrics.featureFreshness.observe(
              { source: batch.source },
              entryAgeMs(id, batch.ingestedAt) / 1000,
            );
          }
        },
      );
      consumer.start();
      stack.push('feature stream consumer', () => consumer.stop());
    }

    // Committed events leave for Redis from one process at a time, in one order. Passes run
    // one at a time: on the poll, and at once when any process's commit wakes the holder.
    const relay = new OutboxRelay(db.dataSource, live);
    let relaying: Promise<void> | null = null;
    let again = false;
    let passes = 0;
    const relayPass = (): Promise<void> => {
      if (relaying) {
        again = true;
        return relaying;
      }
      relaying = (async () => {
        do {
          again = false;
          const p = await relay.pass();
          for (const d of p.delaysMs) metrics.outboxRelayDelay.observe(d / 1000);
          if (++passes % 1_000 === 0) await relay.prune();
        } while (again);
      })().finally(() => (relaying = null));
      return relaying;
    };
    const relayLoop = leased(
      'outbox-relay',
      config.relayIntervalMs,
      relayPass,
      'outbox relay pass failed',
    );
    events.onPublished(() => {
      if (relayLoop.holding()) void relayPass().catch(() => undefined);
    });

    if (config.offlineCompactionIntervalMs > 0)
      leased(
        'offline-compaction',
        config.offlineCompactionIntervalMs,
        async () => {
          for (const c of await services.compaction.compactDue())
            logger.info({ version: c.version, ...c.report }, 'offline history compacted');
        },
        'offline compaction failed',
      );

    // Runs queued before a Redis loss are put back; leases that ran out go back in line.
    const requeued = await services.training.rebuildQueue();
    if (requeued) logger.info({ runs: requeued }, 'training queue rebuilt from the runs of record');
    leased(
      'training-reaper',
      Math.max(100, config.trainingLeaseMs / 4),
      async () => {
        const ids = await services.runExecution.reapExpired();
        if (ids.length) logger.warn({ runs: ids }, 'training leases expired; runs requeued');
        // Runs waiting on a training set that another process finished building.
        await services.training.settlePending();
      },
      'training lease reaper failed',
    );
    // Studies keep their trials topped up in the training queue: on the poll, and at once when
    // a run ends anywhere (its trial's slot is free). Passes run one at a time.
    if (config.hpoIntervalMs > 0) {
      let studying: Promise<void> | null = null;
      let studyAgain = false;
      const studyPass = (): Promise<void> => {
        if (studying) {
          studyAgain = true;
          return studying;
        }
        studying = (async () => {
          do {
            studyAgain = false;
            for (const s of await services.studies.advance())
              logger.info({ study: s.id, status: s.status }, 'study ended');
          } while (studyAgain);
        })().finally(() => (studying = null));
        return studying;
      };
      const studyLoop = leased(
        'hpo-studies',
        config.hpoIntervalMs,
        studyPass,
        'hyperparameter search pass failed',
      );
      const runEnds = events.subscribe<RunEvent>(Topics.runs);
      stack.push('study run subscription', () => runEnds.close());
      void (async () => {
        for await (const e of runEnds)
          if (FINISHED.has(e.status) && studyLoop.holding())
            void studyPass().catch((err: unknown) =>
              logger.warn({ err }, 'hyperparameter search pass failed'),
            );
      })();
      await runEnds.ready;
    }
    // Dataset builds whose process died are taken over and built again from their spine.
    leased(
      'dataset-builds',
      Math.max(200, Math.floor(config.datasetBuildTtlMs / 2)),
      async () => {
        const ids = await services.datasets.resumeStalled();
        if (ids.length) logger.warn({ datasets: ids }, 'stalled dataset builds taken over');
      },
      'dataset build takeover failed',
    );
    if (config.canaryIntervalMs > 0)
      leased(
        'canary-controller',
        config.canaryIntervalMs,
        async () => {
          for (const r of await services.canary.review())
            if (r.action !== 'HOLD') logger.info(r, 'canary decision');
        },
        'canary review failed',
      );
    if (config.autoscaleIntervalMs > 0)
      leased(
        'autoscaler',
        config.autoscaleIntervalMs,
        async () => {
          for (const r of await services.autoscaler.review())
            if (r.changed) logger.info(r, 'scaling decision');
        },
        'autoscaler pass failed',
      );
    // Every process runs what the fleet decided (replicas) and reports the queues it saw.
    const reconciler = startPeriodic(
      1_000,
      () => services.deployments.reconcile(),
      (err) => logger.warn({ err }, 'serving reconcile pass failed'),
    );
    stack.push('serving reconcile', () => reconciler.stop());
    if (config.monitorIntervalMs > 0)
      leased(
        'monitors',
        config.monitorIntervalMs,
        async () => {
          for (const r of await services.monitoring.runDue())
            if (r.alerting) logger.warn({ report: r.id, summary: r.summary }, 'monitor alerting');
          for (const r of await services.retraining.advance())
            logger.info({ retraining: r.id, status: r.status }, 'retraining');
        },
        'monitor or retraining pass failed',
      );

    // Revocations and key changes anywhere evict cached keys here and re-check open sockets.
    let sweepSockets: () => Promise<void> = async () => undefined;
    const keyEvents = events.subscribe<ApiKeyEvent>(Topics.apiKeys);
    stack.push('key event subscription', () => keyEvents.close());
    void (async () => {
      for await (const e of keyEvents) {
        services.apiKeys.onKeyEvent(e);
        await sweepSockets().catch((err) => logger.warn({ err }, 'socket key sweep failed'));
      }
    })();
    await keyEvents.ready;
    // Serving routes follow model version moves made by any process.
    const unfollow = await services.routes.followModelEvents();
    stack.push('serving route invalidation', unfollow);
    // Endpoints load and warm up their versions in the background; /readyz waits for them.
    void services.deployments.prepareAll();

    const bootstrap = await services.apiKeys.ensureAdminKey();
    if (bootstrap) writeAdminKey(config.dataDir, bootstrap.token, logger, config.env !== 'test');

    const http = await startHttpServer({
      port: config.port,
      host: config.host,
      production: config.env === 'production',
      debugErrors: config.debugErrors,
      maxBodyBytes: config.maxBodyBytes,
      maxQueryDepth: config.maxQueryDepth,
      maxQueryComplexity: config.maxQueryComplexity,
      maxQueryTokens: config.maxQueryTokens,
      services,
      metrics,
      logger,
      rateLimiter:
        config.rateLimitPerSecond > 0
          ? new RedisRateLimiter(data, config.redisPrefix, {
              perSecond: config.rateLimitPerSecond,
              burst: config.rateLimitBurst,
            })
          : UNLIMITED,
      metricsKey: config.metricsKey,
      socketSweepMs: config.keyRecheckMs,
      readiness: {
        postgres: () => db.ping(),
        redis: () => pingRedis(pub),
        artifacts: () => artifacts.ping(),
        endpoints: () => services.deployments.assertReady(),
      },
      readinessDetail: async () => ({
        failedModels: await services.deployments.failedVersions(),
      }),
    });
    stack.push('http server', () => http.close(config.shutdownGraceMs));
    sweepSockets = () => http.sweepSockets();
    logger.info(
      { url: http.url, database: db.kind, artifacts: artifacts.location },
      'aether api ready',
    );

    let closing: Promise<void> | undefined;
    return {
      url: http.url,
      port: http.port,
      redisTarget,
      redisPrefix: config.redisPrefix,
      services,
      metrics,
      db,
      bootstrapAdminToken: bootstrap?.token ?? null,
      close: () => (closing ??= unwind()),
    };
  } catch (e) {
    await unwind();
    throw e;
  }
}

/** The first admin key is printed once and kept, readable by the owner only, for local tools. */
function writeAdminKey(dataDir: string, token: string, logger: Logger, print: boolean): void {
  fs.mkdirSync(dataDir, { recursive: true });
  const file = path.join(dataDir, 'admin-key');
  fs.writeFileSync(file, token + '\n', { mode: 0o600 });
  fs.chmodSync(file, 0o600);
  logger.info(
    { file },
    'created the first admin API key (shown once below; also saved to the file)',
  );
  if (print)
    process.stdout.write(`\n  Admin API key: ${token}\n  Saved to ${file} (mode 0600)\n\n`);
}
