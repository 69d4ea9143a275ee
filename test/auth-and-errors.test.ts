import {
  ApiKeysDocument,
  CreateApiKeyDocument,
  NodeByIdDocument,
  RevokeApiKeyDocument,
  ViewerDocument,
} from './generated/graphql';
import { GraphQLTestClient } from './support/graphql-client';
import { startTestApp, type TestApp } from './support/test-app';

let app: TestApp;
let admin: GraphQLTestClient;

beforeAll(async () => {
  // Background loops stay quiet: one test counts the SQL statements a request sends.
  app = await startTestApp(__filename, {
    env: { LEASE_TTL_MS: '600000', RELAY_INTERVAL_MS: '600000' },
  });
  admin = new GraphQLTestClient(app.url, app.adminToken);
});
afterAll(() => app.stop());

async function keyWithRole(
  role: 'VIEWER' | 'EDITOR' | 'ADMIN' | 'RUNNER',
  name = `k-${role}-${Date.now()}`,
) {
  const r = await admin.ok(CreateApiKeyDocument, { input: { name, role } });
  return {
    client: admin.withToken(r.createApiKey.token),
    id: r.createApiKey.apiKey.id,
    token: r.createApiKey.token,
  };
}

describe('authentication', () => {
  it('accepts the admin key and rejects a request without one', async () => {
    expect((await admin.ok(ViewerDocument)).viewer).toMatchObject({
      name: 'bootstrap-admin',
      role: 'ADMIN',
    });
    const anon = await admin.withToken(undefined).request(ViewerDocument);
    expect(anon.status).toBe(401);
    expect(anon.errors?.[0].extensions).toMatchObject({
      code: 'UNAUTHENTICATED',
      reason: 'MISSING_KEY',
    });
  });

  it('rejects a malformed and an unknown key', async () => {
    const bad = await admin.withToken('not-a-key').request(ViewerDocument);
    expect(bad.errors?.[0].extensions).toMatchObject({
      code: 'UNAUTHENTICATED',
      reason: 'MALFORMED_KEY',
    });
    const forged = app.adminToken.slice(0, -4) + 'AAAA';
    const unknown = await admin.withToken(forged).request(ViewerDocument);
    expect(unknown.errors?.[0].extensions).toMatchObject({
      code: 'UNAUTHENTICATED',
      reason: 'UNKNOWN_KEY',
    });
  });

  it('stops accepting a key the moment it is revoked', async () => {
    const k = await keyWithRole('EDITOR');
    expect((await k.client.ok(ViewerDocument)).viewer.role).toBe('EDITOR');
    await admin.ok(RevokeApiKeyDocument, { id: k.id });
    const after = await k.client.request(ViewerDocument);
    expect(after.status).toBe(401);
    expect(after.errors?.[0].extensions).toMatchObject({
      code: 'UNAUTHENTICATED',
      reason: 'REVOKED_KEY',
    });
  });

  it('stores only a hash of the secret', async () => {
    const k = await keyWithRole('VIEWER');
    const rows: { secret_hash: string; prefix: string }[] = await app.db.dataSource.query(
      'SELECT secret_hash, prefix FROM api_key WHERE prefix = $1',
      [k.token.split('_')[1]],
    );
    expect(rows).toHaveLength(1);
    expect(k.token).not.toContain(rows[0].secret_hash);
    expect(rows[0].secret_hash).toMatch(/^[0-9a-f]{64}$/);
  });
});

describe('roles', () => {
  it('refuses a viewer calling an admin mutation with FORBIDDEN', async () => {
    const v = await keyWithRole('VIEWER');
    const r = await v.client.request(CreateApiKeyDocument, {
      input: { name: 'sneaky', role: 'ADMIN' },
    });
    expect(r.errors?.[0].extensions).toMatchObject({
      code: 'FORBIDDEN',
      reason: 'INSUFFICIENT_ROLE',
    });
    expect(r.data).toBeNull();
  });

  it('lets an editor read but not administer', async () => {
    const e = await keyWithRole('EDITOR');
    expect((await e.client.request(ViewerDocument)).errors).toBeUndefined();
    expect((await e.client.request(ApiKeysDocument, {})).errors?.[0].extensions?.code).toBe(
      'FORBIDDEN',
    );
  });

  it('keeps runner keys to runner calls', async () => {
    const r = await keyWithRole('RUNNER');
    expect((await r.client.request(ApiKeysDocument, {})).errors?.[0].extensions?.code).toBe(
      'FORBIDDEN',
    );
  });

  it('hides nodes a role may not see', async () => {
    const v = await keyWithRole('VIEWER');
    const adminNode = await admin.ok(NodeByIdDocument, { id: v.id });
    expect(adminNode.node).toMatchObject({ __typename: 'ApiKey', id: v.id });
    expect((await v.client.ok(NodeByIdDocument, { id: v.id })).node).toBeNull();
  });

  it('refuses to revoke the last admin key', async () => {
    const me = await admin.ok(ViewerDocument);
    const r = await admin.request(RevokeApiKeyDocument, { id: me.viewer.keyId });
    expect(r.errors?.[0].extensions).toMatchObject({ code: 'CONFLICT', reason: 'LAST_ADMIN_KEY' });
  });
});

