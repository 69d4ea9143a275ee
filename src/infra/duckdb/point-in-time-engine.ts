import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { pipeline } from 'node:stream/promises';
import { Readable } from 'node:stream';
import {
  DOUBLE,
  DuckDBInstance,
  DuckDBListValue,
  LIST,
  type DuckDBAppender,
  type DuckDBConnection,
  type DuckDBDataChunk,
  type DuckDBValue,
} from '@duckdb/node-api';
import { ArtifactNotFoundError } from '../../domain/artifacts/artifact-errors';
import { type ArtifactStore } from '../../domain/artifacts/artifact-store';
import {
  newFeatureColumn,
  setColumnValue,
  type FeatureColumn,
  type SpineRow,
  type SqlJoinEngine,
} from '../../domain/features/dataset';
import {
  type FeatureValue,
  type FeatureViewVersion,
} from '../../domain/features/feature-definition';
import { type ResolvedRef } from '../../domain/features/feature-registry.service';
import { type OfflineStore } from '../../domain/features/feature-store.ports';
import { openTableSourceColumns } from '../../domain/features/open-table';
import {
  historyRelation,
  movedEventsSql,
  pointInTimeSql,
  SPINE_RELATION,
  SqlDialect,
  sqlIdentifier,
  type SqlRelation,
  VERSIONS_COLUMNS,
} from '../../domain/features/point-in-time-sql';
import { bucketOf } from '../db/features/segments';

export interface DuckDbJoinOptions {
  /** DuckDB's memory_limit: above it, the join's operators spill to `tempDir`. */
  memoryLimitMb: number;
  /** DuckDB's worker threads; by default all cores but one, the api's. */
  threads?: number;
  /** Where the open tables' files are copied for the build, and where DuckDB spills. */
  tempDir: string;
  /** Told how long each phase of a join took (`JoinPhase`), as each ends. */
  onPhase?: (phase: JoinPhase, seconds: number) => void;
}

/**
 * A join's phases, in order: copying the open tables' files, loading the log's tail, loading
 * the spine, checking the ASOF form's precondition, and the join with its result read back.
 */
export type JoinPhase = 'copy' | 'tail' | 'spine' | 'precondition' | 'join';

/**
 * The share of a join done when each phase ends, for its progress: about what the phases
 * took at 10M rows in features-pit-scale. Within the join, the rows read back lead from
 * READING_FROM to 1. The statement itself reports nothing while it runs: DuckDB's own
 * estimate (`duckdb_query_progress`, `connection.progress`) stayed at 0 throughout a
 * streamed statement through @duckdb/node-api 1.x, progress bar enabled or not.
 */
const PHASE_DONE: Record<JoinPhase, number> = {
  copy: 0.08,
  tail: 0.1,
  spine: 0.15,
  precondition: 0.2,
  join: 1,
};
const READING_FROM = 0.9;

/** Attempts at a consistent snapshot when a compaction deletes a file as it is copied. */
const SNAPSHOT_ATTEMPTS = 4;

/**
 * The point-in-time join run by DuckDB (docs/adr/0034): the statement `datasetSql` gives for
 * DuckDB, over each view version's open table (the Parquet files of the spine's buckets, as
 * of one compaction) and the log rows appended after that compaction, with the spine loaded
 * through an appender. The files are copied, checksums verified, into a folder of the
 * build's own first, so a compaction that replaces them meanwhile cannot pull them away.
 * DuckDB runs on its own threads, under a memory limit, spilling to disk; the api's event
 * loop only loads the inputs and reads the result back.
 */
export class DuckDbPointInTimeEngine implements SqlJoinEngine {
  /** One join at a time per process: the memory limit is then the process's, not a build's. */
  private queue: Promise<unknown> = Promise.resolve();
  /** Whether the folders of dead processes' joins were removed (at the first join). */
  private swept = false;

