import { RunnersDocument, ViewerDocument } from './generated/graphql';
import { GraphQLTestClient } from './support/graphql-client';
import { startTestApp, type TestApp } from './support/test-app';

/** In production mode nothing internal (stack, SQL, file path) reaches a client. */
let app: TestApp;
let admin: GraphQLTestClient;

beforeAll(async () => {
  app = await startTestApp(__filename, { env: { NODE_ENV: 'production' } });
  admin = new GraphQLTestClient(app.url, app.adminToken);
});
afterAll(() => app.stop());

it('masks an unexpected database failure as INTERNAL_SERVER_ERROR with no details', async () => {
  expect((await admin.ok(ViewerDocument)).viewer.role).toBe('ADMIN');
  // Break the database underneath the running server.
  await app.db.dataSource.query('DROP TABLE runner CASCADE');
  const r = await admin.request(RunnersDocument, {});
  expect(r.errors).toHaveLength(1);
  expect(r.errors?.[0]).toEqual({
    message: 'Internal server error',
    locations: expect.any(Array),
    path: ['runners'],
    extensions: { code: 'INTERNAL_SERVER_ERROR' },
  });
  const text = JSON.stringify(r);
  expect(text).not.toMatch(/runner"? does not exist|SELECT|node_modules|\.ts:|stacktrace/i);
});

it('keeps client-facing validation errors free of stack traces', async () => {
  const r = await admin.raw(JSON.stringify({ query: '{ nope }' }));
  expect(r.status).toBe(400);
  expect(r.text).not.toContain('stacktrace');
  expect(r.json).toMatchObject({ errors: [{ extensions: { code: 'GRAPHQL_VALIDATION_FAILED' } }] });
});

it('serves no IDE landing page in production', async () => {
  const res = await fetch(app.url, { headers: { accept: 'text/html' } });
  expect(res.headers.get('content-type') ?? '').not.toContain('text/html');
});
