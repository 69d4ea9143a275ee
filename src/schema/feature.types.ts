import { type OpenTableFile } from '../domain/features/open-table';
import { GraphQLJSON, GraphQLJSONObject } from 'graphql-scalars';
import { Field, Float, ID, InputType, Int, ObjectType, registerEnumType } from 'type-graphql';
import {
  type DatasetEvent,
  type DatasetSnapshot,
  DatasetStatus,
  JoinEngine,
} from '../domain/features/dataset';
import { type TableFile, TableFileFormat } from '../domain/features/table-file';
import {
  AggregationFn,
  BinClosure,
  type FeatureSpec,
  FeatureType,
  type FeatureValue,
  type FeatureViewVersion,
  outputType,
} from '../domain/features/feature-definition';
import { type IngestionReport } from '../domain/features/feature-ingestion.service';
import {
  type CompactionReport,
  type CompactionStatus,
  type FeatureEntity,
  type FeatureView,
  type StoredQuarantine,
  type StreamLag,
} from '../domain/features/feature-store.ports';
import { type OnlineRow, onlineValues } from '../domain/features/online-features.service';
import { ValidationRule } from '../domain/features/validation';
import { type PointInTimeSql, SqlDialect } from '../domain/features/point-in-time-sql';
import { Connection } from './connection.types';
import { Node, toGlobalId } from './node.types';

export enum TransformKind {
  IDENTITY = 'IDENTITY',
  BIN = 'BIN',
  CATEGORY_INDEX = 'CATEGORY_INDEX',
}

registerEnumType(FeatureType, { name: 'FeatureType' });
registerEnumType(BinClosure, {
  name: 'BinClosure',
  description: 'LEFT: [a, b) buckets; RIGHT: (a, b] buckets.',
});
registerEnumType(AggregationFn, { name: 'AggregationFn' });
registerEnumType(TransformKind, { name: 'TransformKind' });
registerEnumType(JoinEngine, {
  name: 'JoinEngine',
  description: 'What runs a dataset build’s point-in-time join; both give the same content hash.',
  valuesConfig: {
    EVALUATOR: {
      description: 'The platform’s evaluator, in the api process, a bucket of history at a time.',
    },
    DUCKDB: {
      description:
        'DuckDB running datasetSql(DUCKDB) over the open tables and the log not yet compacted, under DATASET_DUCKDB_MEMORY_MB, spilling to disk.',
    },
  },
});
registerEnumType(ValidationRule, { name: 'ValidationRule' });
registerEnumType(DatasetStatus, { name: 'DatasetStatus' });
registerEnumType(SqlDialect, {
  name: 'SqlDialect',
  description: 'An engine the point-in-time join can be written for (datasetSql).',
});
registerEnumType(TableFileFormat, {
  name: 'TableFileFormat',
  description: 'A file of rows in the artifact store.',
});

@ObjectType('FeatureEntity', { implements: Node })
export class FeatureEntityType extends Node {
  @Field()
  name!: string;

  @Field(() => [String])
  joinKeys!: string[];

  @Field()
  description!: string;

  @Field()
  createdAt!: Date;

  static from(e: FeatureEntity): FeatureEntityType {
    return Object.assign(new FeatureEntityType(), {
      id: toGlobalId('FeatureEntity', e.id),
      name: e.name,
      joinKeys: e.joinKeys,
      description: e.description,
      createdAt: e.createdAt,
    });
  }
}

@ObjectType()
export class FeatureEntityConnection extends Connection(FeatureEntityType) {}

@ObjectType('Transform')
export class TransformType {
  @Field(() => TransformKind)
  kind!: TransformKind;

  @Field(() => [Float], { nullable: true })
  edges!: number[] | null;

  @Field(() => BinClosure, { nullable: true })
  closed!: BinClosure | null;

  @Field(() => [String], { nullable: true })
  categories!: string[] | null;
}

@ObjectType('Aggregation')
export class AggregationType {
  @Field(() => AggregationFn)
  fn!: AggregationFn;

  @Field(() => Int, { description: 'Events with event time in (t - window, t].' })
  windowSeconds!: number;
}

@ObjectType('ValidationRules')
export class ValidationRulesType {
  @Field(() => Float, { nullable: true })
  min!: number | null;