  constructor(
    private readonly offline: OfflineStore,
    private readonly artifacts: ArtifactStore,
    private readonly opts: DuckDbJoinOptions,
  ) {}

  join(
    refs: readonly ResolvedRef[],
    spine: readonly SpineRow[],
    onProgress?: (fraction: number) => void,
  ): Promise<FeatureColumn[]> {
    const run = this.queue.then(() => this.joinNow(refs, spine, onProgress));
    this.queue = run.catch(() => undefined);
    return run;
  }

  private async joinNow(
    refs: readonly ResolvedRef[],
    spine: readonly SpineRow[],
    onProgress?: (fraction: number) => void,
  ): Promise<FeatureColumn[]> {
    const { relations } = pointInTimeSql(refs, SqlDialect.DUCKDB);
    fs.mkdirSync(this.opts.tempDir, { recursive: true });
    if (!this.swept) {
      this.swept = true;
      sweepAbandoned(this.opts.tempDir);
    }
    const dir = fs.mkdtempSync(path.join(this.opts.tempDir, joinDirPrefix(process.pid)));
    const instance = await DuckDBInstance.create(':memory:', {
      memory_limit: `${this.opts.memoryLimitMb}MB`,
      threads: String(this.opts.threads ?? Math.max(1, os.availableParallelism() - 1)),
      temp_directory: path.join(dir, 'spill'),
      preserve_insertion_order: 'false',
    });
    const duck = await instance.connect();
    let since = process.hrtime.bigint();
    let done = 0;
    const progress = (fraction: number) => {
      if (fraction <= done) return;
      done = fraction;
      onProgress?.(fraction);
    };
    const phase = (name: JoinPhase) => {
      const now = process.hrtime.bigint();
      this.opts.onPhase?.(name, Number(now - since) / 1e9);
      since = now;
      progress(PHASE_DONE[name]);
    };
    try {
      const buckets = new Set(spine.map((r) => bucketOf(r.entityKey)));
      const versions = [...new Map(refs.map((r) => [r.version.id, r.version])).values()];
      for (const [i, v] of versions.entries()) {
        const relation = relations.find((x) => x.name === historyRelation(v)) as SqlRelation;
        await this.bindHistory(duck, dir, i, v, relation, buckets, phase);
      }
      await loadSpine(duck, spine);
      phase('spine');
      // The ASOF form where its precondition holds: no event whose versions moved in time.
      let asof = true;
      for (let i = 0; i < versions.length && asof; i++)
        if ((await duck.runAndReadAll(movedEventsSql(versionsRelation(i)))).currentRowCount)
          asof = false;
      phase('precondition');
      const { sql } = pointInTimeSql(refs, SqlDialect.DUCKDB, { asof });
      const columns = await readColumns(duck, sql, refs, spine.length, progress);
      phase('join');
      return columns;
    } finally {
      duck.closeSync();
      instance.closeSync();
      fs.rmSync(dir, { recursive: true, force: true });
    }
  }

