import { type TypedDocumentNode } from '@graphql-typed-document-node/core';
import { print } from 'graphql';
import { createClient, type Client } from 'graphql-ws';
import WebSocket from 'ws';

export interface GraphQLErrorShape {
  message: string;
  extensions?: { code?: string; reason?: string; [k: string]: unknown };
}

export interface GraphQLResult<T> {
  status: number;
  data?: T | null;
  errors?: GraphQLErrorShape[];
}

/** Typed operations (from codegen) over HTTP, as any client would send them. */
export class GraphQLTestClient {
  constructor(
    readonly url: string,
    readonly token?: string,
  ) {}

  withToken(token: string | undefined): GraphQLTestClient {
    return new GraphQLTestClient(this.url, token);
  }

  async raw(
    body: string,
    headers: Record<string, string> = {},
  ): Promise<{ status: number; json: unknown; text: string }> {
    const res = await fetch(this.url, {
      method: 'POST',
      headers: {
        'content-type': 'application/json',
        ...(this.token ? { authorization: `Bearer ${this.token}` } : {}),
        ...headers,
      },
      body,
    });
    const text = await res.text();
    let json: unknown = undefined;
    try {
      json = JSON.parse(text);
    } catch {
      // leave undefined: the caller asserts on text
    }
    return { status: res.status, json, text };
  }

  async request<T, V>(doc: TypedDocumentNode<T, V>, variables?: V): Promise<GraphQLResult<T>> {
    const { status, json } = await this.raw(JSON.stringify({ query: print(doc), variables }));
    return { status, ...(json as { data?: T; errors?: GraphQLErrorShape[] }) };
  }

  /** Like `request`, but fails the test on any error and returns the data. */
  async ok<T, V>(doc: TypedDocumentNode<T, V>, variables?: V): Promise<T> {
    const r = await this.request(doc, variables);
    if (r.errors?.length || !r.data) throw new Error(`GraphQL errors: ${JSON.stringify(r.errors)}`);
    return r.data;
  }

  ws(): Client {
    return createClient({
      url: this.url.replace(/^http/, 'ws'),
      webSocketImpl: WebSocket,
      connectionParams: this.token ? { authorization: `Bearer ${this.token}` } : {},
      retryAttempts: 0,
      lazy: true,
    });
  }
}

/** Subscribes and collects events until `count` arrived or `timeoutMs` passed. */
export function collect<T, V>(
  client: Client,
  doc: TypedDocumentNode<T, V>,
  variables?: V,
): {
  events: T[];
  errors: unknown[];
  next(count: number, timeoutMs?: number): Promise<T[]>;
  /** Resolves when the server completes the subscription (or it fails). */
  completed: Promise<void>;
  dispose(): void;
} {
  const events: T[] = [];
  const errors: unknown[] = [];
  const waiters: Array<() => void> = [];
  let complete = () => undefined as void;
  const completed = new Promise<void>((resolve) => (complete = resolve));
  const dispose = client.subscribe<T>(
    { query: print(doc), variables: variables as Record<string, unknown> | undefined },
    {
      next: (v) => {
        if (v.errors) errors.push(...v.errors);
        if (v.data) events.push(v.data as T);
        waiters.forEach((w) => w());
      },
      error: (e) => {
        errors.push(e);
        waiters.forEach((w) => w());
        complete();
      },
      complete: () => complete(),
    },
  );
  return {
    events,
    errors,
    completed,
    dispose,
    next(count, timeoutMs = 10_000) {
      return new Promise((resolve, reject) => {
        const check = () => {
          if (events.length >= count) resolve(events.slice(0, count));
          else if (errors.length)
            reject(new Error(`subscription error: ${JSON.stringify(errors)}`));
        };
        waiters.push(check);
        check();
        setTimeout(
          () =>
            reject(new Error(`only ${events.length} of ${count} events within ${timeoutMs} ms`)),
          timeoutMs,
        ).unref();
      });
    },
  };
}
