import os from 'node:os';
import path from 'node:path';
import { z } from 'zod';
import { DEFAULT_BACKGROUND_MAX_WAIT_MS } from '../db/priority-pool';

/**
 * All configuration comes from the environment and is validated once at start. A wrong
 * value stops the process with one line naming the variable and what it expects.
 */
const nonEmpty = (v: string | undefined) =>
  v === undefined || v.trim() === '' ? undefined : v.trim();

/**
 * The Parquet bytes a DuckDB build joins in one statement (DATASET_DUCKDB_GROUP_MB, or -1 for
 * its default): an eighth of the memory limit, chosen from features-pit-scale's peak RSS
 * (docs/adr/0034), not swept.
 */
export function duckDbGroupBytes(memoryLimitMb: number, groupMb = -1): number {
  return (groupMb >= 0 ? groupMb : memoryLimitMb / 8) * 2 ** 20;
}

const intIn = (name: string, min: number, max: number, fallback: number) =>
  z
    .string()
    .optional()
    .transform((v, ctx) => {
      const raw = nonEmpty(v);
      if (raw === undefined) return fallback;
      const n = Number(raw);
      if (!Number.isInteger(n) || n < min || n > max) {
        ctx.addIssue({
          code: 'custom',
          message: `${name} must be an integer from ${min} to ${max} (got "${raw}")`,
        });
        return z.NEVER;
      }
      return n;
    });

const flag = (name: string) =>
  z
    .string()
    .optional()
    .transform((v, ctx) => {
      const raw = nonEmpty(v) ?? '0';
      if (!['0', '1', 'true', 'false'].includes(raw)) {
        ctx.addIssue({ code: 'custom', message: `${name} must be 0 or 1 (got "${raw}")` });
        return z.NEVER;
      }
      return raw === '1' || raw === 'true';
    });

const urlWith = (name: string, protocols: string[], example: string) =>
  z
    .string()
    .optional()
    .transform((v, ctx) => {
      const raw = nonEmpty(v);
      if (raw === undefined) return undefined;
      let u: URL;
      try {
        u = new URL(raw);
      } catch {
        ctx.addIssue({
          code: 'custom',
          message: `${name} must be a URL like ${example} (got "${redact(raw)}")`,
        });
        return z.NEVER;
      }
      if (!protocols.includes(u.protocol)) {
        ctx.addIssue({
          code: 'custom',
          message: `${name} must use ${protocols.join(' or ')} like ${example} (got "${u.protocol}")`,
        });
        return z.NEVER;
      }
      return raw;
    });

