import 'reflect-metadata';
import { type GraphQLSchema, lexicographicSortSchema, printSchema } from 'graphql';
import { buildSchemaSync } from 'type-graphql';
import { guardSchema } from '../resolvers/guard';
import { guardInputs } from '../resolvers/input-guard';
import { resolvers } from '../resolvers';

let cached: GraphQLSchema | undefined;

/**
 * The one schema: built from the decorated classes, then every field's argument check and,
 * outside it, its role guard applied (a caller without the role learns nothing about its input).
 */
export function buildAppSchema(): GraphQLSchema {
  cached ??= guardSchema(
    guardInputs(
      buildSchemaSync({
        resolvers,
        validate: false,
        // Subscriptions use explicit `subscribe` functions over the EventBus port.
        pubSub: {
          publish: () => undefined,
          subscribe: () => {
            throw new Error('unused');
          },
        },
      }),
    ),
  );
  return cached;
}

/** The SDL committed as schema.graphql: sorted, so diffs show real changes only. */
export function printAppSchema(): string {
  return printSchema(lexicographicSortSchema(buildAppSchema())) + '\n';
}