  @Field(() => Float, { nullable: true })
  max!: number | null;

  @Field(() => [String], { nullable: true })
  allowedValues!: string[] | null;

  @Field(() => Float, { nullable: true })
  maxNullFraction!: number | null;
}

@ObjectType('FeatureSpec')
export class FeatureSpecType {
  @Field()
  name!: string;

  @Field(() => FeatureType, { description: 'Type of the source field, checked at ingestion.' })
  type!: FeatureType;

  @Field(() => FeatureType, {
    description: 'Type of the value served, after transform and aggregation.',
  })
  outputType!: FeatureType;

  @Field()
  source!: string;

  @Field(() => TransformType)
  transform!: TransformType;

  @Field(() => AggregationType, { nullable: true })
  aggregation!: AggregationType | null;

  @Field(() => ValidationRulesType)
  validation!: ValidationRulesType;

  static from(f: FeatureSpec): FeatureSpecType {
    const t = f.transform;
    return Object.assign(new FeatureSpecType(), {
      name: f.name,
      type: f.type,
      outputType: outputType(f),
      source: f.source,
      transform: Object.assign(new TransformType(), {
        kind: t.kind as TransformKind,
        edges: t.kind === 'BIN' ? t.edges : null,
        closed: t.kind === 'BIN' ? t.closed : null,
        categories: t.kind === 'CATEGORY_INDEX' ? t.categories : null,
      }),
      aggregation: f.aggregation ? Object.assign(new AggregationType(), f.aggregation) : null,
      validation: Object.assign(new ValidationRulesType(), {
        min: f.validation.min ?? null,
        max: f.validation.max ?? null,
        allowedValues: f.validation.allowedValues ?? null,
        maxNullFraction: f.validation.maxNullFraction ?? null,
      }),
    });
  }
}

@ObjectType('FeatureViewVersion', {
  implements: Node,
  description: 'An immutable version of a feature view.',
})
export class FeatureViewVersionType extends Node {
  localId!: string;

  @Field()
  view!: string;

  @Field(() => Int)
  version!: number;

  @Field({ description: 'view@version, the prefix of this version’s feature refs.' })
  ref!: string;

  @Field()
  entity!: string;

  @Field()
  source!: string;

  @Field(() => Int)
  ttlSeconds!: number;

  @Field(() => Int)
  allowedLatenessSeconds!: number;

  @Field({ description: 'SHA-256 of the definition; equal definitions hash equal.' })
  fingerprint!: string;

  @Field(() => [FeatureSpecType])
  features!: FeatureSpecType[];

  @Field()
  createdAt!: Date;

  @Field(() => Date, {
    nullable: true,
    description: 'Set when the version stopped being materialized.',
  })
  retiredAt!: Date | null;

  static from(v: FeatureViewVersion): FeatureViewVersionType {
    return Object.assign(new FeatureViewVersionType(), {
      id: toGlobalId('FeatureViewVersion', v.id),
      localId: v.id,
      view: v.viewName,
      version: v.version,
      ref: `${v.viewName}@${v.version}`,
      entity: v.schema.entity,
      source: v.schema.source,
      ttlSeconds: v.schema.ttlSeconds,
      allowedLatenessSeconds: v.schema.allowedLatenessSeconds,
      fingerprint: v.fingerprint,
      features: v.schema.features.map(FeatureSpecType.from),
      createdAt: v.createdAt,
      retiredAt: v.retiredAt,
    });
  }
}

@ObjectType('FeatureConsumer', { description: 'Something that keeps a view version alive.' })
export class FeatureConsumerType {
  @Field()
  kind!: string;

  @Field(() => ID)
  id!: string;

  @Field()
  name!: string;
}

@ObjectType('FeatureView', { implements: Node })
export class FeatureViewType extends Node {
  localId!: string;

  @Field()
  name!: string;

  @Field()
  entity!: string;

  @Field()
  description!: string;

  @Field()
  owner!: string;

  @Field(() => [String])
  tags!: string[];

  @Field()
  createdAt!: Date;

  @Field()
  updatedAt!: Date;