const envSchema = z.object({
  NODE_ENV: z
    .string()
    .optional()
    .transform((v, ctx) => {
      const raw = nonEmpty(v) ?? 'development';
      if (!['development', 'production', 'test'].includes(raw)) {
        ctx.addIssue({
          code: 'custom',
          message: `NODE_ENV must be development, production or test (got "${raw}")`,
        });
        return z.NEVER;
      }
      return raw as 'development' | 'production' | 'test';
    }),
  PORT: intIn('PORT', 0, 65535, 4000),
  HOST: z
    .string()
    .optional()
    .transform((v) => nonEmpty(v) ?? '0.0.0.0'),
  DATA_DIR: z
    .string()
    .optional()
    .transform((v) => path.resolve(nonEmpty(v) ?? '.data')),
  DATABASE_URL: urlWith(
    'DATABASE_URL',
    ['postgres:', 'postgresql:'],
    'postgres://user:pass@host:5432/db',
  ),
  DATABASE_SCHEMA: z
    .string()
    .optional()
    .transform((v, ctx) => {
      const raw = nonEmpty(v);
      if (raw !== undefined && !/^[a-z_][a-z0-9_]{0,62}$/.test(raw)) {
        ctx.addIssue({
          code: 'custom',
          message: `DATABASE_SCHEMA must be a lower-case SQL identifier (got "${raw}")`,
        });
        return z.NEVER;
      }
      return raw;
    }),
  REDIS_URL: urlWith('REDIS_URL', ['redis:', 'rediss:'], 'redis://127.0.0.1:6379'),
  REDIS_CLUSTER_NODES: z
    .string()
    .optional()
    .transform((v, ctx) => {
      const raw = nonEmpty(v);
      if (raw === undefined) return undefined;
      const nodes: { host: string; port: number }[] = [];
      let username: string | undefined;
      let password: string | undefined;
      for (const item of raw.split(',').map((x) => x.trim())) {
        let u: URL | null;
        try {
          u = new URL(item.includes('://') ? item : `redis://${item}`);
        } catch {
          u = null;
        }
        const port = u ? Number(u.port || 6379) : NaN;
        if (!u || u.protocol !== 'redis:' || !u.hostname || !(port >= 1 && port <= 65_535)) {
          ctx.addIssue({
            code: 'custom',
            message: `REDIS_CLUSTER_NODES must be a comma-separated list like 10.0.0.1:7000,10.0.0.2:7000 or redis://:password@host:port (got "${redact(item)}")`,
          });
          return z.NEVER;
        }
        nodes.push({ host: u.hostname, port });
        if (u.password) password = decodeURIComponent(u.password);
        if (u.username) username = decodeURIComponent(u.username);
      }
      if (nodes.length > 64) {
        ctx.addIssue({
          code: 'custom',
          message: 'REDIS_CLUSTER_NODES takes at most 64 seed nodes',
        });
        return z.NEVER;
      }
      return { nodes, username, password };
    }),
  REDIS_PREFIX: z
    .string()
    .optional()
    .transform((v, ctx) => {
      const raw = nonEmpty(v) ?? 'aether:';
      if (!/^[A-Za-z0-9:_.-]{1,64}$/.test(raw)) {
        ctx.addIssue({
          code: 'custom',
          message: `REDIS_PREFIX must be 1-64 characters of letters, digits and : _ . - (got "${raw}")`,
        });
        return z.NEVER;
      }
      return raw;
    }),
  ARTIFACT_STORE_URL: urlWith(
    'ARTIFACT_STORE_URL',
    ['file:', 's3:'],
    'file://.data/artifacts or s3://bucket/prefix',
  ),
  S3_ENDPOINT: urlWith('S3_ENDPOINT', ['http:', 'https:'], 'http://127.0.0.1:9000'),
  S3_REGION: z
    .string()
    .optional()
    .transform((v) => nonEmpty(v) ?? 'us-east-1'),
  S3_FORCE_PATH_STYLE: z
    .string()
    .optional()
    .transform((v, ctx) => {
      const raw = nonEmpty(v);
      if (raw === undefined) return undefined;
      if (raw !== 'true' && raw !== 'false') {
        ctx.addIssue({
          code: 'custom',
          message: `S3_FORCE_PATH_STYLE must be true or false (got "${raw}")`,
        });
        return z.NEVER;
      }
      return raw === 'true';
    }),
  LOG_LEVEL: z
    .string()
    .optional()
    .transform((v, ctx) => {
      const raw = nonEmpty(v) ?? 'info';
      if (!['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'].includes(raw)) {
        ctx.addIssue({
          code: 'custom',
          message: `LOG_LEVEL must be one of fatal, error, warn, info, debug, trace, silent (got "${raw}")`,
        });
        return z.NEVER;
      }
      return raw;
    }),
  MAX_BODY_BYTES: intIn('MAX_BODY_BYTES', 1024, 256 * 1024 * 1024, 1024 * 1024),
  MAX_QUERY_DEPTH: intIn('MAX_QUERY_DEPTH', 2, 100, 12),
  MAX_QUERY_COMPLEXITY: intIn('MAX_QUERY_COMPLEXITY', 10, 1_000_000, 5_000),
  SHUTDOWN_GRACE_MS: intIn('SHUTDOWN_GRACE_MS', 0, 600_000, 10_000),
  FEATURE_STREAM_CLAIM_IDLE_MS: intIn('FEATURE_STREAM_CLAIM_IDLE_MS', 10, 3_600_000, 30_000),
  OFFLINE_COMPACTION_INTERVAL_MS: intIn('OFFLINE_COMPACTION_INTERVAL_MS', 0, 86_400_000, 60_000),
  TRAINING_LEASE_MS: intIn('TRAINING_LEASE_MS', 200, 3_600_000, 30_000),
  CANARY_INTERVAL_MS: intIn('CANARY_INTERVAL_MS', 0, 3_600_000, 10_000),
  AUTOSCALE_INTERVAL_MS: intIn('AUTOSCALE_INTERVAL_MS', 0, 3_600_000, 30_000),
  MONITOR_INTERVAL_MS: intIn('MONITOR_INTERVAL_MS', 0, 86_400_000, 60_000),
  HPO_INTERVAL_MS: intIn('HPO_INTERVAL_MS', 0, 86_400_000, 2_000),
  MAX_QUERY_TOKENS: intIn('MAX_QUERY_TOKENS', 100, 100_000, 3_000),
  DEBUG_ERRORS: flag('DEBUG_ERRORS'),
  RATE_LIMIT_PER_SECOND: intIn('RATE_LIMIT_PER_SECOND', 0, 1_000_000, 1_000),
  RATE_LIMIT_BURST: intIn('RATE_LIMIT_BURST', 1, 10_000_000, 2_000),
  METRICS_KEY: z
    .string()
    .optional()
    .transform((v, ctx) => {
      const raw = nonEmpty(v);
      if (raw !== undefined && raw.length < 16) {
        ctx.addIssue({ code: 'custom', message: 'METRICS_KEY must be at least 16 characters' });
        return z.NEVER;
      }
      return raw;
    }),
  KEY_RECHECK_MS: intIn('KEY_RECHECK_MS', 100, 600_000, 2_000),
  LEASE_TTL_MS: intIn('LEASE_TTL_MS', 300, 600_000, 10_000),
  AETHER_FAILPOINTS: z
    .string()
    .optional()
    .transform((v) =>
      (nonEmpty(v) ?? '')
        .split(',')
        .map((x) => x.trim())
        .filter(Boolean),
    ),
  DATASET_BUILD_TTL_MS: intIn('DATASET_BUILD_TTL_MS', 400, 3_600_000, 30_000),
  RELAY_INTERVAL_MS: intIn('RELAY_INTERVAL_MS', 5, 600_000, 1_000),
  REDIS_COMMAND_TIMEOUT_MS: intIn('REDIS_COMMAND_TIMEOUT_MS', 50, 600_000, 2_000),
  DATABASE_QUERY_TIMEOUT_MS: intIn('DATABASE_QUERY_TIMEOUT_MS', 100, 3_600_000, 60_000),
  DATABASE_BACKGROUND_MAX_WAIT_MS: intIn(
    'DATABASE_BACKGROUND_MAX_WAIT_MS',
    0,
    60_000,
    DEFAULT_BACKGROUND_MAX_WAIT_MS,
  ),
  FEATURE_STREAM_CONSUMER: onOff('FEATURE_STREAM_CONSUMER'),
  REDIS_CLIENT_CACHE: onOff('REDIS_CLIENT_CACHE'),
  /** Its former name (before it covered the key epoch), still honoured when it is not set. */
  ONLINE_CLIENT_CACHE: onOff('ONLINE_CLIENT_CACHE'),
  DATASET_DUCKDB: onOff('DATASET_DUCKDB'),
  DATASET_DUCKDB_MIN_ROWS: intIn('DATASET_DUCKDB_MIN_ROWS', 0, 1e12, 20_000_000),
  DATASET_DUCKDB_MEMORY_MB: intIn(
    'DATASET_DUCKDB_MEMORY_MB',
    64,
    1_048_576,
    Math.min(4096, Math.floor(os.totalmem() / 4 / 2 ** 20)),
  ),
  // Unset (-1): an eighth of DATASET_DUCKDB_MEMORY_MB; 0: every bucket in a statement of its own.
  DATASET_DUCKDB_GROUP_MB: intIn('DATASET_DUCKDB_GROUP_MB', 0, 1_048_576, -1),
});

