import { type ApolloServerPlugin } from '@apollo/server';
import { Kind, type OperationDefinitionNode } from 'graphql';
import { type Metrics } from '../infra/observability/metrics';
import { statementsSoFar } from '../infra/db/request-scope';
import { type GraphQLContext } from '../resolvers/context';
import { type QueryGate } from './query-gate';

/**
 * Rejects operations over the cost budget (or with an invalid page size) before any resolver
 * runs; the rule itself is the QueryGate's, shared with the websocket path.
 */
export function complexityPlugin(gate: QueryGate): ApolloServerPlugin<GraphQLContext> {
  return {
    async requestDidStart() {
      return {
        async didResolveOperation({ request, document }) {
          gate.assertAffordable(document, request.operationName, request.variables ?? {});
        },
      };
    },
  };
}

export function metricsPlugin(metrics: Metrics): ApolloServerPlugin<GraphQLContext> {
  return {
    async requestDidStart() {
      const start = process.hrtime.bigint();
      return {
        async willSendResponse({ response, operation }) {
          const op = operationLabel(operation);
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
          const statements = statementsSoFar();
          if (statements !== undefined)
            metrics.graphqlDbStatements.observe({ operation: op, type }, statements);
        },
      };
    },
  };
}

/**
 * The `operation` label of the GraphQL metrics: the root field an operation calls (or
 * `multiple`, or `invalid` for one that never validated). Operation names are the client's
 * to choose, so labelling by them let any caller grow /metrics without bound; root fields
 * are the schema's, a fixed set.
 */
export function operationLabel(operation: OperationDefinitionNode | undefined): string {
  if (!operation) return 'invalid';
  const fields = operation.selectionSet.selections;
  if (fields.length !== 1 || fields[0].kind !== Kind.FIELD) return 'multiple';
  return fields[0].name.value;
}