  /**
   * The version's history relation (its open table's files, then the log's tail), and its
   * versions relation for the ASOF form's precondition (`movedEventsSql`).
   */
  private async bindHistory(
    duck: DuckDBConnection,
    dir: string,
    index: number,
    v: FeatureViewVersion,
    relation: SqlRelation,
    buckets: ReadonlySet<number>,
    phase: (name: JoinPhase) => void,
  ): Promise<void> {
    let snapshot: Awaited<ReturnType<OfflineStore['historySnapshot']>> | null = null;
    const local: { path: string; delta: boolean }[] = [];
    for (let attempt = 1; !snapshot; attempt++) {
      const s = await this.offline.historySnapshot(v, buckets);
      if (!s.files)
        throw new Error(
          `${v.viewName}@${v.version} has segments written before open tables: compact it (its next compaction writes them), or build on the evaluator`,
        );
      try {
        local.length = 0;
        for (const f of s.files)
          local.push({ path: await this.copy(f.key, f.sha256, dir, index), delta: f.run > 0 });
        snapshot = s;
      } catch (e) {
        if (!(e instanceof ArtifactNotFoundError) || attempt >= SNAPSHOT_ATTEMPTS) throw e;
      }
    }
    phase('copy');
    const sources = relation.columns.slice(4);
    // The open table's names for the sources (one colliding with a key column is prefixed).
    const stored = openTableSourceColumns(
      v.schema.features.map((f) => ({ source: f.source, type: f.type })),
    );
    const q = (n: string) => sqlIdentifier(SqlDialect.DUCKDB, n);
    const tail = `aether_tail_${index}`;
    await duck.run(
      `CREATE TABLE ${tail} (${relation.columns.map((c) => `${q(c.name)} ${c.type}`).join(', ')})`,
    );
    const appender = await duck.createAppender(tail);
    try {
      for await (const page of snapshot.tail) {
        for (const r of page) {
          appender.appendVarchar(r.entityKey);
          appender.appendVarchar(r.event.eventId);
          appender.appendBigInt(BigInt(r.event.eventTs));
          appender.appendBigInt(BigInt(r.event.createdTs));
          sources.forEach((c, p) => appendValue(appender, c.type, r.event.values[p] ?? null));
          appender.endRow();
        }
        appender.flushSync();
      }
    } finally {
      appender.closeSync();
    }
    phase('tail');
    const read = (list: typeof local) =>
      `read_parquet([${list.map((f) => `'${f.path.replace(/'/g, "''")}'`).join(', ')}])`;
    const files = read(local);
    const fromFiles = local.length
      ? `SELECT entity_key, event_id, epoch_ms(event_ts) AS event_ts, epoch_ms(known_ts) AS known_ts${sources
          .map((c, p) => `, ${q(stored[p].name)} AS ${q(c.name)}`)
          .join('')}
           FROM ${files}
          UNION ALL `
      : '';
    await duck.run(`CREATE VIEW ${q(relation.name)} AS ${fromFiles}SELECT * FROM ${tail}`);
    // The candidates for moved events: a base file's version with a superseded_ts has a newer
    // one; a delta's row (its superseded_ts is its own file's) or a tail row may be a new
    // version of an event in another file.
    const [entity, id, ts, candidate] = VERSIONS_COLUMNS.map(q);
    const versions = (list: typeof local, isCandidate: string) =>
      list.length
        ? [
            `SELECT entity_key AS ${entity}, event_id AS ${id}, epoch_ms(event_ts) AS ${ts},
                    ${isCandidate} AS ${candidate} FROM ${read(list)}`,
          ]
        : [];
    await duck.run(
      `CREATE VIEW ${q(versionsRelation(index))} AS ${[
        ...versions(
          local.filter((f) => !f.delta),
          'superseded_ts IS NOT NULL',
        ),
        ...versions(
          local.filter((f) => f.delta),
          'true',
        ),
        `SELECT entity_key AS ${entity}, event_id AS ${id}, event_ts AS ${ts}, true AS ${candidate}
           FROM ${tail}`,
      ].join(' UNION ALL ')}`,
    );
  }

  /** The artifact, read through the store (its checksum verified), into the build's folder. */
  private async copy(key: string, sha256: string, dir: string, index: number): Promise<string> {
    const file = path.join(dir, `v${index}-${path.basename(key)}`);
    await pipeline(
      Readable.from(await this.artifacts.get(key, sha256)),
      fs.createWriteStream(file),
    );
    return file;
  }
}

/**
 * A join's folder name starts with its host and process, so that a process that died mid-join
 * (its copied files and spill left behind) is recognised by the next one on the same host,
 * while another live process's joins in a shared data directory are left alone.
 */
function joinDirPrefix(pid: number): string {
  return `${hostPrefix()}${pid}-`;
}

function hostPrefix(): string {
  return `join-${os.hostname().replace(/[^A-Za-z0-9.-]/g, '_')}-`;
}