/** `on` (the default) or `off`. */
function onOff(name: string) {
  return z
    .string()
    .optional()
    .transform((v, ctx) => {
      const raw = nonEmpty(v) ?? 'on';
      if (raw !== 'on' && raw !== 'off') {
        ctx.addIssue({ code: 'custom', message: `${name} must be on or off (got "${raw}")` });
        return z.NEVER;
      }
      return raw === 'on';
    });
}

export type ArtifactStoreConfig =
  | { kind: 'fs'; root: string }
  | {
      kind: 's3';
      bucket: string;
      prefix: string;
      endpoint?: string;
      region: string;
      forcePathStyle: boolean;
    };

export interface Config {
  env: 'development' | 'production' | 'test';
  port: number;
  host: string;
  dataDir: string;
  /** Unset: embedded PGlite under `<dataDir>/pg`. */
  databaseUrl?: string;
  databaseSchema?: string;
  /** Unset: a redis-server child process with its data under `<dataDir>/redis`. */
  redisUrl?: string;
  /** Set: a Redis Cluster from these seed nodes (REDIS_URL is then not used). */
  redisCluster?: { nodes: { host: string; port: number }[]; username?: string; password?: string };
  redisPrefix: string;
  artifacts: ArtifactStoreConfig;
  logLevel: string;
  maxBodyBytes: number;
  maxQueryDepth: number;
  maxQueryComplexity: number;
  shutdownGraceMs: number;
  /** Whether this process consumes the feature source streams (see docs/adr/0008). */
  featureStreamConsumer: boolean;
  /** Online reads trust tracked stamps until Redis reports a change (one server only). */
  redisClientCache: boolean;
  /** Unacknowledged stream entries idle this long are claimed from their (dead) consumer. */
  featureStreamClaimIdleMs: number;
  /** How often due offline compactions run in this process; 0: never (another process does). */
  offlineCompactionIntervalMs: number;
  /** A runner that has not renewed a run's lease for this long loses it; the run is requeued. */
  trainingLeaseMs: number;
  /** How often this process judges canaries (0: never). */
  canaryIntervalMs: number;
  /** How often this process's autoscaler decides replica counts (0: never). */
  autoscaleIntervalMs: number;
  /** How often this process runs the monitors whose step has passed (0: never). */
  monitorIntervalMs: number;
  /** How often the studies' pass runs (on the lease holder); 0: never on this process. */
  hpoIntervalMs: number;
  /** Tokens a GraphQL document may have; the parser stops there. */
  maxQueryTokens: number;
  /** Unexpected errors keep their message and stack in responses (never in production). */
  debugErrors: boolean;
  /** Requests per second each API key may make, sustained (0: unlimited), and its burst. */
  rateLimitPerSecond: number;
  rateLimitBurst: number;
  /** When set, GET /metrics needs `Authorization: Bearer <METRICS_KEY>`. */
  metricsKey?: string;
  /** How often open websockets' keys are checked again (besides on every key event). */
  keyRecheckMs: number;
  /** A Redis command unanswered this long fails (503) instead of hanging the request. */
  redisCommandTimeoutMs: number;
  /** A PostgreSQL statement running this long is cancelled (503). */
  databaseQueryTimeoutMs: number;
  /**
   * Requests take a free database connection before background statements, but one that has
   * waited this long goes next (docs/adr/0020): lower favours background work under a load
   * that leaves no gaps, higher the requests' latency.
   */
  databaseBackgroundMaxWaitMs: number;
  /** Fault injection: the process SIGKILLs itself at these failpoints (never in production). */
  failpoints: string[];
  /** A singleton loop's lease lapses this long after its holder last extended it. */
  leaseTtlMs: number;
  /** A dataset build whose process has not beaten this long is taken over. */
  datasetBuildTtlMs: number;
  /**
   * The DuckDB join engine (ADR 0034): builds that name no engine use it from `minRows` rows
   * of history; null (DATASET_DUCKDB=off): every build runs on the evaluator.
   */
  datasetDuckDb: { minRows: number; memoryLimitMb: number; groupBytes: number } | null;
  /** How often the outbox relay looks for committed events besides when woken by a commit. */
  relayIntervalMs: number;
}

