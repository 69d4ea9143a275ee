import { createClient, type Client } from 'graphql-ws';
import WebSocket from 'ws';
import { type ApiProcess, spawnApi } from '../support/api-process';
import { startTestApp, type TestApp } from '../support/test-app';

/**
 * Revocation and role changes reach every api process at once, over HTTP and over open
 * websockets: process A changes the key, process B (another OS process on the same
 * PostgreSQL and Redis) refuses it on the next request, closes its sockets with 4403 and a
 * reason, and runs nothing more for them.
 */
let a: TestApp;
let b: ApiProcess;

beforeAll(async () => {
  a = await startTestApp(__filename, { env: { KEY_RECHECK_MS: '60000' } });
  b = await spawnApi({ ...a.env, KEY_RECHECK_MS: '60000', LOG_LEVEL: 'silent' });
}, 60_000);
afterAll(async () => {
  await b?.stop();
  await a.stop();
});

async function gql(
  url: string,
  token: string,
  query: string,
  variables: Record<string, unknown> = {},
): Promise<{
  status: number;
  body: { data?: Record<string, unknown>; errors?: { extensions?: Record<string, unknown> }[] };
}> {
  const res = await fetch(url, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` },
    body: JSON.stringify({ query, variables }),
  });
  return { status: res.status, body: (await res.json()) as never };
}

async function newKey(role: string): Promise<{ id: string; token: string }> {
  const r = await gql(
    a.url,
    a.adminToken,
    'mutation($input: CreateApiKeyInput!) { createApiKey(input: $input) { token apiKey { id } } }',
    { input: { name: `k-${role}-${Math.random().toString(36).slice(2, 8)}`, role } },
  );
  const c = r.body.data?.createApiKey as { token: string; apiKey: { id: string } };
  return { id: c.apiKey.id, token: c.token };
}

interface Socket {
  client: Client;
  closed: Promise<{ code: number; reason: string }>;
}

function socketTo(url: string, token: string): Socket {
  let onClosed: (e: { code: number; reason: string }) => void = () => undefined;
  const closed = new Promise<{ code: number; reason: string }>((r) => (onClosed = r));
  const client = createClient({
    url: url.replace(/^http/, 'ws'),
    webSocketImpl: WebSocket,
    connectionParams: { authorization: `Bearer ${token}` },
    retryAttempts: 0,
    // One socket for the whole test, as a long-lived client holds it.
    lazy: false,
    // The close is what the test waits for; the client need not print it.
    onNonLazyError: () => undefined,
    on: {
      closed: (e) => {
        const ev = e as { code: number; reason: string };
        onClosed({ code: ev.code, reason: String(ev.reason) });
      },
    },
  });
  return { client, closed };
}

function once(client: Client, query: string): Promise<{ data?: unknown; errors?: unknown }> {
  return new Promise((resolve) => {
    let result: { data?: unknown; errors?: unknown } = {};
    client.subscribe(
      { query },
      {
        next: (r) => (result = r as typeof result),
        error: (e) => resolve({ errors: e }),
        complete: () => resolve(result),
      },
    );
  });
}

function within<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  return Promise.race([
    p,
    new Promise<T>((_, reject) =>
      setTimeout(() => reject(new Error(`${what}: not within ${ms} ms`)), ms),
    ),
  ]);
}

it('refuses a revoked key on the very next HTTP request to another process, with no cache window', async () => {
  const k = await newKey('EDITOR');
  // B verifies (and caches) the key.
  expect((await gql(b.url, k.token, '{ viewer { role } }')).body.data).toEqual({
    viewer: { role: 'EDITOR' },
  });
  await gql(a.url, a.adminToken, 'mutation($id: ID!) { revokeApiKey(id: $id) { id } }', {
    id: k.id,
  });
  const after = await gql(b.url, k.token, '{ viewer { role } }');
  expect(after.status).toBe(401);
  expect(after.body.errors?.[0].extensions).toMatchObject({
    code: 'UNAUTHENTICATED',
    reason: 'REVOKED_KEY',
  });
});

it('revokes many keys in one document with one wait, each refused on another process once answered', async () => {
  const keys = await Promise.all([0, 1, 2, 3].map(() => newKey('VIEWER')));
  for (const k of keys) expect((await gql(b.url, k.token, '{ viewer { role } }')).status).toBe(200);
  const started = performance.now();
  const r = await gql(
    a.url,
    a.adminToken,
    `mutation { ${keys.map((k, i) => `r${i}: revokeApiKey(id: "${k.id}") { id }`).join(' ')} }`,
  );
  const took = performance.now() - started;
  expect(r.body.errors).toBeUndefined();
  // The answer waited out the trust once (500 ms), not once per key.
  expect(took).toBeGreaterThanOrEqual(500);
  expect(took).toBeLessThan(1_500);
  for (const k of keys) expect((await gql(b.url, k.token, '{ viewer { role } }')).status).toBe(401);
});

it('closes the open socket of a revoked key on another process with 4403, ending its subscription, and runs nothing more on it', async () => {
  const k = await newKey('ADMIN');
  const s = socketTo(b.url, k.token);
  expect(await once(s.client, '{ viewer { role } }')).toMatchObject({
    data: { viewer: { role: 'ADMIN' } },
  });
  let end: (how: string) => void = () => undefined;
  const ended = new Promise<string>((r) => (end = r));
  s.client.subscribe(
    { query: 'subscription { apiKeyEvents { kind keyId } }' },
    { next: () => undefined, error: () => end('error'), complete: () => end('complete') },
  );
  const keysBefore = await gql(
    a.url,
    a.adminToken,
    '{ apiKeys(first: 100) { edges { node { id } } } }',
  );
  await gql(a.url, a.adminToken, 'mutation($id: ID!) { revokeApiKey(id: $id) { id } }', {
    id: k.id,
  });
  // What the attacker tries on the socket right after: mint a new ADMIN key (the socket may
  // already be closed: the key's event reaches B while the revocation waits out the epoch's
  // trust, ADR 0036).
  const closedAlready = await Promise.race([
    s.closed.then(() => true),
    new Promise<boolean>((r) => setImmediate(() => r(false))),
  ]);
  const attempt = closedAlready
    ? { errors: 'closed' }
    : await within(
        Promise.race([
          once(
            s.client,
            'mutation { createApiKey(input: { name: "minted", role: ADMIN }) { token } }',
          ),
          s.closed.then(() => ({ errors: 'closed' })),
        ]),
        10_000,
        'the minting attempt was not answered',
      );
  expect((attempt as { data?: { createApiKey?: unknown } }).data?.createApiKey).toBeUndefined();
  const closed = await within(s.closed, 10_000, 'the socket was not closed');
  expect(closed.code).toBe(4403);
  expect(closed.reason).toMatch(/revoked/i);
  expect(await within(ended, 10_000, 'the subscription did not end')).toBe('error');
  const keysAfter = await gql(
    a.url,
    a.adminToken,
    '{ apiKeys(first: 100) { edges { node { id } } } }',
  );
  const count = (r: typeof keysAfter) =>
    (r.body.data?.apiKeys as { edges: unknown[] }).edges.length;
  // The revoked key left the active list and no key was minted.
  expect(count(keysAfter)).toBe(count(keysBefore) - 1);
  await s.client.dispose();
});

it('closes the sockets of a key whose role changed and applies the new role at once everywhere', async () => {
  const k = await newKey('VIEWER');
  const s = socketTo(b.url, k.token);
  expect(await once(s.client, '{ viewer { role } }')).toMatchObject({
    data: { viewer: { role: 'VIEWER' } },
  });
  const changed = await gql(
    a.url,
    a.adminToken,
    'mutation($id: ID!) { updateApiKey(id: $id, input: { role: EDITOR, permissions: [COMMAND_TRAINERS] }) { role permissions } }',
    { id: k.id },
  );
  expect(changed.body.data?.updateApiKey).toEqual({
    role: 'EDITOR',
    permissions: ['COMMAND_TRAINERS'],
  });
  expect((await gql(b.url, k.token, '{ viewer { role permissions } }')).body.data).toEqual({
    viewer: { role: 'EDITOR', permissions: ['COMMAND_TRAINERS'] },
  });
  const closed = await within(s.closed, 10_000, 'the socket was not closed');
  expect(closed.code).toBe(4403);
  expect(closed.reason).toMatch(/role or permissions changed/);
  await s.client.dispose();
});

it('refuses to demote the last admin and keeps RUNNER keys free of permissions', async () => {
  const r = await gql(a.url, a.adminToken, '{ viewer { keyId } }');
  const self = (r.body.data?.viewer as { keyId: string }).keyId;
  const demote = await gql(
    a.url,
    a.adminToken,
    'mutation($id: ID!) { updateApiKey(id: $id, input: { role: VIEWER }) { role } }',
    { id: self },
  );
  expect(demote.body.errors?.[0].extensions).toMatchObject({
    code: 'CONFLICT',
    reason: 'LAST_ADMIN_KEY',
  });
  const runner = await gql(
    a.url,
    a.adminToken,
    'mutation { createApiKey(input: { name: "r1", role: RUNNER, permissions: [COMMAND_TRAINERS] }) { token } }',
  );
  expect(runner.body.errors?.[0].extensions).toMatchObject({
    code: 'BAD_USER_INPUT',
    reason: 'INVALID_PERMISSIONS',
  });
});

it('needs the COMMAND_TRAINERS permission to submit a command trainer', async () => {
  const editor = await newKey('EDITOR');
  const submit = (token: string) =>
    gql(
      a.url,
      token,
      'mutation($input: SubmitTrainingJobInput!) { submitTrainingJob(input: $input) { id } }',
      {
        input: {
          experiment: 'sandbox',
          command: { name: 'echo', argv: ['echo', 'hi'] },
          datasetId: 'RGF0YXNldFNuYXBzaG90OjAwMDAwMDAwLTAwMDAtNDAwMC04MDAwLTAwMDAwMDAwMDAwMA',
        },
      },
    );
  expect((await submit(editor.token)).body.errors?.[0].extensions).toMatchObject({
    code: 'FORBIDDEN',
    reason: 'MISSING_PERMISSION',
  });
  await gql(
    a.url,
    a.adminToken,
    'mutation($id: ID!) { updateApiKey(id: $id, input: { permissions: [COMMAND_TRAINERS] }) { id } }',
    { id: editor.id },
  );
  // Past the permission: now refused only for the (unknown) dataset.
  expect((await submit(editor.token)).body.errors?.[0].extensions).toMatchObject({
    code: 'NOT_FOUND',
  });
});
