import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import {
  DOUBLE,
  DuckDBDataChunk,
  DuckDBInstance,
  INTEGER,
  DuckDBListValue,
  LIST,
  VARCHAR,
  type DuckDBAppender,
  type DuckDBConnection,
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
import { bucketOf, SEGMENT_BUCKETS as BUCKETS } from '../db/features/segments';

export interface DuckDbJoinOptions {
  /** DuckDB's memory_limit: above it, the join's operators spill to `tempDir`. */
  memoryLimitMb: number;
  /** DuckDB's worker threads; by default all cores but one, the api's. */
  threads?: number;
  /** Where the open tables' files are copied for the build, and where DuckDB spills. */
  tempDir: string;
  /** Told how long each phase of a join took (`JoinPhase`), as each ends. */
  onPhase?: (phase: JoinPhase, seconds: number) => void;
  /**
   * The most Parquet bytes one statement reads: the spine's buckets are joined in groups of
   * at most this much history each (a bucket alone may exceed it), so that a statement sorts
   * a part of the history, not all of it. DATASET_DUCKDB_GROUP_MB; by default an eighth of
   * the memory limit (not swept; whether a group spills is not measured).
   */
  groupBytes: number;
  /** Told the groups of buckets a join runs, one statement each, before the first. */
  onGroups?: (groups: readonly number[][]) => void;
}

/**
 * A join's phases, in order: copying the open tables' files, loading the log's tail, loading
 * the spine, and the join's statements, one group after another; then, interleaved with the
 * statements and not counted in `join`, checking each group's precondition for the ASOF form
 * (`precondition`) and reading its rows back into columns (`read`).
 */
export type JoinPhase = 'copy' | 'tail' | 'spine' | 'precondition' | 'join' | 'read';

/**
 * The share of a join done when each phase ends, for its progress: about what the phases
 * took at 10M rows in features-pit-scale. Within the join, the spine rows placed so far (one
 * group's statement after another) lead from the spine's share to 1. A statement
 * itself reports nothing while it runs: DuckDB's own
 * estimate (`duckdb_query_progress`, `connection.progress`) stayed at 0 throughout a
 * streamed statement through @duckdb/node-api 1.x, progress bar enabled or not.
 */
const PHASE_DONE: Record<JoinPhase, number> = {
  copy: 0.08,
  tail: 0.1,
  spine: 0.2,
  precondition: 1,
  join: 1,
  read: 1,
};

/** Attempts at a consistent snapshot when a compaction deletes a file as it is copied. */
const SNAPSHOT_ATTEMPTS = 4;

/**
 * The point-in-time join run by DuckDB (docs/adr/0034): the statement `datasetSql` gives for
 * DuckDB, over each view version's open table (the Parquet files of the spine's buckets, as
 * of one compaction) and the log rows appended after that compaction, with the spine loaded
 * through an appender. The files are copied, checksums verified, into a folder of the
 * build's own first, so a compaction that replaces them meanwhile cannot pull them away.
 * DuckDB runs on its own threads, under a memory limit, spilling to disk; the api's event
 * loop only loads the inputs and reads the result back. The join of an entity reads only its
 * own bucket's rows, so the buckets are joined in groups, one statement each, so that each
 * statement holds a fraction of the history instead of sorting and spilling all of it
 * (docs/adr/0034).
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
      const spineBuckets = spine.map((r) => bucketOf(r.entityKey));
      const buckets = new Set(spineBuckets);
      const versions = [...new Map(refs.map((r) => [r.version.id, r.version])).values()];
      const histories: BoundHistory[] = [];
      for (const [i, v] of versions.entries()) {
        const relation = relations.find((x) => x.name === historyRelation(v)) as SqlRelation;
        histories.push(await this.bindHistory(duck, dir, i, v, relation, buckets, phase));
      }
      await loadSpine(duck, spine, spineBuckets);
      phase('spine');
      // Per group, the ASOF form where its precondition holds there: no event whose versions
      // moved in time among the group's buckets (one moved event elsewhere does not send every
      // group to the general form), checked over the group's rows alone.
      const statements = {
        asof: pointInTimeSql(refs, SqlDialect.DUCKDB, { asof: true, ordered: false }).sql,
        general: pointInTimeSql(refs, SqlDialect.DUCKDB, { ordered: false }).sql,
      };
      const groups = bucketGroups(
        [...buckets].sort((a, b) => a - b),
        histories,
        this.opts.groupBytes,
      );
      this.opts.onGroups?.(groups);
      const result = new JoinResult(refs, spine.length, progress);
      let checking = 0n;
      for (const group of groups) {
        await bindGroup(duck, group, histories);
        const started = process.hrtime.bigint();
        let asof = true;
        for (let i = 0; i < versions.length && asof; i++)
          if ((await duck.runAndReadAll(movedEventsSql(versionsRelation(i)))).currentRowCount)
            asof = false;
        checking += process.hrtime.bigint() - started;
        const sql = asof ? statements.asof : statements.general;
        for await (const chunk of await duck.stream(sql)) result.read(chunk);
      }
      result.end();
      since += checking + BigInt(Math.round(result.seconds * 1e9));
      phase('join');
      this.opts.onPhase?.('precondition', Number(checking) / 1e9);
      this.opts.onPhase?.('read', result.seconds);
      return result.columns;
    } finally {
      duck.closeSync();
      instance.closeSync();
      fs.rmSync(dir, { recursive: true, force: true });
    }
  }

  /**
   * The version's files, copied, and its tail table, for the history relation each group
   * binds (`bindGroup`); and its versions relation over every file and the tail, for the ASOF
   * form's precondition (`movedEventsSql`).
   */
  private async bindHistory(
    duck: DuckDBConnection,
    dir: string,
    index: number,
    v: FeatureViewVersion,
    relation: SqlRelation,
    buckets: ReadonlySet<number>,
    phase: (name: JoinPhase) => void,
  ): Promise<BoundHistory> {
    let snapshot: Awaited<ReturnType<OfflineStore['historySnapshot']>> | null = null;
    const local: LocalFile[] = [];
    for (let attempt = 1; !snapshot; attempt++) {
      const s = await this.offline.historySnapshot(v, buckets);
      if (!s.files)
        throw new Error(
          `${v.viewName}@${v.version} has segments written before open tables: compact it (its next compaction writes them), or build on the evaluator`,
        );
      try {
        local.length = 0;
        for (const f of s.files) {
          const file = await this.copy(f.key, f.sha256, dir, index);
          local.push({
            path: file,
            delta: f.run > 0,
            bucket: f.bucket,
            bytes: fs.statSync(file).size,
          });
        }
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
      `CREATE TABLE ${tail} (${relation.columns.map((c) => `${q(c.name)} ${c.type}`).join(', ')}, ${BUCKET_COLUMN} INTEGER)`,
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
          appender.appendInteger(bucketOf(r.entityKey));
          appender.endRow();
        }
        appender.flushSync();
      }
    } finally {
      appender.closeSync();
    }
    phase('tail');
    const fileColumns = `entity_key, event_id, epoch_ms(event_ts) AS event_ts, epoch_ms(known_ts) AS known_ts${sources
      .map((c, p) => `, ${q(stored[p].name)} AS ${q(c.name)}`)
      .join('')}`;
    const tailColumns = relation.columns.map((c) => q(c.name)).join(', ');
    // The candidates for moved events: a base file's version with a superseded_ts has a newer
    // one; a delta's row (its superseded_ts is its own file's) or a tail row may be a new
    // version of an event in another file.
    const [entity, id, ts, candidate] = VERSIONS_COLUMNS.map(q);
    const versions = (list: LocalFile[], isCandidate: string) =>
      list.length
        ? [
            `SELECT entity_key AS ${entity}, event_id AS ${id}, epoch_ms(event_ts) AS ${ts},
                    ${isCandidate} AS ${candidate} FROM ${readParquet(list)}`,
          ]
        : [];
    return {
      relation: q(relation.name),
      files: local,
      fromFiles: (list) => `SELECT ${fileColumns} FROM ${readParquet(list)}`,
      fromTail: (group) =>
        `SELECT ${tailColumns} FROM ${tail} WHERE ${BUCKET_COLUMN} IN (${group.join(', ')})`,
      versions: (files, group) =>
        [
          ...versions(
            files.filter((f) => !f.delta),
            'superseded_ts IS NOT NULL',
          ),
          ...versions(
            files.filter((f) => f.delta),
            'true',
          ),
          `SELECT entity_key AS ${entity}, event_id AS ${id}, event_ts AS ${ts}, true AS ${candidate}
             FROM ${tail} WHERE ${BUCKET_COLUMN} IN (${group.join(', ')})`,
        ].join(' UNION ALL '),
    };
  }

  /**
   * The artifact, its checksum verified, in the build's folder: a hard link where the store's
   * files are on the same filesystem (nothing written), a copy otherwise.
   */
  private async copy(key: string, sha256: string, dir: string, index: number): Promise<string> {
    const file = path.join(dir, `v${index}-${path.basename(key)}`);
    await fs.promises.rm(file, { force: true });
    await this.artifacts.saveTo(key, file, sha256);
    return file;
  }
}