describe('bad input is answered with a code, never a crash', () => {
  it('malformed JSON', async () => {
    const r = await admin.raw('{"query": "{ viewer { name } ');
    expect(r.status).toBe(400);
    expect(r.json).toMatchObject({ errors: [{ extensions: { code: 'BAD_REQUEST' } }] });
  });

  it('an unknown field', async () => {
    const r = await admin.raw(JSON.stringify({ query: '{ viewer { name shoeSize } }' }));
    expect(r.status).toBe(400);
    expect(r.json).toMatchObject({
      errors: [{ extensions: { code: 'GRAPHQL_VALIDATION_FAILED' } }],
    });
  });

  it('a query nested 50 deep', async () => {
    const deep = 'createdBy { '.repeat(50) + 'id' + ' }'.repeat(50);
    const r = await admin.raw(
      JSON.stringify({ query: `{ apiKeys { edges { node { ${deep} } } } }` }),
    );
    expect(r.status).toBe(400);
    expect(r.json).toMatchObject({
      errors: [{ extensions: { code: 'GRAPHQL_VALIDATION_FAILED' } }],
    });
    expect(JSON.stringify(r.json)).toContain('depth');
  });

  it('a query over the complexity budget', async () => {
    const inner = 'edges { node { id name createdBy { id name createdBy { id name } } } }';
    const r = await admin.raw(
      JSON.stringify({
        query: `{ a: apiKeys(first: 100) { ${inner} } b: apiKeys(first: 100) { ${inner} } c: apiKeys(first: 100) { ${inner} } d: apiKeys(first: 100) { ${inner} } e: apiKeys(first: 100) { ${inner} } }`,
      }),
    );
    expect(r.status).toBe(400);
    expect(r.json).toMatchObject({
      errors: [{ extensions: { code: 'GRAPHQL_VALIDATION_FAILED' } }],
    });
    expect(JSON.stringify(r.json)).toContain('too complex');
  });

  it('the same query costs what its Int variables say, however often it is sent', async () => {
    // The cost is cached per document and Int variable values: a cheap call first must not
    // let the expensive one through.
    const inner = 'edges { node { id name createdBy { id name createdBy { id name } } } }';
    const query = `query Keys($n: Int) { ${['a', 'b', 'c', 'd', 'e']
      .map((a) => `${a}: apiKeys(first: $n) { ${inner} }`)
      .join(' ')} }`;
    const send = (n: number) => admin.raw(JSON.stringify({ query, variables: { n } }));
    expect((await send(5)).status).toBe(200);
    const heavy = await send(100);
    expect(heavy.status).toBe(400);
    expect(JSON.stringify(heavy.json)).toContain('too complex');
    expect((await send(5)).status).toBe(200);
    expect((await send(100)).status).toBe(400);
  });

  it('a negative or oversized page size is BAD_USER_INPUT before it can lower a cost', async () => {
    const inner = 'edges { node { id name createdBy { id name createdBy { id name } } } }';
    for (const n of [-1_000_000, 0, 5_000]) {
      const r = await admin.raw(
        JSON.stringify({
          query: `{ a: apiKeys(first: ${n}) { ${inner} } b: apiKeys(first: 100) { ${inner} } c: apiKeys(first: 100) { ${inner} } d: apiKeys(first: 100) { ${inner} } e: apiKeys(first: 100) { ${inner} } }`,
        }),
      );
      expect(r.status).toBe(400);
      expect(r.json).toMatchObject({
        errors: [{ extensions: { code: 'BAD_USER_INPUT', reason: 'INVALID_PAGE_SIZE' } }],
      });
    }
  });

  it('a 10 MB body', async () => {
    const r = await admin.raw(
      JSON.stringify({
        query: '{ viewer { name } }',
        variables: { pad: 'x'.repeat(10 * 1024 * 1024) },
      }),
    );
    expect(r.status).toBe(413);
    expect(r.json).toMatchObject({ errors: [{ extensions: { code: 'BAD_REQUEST' } }] });
  });

  it('an out-of-range page size and a malformed cursor', async () => {
    const big = await admin.request(ApiKeysDocument, { first: 101 });
    expect(big.errors?.[0].extensions).toMatchObject({
      code: 'BAD_USER_INPUT',
      reason: 'INVALID_PAGE_SIZE',
    });
    const cursor = await admin.request(ApiKeysDocument, { after: '!!!' });
    expect(cursor.errors?.[0].extensions).toMatchObject({
      code: 'BAD_USER_INPUT',
      reason: 'INVALID_CURSOR',
    });
  });

  it('an ID of the wrong type and a bad key name', async () => {
    const r = await admin.request(RevokeApiKeyDocument, { id: 'bm9wZQ' });
    expect(r.errors?.[0].extensions).toMatchObject({
      code: 'BAD_USER_INPUT',
      reason: 'INVALID_ID',
    });
    const n = await admin.request(CreateApiKeyDocument, { input: { name: '   ', role: 'VIEWER' } });
    expect(n.errors?.[0].extensions).toMatchObject({
      code: 'BAD_USER_INPUT',
      reason: 'INVALID_KEY_NAME',
    });
  });

  it('an unknown route and method', async () => {
    const base = app.url.replace('/graphql', '');
    expect((await fetch(`${base}/nope`)).status).toBe(404);
    const put = await fetch(app.url, {
      method: 'PUT',
      headers: { authorization: `Bearer ${app.adminToken}` },
    });
    expect(put.status).toBe(405);
  });
});