  static from(v: FeatureView): FeatureViewType {
    return Object.assign(new FeatureViewType(), {
      id: toGlobalId('FeatureView', v.id),
      localId: v.id,
      name: v.name,
      entity: v.entity,
      description: v.description,
      owner: v.owner,
      tags: v.tags,
      createdAt: v.createdAt,
      updatedAt: v.updatedAt,
    });
  }
}

@ObjectType()
export class FeatureViewConnection extends Connection(FeatureViewType) {}

@ObjectType('UpdateFeatureViewPayload')
export class UpdateFeatureViewPayload {
  @Field(() => FeatureViewType)
  view!: FeatureViewType;

  @Field(() => FeatureViewVersionType, { description: 'The latest version after the update.' })
  version!: FeatureViewVersionType;

  @Field({ description: 'True when the change created a new version.' })
  newVersion!: boolean;
}

@ObjectType('RuleCount')
export class RuleCountType {
  @Field(() => ValidationRule)
  rule!: ValidationRule;

  @Field(() => Int)
  count!: number;
}

@ObjectType('IngestionReport', { description: 'accepted + quarantined = received, always.' })
export class IngestionReportType {
  @Field()
  view!: string;

  @Field(() => Int)
  version!: number;

  @Field(() => Int)
  received!: number;

  @Field(() => Int)
  accepted!: number;

  @Field(() => Int)
  quarantined!: number;

  @Field(() => Int, {
    description:
      'Accepted records that changed nothing: a redelivery, a re-send of the value already known, or a record replaced by a later one of the same event in its batch.',
  })
  duplicates!: number;

  @Field(() => Int, {
    description:
      'Accepted records that are new versions of stored events (same eventId, known later, another value).',
  })
  corrections!: number;

  @Field(() => [RuleCountType])
  byRule!: RuleCountType[];

  static from(r: IngestionReport): IngestionReportType {
    return Object.assign(new IngestionReportType(), {
      view: r.view,
      version: r.version,
      received: r.received,
      accepted: r.accepted,
      quarantined: r.quarantined,
      duplicates: r.duplicates,
      corrections: r.corrections,
      byRule: Object.entries(r.byRule).map(([rule, count]) =>
        Object.assign(new RuleCountType(), { rule, count }),
      ),
    });
  }
}

@ObjectType('Violation')
export class ViolationType {
  @Field(() => ValidationRule)
  rule!: ValidationRule;

  @Field(() => String, { nullable: true })
  feature!: string | null;

  @Field()
  message!: string;
}

@ObjectType('QuarantinedRecord', { implements: Node })
export class QuarantinedRecordType extends Node {
  versionId!: string;

  @Field()
  source!: string;

  @Field(() => String, { nullable: true })
  entityKey!: string | null;

  @Field(() => String, { nullable: true })
  eventId!: string | null;

  @Field(() => GraphQLJSON, { description: 'The record exactly as received.' })
  payload!: unknown;

  @Field(() => [ViolationType])
  violations!: ViolationType[];

  @Field()
  createdAt!: Date;

  @Field(() => Date, { nullable: true })
  replayedAt!: Date | null;

  static from(q: StoredQuarantine): QuarantinedRecordType {
    return Object.assign(new QuarantinedRecordType(), {
      id: toGlobalId('QuarantinedRecord', q.id),
      versionId: q.versionId,
      source: q.source,
      entityKey: typeof q.record.entityKey === 'string' ? q.record.entityKey : null,
      eventId: typeof q.record.eventId === 'string' ? q.record.eventId : null,
      payload: q.record,
      violations: q.violations.map((v) => Object.assign(new ViolationType(), v)),
      createdAt: q.createdAt,
      replayedAt: q.replayedAt,
    });
  }
}

@ObjectType()
export class QuarantinedRecordConnection extends Connection(QuarantinedRecordType) {}

@ObjectType('OnlineFeatureValue')
export class OnlineFeatureValueType {
  @Field({ description: 'Resolved ref, view@version:feature.' })
  ref!: string;

  @Field(() => GraphQLJSON, { nullable: true })
  value!: FeatureValue;

  @Field(() => Date, {
    nullable: true,
    description: 'Event time of the newest event behind the value.',
  })
  asOf!: Date | null;

  @Field({ description: 'Older than the view’s TTL.' })
  stale!: boolean;
}

@ObjectType('ViewFreshness')
export class ViewFreshnessType {
  @Field({ description: 'view@version' })
  view!: string;

