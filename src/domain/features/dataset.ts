import { type TableFile } from './table-file';
import { FeatureType, type FeatureValue } from './feature-definition';
import { type ArtifactRef } from '../artifacts/artifact-store';
import { type ResolvedRef } from './feature-registry.service';

/** One row of the spine: which entity, at what time, with what label. */
export interface SpineRow {
  entityKey: string;
  /** The label's time (epoch ms): features are those known at this instant. */
  ts: number;
  label: number | null;
}

export enum DatasetStatus {
  BUILDING = 'BUILDING',
  READY = 'READY',
  FAILED = 'FAILED',
}

/**
 * What runs a build's point-in-time join. Both give the same rows, bit for bit, so the same
 * content hash (docs/adr/0034): the evaluator (point-in-time.ts, the definition) in the api's
 * process, a bucket's history in memory at a time; or DuckDB running the join's SQL
 * (`datasetSql`) over the open tables' Parquet files and the log rows not yet compacted,
 * under a memory limit, spilling to disk.
 */
export enum JoinEngine {
  EVALUATOR = 'EVALUATOR',
  DUCKDB = 'DUCKDB',
}

export interface DatasetColumn {
  name: string;
  type: FeatureType | 'TIMESTAMP';
}

export interface DatasetSnapshot {
  id: string;
  name: string;
  status: DatasetStatus;
  /** Resolved refs (`view@version:feature`), in column order. */
  featureRefs: string[];
  featureViewVersionIds: string[];
  /** SHA-256 of the spine's canonical form: with the refs, the exact spec. */
  spineSha256: string;
  rowCount: number;
  columns: DatasetColumn[];
  /** SHA-256 of the snapshot file; the same spec over the same data gives the same hash. */
  contentHash: string | null;
  artifact: ArtifactRef | null;
  /** The Parquet copy for download, written on its first download. */
  parquet: ArtifactRef | null;
  /** The spine as stored when the build began: what a build resumed elsewhere reads. */
  spineFile: TableFile | null;
  /** What runs (or ran) the join; a build taken over keeps it. */
  engine: JoinEngine;
  progress: number;
  error: string | null;
  createdAt: Date;
  completedAt: Date | null;
}

export interface DatasetEvent {
  datasetId: string;
  status: DatasetStatus;
  progress: number;
  rowsDone: number;
  rowCount: number;
  error: string | null;
}

/**
 * One joined feature column. Numeric features (FLOAT, INT output) are a Float64Array with a
 * null mask, so a million-row join holds no boxed number per value; others a plain array.
 */
export type FeatureColumn =
  | { numeric: true; values: Float64Array; nulls: Uint8Array }
  | { numeric: false; values: FeatureValue[] };

export function newFeatureColumn(type: FeatureType, rows: number): FeatureColumn {
  return type === FeatureType.FLOAT || type === FeatureType.INT
    ? { numeric: true, values: new Float64Array(rows), nulls: new Uint8Array(rows).fill(1) }
    : { numeric: false, values: new Array<FeatureValue>(rows).fill(null) };
}

export function setColumnValue(c: FeatureColumn, i: number, v: FeatureValue): void {
  if (!c.numeric) c.values[i] = v;
  else if (typeof v === 'number') {
    c.values[i] = v;
    c.nulls[i] = 0;
  } else c.nulls[i] = 1;
}

export function columnValue(c: FeatureColumn, i: number): FeatureValue {
  return c.numeric ? (c.nulls[i] ? null : c.values[i]) : c.values[i];
}

export interface EncodedColumn {
  name: string;
  type: FeatureType | 'TIMESTAMP' | 'STRING_KEY';
  values: FeatureValue[] | number[] | string[] | FeatureColumn;
}

/**
 * Port: a point-in-time join engine beside the evaluator (DuckDB, in infra): per ref a
 * column, row i for spine row i, equal value for value to what the evaluator gives.
 */
export interface SqlJoinEngine {
  /** `onProgress` is told the fraction of the join done (0 to 1, never decreasing). */
  join(
    refs: readonly ResolvedRef[],
    spine: readonly SpineRow[],
    onProgress?: (fraction: number) => void,
  ): Promise<FeatureColumn[]>;
}

/** Port: writes columns as a snapshot file (Arrow IPC in infra). Deterministic for equal input. */
export interface DatasetEncoder {
  readonly format: string;
  encode(columns: readonly EncodedColumn[]): Uint8Array;
  /** The snapshot file as Parquet, the same columns. Deterministic for equal input. */
  toParquet(snapshot: Uint8Array): Promise<Uint8Array>;
}

export interface DatasetRepository {
  /**
   * Records a snapshot; with an idempotency key already used, returns that snapshot instead
   * (`created` false).
   */
  create(
    d: Omit<DatasetSnapshot, 'id' | 'createdAt'>,
    idempotencyKey?: string | null,
  ): Promise<{ snapshot: DatasetSnapshot; created: boolean }>;
  update(
    id: string,
    patch: Partial<
      Pick<
        DatasetSnapshot,
        | 'status'
        | 'contentHash'
        | 'artifact'
        | 'parquet'
        | 'spineFile'
        | 'progress'
        | 'error'
        | 'completedAt'
      >
    >,
  ): Promise<void>;
  findByIds(ids: readonly string[]): Promise<DatasetSnapshot[]>;
  /**
   * Takes the build of a BUILDING snapshot for `builder`: at once when no process holds it
   * (`staleMs` null), or from a builder that has not beaten for `staleMs` (it died), timed
   * by the store's one clock. Compare-and-set: false when another took it.
   */
  claimBuild(id: string, builder: string, staleMs: number | null): Promise<boolean>;
  /** The builder is alive; false when the build is no longer its own. */
  heartbeat(id: string, builder: string): Promise<boolean>;
  /** Ends the build (READY or FAILED) only if `builder` still holds it. */
  finishBuild(
    id: string,
    builder: string,
    patch: Pick<DatasetSnapshot, 'status' | 'progress' | 'completedAt'> &
      Partial<Pick<DatasetSnapshot, 'contentHash' | 'artifact' | 'error'>>,
  ): Promise<boolean>;
  /** BUILDING snapshots whose builder has not beaten for `staleMs`. */
  stalledBuilds(staleMs: number): Promise<DatasetSnapshot[]>;
}