/** Removes the join folders of this host's processes that are no longer running. */
function sweepAbandoned(tempDir: string): void {
  const mine = hostPrefix();
  for (const name of fs.readdirSync(tempDir)) {
    if (!name.startsWith(mine)) continue;
    const pid = Number(/^(\d+)-/.exec(name.slice(mine.length))?.[1]);
    if (!Number.isInteger(pid) || pid === process.pid || alive(pid)) continue;
    fs.rmSync(path.join(tempDir, name), { recursive: true, force: true });
  }
}

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    // EPERM: it runs, as another user.
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** The relation of a version's stored versions (VERSIONS_COLUMNS). */
function versionsRelation(index: number): string {
  return `aether_versions_${index}`;
}

function appendValue(a: DuckDBAppender, type: string, v: FeatureValue): void {
  if (v === null) return a.appendNull();
  switch (type) {
    case 'DOUBLE':
      if (typeof v !== 'number') break;
      return a.appendDouble(v);
    case 'BOOLEAN':
      if (typeof v !== 'boolean') break;
      return a.appendBoolean(v);
    case 'VARCHAR':
      if (typeof v !== 'string') break;
      return a.appendVarchar(v);
    case 'DOUBLE[]':
      if (!Array.isArray(v)) break;
      return a.appendList(v, LIST(DOUBLE));
  }
  throw new Error(`a stored value of type ${typeof v} in a ${type} column`);
}

async function loadSpine(duck: DuckDBConnection, spine: readonly SpineRow[]): Promise<void> {
  await duck.run(
    `CREATE TABLE ${SPINE_RELATION} (row_id BIGINT, entity_key VARCHAR, ts BIGINT, label DOUBLE)`,
  );
  const a = await duck.createAppender(SPINE_RELATION);
  try {
    spine.forEach((r, i) => {
      a.appendBigInt(BigInt(i));
      a.appendVarchar(r.entityKey);
      a.appendBigInt(BigInt(r.ts));
      if (r.label === null) a.appendNull();
      else a.appendDouble(r.label);
      a.endRow();
    });
    a.flushSync();
  } finally {
    a.closeSync();
  }
}

/** The statement's feature columns (after row_id, entity_key, ts, label), row i = row_id i. */
async function readColumns(
  duck: DuckDBConnection,
  sql: string,
  refs: readonly ResolvedRef[],
  rows: number,
  progress: (fraction: number) => void,
): Promise<FeatureColumn[]> {
  const columns = refs.map((r) => newFeatureColumn(r.type, rows));
  let row = 0;
  for await (const chunk of await duck.stream(sql)) {
    row = readChunk(chunk, columns, refs.length, row);
    progress(READING_FROM + ((1 - READING_FROM) * row) / Math.max(rows, 1));
  }
  if (row !== rows) throw new Error(`the join returned ${row} rows for a spine of ${rows}`);
  return columns;
}

/** A chunk of the join's rows into the columns from `row` on; the next row. */
function readChunk(
  chunk: DuckDBDataChunk,
  columns: FeatureColumn[],
  features: number,
  row: number,
): number {
  const n = chunk.rowCount;
  const ids = chunk.getColumnValues(0);
  for (let k = 0; k < features; k++) {
    const values = chunk.getColumnValues(4 + k);
    for (let j = 0; j < n; j++) setColumnValue(columns[k], row + j, featureValue(values[j]));
  }
  if (n && Number(ids[n - 1]) !== row + n - 1)
    throw new Error('the join returned rows out of spine order');
  return row + n;
}

function featureValue(v: DuckDBValue): FeatureValue {
  if (v === null || typeof v === 'number' || typeof v === 'string' || typeof v === 'boolean')
    return v;
  if (typeof v === 'bigint') return Number(v);
  if (v instanceof DuckDBListValue) return v.items.map((x) => Number(x));
  throw new Error(`the join returned a value it cannot hold: ${String(v)}`);
}
