import { createGraphiQLFetcher, type Fetcher } from '@graphiql/toolkit';
import { GraphiQL } from 'graphiql';
import './monaco-workers';
import 'graphiql/style.css';
import { useMemo } from 'react';
import { graphqlUrl, websocketUrl } from './session';

const EXAMPLE = `# Every request needs an API key. Set it in the
# Headers tab below:
#   {"Authorization": "Bearer aek_…"}
# npm start saved the first admin key in
# .data/admin-key; createApiKey makes others.
# Subscriptions use graphql-ws on this same URL;
# this page passes the same header to the socket
# as its "authorization" connection parameter.
query {
  viewer {
    name
    role
  }
}
`;

/**
 * GraphiQL from the console's own bundle (no CDN): queries over HTTP with the headers the
 * user sets, subscriptions over graphql-ws with the Authorization header as the connection
 * parameter the api reads.
 */
export function AetherGraphiQL({ apiKey }: { apiKey: string | null }) {
  const headers = JSON.stringify({ Authorization: `Bearer ${apiKey ?? 'aek_…'}` }, null, 2);
  // One fetcher (and one socket) per Authorization value the Headers tab has held.
  const fetchers = useMemo(() => new Map<string, Fetcher>(), []);
  const fetcherFor = (auth: string): Fetcher => {
    let f = fetchers.get(auth);
    if (!f) {
      f = createGraphiQLFetcher({
        url: graphqlUrl(),
        subscriptionUrl: websocketUrl(),
        wsConnectionParams: auth ? { authorization: auth } : {},
      });
      fetchers.set(auth, f);
    }
    return f;
  };
  return (
    <GraphiQL
      fetcher={(params, opts) => {
        const h = (opts?.headers ?? {}) as Record<string, string>;
        return fetcherFor(h.Authorization ?? h.authorization ?? '')(params, opts);
      }}
      defaultQuery={EXAMPLE}
      initialHeaders={headers}
      defaultEditorToolsVisibility="headers"
      shouldPersistHeaders={false}
    />
  );
}