  @Field(() => Date, { nullable: true })
  asOf!: Date | null;

  @Field()
  stale!: boolean;
}

@ObjectType('OnlineFeatureRow')
export class OnlineFeatureRowType {
  row!: OnlineRow;

  @Field()
  get entityKey(): string {
    return this.row.entityKey;
  }

  /** Built only when asked for: a serving client reads `vector` and `freshness`. */
  @Field(() => [OnlineFeatureValueType], {
    description: 'One entry per requested ref, with its ref, time and staleness.',
  })
  get values(): OnlineFeatureValueType[] {
    return onlineValues(this.row);
  }

  @Field(() => [GraphQLJSON], {
    nullable: 'items',
    description:
      'The values alone, in the order of featureRefs: the compact form for serving (see `freshness`).',
  })
  get vector(): FeatureValue[] {
    return this.row.vector;
  }

  @Field(() => [ViewFreshnessType], {
    description: 'Event time and staleness per view version read.',
  })
  get freshness(): ViewFreshnessType[] {
    return this.row.freshness;
  }

  static from(row: OnlineRow): OnlineFeatureRowType {
    return Object.assign(new OnlineFeatureRowType(), { row });
  }
}

@ObjectType('FeatureStream', {
  description: 'A source stream and how far the ingestion consumer is behind it.',
})
export class FeatureStreamType {
  @Field()
  source!: string;

  @Field(() => Int, { description: 'Entries not yet delivered to the consumer group.' })
  lag!: number;

  @Field(() => Int, { description: 'Delivered, not yet acknowledged.' })
  pending!: number;

  @Field(() => String, { nullable: true })
  lastDeliveredId!: string | null;

  static from(l: StreamLag): FeatureStreamType {
    return Object.assign(new FeatureStreamType(), l);
  }
}

@ObjectType('DatasetColumn')
export class DatasetColumnType {
  @Field()
  name!: string;

  @Field()
  type!: string;
}

@ObjectType('DatasetDownload', {
  description:
    'Where to GET a READY snapshot over HTTP, relative to the server (Authorization: Bearer <key>, VIEWER or above). The response streams the file with its SHA-256 in x-content-sha256 and the snapshot’s content hash in x-aether-content-hash.',
})
export class DatasetDownloadType {
  @Field({ description: '/datasets/<id>/snapshot.parquet' })
  parquet!: string;

  @Field({ description: '/datasets/<id>/snapshot.arrow (Arrow IPC file)' })
  arrow!: string;

  @Field({ description: 'The snapshot’s content hash (SHA-256 of its Arrow file).' })
  contentHash!: string;
}

@ObjectType('DatasetSnapshot', {
  implements: Node,
  description: 'A point-in-time training set stored as an artifact.',
})
export class DatasetSnapshotType extends Node {
  localId!: string;

  @Field()
  name!: string;

  @Field(() => DatasetStatus)
  status!: DatasetStatus;

  @Field(() => [String])
  featureRefs!: string[];

  @Field({ description: 'SHA-256 of the spine (entity, time, label rows).' })
  spineSha256!: string;

  @Field(() => Int)
  rowCount!: number;

  @Field(() => [DatasetColumnType])
  columns!: DatasetColumnType[];

  @Field(() => String, {
    nullable: true,
    description: 'SHA-256 of the snapshot file: same spec, same data, same hash.',
  })
  contentHash!: string | null;

  @Field(() => String, { nullable: true })
  artifactKey!: string | null;

  @Field(() => JoinEngine, { description: 'What runs (or ran) the point-in-time join.' })
  engine!: JoinEngine;

  @Field(() => Float, { nullable: true })
  sizeBytes!: number | null;

  @Field(() => Float)
  progress!: number;

  @Field(() => String, { nullable: true })
  error!: string | null;

  @Field()
  createdAt!: Date;

  @Field(() => Date, { nullable: true })
  completedAt!: Date | null;

  @Field(() => DatasetDownloadType, {
    nullable: true,
    description: 'How to download the snapshot; null until it is READY.',
  })
  download!: DatasetDownloadType | null;

  featureViewVersionIds!: string[];

