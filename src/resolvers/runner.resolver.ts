import {
  Arg,
  Args,
  Ctx,
  FieldResolver,
  ID,
  Mutation,
  Query,
  Resolver,
  Root,
  Subscription,
} from 'type-graphql';
import { Role } from '../domain/auth/role';
import { Topics } from '../domain/events/event-bus';
import { type RunnerEvent } from '../domain/runners/runner.service';
import { toPageRequest } from '../domain/shared/pagination';
import { ApiKeyType } from '../schema/api-key.types';
import { ConnectionArgs } from '../schema/connection-args';
import { toConnection } from '../schema/connection.types';
import { AFTER_DESCRIPTION, localIdOf } from '../schema/node.types';
import {
  RegisterRunnerInput,
  RunnerConnection,
  RunnerEventType,
  RunnerType,
} from '../schema/runner.types';
import { type GraphQLContext } from './context';
import { Allow } from './guard';

@Resolver(() => RunnerType)
export class RunnerResolver {
  @Query(() => RunnerConnection, {
    description: 'gpu-runner processes, oldest registration first.',
  })
  @Allow(Role.VIEWER)
  async runners(
    @Args() args: ConnectionArgs,
    @Ctx() ctx: GraphQLContext,
  ): Promise<RunnerConnection> {
    const page = await ctx.services.runners.list(toPageRequest(args));
    const now = ctx.services.clock.now();
    return toConnection(
      page,
      (r) => RunnerType.from(r, now),
      (r) => ({ createdAt: r.registeredAt, id: r.id }),
    );
  }

  @Mutation(() => RunnerType, {
    description: 'Called by a gpu-runner at start with its GPU inventory.',
  })
  @Allow(Role.RUNNER)
  async registerRunner(
    @Arg('input') input: RegisterRunnerInput,
    @Ctx() ctx: GraphQLContext,
  ): Promise<RunnerType> {
    const r = await ctx.services.runners.register(ctx.principal, input);
    return RunnerType.from(r, ctx.services.clock.now());
  }

  @Mutation(() => RunnerType)
  @Allow(Role.RUNNER)
  async runnerHeartbeat(
    @Arg('id', () => ID) id: string,
    @Ctx() ctx: GraphQLContext,
  ): Promise<RunnerType> {
    const r = await ctx.services.runners.heartbeat(ctx.principal, localIdOf(id, 'Runner'));
    return RunnerType.from(r, ctx.services.clock.now());
  }

  @Mutation(() => RunnerType, { description: 'Called by a gpu-runner on graceful shutdown.' })
  @Allow(Role.RUNNER)
  async stopRunner(
    @Arg('id', () => ID) id: string,
    @Ctx() ctx: GraphQLContext,
  ): Promise<RunnerType> {
    const r = await ctx.services.runners.stop(ctx.principal, localIdOf(id, 'Runner'));
    return RunnerType.from(r, ctx.services.clock.now());
  }

  @Subscription(() => RunnerEventType, {
    description: 'Runners registering and stopping, from any api process.',
    subscribe: ({ args, context }) =>
      (context as GraphQLContext).services.events.subscribe<RunnerEvent>(Topics.runners, {
        after: (args as { after?: string | null }).after,
      }),
  })
  @Allow(Role.VIEWER)
  runnerEvents(
    @Arg('after', () => String, { nullable: true, description: AFTER_DESCRIPTION })
    _after: string | null,
    @Root() event: RunnerEvent,
  ): RunnerEventType {
    return RunnerEventType.from(event);
  }

  @FieldResolver(() => ApiKeyType, {
    nullable: true,
    description: 'The key the runner registered with.',
  })
  @Allow(Role.ADMIN)
  async registeredBy(
    @Root() runner: RunnerType,
    @Ctx() ctx: GraphQLContext,
  ): Promise<ApiKeyType | null> {
    const k = await ctx.loaders.apiKey.load(runner.keyId);
    return k ? ApiKeyType.from(k) : null;
  }
}
