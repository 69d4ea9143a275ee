import { unwrapResolverError } from '@apollo/server/errors';
import { GraphQLError, type GraphQLFormattedError } from 'graphql';
import { DomainError, ErrorCategory } from '../domain/shared/domain-error';

/** The codes a client can see, beside GraphQL's and Apollo's own (GRAPHQL_VALIDATION_FAILED, …). */
export type ClientErrorCode =
  | 'UNAUTHENTICATED'
  | 'FORBIDDEN'
  | 'BAD_USER_INPUT'
  | 'NOT_FOUND'
  | 'CONFLICT'
  | 'TOO_MANY_REQUESTS'
  | 'SERVICE_UNAVAILABLE'
  | 'INTERNAL_SERVER_ERROR';

/** The one mapper from domain categories to client codes; exhaustive by construction. */
const CODE_OF: Record<ErrorCategory, { code: ClientErrorCode; http: number }> = {
  [ErrorCategory.UNAUTHENTICATED]: { code: 'UNAUTHENTICATED', http: 401 },
  [ErrorCategory.FORBIDDEN]: { code: 'FORBIDDEN', http: 403 },
  [ErrorCategory.INVALID_INPUT]: { code: 'BAD_USER_INPUT', http: 400 },
  [ErrorCategory.NOT_FOUND]: { code: 'NOT_FOUND', http: 404 },
  [ErrorCategory.CONFLICT]: { code: 'CONFLICT', http: 409 },
  [ErrorCategory.UNAVAILABLE]: { code: 'SERVICE_UNAVAILABLE', http: 503 },
  [ErrorCategory.RATE_LIMITED]: { code: 'TOO_MANY_REQUESTS', http: 429 },
  [ErrorCategory.INTERNAL]: { code: 'INTERNAL_SERVER_ERROR', http: 500 },
};

export function toGraphQLError(e: DomainError): GraphQLError {
  const { code, http } = CODE_OF[e.category];
  return new GraphQLError(e.message, {
    extensions: {
      code,
      reason: e.reason,
      ...(e.retryable ? { retryable: true } : {}),
      ...(e.details ? { details: e.details } : {}),
      http: { status: http },
    },
  });
}

export interface ErrorFormatOptions {
  /** DEBUG_ERRORS=1: unexpected errors keep their message and stack in responses. */
  debug: boolean;
  logInternal: (err: unknown) => void;
  /** Recognises failures of a dependency (Redis, PostgreSQL) as retryable domain errors. */
  classify?: (err: unknown) => DomainError | null;
}

/** The error a resolver or a subscription source threw, through GraphQL's wrappers. */
function rootCause(error: unknown): unknown {
  let e = unwrapResolverError(error);
  while (e instanceof GraphQLError && e.originalError) e = e.originalError;
  return e;
}

/**
 * Every error leaves with `extensions.code`. Domain errors keep their message and reason;
 * GraphQL's own (parse, validation, limits) keep their code and whatever extensions they
 * set; anything unexpected is logged in full and reaches the client only as "Internal
 * server error", with no stack, SQL or path, unless DEBUG_ERRORS is on.
 */
export function formatError(opts: ErrorFormatOptions) {
  return (formatted: GraphQLFormattedError, error: unknown): GraphQLFormattedError => {
    const original = rootCause(error);
    const domain = original instanceof DomainError ? original : (opts.classify?.(original) ?? null);
    if (domain) {
      const g = toGraphQLError(domain);
      return { ...formatted, message: g.message, extensions: stripHttp(g.extensions) };
    }
    const code = formatted.extensions?.code;
    if (typeof code === 'string' && code !== 'INTERNAL_SERVER_ERROR') {
      if (opts.debug) return formatted;
      const ext: Record<string, unknown> = { ...formatted.extensions };
      delete ext.stacktrace;
      delete ext.http;
      return { ...formatted, extensions: ext };
    }
    opts.logInternal(original);
    return {
      message: opts.debug ? formatted.message : 'Internal server error',
      locations: formatted.locations,
      path: formatted.path,
      extensions: opts.debug
        ? { ...formatted.extensions, code: 'INTERNAL_SERVER_ERROR' }
        : { code: 'INTERNAL_SERVER_ERROR' },
    };
  };
}

function stripHttp(ext: GraphQLError['extensions']): Record<string, unknown> {
  const rest: Record<string, unknown> = { ...ext };
  delete rest.http;
  return rest;
}
