import {
  defaultFieldResolver,
  type GraphQLFieldConfig,
  type GraphQLFieldResolver,
  type GraphQLSchema,
  isObjectType,
} from 'graphql';
import { Extensions } from 'type-graphql';
import { ApiKeyErrorCode } from '../domain/auth/api-key';
import { type Role, roleSatisfies } from '../domain/auth/role';
import { DomainError, ErrorCategory } from '../domain/shared/domain-error';
import { type GraphQLContext } from './context';

const ROLE_KEY = 'minRole';

/**
 * Declares the least role allowed to call a field. Every Query, Mutation and
 * Subscription field must carry one: `guardSchema` refuses to build a schema otherwise,
 * so an unguarded field can never be served.
 */
export function Allow(role: Role): MethodDecorator & PropertyDecorator {
  return Extensions({ [ROLE_KEY]: role });
}

export function requiredRole(
  field: GraphQLFieldConfig<unknown, unknown> | { extensions?: unknown },
): Role | undefined {
  const ext = field.extensions as Record<string, unknown> | null | undefined;
  return ext?.[ROLE_KEY] as Role | undefined;
}

export class UnguardedFieldError extends Error {}

/** Wraps every field that declares a role with the check; fails on unguarded root fields. */
export function guardSchema(schema: GraphQLSchema): GraphQLSchema {
  const roots = new Set(
    [schema.getQueryType(), schema.getMutationType(), schema.getSubscriptionType()].filter(Boolean),
  );
  for (const type of Object.values(schema.getTypeMap())) {
    if (!isObjectType(type) || type.name.startsWith('__')) continue;
    for (const field of Object.values(type.getFields())) {
      const role = requiredRole(field);
      if (!role) {
        if (roots.has(type))
          throw new UnguardedFieldError(`${type.name}.${field.name} has no @Allow(role)`);
        continue;
      }
      const check = (ctx: GraphQLContext) => {
        if (!ctx?.principal) {
          throw new DomainError(
            ErrorCategory.UNAUTHENTICATED,
            ApiKeyErrorCode.MISSING_KEY,
            'An API key is required',
          );
        }
        if (!roleSatisfies(ctx.principal.role, role)) {
          throw new DomainError(
            ErrorCategory.FORBIDDEN,
            ApiKeyErrorCode.INSUFFICIENT_ROLE,
            `${type.name}.${field.name} requires role ${role}; this key has ${ctx.principal.role}`,
            { required: role, held: ctx.principal.role },
          );
        }
      };
      const resolve: GraphQLFieldResolver<unknown, GraphQLContext> =
        field.resolve ?? defaultFieldResolver;
      field.resolve = (src, args, ctx, info) => {
        check(ctx);
        return resolve(src, args, ctx, info);
      };
      if (field.subscribe) {
        const subscribe = field.subscribe;
        field.subscribe = (src, args, ctx, info) => {
          check(ctx);
          return subscribe(src, args, ctx, info);
        };
      }
    }
  }
  return schema;
}
