import { ArgsType, Field, Int } from 'type-graphql';

@ArgsType()
export class ConnectionArgs {
  @Field(() => Int, {
    nullable: true,
    description: 'Items after `after` (default 20, at most 100).',
  })
  first?: number | null;

  @Field(() => String, { nullable: true })
  after?: string | null;

  @Field(() => Int, { nullable: true, description: 'Items before `before` (at most 100).' })
  last?: number | null;

  @Field(() => String, { nullable: true })
  before?: string | null;
}
