import { createHash } from 'node:crypto';
import fs from 'node:fs';
import { DuckDBInstance } from '@duckdb/node-api';
import { startApp } from '../../src/app/app';
import { columnValue, type FeatureColumn, type SpineRow } from '../../src/domain/features/dataset';
import { loadConfig } from '../../src/infra/config/config';
import { PostgresOfflineStore } from '../../src/infra/db/features/offline-store';
import { duckDbGroupBytes } from '../../src/infra/config/config';
import { DuckDbPointInTimeEngine } from '../../src/infra/duckdb/point-in-time-engine';
import { createLogger } from '../../src/infra/observability/logger';
import { FIELDS } from './synthetic-history';

/**
 * One point-in-time join of features-pit-scale in a process of its own, so that its peak RSS
 * (the kernel's high-water mark of the process's resident memory, sampled by nothing) is that
 * join's alone, with the spine it joins and the columns it returns, and not the harness's.
 * The api is started in the process for the two joins that run in one (the evaluator and the
 * DuckDB engine), as a server building a dataset would be; plain DuckDB needs none.
 *
 * `node pit-join-child.js <job.json>`; prints one JSON line: `PitJoinResult`.
 */
export interface PitJoinJob {
  join: 'evaluator' | 'engine' | 'asof';
  /** The bench platform's environment (database, schema, Redis prefix, data dir). */
  env: Record<string, string>;
  refs: string[];
  /** JSON `{ entity: string[], ts: number[] }`: the spine, in its order. */
  spineFile: string;
  memoryLimitMb: number;
  /** The engine's DATASET_DUCKDB_GROUP_MB (-1: its default). */
  groupMb: number;
  threads: number;
  tempDir: string;
  /** The open table's files (plain DuckDB's input). */
  files: string[];
}

export interface PitJoinResult {
  seconds: number;
  /** The process's peak RSS over its whole life (api, spine, join, result). */
  peakRssMib: number;
  /** Its RSS just before the join began: the api and the spine. */
  rssBeforeMib: number;
  /** SHA-256 of the columns, value by value (null and each double's bits). */
  digest: string;
  /** The DuckDB engine's seconds per phase of the join (JoinPhase). */
  phases: Record<string, number>;
  /** The DuckDB engine's groups of buckets, one statement each (0 for the other joins). */
  groups: number;
}

/** The columns' digest: per column, per row, a 0 byte for null or a 1 byte and the double. */
function digest(
  columns: number,
  rows: number,
  at: (j: number, i: number) => number | null,
): string {
  const h = createHash('sha256');
  const buf = Buffer.alloc(9 * 4096);
  for (let j = 0; j < columns; j++) {
    let o = 0;
    for (let i = 0; i < rows; i++) {
      const v = at(j, i);
      if (v === null) buf[o++] = 0;
      else {
        buf[o++] = 1;
        buf.writeDoubleLE(v, o);
        o += 8;
      }
      if (o > buf.length - 9) {
        h.update(buf.subarray(0, o));
        o = 0;
      }
    }
    h.update(buf.subarray(0, o));
  }
  return h.digest('hex');
}

function digestOf(columns: readonly FeatureColumn[], rows: number): string {
  return digest(columns.length, rows, (j, i) => columnValue(columns[j], i) as number | null);
}

