import { type ApolloServerPlugin } from '@apollo/server';
import { GraphQLError } from 'graphql';
import {
  fieldExtensionsEstimator,
  getComplexity,
  simpleEstimator,
  type ComplexityEstimator,
} from 'graphql-query-complexity';
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

/** Rejects operations over the complexity budget before any resolver runs. */
export function complexityPlugin(max: number): ApolloServerPlugin<GraphQLContext> {
  return {
    async requestDidStart() {
      return {
        async didResolveOperation({ request, document, schema }) {
          const complexity = getComplexity({
            schema,
            query: document,
            operationName: request.operationName,
            variables: request.variables,
            estimators: [
              fieldExtensionsEstimator(),
              connectionEstimator,
              simpleEstimator({ defaultComplexity: 1 }),
            ],
          });
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
