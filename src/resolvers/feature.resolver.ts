import {
  Arg,
  Args,
  Ctx,
  FieldResolver,
  ID,
  Int,
  Mutation,
  Query,
  Resolver,
  Root,
  Subscription,
} from 'type-graphql';
import { Role } from '../domain/auth/role';
import { type DatasetEvent } from '../domain/features/dataset';
import {
  type BinClosure,
  type FeatureSpec,
  type FeatureViewSchema,
  type Transform,
} from '../domain/features/feature-definition';
import { toPageRequest } from '../domain/shared/pagination';
import { InvalidInputError } from '../domain/shared/domain-error';
import { FeatureErrorCode } from '../domain/features/feature-errors';
import { type TableFile } from '../domain/features/table-file';
import { type IngestRecord } from '../domain/features/validation';
import { SqlDialect } from '../domain/features/point-in-time-sql';
import { ConnectionArgs } from '../schema/connection-args';
import { toConnection } from '../schema/connection.types';
import {
  DatasetSqlType,
  BuildDatasetInput,
  CreateFeatureEntityInput,
  CreateFeatureViewInput,
  DatasetProgressType,
  DatasetSnapshotType,
  FeatureConsumerType,
  FeatureEntityConnection,
  FeatureEntityType,
  FeatureRecordInput,
  type FeatureSpecInput,
  FeatureStreamType,
  FeatureViewConnection,
  type FeatureViewSchemaInput,
  FeatureViewType,
  FeatureViewVersionType,
  IngestionReportType,
  OfflineCompactionType,
  OfflineHistoryType,
  OfflineTableType,
  OpenTableFileType,
  OnlineFeatureRowType,
  QuarantinedRecordConnection,
  QuarantinedRecordType,
  TableFileInput,
  TransformKind,
  UpdateFeatureViewInput,
  UpdateFeatureViewPayload,
} from '../schema/feature.types';
import { localIdOf, toGlobalId } from '../schema/node.types';
import { type GraphQLContext } from './context';
import { Allow } from './guard';
import {
  OPEN_TABLE_FORMAT,
  OPEN_TABLE_LAYOUT,
  openTableColumns,
} from '../domain/features/open-table';

@Resolver(() => FeatureViewType)
export class FeatureViewResolver {
  @Query(() => FeatureEntityConnection)
  @Allow(Role.VIEWER)
  async featureEntities(
    @Args() args: ConnectionArgs,
    @Ctx() ctx: GraphQLContext,
  ): Promise<FeatureEntityConnection> {
    const page = await ctx.services.featureRegistry.listEntities(toPageRequest(args));
    return toConnection(page, FeatureEntityType.from, (e) => ({
      createdAt: e.createdAt,
      id: e.id,
    }));
  }

  @Mutation(() => FeatureEntityType)
  @Allow(Role.EDITOR)
  async createFeatureEntity(
    @Arg('input') input: CreateFeatureEntityInput,
    @Ctx() ctx: GraphQLContext,
  ): Promise<FeatureEntityType> {
    return FeatureEntityType.from(await ctx.services.featureRegistry.createEntity(input));
  }

  @Query(() => FeatureViewConnection)
  @Allow(Role.VIEWER)
  async featureViews(
    @Args() args: ConnectionArgs,
    @Ctx() ctx: GraphQLContext,
  ): Promise<FeatureViewConnection> {
    const page = await ctx.services.featureRegistry.listViews(toPageRequest(args));
    return toConnection(page, FeatureViewType.from, (v) => ({ createdAt: v.createdAt, id: v.id }));
  }

  @Query(() => FeatureViewType, { nullable: true })
  @Allow(Role.VIEWER)
  async featureView(
    @Arg('name') name: string,
    @Ctx() ctx: GraphQLContext,
  ): Promise<FeatureViewType | null> {
    const v = await ctx.services.featureRegistry.findView(name);
    return v ? FeatureViewType.from(v) : null;
  }

  @Mutation(() => FeatureViewType, { description: 'Creates the view and its version 1.' })
  @Allow(Role.EDITOR)
  async createFeatureView(
    @Arg('input') input: CreateFeatureViewInput,
    @Ctx() ctx: GraphQLContext,
  ): Promise<FeatureViewType> {
    const { view } = await ctx.services.featureRegistry.createView({
      name: input.name,
      ...toSchema(input, input.entity),
      description: input.description,
      owner: input.owner,
      tags: input.tags,
    });
    return FeatureViewType.from(view);
  }

