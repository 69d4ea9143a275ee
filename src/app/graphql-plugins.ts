import { type ApolloServerPlugin } from '@apollo/server';
import { type DocumentNode, GraphQLError, Kind, type OperationDefinitionNode } from 'graphql';
import { getComplexity, simpleEstimator, type ComplexityEstimator } from 'graphql-query-complexity';
import { type Metrics, operationLabel } from '../infra/observability/metrics';
import { type GraphQLContext } from '../resolvers/context';

/** Lists cost their page size times their children: `first: 100` of a heavy type is heavy. */
const connectionEstimator: ComplexityEstimator = ({ args, childComplexity }) => {
  const n =
    typeof args.first === 'number'
      ? args.first
      : typeof args.last === 'number'
        ? args.last
        : undefined;
  return n === undefined ? undefined : 1 + n * Math.max(childComplexity, 1);
};

/**
 * Rejects operations over the complexity budget before any resolver runs.
 *
 * The cost depends only on the document, the operation and the `first`/`last` arguments,
 * which are Ints, so it is cached per parsed document (Apollo keeps one object per query
 * string) and the values of its Int variables: a client repeating one query pays for the
 * walk once.
 */
export function complexityPlugin(max: number): ApolloServerPlugin<GraphQLContext> {
  const cache = new WeakMap<DocumentNode, Map<string, number>>();
  const estimators = [connectionEstimator, simpleEstimator({ defaultComplexity: 1 })];
  return {
    async requestDidStart() {
      return {
        async didResolveOperation({ request, document, schema, operation }) {
          const variables = request.variables ?? {};
          const key = `${request.operationName ?? ''}\u0000${operation ? intVariables(operation, variables) : ''}`;
          let byKey = cache.get(document);
          if (!byKey) cache.set(document, (byKey = new Map()));
          let complexity = byKey.get(key);
          if (complexity === undefined) {
            complexity = getComplexity({
              schema,
              query: document,
              operationName: request.operationName,
              variables,
              estimators,
            });
            if (byKey.size < 64) byKey.set(key, complexity);
          }
          if (complexity > max) {
            throw new GraphQLError(`Query is too complex: cost ${complexity}, limit ${max}`, {
              extensions: {
                code: 'GRAPHQL_VALIDATION_FAILED',
                cost: complexity,
                limit: max,
                http: { status: 400 },
              },
            });
          }
        },
      };
    },
  };
}

/** The values of the operation's Int variables: all that the estimators read from variables. */
function intVariables(
  operation: OperationDefinitionNode,
  variables: Record<string, unknown>,
): string {
  let out = '';
  for (const d of operation.variableDefinitions ?? []) {
    const t = d.type.kind === Kind.NON_NULL_TYPE ? d.type.type : d.type;
    if (t.kind === Kind.NAMED_TYPE && t.name.value === 'Int')
      out += `${d.variable.name.value}=${String(variables[d.variable.name.value])};`;
  }
  return out;
}

export function metricsPlugin(metrics: Metrics): ApolloServerPlugin<GraphQLContext> {
  return {
    async requestDidStart({ request }) {
      const start = process.hrtime.bigint();
      return {
        async willSendResponse({ response, operation }) {
          const op = operationLabel(request.operationName ?? operation?.name?.value);
          const type = operation?.operation ?? 'unknown';
          const errors =
            response.body.kind === 'single' ? response.body.singleResult.errors : undefined;
          const seconds = Number(process.hrtime.bigint() - start) / 1e9;
          metrics.graphqlRequests.inc({
            operation: op,
            type,
            outcome: errors?.length ? 'error' : 'ok',
          });
          metrics.graphqlDuration.observe({ operation: op, type }, seconds);
        },
      };
    },
  };
}