/** A file of an open table, copied into the join's folder. */
interface LocalFile {
  path: string;
  /** A delta (run > 0), not a base. */
  delta: boolean;
  bucket: number;
  bytes: number;
}

/** A view version's inputs, bound as its history relation for one group at a time. */
interface BoundHistory {
  /** The history relation's name, quoted. */
  relation: string;
  files: LocalFile[];
  fromFiles: (files: LocalFile[]) => string;
  fromTail: (buckets: number[]) => string;
  /** Its versions relation (VERSIONS_COLUMNS) over these files and these buckets' tail rows. */
  versions: (files: LocalFile[], buckets: number[]) => string;
}

/** The spine's and the tail tables' column of each row's bucket. */
const BUCKET_COLUMN = 'aether_bucket';
const SPINE_TABLE = 'aether_spine_all';

function readParquet(files: LocalFile[]): string {
  return `read_parquet([${files.map((f) => `'${f.path.replace(/'/g, "''")}'`).join(', ')}])`;
}

/**
 * The spine's buckets in groups, in bucket order, each reading at most `budget` bytes of
 * Parquet over every version (a bucket that alone reads more is a group of its own; a budget
 * of 0 puts every bucket alone).
 */
export function bucketGroups(
  buckets: readonly number[],
  histories: readonly { files: readonly { bucket: number; bytes: number }[] }[],
  budget: number,
): number[][] {
  const bytes = new Map<number, number>();
  for (const h of histories)
    for (const f of h.files) bytes.set(f.bucket, (bytes.get(f.bucket) ?? 0) + f.bytes);
  const groups: number[][] = [];
  let size = Infinity;
  for (const b of buckets) {
    const n = bytes.get(b) ?? 0;
    if (!groups.length || budget <= 0 || size + n > budget) {
      groups.push([]);
      size = 0;
    }
    groups[groups.length - 1].push(b);
    size += n;
  }
  return groups;
}