export class ConfigError extends Error {}

export function loadConfig(env: NodeJS.ProcessEnv = process.env): Config {
  const parsed = envSchema.safeParse(env);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new ConfigError(`Invalid configuration: ${issue.message}`);
  }
  const e = parsed.data;
  return {
    env: e.NODE_ENV,
    port: e.PORT,
    host: e.HOST,
    dataDir: e.DATA_DIR,
    databaseUrl: e.DATABASE_URL,
    databaseSchema: e.DATABASE_SCHEMA,
    redisUrl: e.REDIS_URL,
    redisCluster: e.REDIS_CLUSTER_NODES,
    redisPrefix: e.REDIS_PREFIX,
    artifacts: artifactConfig(
      e.ARTIFACT_STORE_URL,
      e.DATA_DIR,
      e.S3_ENDPOINT,
      e.S3_REGION,
      e.S3_FORCE_PATH_STYLE,
    ),
    logLevel: e.LOG_LEVEL,
    maxBodyBytes: e.MAX_BODY_BYTES,
    maxQueryDepth: e.MAX_QUERY_DEPTH,
    maxQueryComplexity: e.MAX_QUERY_COMPLEXITY,
    shutdownGraceMs: e.SHUTDOWN_GRACE_MS,
    featureStreamConsumer: e.FEATURE_STREAM_CONSUMER,
    redisClientCache: env.REDIS_CLIENT_CACHE?.trim() ? e.REDIS_CLIENT_CACHE : e.ONLINE_CLIENT_CACHE,
    featureStreamClaimIdleMs: e.FEATURE_STREAM_CLAIM_IDLE_MS,
    offlineCompactionIntervalMs: e.OFFLINE_COMPACTION_INTERVAL_MS,
    trainingLeaseMs: e.TRAINING_LEASE_MS,
    canaryIntervalMs: e.CANARY_INTERVAL_MS,
    autoscaleIntervalMs: e.AUTOSCALE_INTERVAL_MS,
    monitorIntervalMs: e.MONITOR_INTERVAL_MS,
    hpoIntervalMs: e.HPO_INTERVAL_MS,
    maxQueryTokens: e.MAX_QUERY_TOKENS,
    debugErrors: e.DEBUG_ERRORS,
    rateLimitPerSecond: e.RATE_LIMIT_PER_SECOND,
    rateLimitBurst: e.RATE_LIMIT_BURST,
    metricsKey: e.METRICS_KEY,
    keyRecheckMs: e.KEY_RECHECK_MS,
    redisCommandTimeoutMs: e.REDIS_COMMAND_TIMEOUT_MS,
    databaseQueryTimeoutMs: e.DATABASE_QUERY_TIMEOUT_MS,
    databaseBackgroundMaxWaitMs: e.DATABASE_BACKGROUND_MAX_WAIT_MS,
    leaseTtlMs: e.LEASE_TTL_MS,
    failpoints: e.NODE_ENV === 'production' ? [] : e.AETHER_FAILPOINTS,
    relayIntervalMs: e.RELAY_INTERVAL_MS,
    datasetBuildTtlMs: e.DATASET_BUILD_TTL_MS,
    datasetDuckDb: e.DATASET_DUCKDB
      ? {
          minRows: e.DATASET_DUCKDB_MIN_ROWS,
          memoryLimitMb: e.DATASET_DUCKDB_MEMORY_MB,
          groupBytes: duckDbGroupBytes(e.DATASET_DUCKDB_MEMORY_MB, e.DATASET_DUCKDB_GROUP_MB),
        }
      : null,
  };
}

function artifactConfig(
  raw: string | undefined,
  dataDir: string,
  endpoint: string | undefined,
  region: string,
  forcePathStyle: boolean | undefined,
): ArtifactStoreConfig {
  if (raw === undefined) return { kind: 'fs', root: path.join(dataDir, 'artifacts') };
  if (raw.startsWith('file://')) {
    // file://relative/path and file:///absolute/path are both accepted.
    const p = raw.slice('file://'.length);
    if (p === '')
      throw new ConfigError('Invalid configuration: ARTIFACT_STORE_URL file:// needs a path');
    return { kind: 'fs', root: path.resolve(p) };
  }
  const u = new URL(raw);
  if (!u.hostname)
    throw new ConfigError(
      'Invalid configuration: ARTIFACT_STORE_URL must name a bucket, like s3://bucket/prefix',
    );
  return {
    kind: 's3',
    bucket: u.hostname,
    prefix: u.pathname.replace(/^\/+|\/+$/g, ''),
    endpoint,
    region,
    // Path-style addressing is what MinIO, s3rver and most S3-compatible servers expect.
    forcePathStyle: forcePathStyle ?? endpoint !== undefined,
  };
}

function redact(url: string): string {
  return url.replace(/\/\/[^@/]*@/, '//***@');
}
