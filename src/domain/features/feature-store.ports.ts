import { type Page, type PageRequest } from '../shared/pagination';
import {
  type FeatureType,
  type FeatureValue,
  type FeatureViewMetadata,
  type FeatureViewSchema,
  type FeatureViewVersion,
  valueOfNumber,
} from './feature-definition';
import { type StoredVersion, type VersionVerdict } from './event-versions';
import { type RetentionPolicy } from './online-state';
import { type EventSeries, type FeatureEvent } from './point-in-time';
import { type OpenTableFiles } from './open-table';
import { type IngestRecord, type Violation } from './validation';

export interface FeatureEntity {
  id: string;
  name: string;
  joinKeys: string[];
  description: string;
  createdAt: Date;
}

export interface FeatureView extends FeatureViewMetadata {
  id: string;
  name: string;
  entity: string;
  createdAt: Date;
  updatedAt: Date;
}

/** Something that depends on a view version and keeps it alive (datasets; later, models). */
export interface VersionConsumer {
  kind: 'DATASET' | 'MODEL_VERSION';
  id: string;
  name: string;
}

export interface FeatureRegistryRepository {
  /** null when an entity of that name exists. */
  createEntity(e: {
    name: string;
    joinKeys: string[];
    description: string;
  }): Promise<FeatureEntity | null>;
  findEntity(name: string): Promise<FeatureEntity | null>;
  findEntitiesByIds(ids: readonly string[]): Promise<FeatureEntity[]>;
  listEntities(page: PageRequest): Promise<Page<FeatureEntity>>;
  /** Creates the view and its version 1 together; null when a live view of that name exists. */
  createView(
    v: { name: string; entity: string } & FeatureViewMetadata,
    schema: FeatureViewSchema,
    fingerprint: string,
  ): Promise<{ view: FeatureView; version: FeatureViewVersion } | null>;
  findView(name: string): Promise<FeatureView | null>;
  findViewsByIds(ids: readonly string[]): Promise<FeatureView[]>;
  listViews(page: PageRequest): Promise<Page<FeatureView>>;
  updateMetadata(viewId: string, meta: FeatureViewMetadata, at: Date): Promise<FeatureView>;
  /** Next version number, allocated without gaps or duplicates under concurrency. */
  addVersion(
    viewId: string,
    schema: FeatureViewSchema,
    fingerprint: string,
  ): Promise<FeatureViewVersion>;
  versionsOf(viewIds: readonly string[]): Promise<FeatureViewVersion[]>;
  versionsByIds(ids: readonly string[]): Promise<FeatureViewVersion[]>;
  liveVersionsBySource(source: string): Promise<FeatureViewVersion[]>;
  allSources(): Promise<string[]>;
  retireVersion(id: string, at: Date): Promise<void>;
  deleteView(id: string, at: Date): Promise<void>;
  consumersOf(versionIds: readonly string[]): Promise<Map<string, VersionConsumer[]>>;
}

export interface AppendRow {
  entityKey: string;
  event: FeatureEvent;
}

export interface StoredQuarantine {
  id: string;
  versionId: string;
  source: string;
  record: IngestRecord;
  violations: Violation[];
  createdAt: Date;
  replayedAt: Date | null;
}

