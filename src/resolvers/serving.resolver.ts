import { GraphQLJSONObject } from 'graphql-scalars';
import {
  Arg,
  Args,
  Ctx,
  Field,
  FieldResolver,
  Float,
  ID,
  Int,
  Mutation,
  ObjectType,
  Query,
  Resolver,
  Root,
  Subscription,
} from 'type-graphql';
import { type DeploymentEvent } from '../domain/serving/deployment';
import { AFTER_DESCRIPTION, localIdOf, toGlobalId } from '../schema/node.types';
import { Role } from '../domain/auth/role';
import { toPageRequest } from '../domain/shared/pagination';
import { ConnectionArgs } from '../schema/connection-args';
import { toConnection } from '../schema/connection.types';
import { ModelType, ModelVersionType } from '../schema/registry.types';
import {
  CreateDeploymentInput,
  DeploymentConnection,
  DeploymentEventType,
  DeploymentStatusType,
  DeploymentType,
  ABArmInput,
  AutoscalePolicyInput,
  PredictionType,
  ScalingDecisionType,
  ShadowComparisonType,
  VersionTrafficType,
} from '../schema/serving.types';
import { type GraphQLContext } from './context';
import { Allow } from './guard';
import { versionField } from './loaders';

@ObjectType('CanaryReview')
class CanaryReviewType {
  @Field()
  endpoint!: string;

  @Field({ description: 'ROLLBACK, STEP, PROMOTE or HOLD.' })
  action!: string;

  @Field()
  reason!: string;
}

@Resolver(() => DeploymentType)
export class DeploymentResolver {
  @Mutation(() => DeploymentStatusType, {
    description: 'Creates an endpoint for a model and loads (verifies, warms up) what it serves.',
  })
  @Allow(Role.EDITOR)
  async createDeployment(
    @Arg('input') input: CreateDeploymentInput,
    @Ctx() ctx: GraphQLContext,
  ): Promise<DeploymentStatusType> {
    const d = await ctx.services.deployments.create(ctx.principal, input);
    return DeploymentStatusType.from(await ctx.services.deployments.status(d.endpoint));
  }

  @Query(() => DeploymentStatusType, {
    nullable: true,
    description: 'An endpoint, the versions it serves now by registry state, and readiness.',
  })
  @Allow(Role.VIEWER)
  async deployment(
    @Arg('endpoint') endpoint: string,
    @Ctx() ctx: GraphQLContext,
  ): Promise<DeploymentStatusType | null> {
    const s = await ctx.services.deployments.status(endpoint).catch(() => null);
    return s ? DeploymentStatusType.from(s) : null;
  }

  @Query(() => DeploymentConnection)
  @Allow(Role.VIEWER)
  async deployments(
    @Args() args: ConnectionArgs,
    @Ctx() ctx: GraphQLContext,
  ): Promise<DeploymentConnection> {
    const page = await ctx.services.deployments.list(toPageRequest(args));
    return toConnection(page, DeploymentType.from, (d) => ({ createdAt: d.createdAt, id: d.id }));
  }

  @Mutation(() => [PredictionType], {
    description:
      'Scores entities with the endpoint’s model, reading their features from the online store by the model’s feature refs (or from `rows`, checked against its signature). One answer per entity key (or row), in order, each naming the version that produced it and carrying its own entity’s `asOf`.',
  })
  @Allow(Role.VIEWER)
  async predict(
    @Arg('endpoint') endpoint: string,
    @Arg('requestKey', { description: 'Who is asking (a user): decides canary/A-B assignment.' })
    requestKey: string,
    @Arg('entityKeys', () => [String], { defaultValue: [] }) entityKeys: string[],
    @Arg('rows', () => [GraphQLJSONObject], {
      nullable: true,
      description: 'Inline feature values, ref → number, instead of the online store.',
    })
    rows: Record<string, unknown>[] | null,
    @Ctx() ctx: GraphQLContext,
  ): Promise<PredictionType[]> {
    return (await ctx.services.serving.predict(endpoint, requestKey, entityKeys, rows)).map(
      PredictionType.from,
    );
  }

  @Mutation(() => DeploymentStatusType, {
    description:
      'Starts an A/B test: request keys are split over the arms by weight, each key staying on its arm (consistent hashing; adding an arm moves only the keys it takes). No arms ends it.',
  })
  @Allow(Role.EDITOR)
  async setABTest(
    @Arg('endpoint') endpoint: string,
    @Arg('arms', () => [ABArmInput]) arms: ABArmInput[],
    @Ctx() ctx: GraphQLContext,
  ): Promise<DeploymentStatusType> {
    await ctx.services.deployments.setArms(
      endpoint,
      arms.map((a) => ({ versionId: localIdOf(a.versionId, 'ModelVersion'), weight: a.weight })),
    );
    return DeploymentStatusType.from(await ctx.services.deployments.status(endpoint));
  }