/** Binds the spine and every history relation to the rows of one group of buckets. */
async function bindGroup(
  duck: DuckDBConnection,
  group: number[],
  histories: readonly BoundHistory[],
): Promise<void> {
  const inGroup = new Set(group);
  await duck.run(
    `CREATE OR REPLACE VIEW ${SPINE_RELATION} AS SELECT CAST(row_id AS BIGINT) AS row_id, entity_key, CAST(ts AS BIGINT) AS ts, label FROM ${SPINE_TABLE} WHERE ${BUCKET_COLUMN} IN (${group.join(', ')})`,
  );
  for (const [i, h] of histories.entries()) {
    const files = h.files.filter((f) => inGroup.has(f.bucket));
    await duck.run(
      `CREATE OR REPLACE VIEW ${h.relation} AS ${[
        ...(files.length ? [h.fromFiles(files)] : []),
        h.fromTail(group),
      ].join(' UNION ALL ')}`,
    );
    await duck.run(
      `CREATE OR REPLACE VIEW ${sqlIdentifier(SqlDialect.DUCKDB, versionsRelation(i))} AS ${h.versions(files, group)}`,
    );
  }
}

/**
 * A join's columns, filled from the statements' rows (row_id, entity_key, ts, label, then the
 * features), each placed by its row_id: the groups return the spine's rows in any order, each
 * once.
 */
class JoinResult {
  readonly columns: FeatureColumn[];
  private readonly seen: Uint8Array;
  private rows = 0;

  constructor(
    private readonly refs: readonly ResolvedRef[],
    private readonly size: number,
    private readonly progress: (fraction: number) => void,
  ) {
    this.columns = refs.map((r) => newFeatureColumn(r.type, size));
    this.seen = new Uint8Array(size);
  }

