import { getIntrospectionQuery } from 'graphql';
import { createClient } from 'graphql-ws';
import WebSocket from 'ws';
import { ATTACKS } from '../support/query-attacks';
import { startTestApp, type TestApp } from '../support/test-app';

/**
 * Query shapes that once froze the server (validation is quadratic in repeated fields, and
 * ran before any limit) are refused before validation with 400 and a reason, over HTTP and
 * websockets alike, while the server keeps answering everyone else; and a key over its
 * request budget gets 429 with Retry-After. The times are the `abuse` benchmark's to judge
 * (bench/abuse.ts); here each refusal's code and reason are checked.
 */
let app: TestApp;

beforeAll(async () => {
  app = await startTestApp(__filename, {
    env: { RATE_LIMIT_PER_SECOND: '20', RATE_LIMIT_BURST: '20' },
  });
});
afterAll(() => app.stop());

async function post(body: unknown, token = app.adminToken) {
  const res = await fetch(app.url, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` },
    body: JSON.stringify(body),
  });
  return { status: res.status, headers: res.headers, body: (await res.json()) as never };
}

it.each(ATTACKS)('refuses $name with 400 and reason $reason', async ({ query, reason }) => {
  const r = await post({ query });
  expect(r.status).toBe(400);
  expect(
    (r.body as { errors: { extensions: Record<string, unknown> }[] }).errors[0].extensions,
  ).toMatchObject({
    code: 'GRAPHQL_VALIDATION_FAILED',
    reason,
  });
  // The server is free for others at once.
  expect((await fetch(app.url.replace('/graphql', '/healthz'))).status).toBe(200);
});

it('still runs a large legitimate query: introspection, 20 fields, fragments', async () => {
  const intro = await post({ query: getIntrospectionQuery() });
  expect(intro.status).toBe(200);
  const r = await post({
    query: `{ viewer { ...V } a: viewer { name } b: viewer { role } } fragment V on Viewer { name role keyId permissions }`,
  });
  expect(r.status).toBe(200);
});

it('applies the same limits to operations over websockets, with codes', async () => {
  const client = createClient({
    url: app.url.replace(/^http/, 'ws'),
    webSocketImpl: WebSocket,
    connectionParams: { authorization: `Bearer ${app.adminToken}` },
    retryAttempts: 0,
  });
  try {
    for (const a of ATTACKS.filter((x) => x.query.length < 100_000)) {
      const errors = await new Promise<{ extensions?: Record<string, unknown> }[]>((resolve) => {
        client.subscribe(
          { query: a.query },
          {
            next: (r) => resolve((r.errors ?? []) as never),
            error: (e) => resolve(e as never),
            complete: () => resolve([]),
          },
        );
      });
      expect(errors[0]?.extensions).toMatchObject({
        code: 'GRAPHQL_VALIDATION_FAILED',
        reason: a.reason,
      });
    }
    // Validation errors over websockets carry their code too (they were INTERNAL_SERVER_ERROR).
    const invalid = await new Promise<{ extensions?: Record<string, unknown> }[]>((resolve) => {
      client.subscribe(
        { query: '{ nope }' },
        {
          next: (r) => resolve((r.errors ?? []) as never),
          error: (e) => resolve(e as never),
          complete: () => resolve([]),
        },
      );
    });
    expect(invalid[0]?.extensions).toMatchObject({ code: 'GRAPHQL_VALIDATION_FAILED' });
  } finally {
    await client.dispose();
  }
});

it('answers a key over its request budget 429 with Retry-After, and leaves other keys alone', async () => {
  const create = await post({
    query: 'mutation { createApiKey(input: { name: "busy", role: VIEWER }) { token } }',
  });
  const token = (create.body as { data: { createApiKey: { token: string } } }).data.createApiKey
    .token;
  const answers = await Promise.all(
    Array.from({ length: 60 }, () => post({ query: '{ viewer { name } }' }, token)),
  );
  const limited = answers.filter((a) => a.status === 429);
  expect(limited.length).toBeGreaterThan(0);
  expect(Number(limited[0].headers.get('retry-after'))).toBeGreaterThanOrEqual(1);
  expect(
    (limited[0].body as { errors: { extensions: Record<string, unknown> }[] }).errors[0].extensions,
  ).toMatchObject({
    code: 'TOO_MANY_REQUESTS',
    reason: 'RATE_LIMITED',
  });
  // The admin key has its own budget.
  expect((await post({ query: '{ viewer { name } }' })).status).toBe(200);
});
