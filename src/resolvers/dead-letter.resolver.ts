import { Arg, Args, Ctx, Query, Resolver } from 'type-graphql';
import { Role } from '../domain/auth/role';
import { toPageRequest } from '../domain/shared/pagination';
import { ConnectionArgs } from '../schema/connection-args';
import { toConnection } from '../schema/connection.types';
import { DeadLetterConnection, DeadLetterType } from '../schema/dead-letter.types';
import { type GraphQLContext } from './context';
import { Allow } from './guard';

@Resolver(() => DeadLetterType)
export class DeadLetterResolver {
  @Query(() => DeadLetterConnection, {
    description: 'Dead-lettered records, oldest first (all writers, or one `source`).',
  })
  @Allow(Role.ADMIN)
  async deadLetters(
    @Args() args: ConnectionArgs,
    @Arg('source', () => String, { nullable: true }) source: string | null,
    @Ctx() ctx: GraphQLContext,
  ): Promise<DeadLetterConnection> {
    const page = await ctx.services.deadLetters.list(source ?? null, toPageRequest(args));
    return toConnection(page, DeadLetterType.from, (d) => ({ createdAt: d.createdAt, id: d.id }));
  }
}