  @Mutation(() => UpdateFeatureViewPayload, {
    description: 'Metadata edits keep the version; a changed definition adds one.',
  })
  @Allow(Role.EDITOR)
  async updateFeatureView(
    @Arg('input') input: UpdateFeatureViewInput,
    @Ctx() ctx: GraphQLContext,
  ): Promise<UpdateFeatureViewPayload> {
    const r = await ctx.services.featureRegistry.updateView(input.name, {
      schema: input.schema ? toSchema(input.schema, '') : undefined,
      metadata: { description: input.description, owner: input.owner, tags: input.tags },
    });
    return Object.assign(new UpdateFeatureViewPayload(), {
      view: FeatureViewType.from(r.view),
      version: FeatureViewVersionType.from(r.version),
      newVersion: r.newVersion,
    });
  }

  @Mutation(() => OfflineCompactionType, {
    description:
      'Moves the offline history appended since the last compaction into columnar segments now (the latest live version by default). Compaction also runs in the background once enough history is pending.',
  })
  @Allow(Role.EDITOR)
  async compactFeatureView(
    @Arg('view') view: string,
    @Arg('version', () => Int, { nullable: true }) version: number | null,
    @Ctx() ctx: GraphQLContext,
  ): Promise<OfflineCompactionType> {
    return OfflineCompactionType.from(await ctx.services.compaction.compact(view, version ?? null));
  }

  @Mutation(() => FeatureViewVersionType, {
    description: 'Stops materializing a version; refused while it has consumers.',
  })
  @Allow(Role.EDITOR)
  async retireFeatureViewVersion(
    @Arg('view') view: string,
    @Arg('version', () => Int) version: number,
    @Ctx() ctx: GraphQLContext,
  ): Promise<FeatureViewVersionType> {
    return FeatureViewVersionType.from(
      await ctx.services.featureRegistry.retireVersion(view, version),
    );
  }

  @Mutation(() => FeatureViewType, { description: 'Deletes a view with no consumers left.' })
  @Allow(Role.EDITOR)
  async deleteFeatureView(
    @Arg('name') name: string,
    @Ctx() ctx: GraphQLContext,
  ): Promise<FeatureViewType> {
    return FeatureViewType.from(await ctx.services.featureRegistry.deleteView(name));
  }

  @Mutation(() => [IngestionReportType], {
    description: 'Validates and stores records in every live version of the view.',
  })
  @Allow(Role.EDITOR)
  async ingestFeatures(
    @Arg('view') view: string,
    @Arg('records', () => [FeatureRecordInput]) records: FeatureRecordInput[],
    @Ctx() ctx: GraphQLContext,
  ): Promise<IngestionReportType[]> {
    const versions = await ctx.services.featureRegistry.liveVersions(view);
    const reports = await ctx.services.ingestion.ingest(
      versions,
      records.map(toIngestRecord),
      `batch:${ctx.principal.name}`,
    );
    return reports.map(IngestionReportType.from);
  }

  @Mutation(() => [IngestionReportType], {
    description:
      'Loads history into every live version of the view: records (at most 10,000) or a file (Parquet, CSV or Arrow in the artifact store: columns entity_key, event_id, event_ts, known_at and the source fields). Each record needs knownAt, kept as given; lateness does not apply; validation and quarantine do. The online store takes a record only where it is newer than what it holds.',
  })
  @Allow(Role.ADMIN)
  async backfillFeatures(
    @Arg('view') view: string,
    @Arg('records', () => [FeatureRecordInput], { nullable: true })
    records: FeatureRecordInput[] | null,
    @Arg('file', () => TableFileInput, { nullable: true }) file: TableFileInput | null,
    @Ctx() ctx: GraphQLContext,
  ): Promise<IngestionReportType[]> {
    const source = `backfill:${ctx.principal.name}`;
    const reports =
      records && !file
        ? await ctx.services.backfill.records(view, records.map(toIngestRecord), source)
        : await ctx.services.backfill.file(view, fileArg(records, file), source);
    return reports.map(IngestionReportType.from);
  }