  static from(d: DatasetSnapshot): DatasetSnapshotType {
    return Object.assign(new DatasetSnapshotType(), {
      id: toGlobalId('DatasetSnapshot', d.id),
      localId: d.id,
      name: d.name,
      status: d.status,
      featureRefs: d.featureRefs,
      spineSha256: d.spineSha256,
      rowCount: d.rowCount,
      columns: d.columns.map((c) => Object.assign(new DatasetColumnType(), c)),
      contentHash: d.contentHash,
      artifactKey: d.artifact?.key ?? null,
      engine: d.engine,
      sizeBytes: d.artifact?.size ?? null,
      progress: d.progress,
      error: d.error,
      createdAt: d.createdAt,
      completedAt: d.completedAt,
      download:
        d.status === DatasetStatus.READY && d.contentHash
          ? Object.assign(new DatasetDownloadType(), {
              parquet: `/datasets/${toGlobalId('DatasetSnapshot', d.id)}/snapshot.parquet`,
              arrow: `/datasets/${toGlobalId('DatasetSnapshot', d.id)}/snapshot.arrow`,
              contentHash: d.contentHash,
            })
          : null,
      featureViewVersionIds: d.featureViewVersionIds,
    });
  }
}

@ObjectType('DatasetProgress')
export class DatasetProgressType {
  @Field(() => ID)
  datasetId!: string;

  @Field(() => DatasetStatus)
  status!: DatasetStatus;

  @Field(() => Float)
  progress!: number;

  @Field(() => Int)
  rowsDone!: number;

  @Field(() => Int)
  rowCount!: number;

  @Field(() => String, { nullable: true })
  error!: string | null;

  static from(e: DatasetEvent): DatasetProgressType {
    return Object.assign(new DatasetProgressType(), {
      ...e,
      datasetId: toGlobalId('DatasetSnapshot', e.datasetId),
    });
  }
}

// ---- inputs ----

@InputType()
export class CreateFeatureEntityInput {
  @Field()
  name!: string;

  @Field(() => [String])
  joinKeys!: string[];

  @Field({ nullable: true })
  description?: string;
}

@InputType()
export class TransformInput {
  @Field(() => TransformKind)
  kind!: TransformKind;

  @Field(() => [Float], { nullable: true })
  edges?: number[];

  @Field(() => BinClosure, { nullable: true })
  closed?: BinClosure;

  @Field(() => [String], { nullable: true })
  categories?: string[];
}

@InputType()
export class AggregationInput {
  @Field(() => AggregationFn)
  fn!: AggregationFn;

  @Field(() => Int)
  windowSeconds!: number;
}

@InputType()
export class ValidationRulesInput {
  @Field(() => Float, { nullable: true })
  min?: number;

  @Field(() => Float, { nullable: true })
  max?: number;

  @Field(() => [String], { nullable: true })
  allowedValues?: string[];

  @Field(() => Float, { nullable: true })
  maxNullFraction?: number;
}

@InputType()
export class FeatureSpecInput {
  @Field()
  name!: string;

  @Field(() => FeatureType)
  type!: FeatureType;

  @Field({ nullable: true, description: 'Source field; defaults to the feature name.' })
  source?: string;

  @Field(() => TransformInput, { nullable: true })
  transform?: TransformInput;

  @Field(() => AggregationInput, { nullable: true })
  aggregation?: AggregationInput;

  @Field(() => ValidationRulesInput, { nullable: true })
  validation?: ValidationRulesInput;
}

@InputType()
export class FeatureViewSchemaInput {
  @Field({ description: 'Name of the source (a Redis Stream) records arrive on.' })
  source!: string;

  @Field(() => Int)
  ttlSeconds!: number;

  @Field(() => Int, { defaultValue: 0 })
  allowedLatenessSeconds!: number;

  @Field(() => [FeatureSpecInput])
  features!: FeatureSpecInput[];
}

@InputType()
export class CreateFeatureViewInput extends FeatureViewSchemaInput {
  @Field()
  name!: string;

  @Field()
  entity!: string;

  @Field({ nullable: true })
  description?: string;

  @Field({ nullable: true })
  owner?: string;

  @Field(() => [String], { nullable: true })
  tags?: string[];
}

@InputType()
export class UpdateFeatureViewInput {
  @Field()
  name!: string;