  /** Seconds spent reading chunks back into the columns (the api's thread). */
  seconds = 0;

  read(chunk: DuckDBDataChunk): void {
    const started = process.hrtime.bigint();
    const n = chunk.rowCount;
    // Item by item from the vectors: no array of boxed values per column and chunk.
    const idVector = chunk.getColumnVector(0);
    const ids = new Int32Array(n);
    for (let j = 0; j < n; j++) {
      const id = Number(idVector.getItem(j));
      if (!(id >= 0 && id < this.size) || this.seen[id])
        throw new Error(`the join returned spine row ${id} twice or out of range`);
      this.seen[id] = 1;
      ids[j] = id;
    }
    for (let k = 0; k < this.refs.length; k++) {
      const vector = chunk.getColumnVector(4 + k);
      const column = this.columns[k];
      for (let j = 0; j < n; j++) setColumnValue(column, ids[j], featureValue(vector.getItem(j)));
    }
    this.rows += n;
    this.seconds += Number(process.hrtime.bigint() - started) / 1e9;
    const from = PHASE_DONE.spine;
    this.progress(from + ((1 - from) * this.rows) / Math.max(this.size, 1));
  }

  end(): void {
    if (this.rows !== this.size)
      throw new Error(`the join returned ${this.rows} rows for a spine of ${this.size}`);
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

/**
 * The spine through an appender, a chunk of rows at a time: each column is filled in the
 * chunk's vector and copied over once, where a row at a time cost a native call per value.
 * Row ids and times travel as doubles (exact below 2^53) and are typed by the spine's view.
 */
async function loadSpine(
  duck: DuckDBConnection,
  spine: readonly SpineRow[],
  buckets: readonly number[],
): Promise<void> {
  await duck.run(
    `CREATE TABLE ${SPINE_TABLE} (row_id DOUBLE, entity_key VARCHAR, ts DOUBLE, label DOUBLE, ${BUCKET_COLUMN} INTEGER)`,
  );
  // In bucket order, so that a group's scan of the table reads its own buckets' row groups
  // (DuckDB skips the others by their zone maps) instead of the whole spine each time.
  const order = byBucket(buckets);
  const a = await duck.createAppender(SPINE_TABLE);
  try {
    for (let from = 0; from < spine.length; from += SPINE_CHUNK) {
      const n = Math.min(SPINE_CHUNK, spine.length - from);
      const chunk = DuckDBDataChunk.create([DOUBLE, VARCHAR, DOUBLE, DOUBLE, INTEGER], n);
      const [ids, keys, ts, labels, bucket] = [0, 1, 2, 3, 4].map((k) => chunk.getColumnVector(k));
      for (let j = 0; j < n; j++) {
        const i = order[from + j];
        const r = spine[i];
        ids.setItem(j, i);
        keys.setItem(j, r.entityKey);
        ts.setItem(j, r.ts);
        labels.setItem(j, r.label);
        bucket.setItem(j, buckets[i]);
      }
      for (const v of [ids, keys, ts, labels, bucket]) v.flush();
      a.appendDataChunk(chunk);
    }
    a.flushSync();
  } finally {
    a.closeSync();
  }
}

/** The rows' indexes ordered by bucket, in their order within each (a counting sort). */
function byBucket(buckets: readonly number[]): Uint32Array {
  const starts = new Uint32Array(BUCKETS + 1);
  for (const b of buckets) starts[b + 1]++;
  for (let b = 0; b < BUCKETS; b++) starts[b + 1] += starts[b];
  const order = new Uint32Array(buckets.length);
  buckets.forEach((b, i) => (order[starts[b]++] = i));
  return order;
}

/** Rows per chunk of the spine's load: DuckDB's vector size. */
const SPINE_CHUNK = 2_048;

function featureValue(v: DuckDBValue): FeatureValue {
  if (v === null || typeof v === 'number' || typeof v === 'string' || typeof v === 'boolean')
    return v;
  if (typeof v === 'bigint') return Number(v);
  if (v instanceof DuckDBListValue) return v.items.map((x) => Number(x));
  throw new Error(`the join returned a value it cannot hold: ${String(v)}`);
}
