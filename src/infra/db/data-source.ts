import fs from 'node:fs';
import path from 'node:path';
import { Client, type Pool } from 'pg';
import { DataSource, type Logger as TypeOrmLogger } from 'typeorm';
import { type PostgresDriver } from 'typeorm/driver/postgres/PostgresDriver';
import { migrations } from '../../../migrations';
import { startEmbeddedPglite } from './embedded-pglite';
import { entities } from './entities';
import { DEFAULT_BACKGROUND_MAX_WAIT_MS, type Lane, prioritizeRequests } from './priority-pool';

/** A statement that cannot get a connection this long fails (503) rather than queueing on. */
const CONNECT_TIMEOUT_MS = 5_000;

export interface DatabaseOptions {
  /**
   * PostgreSQL URL; unset means embedded PGlite in `pgliteDir`, run in a child process and
   * reached over a unix socket (`embedded-pglite.ts`).
   */
  url?: string;
  /** Put every table in this schema (created if missing); tests use one per file. */
  schema?: string;
  pgliteDir?: string;
  /** Called once per SQL statement sent, for the query-count metric. */
  onQuery?: (sql: string) => void;
  /**
   * Requests take a free connection before background statements (`priority-pool.ts`), but
   * a background statement that has waited this long goes next.
   */
  backgroundMaxWaitMs?: number;
  /** How long a statement waited for a connection, by lane (request or background). */
  onConnectionWait?: (lane: Lane, seconds: number) => void;
  /** How long a statement (or transaction) held its connection, by lane. */
  onConnectionHeld?: (lane: Lane, seconds: number) => void;
  onSlowQuery?: (sql: string, ms: number) => void;
  /**
   * PostgreSQL only: statements are cancelled by the server after this long, and the client
   * gives up on a server that stops answering shortly after; waiting for a pooled connection
   * is bounded too. A stalled database then fails requests (503) instead of hanging them.
   */
  queryTimeoutMs?: number;
}

export type DatabaseKind = 'postgres' | 'pglite';

export interface Database {
  dataSource: DataSource;
  kind: DatabaseKind;
  /** Applies pending migrations; returns the names applied. */
  migrate(): Promise<string[]>;
  ping(): Promise<void>;
  close(): Promise<void>;
}

export async function openDatabase(opts: DatabaseOptions): Promise<Database> {
  const logger = queryLogger(opts);
  let dataSource: DataSource;
  let kind: DatabaseKind;
  let stopServer = async (): Promise<void> => undefined;
  // PGlite is one backend: one connection, whose transactions every other query waits for,
  // as on a PostgreSQL whose pool is full.
  const connections = opts.url ? 10 : 1;
  if (opts.url) {
    kind = 'postgres';
    if (opts.schema) await ensureSchema(opts.url, opts.schema);
    dataSource = new DataSource({
      type: 'postgres',
      url: opts.url,
      schema: opts.schema,
      entities,
      migrations,
      migrationsTableName: 'aether_migrations',
      synchronize: false,
      logger,
      maxQueryExecutionTime: 1000,
      // search_path makes the raw SQL in migrations land in the same schema as the entities.
      extra: {
        max: connections,
        ...(opts.schema ? { options: `-c search_path=${opts.schema}` } : {}),
        ...(opts.queryTimeoutMs
          ? {
              statement_timeout: opts.queryTimeoutMs,
              query_timeout: opts.queryTimeoutMs + 1_000,
              connectionTimeoutMillis: CONNECT_TIMEOUT_MS,
            }
          : {}),
      },
    });
  } else {
    kind = 'pglite';
    if (!opts.pgliteDir) throw new Error('openDatabase: pgliteDir is required without a url');
    fs.mkdirSync(path.dirname(opts.pgliteDir), { recursive: true });
    const server = await startEmbeddedPglite({ dataDir: opts.pgliteDir });
    stopServer = () => server.stop();
    dataSource = new DataSource({
      type: 'postgres',
      host: server.socketDir,
      port: server.port,
      username: 'postgres',
      database: 'postgres',
      entities,
      migrations,
      migrationsTableName: 'aether_migrations',
      synchronize: false,
      logger,
      maxQueryExecutionTime: 1000,
      extra: { max: connections },
    });
  }
  try {
    await dataSource.initialize();
  } catch (e) {
    await stopServer();
    throw e;
  }
  prioritizeRequests((dataSource.driver as PostgresDriver).master as Pool, {
    connections,
    backgroundMaxWaitMs: opts.backgroundMaxWaitMs ?? DEFAULT_BACKGROUND_MAX_WAIT_MS,
    acquireTimeoutMs: opts.url && opts.queryTimeoutMs ? CONNECT_TIMEOUT_MS : undefined,
    onWait: opts.onConnectionWait,
    onHeld: opts.onConnectionHeld,
  });
  return {
    dataSource,
    kind,
    async migrate() {
      const applied = await dataSource.runMigrations({ transaction: 'each' });
      return applied.map((m) => m.name);
    },
    async ping() {
      await dataSource.query('SELECT 1');
    },
    async close() {
      try {
        if (dataSource.isInitialized) await dataSource.destroy();
      } finally {
        await stopServer();
      }
    },
  };
}

async function ensureSchema(url: string, schema: string): Promise<void> {
  const client = new Client({ connectionString: url });
  await client.connect();
  try {
    await client.query(`CREATE SCHEMA IF NOT EXISTS "${schema}"`);
  } finally {
    await client.end();
  }
}

function queryLogger(opts: DatabaseOptions): TypeOrmLogger {
  return {
    logQuery: (sql) => opts.onQuery?.(sql),
    logQueryError: () => undefined,
    logQuerySlow: (ms, sql) => opts.onSlowQuery?.(sql, ms),
    logSchemaBuild: () => undefined,
    logMigration: () => undefined,
    log: () => undefined,
  };
}