  @Query(() => [OnlineFeatureRowType], {
    description: 'Latest values from the online store, with their event time and staleness.',
  })
  @Allow(Role.VIEWER)
  async onlineFeatures(
    @Arg('entityKeys', () => [String]) entityKeys: string[],
    @Arg('featureRefs', () => [String], {
      description:
        'Like airport_delays@2:mean_delay_6h; without @version the latest; airport_delays@2:* for all features of the version, in definition order.',
    })
    featureRefs: string[],
    @Ctx() ctx: GraphQLContext,
  ): Promise<OnlineFeatureRowType[]> {
    return (await ctx.services.onlineFeatures.read(entityKeys, featureRefs)).map(
      OnlineFeatureRowType.from,
    );
  }

  @Query(() => DatasetSqlType, {
    description:
      'The point-in-time join of these features as SQL for DuckDB, Spark or Trino, to run over the same history on your own engine.',
  })
  @Allow(Role.VIEWER)
  async datasetSql(
    @Arg('featureRefs', () => [String]) featureRefs: string[],
    @Arg('dialect', () => SqlDialect) dialect: SqlDialect,
    @Ctx() ctx: GraphQLContext,
  ): Promise<DatasetSqlType> {
    return DatasetSqlType.from(dialect, await ctx.services.datasets.sql(featureRefs, dialect));
  }

  @Query(() => QuarantinedRecordConnection)
  @Allow(Role.VIEWER)
  async quarantinedRecords(
    @Args() args: ConnectionArgs,
    @Arg('view', () => String, { nullable: true }) view: string | null,
    @Arg('includeReplayed', { defaultValue: false }) includeReplayed: boolean,
    @Ctx() ctx: GraphQLContext,
  ): Promise<QuarantinedRecordConnection> {
    const page = await ctx.services.quarantine.list(
      view ?? null,
      includeReplayed,
      toPageRequest(args),
    );
    return toConnection(page, QuarantinedRecordType.from, (q) => ({
      createdAt: q.createdAt,
      id: q.id,
    }));
  }

  @Mutation(() => [IngestionReportType], {
    description: 'Sends quarantined records through ingestion again.',
  })
  @Allow(Role.EDITOR)
  async replayQuarantined(
    @Arg('ids', () => [ID]) ids: string[],
    @Arg('toLatestVersion', { defaultValue: false }) toLatest: boolean,
    @Ctx() ctx: GraphQLContext,
  ): Promise<IngestionReportType[]> {
    const reports = await ctx.services.quarantine.replay(
      ids.map((id) => localIdOf(id, 'QuarantinedRecord')),
      toLatest,
    );
    return reports.map(IngestionReportType.from);
  }

  @Query(() => [FeatureStreamType], {
    description: 'Source streams and the ingestion consumer’s lag on each.',
  })
  @Allow(Role.VIEWER)
  async featureStreams(@Ctx() ctx: GraphQLContext): Promise<FeatureStreamType[]> {
    return (await ctx.services.streamLag()).map(FeatureStreamType.from);
  }

  @Mutation(() => DatasetSnapshotType, {
    description: 'Builds a point-in-time training set in the background.',
  })
  @Allow(Role.EDITOR)
  async buildDataset(
    @Arg('input') input: BuildDatasetInput,
    @Arg('wait', {
      defaultValue: false,
      description: 'Answer once the snapshot is READY or FAILED.',
    })
    wait: boolean,
    @Ctx() ctx: GraphQLContext,
  ): Promise<DatasetSnapshotType> {
    const { snapshot, done } = await ctx.services.datasets.build(input.toRequest());
    if (!wait) return DatasetSnapshotType.from(snapshot);
    await done.catch(() => undefined);
    return DatasetSnapshotType.from(await ctx.services.datasets.get(snapshot.id));
  }

  @Subscription(() => DatasetProgressType, {
    description:
      'The build of a dataset snapshot: its current state first, then progress as it happens; completes once READY or FAILED.',
    subscribe: ({ args, context }) =>
      (context as GraphQLContext).services.datasets.progress(
        localIdOf(args.id as string, 'DatasetSnapshot'),
      ),
  })
  @Allow(Role.VIEWER)
  datasetProgress(@Arg('id', () => ID) _id: string, @Root() e: DatasetEvent): DatasetProgressType {
    return DatasetProgressType.from(e);
  }

