import { createClient as createWsClient } from 'graphql-ws';
import { cacheExchange, Client, fetchExchange, subscriptionExchange } from 'urql';
import { graphqlUrl, websocketUrl } from './session';

/** One urql client per key: queries over HTTP, subscriptions over graphql-ws (same origin). */
export function createClient(key: string): { client: Client; close(): void } {
  const ws = createWsClient({
    url: websocketUrl(),
    connectionParams: { authorization: `Bearer ${key}` },
    lazy: true,
    retryAttempts: Infinity,
  });
  const client = new Client({
    url: graphqlUrl(),
    // The document cache keeps each query's answer until a mutation touches its types.
    exchanges: [
      cacheExchange,
      fetchExchange,
      subscriptionExchange({
        forwardSubscription(request) {
          const input = { ...request, query: request.query ?? '' };
          return {
            subscribe(sink) {
              const unsubscribe = ws.subscribe(input, sink);
              return { unsubscribe };
            },
          };
        },
      }),
    ],
    fetchOptions: () => ({ headers: { authorization: `Bearer ${key}` } }),
    // POST with a JSON body: the api's CSRF prevention refuses simple GET requests.
    preferGetMethod: false,
    requestPolicy: 'cache-and-network',
  });
  return { client, close: () => void ws.dispose() };
}