describe('pagination and DataLoaders', () => {
  it('walks every key exactly once with first/after', async () => {
    for (let i = 0; i < 7; i++) await keyWithRole('VIEWER', `page-${i}`);
    const seen: string[] = [];
    let after: string | null | undefined;
    for (;;) {
      const page = await admin.ok(ApiKeysDocument, { first: 3, after, includeRevoked: true });
      seen.push(...page.apiKeys.edges.map((e) => e.node.id));
      if (!page.apiKeys.pageInfo.hasNextPage) break;
      after = page.apiKeys.pageInfo.endCursor;
    }
    expect(new Set(seen).size).toBe(seen.length);
    const all = await admin.ok(ApiKeysDocument, { first: 100, includeRevoked: true });
    expect(seen).toEqual(all.apiKeys.edges.map((e) => e.node.id));
  });

  it('loads N parents and their creators in two queries, not N + 1', async () => {
    // Ten admins, each creating one key: ten distinct `createdBy` parents.
    for (let i = 0; i < 10; i++) {
      const a = await keyWithRole('ADMIN', `creator-${i}`);
      await a.client.ok(CreateApiKeyDocument, { input: { name: `child-${i}`, role: 'VIEWER' } });
    }
    // The statements this one operation sent (aether_graphql_db_statements): the process-wide
    // query count also moves with pollers, relays and last-use writes of earlier requests.
    const statements = async () =>
      (await app.metrics.graphqlDbStatements.get()).values.find(
        (v) =>
          v.metricName === 'aether_graphql_db_statements_sum' && v.labels.operation === 'apiKeys',
      )?.value ?? 0;
    const before = await statements();
    const r = await admin.ok(ApiKeysDocument, { first: 100 });
    const after = await statements();
    const withCreator = r.apiKeys.edges.filter((e) => e.node.createdBy);
    expect(withCreator.length).toBeGreaterThanOrEqual(20);
    expect(new Set(withCreator.map((e) => e.node.createdBy?.id)).size).toBeGreaterThanOrEqual(11);
    expect(after - before).toBe(2);
  });
});

describe('observability endpoints', () => {
  it('serves /healthz, /readyz and /metrics without a key', async () => {
    const base = app.url.replace('/graphql', '');
    expect(await (await fetch(`${base}/healthz`)).json()).toEqual({ status: 'ok' });
    const ready = await fetch(`${base}/readyz`);
    expect(ready.status).toBe(200);
    expect(await ready.json()).toMatchObject({
      status: 'ready',
      checks: { postgres: { ok: true }, redis: { ok: true }, artifacts: { ok: true } },
    });
    const metrics = await (await fetch(`${base}/metrics`)).text();
    expect(metrics).toMatch(
      /aether_graphql_requests_total\{operation="viewer",type="query",outcome="ok"\} \d+/,
    );
    expect(metrics).toContain(
      'aether_graphql_request_duration_seconds_bucket{le="0.005",operation="viewer",type="query"}',
    );
  });
});
