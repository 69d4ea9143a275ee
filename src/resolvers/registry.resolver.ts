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
import { Topics } from '../domain/events/event-bus';
import { LineageDirection } from '../domain/lineage/lineage';
import { ModelState } from '../domain/registry/model';
import { type ModelEvent } from '../domain/registry/model-registry.service';
import { toPageRequest } from '../domain/shared/pagination';
import { ConnectionArgs } from '../schema/connection-args';
import { toConnection } from '../schema/connection.types';
import { DatasetSnapshotType, FeatureViewVersionType } from '../schema/feature.types';
import { AFTER_DESCRIPTION, fromGlobalId, localIdOf, Node } from '../schema/node.types';
import {
  GateInput,
  LineageNodeType,
  LineageType,
  ModelConnection,
  ModelEvaluationType,
  ModelEventType,
  ModelTransitionType,
  ModelType,
  ModelVersionType,
} from '../schema/registry.types';
import { RunType } from '../schema/training.types';
import { InvalidInputError } from '../domain/shared/domain-error';
import { type GraphQLContext } from './context';
import { Allow } from './guard';
import { versionField } from './loaders';
import { fetchNode } from './node.resolver';

@Resolver(() => ModelVersionType)
export class ModelVersionResolver {
  @Query(() => ModelType, { nullable: true })
  @Allow(Role.VIEWER)
  async model(@Arg('name') name: string, @Ctx() ctx: GraphQLContext): Promise<ModelType | null> {
    const m = await ctx.services.registry.model(name).catch(() => null);
    return m ? ModelType.from(m) : null;
  }

  @Query(() => ModelConnection, { description: 'Registered models, oldest first.' })
  @Allow(Role.VIEWER)
  async models(@Args() args: ConnectionArgs, @Ctx() ctx: GraphQLContext): Promise<ModelConnection> {
    const page = await ctx.services.registry.listModels(toPageRequest(args));
    return toConnection(page, ModelType.from, (m) => ({ createdAt: m.createdAt, id: m.id }));
  }

  @Query(() => ModelVersionType, { nullable: true })
  @Allow(Role.VIEWER)
  async modelVersion(
    @Arg('id', () => ID) id: string,
    @Ctx() ctx: GraphQLContext,
  ): Promise<ModelVersionType | null> {
    return versionField(ctx.loaders, localIdOf(id, 'ModelVersion'));
  }

  @Mutation(() => ModelVersionType, {
    description:
      'Registers the model of a SUCCEEDED run as the next version of `model` (created on first use). The file is verified and stored before the version exists.',
  })
  @Allow(Role.EDITOR)
  async registerModelVersion(
    @Arg('model') model: string,
    @Arg('runId', () => ID) runId: string,
    @Arg('reason', { defaultValue: '' }) reason: string,
    @Ctx() ctx: GraphQLContext,
  ): Promise<ModelVersionType> {
    return ModelVersionType.from(
      await ctx.services.registry.registerFromRun(
        ctx.principal,
        model,
        localIdOf(runId, 'Run'),
        reason,
      ),
    );
  }

  @Mutation(() => ModelVersionType, {
    description:
      'The automatic checks (loads in onnxruntime, signature matches, evaluation on the held-out snapshot): REGISTERED → VALIDATED.',
  })
  @Allow(Role.EDITOR)
  async validateModelVersion(
    @Arg('id', () => ID) id: string,
    @Arg('datasetId', () => ID, { description: 'A held-out READY snapshot.' }) datasetId: string,
    @Ctx() ctx: GraphQLContext,
  ): Promise<ModelVersionType> {
    return ModelVersionType.from(
      await ctx.services.registry.validate(
        ctx.principal,
        localIdOf(id, 'ModelVersion'),
        localIdOf(datasetId, 'DatasetSnapshot'),
      ),
    );
  }

  @Mutation(() => ModelVersionType, {
    description:
      'Moves a version along the promotion path. Refused with CONFLICT when illegal (with the states allowed) or when a gate fails (with the gate and by how much).',
  })
  @Allow(Role.EDITOR)
  async transitionModelVersion(
    @Arg('id', () => ID) id: string,
    @Arg('to', () => ModelState) to: ModelState,
    @Arg('reason') reason: string,
    @Ctx() ctx: GraphQLContext,
  ): Promise<ModelVersionType> {
    return ModelVersionType.from(
      await ctx.services.registry.transition(
        ctx.principal,
        localIdOf(id, 'ModelVersion'),
        to,
        reason,
      ),
    );
  }

  @Mutation(() => ModelVersionType, {
    description: 'Returns PRODUCTION to the previous production version; returns that version.',
  })
  @Allow(Role.EDITOR)
  async rollbackModel(
    @Arg('model') model: string,
    @Arg('reason') reason: string,
    @Ctx() ctx: GraphQLContext,
  ): Promise<ModelVersionType> {
    return ModelVersionType.from(
      await ctx.services.registry.rollback(ctx.principal, model, reason),
    );
  }

  @Mutation(() => ModelType, { description: 'Replaces the promotion gates of a model.' })
  @Allow(Role.ADMIN)
  async setPromotionGates(
    @Arg('model') model: string,
    @Arg('gates', () => [GateInput]) gates: GateInput[],
    @Ctx() ctx: GraphQLContext,
  ): Promise<ModelType> {
    return ModelType.from(
      await ctx.services.registry.setGates(
        model,
        gates.map((g) => ({
          kind: g.kind,
          into: g.into,
          threshold: g.threshold,
          metric: g.metric ?? null,
        })),
      ),
    );
  }