async function plainDuckDb(job: PitJoinJob, spine: readonly SpineRow[]): Promise<string> {
  fs.mkdirSync(job.tempDir, { recursive: true });
  const instance = await DuckDBInstance.create(':memory:', {
    memory_limit: `${job.memoryLimitMb}MB`,
    threads: String(job.threads),
    temp_directory: job.tempDir,
  });
  const duck = await instance.connect();
  try {
    await duck.run('CREATE TABLE labels (i INTEGER, entity VARCHAR, ts BIGINT)');
    const a = await duck.createAppender('labels');
    spine.forEach((l, i) => {
      a.appendInteger(i);
      a.appendVarchar(l.entityKey);
      a.appendBigInt(BigInt(l.ts));
      a.endRow();
    });
    a.closeSync();
    const f = Array.from({ length: FIELDS }, (_, j) => `f${j}`);
    const files = job.files.map((x) => `'${x.replace(/'/g, "''")}'`).join(', ');
    // The latest event at or before the label among first versions, then its version known
    // at the label time.
    const res = await duck.runAndReadAll(`
      WITH feat AS (
        SELECT entity_key AS entity, event_id, epoch_ms(event_ts) AS event_ts,
               epoch_ms(known_ts) AS created_ts, ${f.join(', ')}
          FROM read_parquet([${files}])),
      firsts AS (SELECT entity, event_id, event_ts FROM feat WHERE created_ts = event_ts),
      latest AS (
        SELECT l.i, l.entity, l.ts, e.event_id
        FROM labels l ASOF LEFT JOIN firsts e ON l.entity = e.entity AND l.ts >= e.event_ts)
      SELECT a.i, ${f.map((x) => `v.${x}`).join(', ')}
      FROM latest a ASOF LEFT JOIN feat v
        ON a.entity = v.entity AND a.event_id = v.event_id AND a.ts >= v.created_ts
      ORDER BY a.i`);
    const columns = res.getColumns().slice(1) as (number | null)[][];
    return digest(columns.length, spine.length, (j, i) => columns[j][i]);
  } finally {
    duck.closeSync();
    instance.closeSync();
  }
}

/**
 * The process's peak RSS: VmHWM, the high-water mark of its memory since it started. Not
 * `ru_maxrss`, which Linux carries over from the parent at fork and exec, so that a child
 * of a large harness reports the harness's size.
 */
function peakRssMib(): number {
  const hwm = /^VmHWM:\s+(\d+) kB$/m.exec(fs.readFileSync('/proc/self/status', 'utf8'));
  if (!hwm) throw new Error('no VmHWM in /proc/self/status');
  return Number(hwm[1]) / 1024;
}

function readSpine(file: string): SpineRow[] {
  const raw = JSON.parse(fs.readFileSync(file, 'utf8')) as { entity: string[]; ts: number[] };
  return raw.entity.map((entityKey, i) => ({ entityKey, ts: raw.ts[i], label: null }));
}

async function main(): Promise<void> {
  const job = JSON.parse(fs.readFileSync(process.argv[2], 'utf8')) as PitJoinJob;
  const spine = readSpine(job.spineFile);
  const app =
    job.join === 'asof'
      ? null
      : await startApp(loadConfig(job.env), { logger: createLogger('silent') });
  try {
    const refs = app ? await app.services.featureRegistry.resolveRefs(job.refs) : [];
    const phases: Record<string, number> = {};
    let groups = 0;
    let join: () => Promise<string>;
    if (!app) join = () => plainDuckDb(job, spine);
    else if (job.join === 'evaluator')
      join = async () =>
        digestOf(
          await app.services.datasets.pointInTimeJoin(
            { id: '00000000-0000-0000-0000-000000000000', rowCount: spine.length },
            refs,
            spine,
          ),
          spine.length,
        );
    else {
      const engine = new DuckDbPointInTimeEngine(
        new PostgresOfflineStore(app.db, app.services.artifacts),
        app.services.artifacts,
        {
          memoryLimitMb: job.memoryLimitMb,
          groupBytes: duckDbGroupBytes(job.memoryLimitMb, job.groupMb),
          tempDir: job.tempDir,
          threads: job.threads,
          onPhase: (name, seconds) => (phases[name] = (phases[name] ?? 0) + seconds),
          onGroups: (g) => (groups = g.length),
        },
      );
      join = async () => digestOf(await engine.join(refs, spine), spine.length);
    }
    const rssBefore = process.memoryUsage.rss();
    const t = process.hrtime.bigint();
    const digest = await join();
    const seconds = Number(process.hrtime.bigint() - t) / 1e9;
    const result: PitJoinResult = {
      seconds,
      peakRssMib: peakRssMib(),
      rssBeforeMib: rssBefore / 2 ** 20,
      digest,
      phases,
      groups,
    };
    process.stdout.write(`${JSON.stringify(result)}\n`);
  } finally {
    await app?.close();
  }
}

if (require.main === module)
  main().catch((e: unknown) => {
    console.error(e);
    process.exit(1);
  });
