import {
  defaultFieldResolver,
  type GraphQLFieldResolver,
  type GraphQLSchema,
  isObjectType,
} from 'graphql';
import { badTextError, findBadText } from '../domain/shared/input-text';

/**
 * Applies the edge rule for strings (src/domain/shared/input-text.ts) to the arguments of
 * every field that takes any, queries, mutations and subscriptions alike, before its
 * resolver runs: a NUL, a lone surrogate or an over-long value anywhere in the arguments
 * (inside input objects, lists and JSON values, keys included) is BAD_USER_INPUT naming
 * the argument, and never reaches a service or the database.
 */
export function guardInputs(schema: GraphQLSchema): GraphQLSchema {
  for (const type of Object.values(schema.getTypeMap())) {
    if (!isObjectType(type) || type.name.startsWith('__')) continue;
    for (const field of Object.values(type.getFields())) {
      if (field.args.length === 0) continue;
      const check = (args: Record<string, unknown>) => {
        const bad = findBadText(args, '');
        if (bad) throw badTextError(bad);
      };
      const resolve: GraphQLFieldResolver<unknown, unknown> = field.resolve ?? defaultFieldResolver;
      field.resolve = (src, args, ctx, info) => {
        check(args);
        return resolve(src, args, ctx, info);
      };
      if (field.subscribe) {
        const subscribe = field.subscribe;
        field.subscribe = (src, args, ctx, info) => {
          check(args);
          return subscribe(src, args, ctx, info);
        };
      }
    }
  }
  return schema;
}