/** Append-only history of every version of every accepted event (PostgreSQL), and the quarantine. */
export interface OfflineStore {
  /**
   * Per row, the newest stored version of its event (entity, event id) known at or before
   * `createdTs`, or null: what a record is judged against.
   */
  previousVersions(
    version: FeatureViewVersion,
    rows: readonly { entityKey: string; eventId: string; createdTs: number }[],
  ): Promise<(StoredVersion | null)[]>;
  /**
   * Stores each row as a version of its event unless a version with the same (entity, event
   * id, known time) is stored already; per row, null when stored, else that stored version.
   */
  append(
    version: FeatureViewVersion,
    rows: readonly AppendRow[],
  ): Promise<(StoredVersion | null)[]>;
  /**
   * Bulk history (a backfill file): judges each row against every stored version of its
   * event (judgeVersions) and writes the new versions straight into the columnar segments,
   * all at once, in one swap. Per row, its verdict.
   */
  backfill(version: FeatureViewVersion, rows: BackfillRows): Promise<VersionVerdict[]>;
  /**
   * Every stored event of these entities, one series per entity that has any (sorted with
   * compareEvents), in batches, in no particular entity order.
   */
  historyByEntity(
    version: FeatureViewVersion,
    entityKeys: readonly string[],
  ): AsyncIterable<{ entityKey: string; events: EventSeries }[]>;
  /**
   * Moves history appended since the last compaction into the columnar segments that
   * point-in-time reads scan; reads are correct before and after, only faster after.
   */
  compact(version: FeatureViewVersion): Promise<CompactionReport>;
  /** Per version id, in order. */
  compactionStatus(versionIds: readonly string[]): Promise<CompactionStatus[]>;
  /** Per version id, in order: the Parquet files of its open table (docs/adr/0033). */
  openTables(versionIds: readonly string[]): Promise<OpenTableFiles[]>;
  /**
   * A version's whole history as one consistent pair, for an engine that reads the open
   * table itself: the Parquet files of the buckets asked for, as of one compaction, and every
   * log row of those buckets appended after that compaction's watermark, in pages (a backlog
   * compaction has not caught up with is never held whole). A bucket may have several files:
   * its base (run 0) and deltas (runs 1…, docs/adr/0035); a file's `superseded_ts` is within
   * its own file. `files` is null when a bucket's segment has no Parquet file (written before
   * open tables; the next compaction of the bucket writes one). A later compaction may delete
   * these files: read them promptly, and ask again when one is gone.
   */
  historySnapshot(
    version: FeatureViewVersion,
    buckets: ReadonlySet<number>,
  ): Promise<{
    files: { bucket: number; run: number; key: string; sha256: string }[] | null;
    tail: AsyncIterable<{ entityKey: string; event: FeatureEvent }[]>;
  }>;
  /** Idempotent: a record already waiting (same version, source and payload) is not added again. */
  quarantine(
    rows: readonly {
      versionId: string;
      source: string;
      record: IngestRecord;
      violations: Violation[];
    }[],
  ): Promise<void>;
  listQuarantine(
    filter: { versionIds: string[] | null; includeReplayed: boolean },
    page: PageRequest,
  ): Promise<Page<StoredQuarantine>>;
  quarantineByIds(ids: readonly string[]): Promise<StoredQuarantine[]>;
  markReplayed(ids: readonly string[], at: Date): Promise<void>;
}

/**
 * Accepted rows of a bulk backfill, in columns: millions of rows hold no object each, and the
 * offline store can hand them to another thread as typed arrays.
 */
export interface BackfillRows {
  readonly length: number;
  /** The distinct entity keys of the rows; `entity[i]` is row i's index into them. */
  readonly entityKeys: readonly string[];
  readonly entity: Int32Array;
  eventId(i: number): string;
  readonly eventTs: Float64Array;
  /** The records' knownAt (never later than the backfill). */
  readonly createdTs: Float64Array;
  /**
   * Per source position of the version's event layout: its numbers where the layout holds the
   * source as numbers (`EventLayout.numeric`; null as NaN, a boolean as 1 or 0), else its
   * values.
   */
  readonly values: readonly (Float64Array | readonly FeatureValue[])[];
}

/** Row i's value at a source position of `rows`, as a record holds it. */
export function backfillValue(
  rows: BackfillRows,
  types: readonly FeatureType[],
  i: number,
  p: number,
): FeatureValue {
  const col = rows.values[p];
  return col instanceof Float64Array ? valueOfNumber(col[i], types[p]) : col[i];
}

export interface CompactionReport {
  /** Rows moved from the append log into segments by this run. */
  rows: number;
  /** Segments (entity buckets) rewritten. */
  segments: number;
  /** Rows now in segments, in total. */
  compactedRows: number;
}

export interface CompactionStatus {
  compactedRows: number;
  /** Rows appended since the last compaction: read row by row until compacted. */
  pendingRows: number;
  compactedAt: Date | null;
}

export interface OnlineKey {
  versionId: string;
  entityKey: string;
}

/**
 * Redis: per (view version, entity), the newest known version of each event its features
 * still need, read in one round trip. Each entity's update is one atomic step (merge, trim),
 * so any number of concurrent writers never lose or double each other's events.
 */
export interface OnlineStore {
  /**
   * Per key, its stored events in any order, or [] when none. The arrays are read-only: a
   * store may return the same array again while the key is unchanged.
   */
  readMany(keys: readonly OnlineKey[]): Promise<FeatureEvent[][]>;
  /** Per key, the newest stored event time of an event not in `excluding` (ids), if any. */
  newestEventTimes(
    keys: readonly (OnlineKey & { excluding: ReadonlySet<string> })[],
  ): Promise<(number | undefined)[]>;
  /**
   * Merges the events of each key where they are newer (known later) than the version held
   * of their event, and forgets what `retention` says can never count, one key at a time,
   * atomically (see RetentionPolicy). Returns, per entry, how many events it changed.
   */
  merge(
    retention: RetentionPolicy,
    entries: readonly (OnlineKey & { events: readonly FeatureEvent[] })[],
  ): Promise<number[]>;
}

/** A source of records (a Redis Stream per source); consumer lag for the graph and /metrics. */
export interface StreamLag {
  source: string;
  /** Entries not yet delivered to the consumer group. */
  lag: number;
  /** Delivered but not yet acknowledged. */
  pending: number;
  lastDeliveredId: string | null;
}