  @Field(() => FeatureViewSchemaInput, {
    nullable: true,
    description: 'A changed definition creates a new version.',
  })
  schema?: FeatureViewSchemaInput;

  @Field({ nullable: true })
  description?: string;

  @Field({ nullable: true })
  owner?: string;

  @Field(() => [String], { nullable: true })
  tags?: string[];
}

@InputType()
export class FeatureRecordInput {
  @Field()
  entityKey!: string;

  @Field({
    description:
      'Identifies the event per entity: the same eventId with the same value is a redelivery (changes nothing); known later with another value, a correction (a new version of the event).',
  })
  eventId!: string;

  @Field()
  eventTime!: Date;

  @Field({
    nullable: true,
    description:
      'When the value became known, for backfills of history. Defaults to (and is never later than) the ingestion time.',
  })
  knownAt?: Date;

  @Field(() => GraphQLJSONObject)
  fields!: Record<string, unknown>;
}

@InputType()
export class SpineRowInput {
  @Field()
  entityKey!: string;

  @Field({ description: 'Features are those known at this instant.' })
  timestamp!: Date;

  @Field(() => Float, { nullable: true })
  label?: number;
}

@InputType({ description: 'A file of rows in the artifact store.' })
export class TableFileInput {
  @Field({ description: 'Its key in the artifact store, e.g. uploads/history-2025.parquet.' })
  artifactKey!: string;

  @Field(() => TableFileFormat, {
    nullable: true,
    description: 'Default: from the key’s extension (.parquet, .csv, .arrow).',
  })
  format?: TableFileFormat;

  toFile(): TableFile {
    return { artifactKey: this.artifactKey, format: this.format ?? null };
  }
}

@InputType()
export class BuildDatasetInput {
  @Field()
  name!: string;

  @Field(() => [String], {
    description:
      'Like view@2:feature, or view@2:* for all features of the version; stored resolved, each with its version.',
  })
  featureRefs!: string[];

  @Field(() => [SpineRowInput], { nullable: true, description: 'The spine inline; or spineFile.' })
  rows?: SpineRowInput[];

  @Field(() => TableFileInput, {
    nullable: true,
    description:
      'The spine as a file (columns entity_key, ts, optional label), for spines larger than a request may carry.',
  })
  spineFile?: TableFileInput;

  @Field(() => JoinEngine, {
    nullable: true,
    description:
      'Null: DUCKDB when the view versions hold at least DATASET_DUCKDB_MIN_ROWS rows of history (and DuckDB can run every feature), else EVALUATOR. Asking for DUCKDB where it cannot run fails with ENGINE_UNAVAILABLE.',
  })
  engine?: JoinEngine | null;

  /** What DatasetService.build takes. */
  toRequest(): {
    name: string;
    featureRefs: string[];
    spine?: { entityKey: string; ts: number; label: number | null }[];
    spineFile?: TableFile;
    engine: JoinEngine | null;
  } {
    return {
      name: this.name,
      featureRefs: this.featureRefs,
      engine: this.engine ?? null,
      ...(this.rows
        ? {
            spine: this.rows.map((r) => ({
              entityKey: r.entityKey,
              ts: r.timestamp.getTime(),
              label: r.label ?? null,
            })),
          }
        : {}),
      ...(this.spineFile ? { spineFile: this.spineFile.toFile() } : {}),
    };
  }
}

@ObjectType('OfflineCompaction', {
  description: 'What a compaction of a view version’s offline history did.',
})
export class OfflineCompactionType {
  @Field(() => Float, { description: 'Rows moved from the append log into segments.' })
  rows!: number;

  @Field(() => Int, { description: 'Segments (entity buckets) rewritten.' })
  segments!: number;

  @Field(() => Float, { description: 'Rows in segments now, in total.' })
  compactedRows!: number;

  static from(r: CompactionReport): OfflineCompactionType {
    return Object.assign(new OfflineCompactionType(), r);
  }
}

@ObjectType('OfflineHistory', {
  description:
    'The offline history of a view version: rows in columnar segments, which point-in-time joins scan, and rows appended since, which they read one by one until the next compaction.',
})
export class OfflineHistoryType {
  @Field(() => Float)
  compactedRows!: number;

  @Field(() => Float)
  pendingRows!: number;

  @Field(() => Date, { nullable: true })
  compactedAt!: Date | null;

