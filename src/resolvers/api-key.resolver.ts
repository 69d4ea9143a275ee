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
import { type ApiKeyEvent } from '../domain/auth/api-key.service';
import { Role } from '../domain/auth/role';
import { Topics } from '../domain/events/event-bus';
import { toPageRequest } from '../domain/shared/pagination';
import {
  ApiKeyConnection,
  ApiKeyEventType,
  ApiKeyType,
  CreateApiKeyInput,
  CreateApiKeyPayload,
  UpdateApiKeyInput,
  ViewerType,
} from '../schema/api-key.types';
import { ConnectionArgs } from '../schema/connection-args';
import { toConnection } from '../schema/connection.types';
import { AFTER_DESCRIPTION, localIdOf, toGlobalId } from '../schema/node.types';
import { type GraphQLContext } from './context';
import { Allow } from './guard';

@Resolver(() => ApiKeyType)
export class ApiKeyResolver {
  @Query(() => ViewerType, { description: 'Who the API key in this request belongs to.' })
  @Allow(Role.VIEWER)
  viewer(@Ctx() ctx: GraphQLContext): ViewerType {
    return Object.assign(new ViewerType(), {
      keyId: toGlobalId('ApiKey', ctx.principal.keyId),
      name: ctx.principal.name,
      role: ctx.principal.role,
      permissions: [...(ctx.principal.permissions ?? [])],
    });
  }

  @Query(() => ApiKeyConnection)
  @Allow(Role.ADMIN)
  async apiKeys(
    @Args() args: ConnectionArgs,
    @Arg('includeRevoked', { defaultValue: false }) includeRevoked: boolean,
    @Ctx() ctx: GraphQLContext,
  ): Promise<ApiKeyConnection> {
    const page = await ctx.services.apiKeys.list(toPageRequest(args), includeRevoked);
    return toConnection(page, ApiKeyType.from, (k) => ({ createdAt: k.createdAt, id: k.id }));
  }

  @Mutation(() => CreateApiKeyPayload)
  @Allow(Role.ADMIN)
  async createApiKey(
    @Arg('input') input: CreateApiKeyInput,
    @Ctx() ctx: GraphQLContext,
  ): Promise<CreateApiKeyPayload> {
    const created = await ctx.services.apiKeys.create(ctx.principal, input);
    return Object.assign(new CreateApiKeyPayload(), {
      apiKey: ApiKeyType.from(created.key),
      token: created.token,
    });
  }

  @Mutation(() => ApiKeyType)
  @Allow(Role.ADMIN)
  async revokeApiKey(
    @Arg('id', () => ID) id: string,
    @Ctx() ctx: GraphQLContext,
  ): Promise<ApiKeyType> {
    return ApiKeyType.from(
      await ctx.services.apiKeys.revoke(ctx.principal, localIdOf(id, 'ApiKey')),
    );
  }

  @Mutation(() => ApiKeyType, {
    description:
      'Changes a key’s role or permissions. Every api process applies it at once: open sockets of the key are closed (4403) and must reconnect.',
  })
  @Allow(Role.ADMIN)
  async updateApiKey(
    @Arg('id', () => ID) id: string,
    @Arg('input') input: UpdateApiKeyInput,
    @Ctx() ctx: GraphQLContext,
  ): Promise<ApiKeyType> {
    return ApiKeyType.from(
      await ctx.services.apiKeys.update(ctx.principal, localIdOf(id, 'ApiKey'), {
        role: input.role ?? undefined,
        permissions: input.permissions ?? undefined,
      }),
    );
  }

  @Subscription(() => ApiKeyEventType, {
    description: 'API keys created, changed and revoked, from any api process.',
    subscribe: ({ args, context }) =>
      (context as GraphQLContext).services.events.subscribe<ApiKeyEvent>(Topics.apiKeys, {
        after: (args as { after?: string | null }).after,
      }),
  })
  @Allow(Role.ADMIN)
  apiKeyEvents(
    @Arg('after', () => String, { nullable: true, description: AFTER_DESCRIPTION })
    _after: string | null,
    @Root() event: ApiKeyEvent,
  ): ApiKeyEventType {
    return ApiKeyEventType.from(event);
  }

  @FieldResolver(() => ApiKeyType, {
    nullable: true,
    description: 'The key that created this one; null for the bootstrap key.',
  })
  async createdBy(@Root() key: ApiKeyType, @Ctx() ctx: GraphQLContext): Promise<ApiKeyType | null> {
    if (!key.createdById) return null;
    const k = await ctx.loaders.apiKey.load(key.createdById);
    return k ? ApiKeyType.from(k) : null;
  }
}
