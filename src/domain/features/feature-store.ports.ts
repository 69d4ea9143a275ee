import { type Page, type PageRequest } from '../shared/pagination';
import {
  type FeatureViewMetadata,
  type FeatureViewSchema,
  type FeatureViewVersion,
} from './feature-definition';
import { type Retention } from './online-state';
import { type EventSeries, type FeatureEvent } from './point-in-time';
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

/** Append-only history of accepted events (PostgreSQL), and the quarantine. */
export interface OfflineStore {
  /** Inserts rows not yet stored; returns `entityKey\0eventId` of those that were new. */
  append(version: FeatureViewVersion, rows: readonly AppendRow[]): Promise<Set<string>>;
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
 * Redis: one key per (view version, entity) holding the events its features still need,
 * read in one round trip. Writes only add events and forget expired ones, so concurrent
 * writers never lose each other's events.
 */
export interface OnlineStore {
  /**
   * Per key, its stored events in any order (possibly one id twice), or [] when none. The
   * arrays are read-only: a store may return the same array again while the key is unchanged.
   */
  readMany(keys: readonly OnlineKey[]): Promise<FeatureEvent[][]>;
  /** Per key, the newest stored event time of an event not in `excluding` (ids), if any. */
  newestEventTimes(
    keys: readonly (OnlineKey & { excluding: ReadonlySet<string> })[],
  ): Promise<(number | undefined)[]>;
  /** Adds the events of each key, then forgets what `retention` (when given) says can never count. */
  append(
    entries: readonly (OnlineKey & { events: FeatureEvent[]; retention: Retention | null })[],
  ): Promise<void>;
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