  @Subscription(() => ModelEventType, {
    description: 'Every model version transition, from any api process.',
    subscribe: ({ args, context }) =>
      (context as GraphQLContext).services.events.subscribe<ModelEvent>(Topics.models, {
        after: (args as { after?: string | null }).after,
      }),
  })
  @Allow(Role.VIEWER)
  modelEvents(
    @Arg('after', () => String, { nullable: true, description: AFTER_DESCRIPTION })
    _after: string | null,
    @Root() e: ModelEvent,
  ): ModelEventType {
    return ModelEventType.from(e);
  }

  @Query(() => LineageType, {
    description:
      'Nodes and edges around any object (source, feature view version, dataset, run, model version), upstream, downstream or both, within `depth` hops; more than `limit` nodes is an error.',
  })
  @Allow(Role.VIEWER)
  async lineage(
    @Arg('id', () => ID) id: string,
    @Arg('direction', () => LineageDirection, { defaultValue: LineageDirection.BOTH })
    direction: LineageDirection,
    @Arg('depth', () => Int, { defaultValue: 3 }) depth: number,
    @Arg('limit', () => Int, { defaultValue: 1_000 }) limit: number,
    @Ctx() ctx: GraphQLContext,
  ): Promise<LineageType> {
    const g = fromGlobalId(id);
    if (!g) throw new InvalidInputError('INVALID_ID', `"${id}" is not a valid ID`);
    return LineageType.from(
      await ctx.services.lineage.lineage(`${g.type}:${g.localId}`, direction, depth, limit),
    );
  }

  @Query(() => [LineageNodeType], {
    description:
      'Lineage nodes whose label or id contains `query` (case-insensitive; the newest when empty), of the given `kinds` (all when none): label prefixes first, then shorter labels. Each has depth 0: pass its id to `lineage`.',
  })
  @Allow(Role.VIEWER)
  async lineageSearch(
    @Arg('query') query: string,
    @Arg('kinds', () => [String], { nullable: true }) kinds: string[] | null,
    @Arg('first', () => Int, { defaultValue: 20 }) first: number,
    @Ctx() ctx: GraphQLContext,
  ): Promise<LineageNodeType[]> {
    return LineageType.from({
      nodes: await ctx.services.lineage.search(query, kinds ?? [], first),
      edges: [],
    }).nodes;
  }

  @FieldResolver(() => RunType, { nullable: true, description: 'The run it was trained in.' })
  async run(@Root() v: ModelVersionType, @Ctx() ctx: GraphQLContext): Promise<RunType | null> {
    if (!v.runLocalId) return null;
    const r = await ctx.loaders.run.load(v.runLocalId);
    return r ? RunType.from(r) : null;
  }

  @FieldResolver(() => DatasetSnapshotType, { nullable: true })
  async dataset(
    @Root() v: ModelVersionType,
    @Ctx() ctx: GraphQLContext,
  ): Promise<DatasetSnapshotType | null> {
    if (!v.datasetLocalId) return null;
    const d = await ctx.loaders.dataset.load(v.datasetLocalId);
    return d ? DatasetSnapshotType.from(d) : null;
  }

  @FieldResolver(() => [FeatureViewVersionType])
  async featureViewVersions(
    @Root() v: ModelVersionType,
    @Ctx() ctx: GraphQLContext,
  ): Promise<FeatureViewVersionType[]> {
    const vs = await ctx.loaders.featureViewVersion.loadMany(v.featureViewVersionIds);
    return vs
      .filter((x): x is Exclude<typeof x, Error | null> => !!x && !(x instanceof Error))
      .map(FeatureViewVersionType.from);
  }

  @FieldResolver(() => [ModelTransitionType], { description: 'Oldest first.' })
  async transitions(
    @Root() v: ModelVersionType,
    @Ctx() ctx: GraphQLContext,
  ): Promise<ModelTransitionType[]> {
    return (await ctx.loaders.modelTransitions.load(v.localId)).map(ModelTransitionType.from);
  }

  @FieldResolver(() => [ModelEvaluationType], { description: 'Newest first.' })
  async evaluations(
    @Root() v: ModelVersionType,
    @Ctx() ctx: GraphQLContext,
  ): Promise<ModelEvaluationType[]> {
    return (await ctx.loaders.modelEvaluations.load(v.localId)).map(ModelEvaluationType.from);
  }
}

@Resolver(() => ModelType)
export class ModelResolver {
  @FieldResolver(() => [ModelVersionType], { description: 'Every version, by number.' })
  async versions(@Root() m: ModelType, @Ctx() ctx: GraphQLContext): Promise<ModelVersionType[]> {
    return (await ctx.loaders.versionsOfModel.load(m.localId)).map(ModelVersionType.from);
  }

  @FieldResolver(() => ModelVersionType, { nullable: true })
  async productionVersion(
    @Root() m: ModelType,
    @Ctx() ctx: GraphQLContext,
  ): Promise<ModelVersionType | null> {
    return versionField(ctx.loaders, m.productionVersionLocalId);
  }
}

@Resolver(() => LineageNodeType)
export class LineageNodeResolver {
  @FieldResolver(() => Node, { nullable: true, description: 'The object itself, when it is one.' })
  node(@Root() n: LineageNodeType, @Ctx() ctx: GraphQLContext): Promise<Node | null> {
    return fetchNode(ctx, n.id);
  }
}

@Resolver(() => RunType)
export class RunModelResolver {
  @FieldResolver(() => ModelVersionType, {
    nullable: true,
    description: 'The model version registered from this run.',
  })
  async modelVersion(
    @Root() r: RunType,
    @Ctx() ctx: GraphQLContext,
  ): Promise<ModelVersionType | null> {
    const run = await ctx.loaders.run.load(r.localId);
    return versionField(ctx.loaders, run?.modelVersionId);
  }
}