  @Query(() => [VersionTrafficType], {
    description:
      'Requests, error rate and p99 per version of an endpoint over the last `windowSeconds`, counted over every api process of the fleet.',
  })
  @Allow(Role.VIEWER)
  async deploymentTraffic(
    @Arg('endpoint') endpoint: string,
    @Arg('windowSeconds', () => Int, { defaultValue: 60 }) windowSeconds: number,
    @Ctx() ctx: GraphQLContext,
  ): Promise<VersionTrafficType[]> {
    const windowMs = windowSeconds * 1000;
    return (await ctx.services.deployments.traffic(endpoint, windowMs)).map((o) =>
      VersionTrafficType.from(o, windowMs),
    );
  }

  @Query(() => [ShadowComparisonType], {
    description: 'How the SHADOW version’s logged scores compare with the answers given.',
  })
  @Allow(Role.VIEWER)
  async shadowComparison(
    @Arg('endpoint') endpoint: string,
    @Arg('minutes', () => Int, { defaultValue: 60 }) minutes: number,
    @Ctx() ctx: GraphQLContext,
  ): Promise<ShadowComparisonType[]> {
    return (await ctx.services.deployments.shadowComparison(endpoint, minutes)).map((c) =>
      Object.assign(new ShadowComparisonType(), {
        ...c,
        shadow: c.shadow ? ModelVersionType.from(c.shadow) : null,
      }),
    );
  }

  @Mutation(() => Int, {
    description: 'Attaches a late label to a prediction (by id, or the latest for a request key).',
  })
  @Allow(Role.EDITOR)
  recordFeedback(
    @Arg('predictionId', () => ID, { nullable: true }) predictionId: string | null,
    @Arg('requestKey', () => String, { nullable: true }) requestKey: string | null,
    @Arg('label', () => Float) label: number,
    @Ctx() ctx: GraphQLContext,
  ): Promise<number> {
    return ctx.services.serving.recordFeedback({ predictionId, requestKey }, label);
  }

  @Mutation(() => [CanaryReviewType], {
    description:
      'Judges every canary now (the api also does so every CANARY_INTERVAL_MS): roll back, step up, promote or hold.',
  })
  @Allow(Role.ADMIN)
  async reviewCanaries(@Ctx() ctx: GraphQLContext): Promise<CanaryReviewType[]> {
    return (await ctx.services.canary.review()).map((r) =>
      Object.assign(new CanaryReviewType(), r),
    );
  }

  @Mutation(() => DeploymentStatusType, {
    description:
      'Changes an endpoint’s autoscaling policy (fields left out keep their values); the autoscaler’s next pass applies it.',
  })
  @Allow(Role.EDITOR)
  async setAutoscaling(
    @Arg('endpoint') endpoint: string,
    @Arg('policy', () => AutoscalePolicyInput) policy: AutoscalePolicyInput,
    @Ctx() ctx: GraphQLContext,
  ): Promise<DeploymentStatusType> {
    await ctx.services.deployments.setAutoscaling(endpoint, { ...policy });
    return DeploymentStatusType.from(await ctx.services.deployments.status(endpoint));
  }

  @Mutation(() => [ScalingDecisionType], {
    description:
      'Runs the autoscaler now (the api also does so every AUTOSCALE_INTERVAL_MS): each version’s replica count, whether it changed, and why.',
  })
  @Allow(Role.ADMIN)
  async reviewScaling(@Ctx() ctx: GraphQLContext): Promise<ScalingDecisionType[]> {
    return (await ctx.services.autoscaler.review()).map((r) =>
      Object.assign(new ScalingDecisionType(), {
        ...r,
        versionId: toGlobalId('ModelVersion', r.versionId),
      }),
    );
  }

  @Subscription(() => DeploymentEventType, {
    description:
      'Readiness, canary steps, rollbacks, promotions and scaling decisions of one endpoint.',
    subscribe: ({ args, context }) =>
      (context as GraphQLContext).services.deployments.deploymentEvents(
        (args as { endpoint: string }).endpoint,
        (args as { after?: string | null }).after ?? null,
      ),
  })
  @Allow(Role.VIEWER)
  deploymentEvents(
    @Arg('endpoint') _endpoint: string,
    @Arg('after', () => String, { nullable: true, description: AFTER_DESCRIPTION })
    _after: string | null,
    @Root() e: DeploymentEvent,
  ): DeploymentEventType {
    return DeploymentEventType.from(e);
  }

  @FieldResolver(() => ModelType, { nullable: true })
  async model(@Root() d: DeploymentType, @Ctx() ctx: GraphQLContext): Promise<ModelType | null> {
    const m = await ctx.loaders.model.load(d.modelLocalId);
    return m ? ModelType.from(m) : null;
  }
}

@Resolver(() => VersionTrafficType)
export class VersionTrafficResolver {
  @FieldResolver(() => ModelVersionType, { nullable: true })
  version(
    @Root() t: VersionTrafficType,
    @Ctx() ctx: GraphQLContext,
  ): Promise<ModelVersionType | null> {
    return versionField(ctx.loaders, t.versionLocalId);
  }
}