  static from(s: CompactionStatus): OfflineHistoryType {
    return Object.assign(new OfflineHistoryType(), s);
  }
}

@ObjectType('OpenTableFile', { description: 'One bucket’s Parquet file of an open table.' })
export class OpenTableFileType {
  @Field(() => Int, { description: 'The entity bucket: FNV-1a of entity_key, mod 16.' })
  bucket!: number;

  @Field(() => Int, {
    description:
      'The bucket’s base (0) or one of its deltas (1…, oldest first): a bucket’s history is the union of its files; superseded_ts is within each file.',
  })
  run!: number;

  @Field({
    description:
      'What a reader opens: a file:// URI for the filesystem artifact store, s3://bucket/key for S3.',
  })
  uri!: string;

  @Field({ description: 'The artifact key, relative to the artifact store’s location.' })
  key!: string;

  @Field(() => Float)
  rows!: number;

  @Field(() => Float, { description: 'Bytes.' })
  size!: number;

  @Field({ description: 'SHA-256 of the file, hex.' })
  sha256!: string;

  static from(f: OpenTableFile): OpenTableFileType {
    return Object.assign(new OpenTableFileType(), {
      bucket: f.bucket,
      run: f.run,
      uri: f.uri,
      key: f.key,
      rows: f.rows,
      size: f.size,
      sha256: f.sha256,
    });
  }
}

@ObjectType('OpenTableColumn')
export class OpenTableColumnType {
  @Field()
  name!: string;

  @Field({ description: 'Its Arrow type, as pyarrow prints it.' })
  type!: string;
}

@ObjectType('OfflineTable', {
  description:
    'The compacted offline history of a view version as Parquet files that pandas, DuckDB, Spark or Trino read without Aether (docs/adr/0033): every version of every event, with when it became known and when it was superseded. Rows appended since the last compaction are not in it.',
})
export class OfflineTableType {
  @Field({ description: 'PARQUET.' })
  format!: string;

  @Field({ description: 'Where the files lie, relative to the artifact store.' })
  layout!: string;

  @Field({ description: 'The artifact store’s location the keys are relative to.' })
  location!: string;

  @Field({
    description:
      'Every segment has its Parquet file. False while segments written before open tables existed remain: the next compaction touching their buckets writes them.',
  })
  complete!: boolean;

  @Field(() => [OpenTableFileType], { description: 'One file per bucket, by bucket.' })
  files!: OpenTableFileType[];

  @Field(() => [OpenTableColumnType])
  columns!: OpenTableColumnType[];
}

@ObjectType('SqlColumn')
export class SqlColumnType {
  @Field()
  name!: string;

  @Field({ description: 'Its type in the dialect.' })
  type!: string;
}

@ObjectType('SqlRelation', {
  description:
    'A relation the SQL reads, which the caller binds (a table, a view, read_parquet(…)): the spine, or the history of one view version, times as epoch milliseconds.',
})
export class SqlRelationType {
  @Field()
  name!: string;

  @Field(() => String, {
    nullable: true,
    description: 'The view whose history it holds; null for the spine.',
  })
  view!: string | null;

  @Field(() => Int, { nullable: true })
  version!: number | null;

  @Field(() => [SqlColumnType])
  columns!: SqlColumnType[];
}

@ObjectType('DatasetSql', {
  description:
    'The point-in-time join as one SQL statement with exactly the rules of buildDataset (known time, corrections, TTL, windows, ties): one row per spine row, in row_id order, one column per feature ref (docs/adr/0031).',
})
export class DatasetSqlType {
  @Field(() => SqlDialect)
  dialect!: SqlDialect;

  @Field()
  sql!: string;

  @Field(() => [SqlRelationType])
  relations!: SqlRelationType[];

  static from(dialect: SqlDialect, q: PointInTimeSql): DatasetSqlType {
    return Object.assign(new DatasetSqlType(), {
      dialect,
      sql: q.sql,
      relations: q.relations.map((r) =>
        Object.assign(new SqlRelationType(), {
          name: r.name,
          view: r.viewVersion?.view ?? null,
          version: r.viewVersion?.version ?? null,
          columns: r.columns.map((c) => Object.assign(new SqlColumnType(), c)),
        }),
      ),
    });
  }
}