  @FieldResolver(() => [FeatureViewVersionType])
  async versions(
    @Root() v: FeatureViewType,
    @Ctx() ctx: GraphQLContext,
  ): Promise<FeatureViewVersionType[]> {
    return (await ctx.loaders.versionsOfView.load(v.localId)).map(FeatureViewVersionType.from);
  }
}

@Resolver(() => FeatureViewVersionType)
export class FeatureViewVersionResolver {
  @FieldResolver(() => OfflineHistoryType)
  async offlineHistory(
    @Root() v: FeatureViewVersionType,
    @Ctx() ctx: GraphQLContext,
  ): Promise<OfflineHistoryType> {
    return OfflineHistoryType.from(await ctx.loaders.offlineHistory.load(v.localId));
  }

  @FieldResolver(() => OfflineTableType, {
    description:
      'The compacted offline history as open Parquet files: per entity bucket, a base and a few deltas (docs/adr/0033, 0035).',
  })
  async offlineTable(
    @Root() v: FeatureViewVersionType,
    @Ctx() ctx: GraphQLContext,
  ): Promise<OfflineTableType> {
    const t = await ctx.loaders.offlineTable.load(v.localId);
    return Object.assign(new OfflineTableType(), {
      format: OPEN_TABLE_FORMAT,
      layout: OPEN_TABLE_LAYOUT,
      location: t.location,
      complete: t.complete,
      files: t.files.map(OpenTableFileType.from),
      columns: openTableColumns(v.features),
    });
  }

  @FieldResolver(() => [FeatureConsumerType], {
    description:
      'Datasets built from this version, and model versions (not archived) that read it.',
  })
  async consumers(
    @Root() v: FeatureViewVersionType,
    @Ctx() ctx: GraphQLContext,
  ): Promise<FeatureConsumerType[]> {
    return (await ctx.loaders.consumersOfVersion.load(v.localId)).map((c) =>
      Object.assign(new FeatureConsumerType(), {
        kind: c.kind,
        id: toGlobalId(c.kind === 'DATASET' ? 'DatasetSnapshot' : 'ModelVersion', c.id),
        name: c.name,
      }),
    );
  }
}

function toIngestRecord(r: FeatureRecordInput): IngestRecord {
  return {
    entityKey: r.entityKey,
    eventId: r.eventId,
    eventTs: r.eventTime.getTime(),
    ...(r.knownAt ? { knownAt: r.knownAt.getTime() } : {}),
    fields: r.fields,
  };
}

/** The file of a backfill that names exactly one of records and file. */
function fileArg(records: unknown[] | null, file: TableFileInput | null): TableFile {
  if (!file || records)
    throw new InvalidInputError(
      FeatureErrorCode.INVALID_BACKFILL,
      'A backfill takes records or a file, one of the two',
    );
  return file.toFile();
}

function toSchema(input: FeatureViewSchemaInput, entity: string): FeatureViewSchema {
  return {
    entity,
    source: input.source,
    ttlSeconds: input.ttlSeconds,
    allowedLatenessSeconds: input.allowedLatenessSeconds,
    features: input.features.map(toSpec),
  };
}

function toSpec(f: FeatureSpecInput): FeatureSpec {
  return {
    name: f.name,
    type: f.type,
    source: f.source ?? f.name,
    transform: toTransform(f),
    aggregation: f.aggregation
      ? { fn: f.aggregation.fn, windowSeconds: f.aggregation.windowSeconds }
      : null,
    validation: { ...f.validation },
  };
}

function toTransform(f: FeatureSpecInput): Transform {
  const t = f.transform;
  if (!t || t.kind === TransformKind.IDENTITY) return { kind: 'IDENTITY' };
  // Closure is never defaulted: an unset one is rejected by the registry's validation.
  if (t.kind === TransformKind.BIN)
    return { kind: 'BIN', edges: t.edges ?? [], closed: t.closed as BinClosure };
  return { kind: 'CATEGORY_INDEX', categories: t.categories ?? [] };
}
