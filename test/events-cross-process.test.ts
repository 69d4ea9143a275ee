import fs from 'node:fs';
import path from 'node:path';
import {
  ApiKeyEventsDocument,
  CreateApiKeyDocument,
  RevokeApiKeyDocument,
  ViewerDocument,
} from './generated/graphql';
import { type ApiProcess, spawnApi } from './support/api-process';
import { collect, GraphQLTestClient } from './support/graphql-client';
import { deleteRedisPrefix, dropSchema, testRedisTarget } from './support/isolation';
import { isolatedEnv, migrateSchema } from './support/test-app';

/** Two api processes on different ports share one Postgres schema and one Redis prefix. */
let a: ApiProcess;
let b: ApiProcess;
let env: Record<string, string>;
let token: string;

beforeAll(async () => {
  env = isolatedEnv(__filename);
  await migrateSchema(env);
  a = await spawnApi(env);
  token = fs.readFileSync(path.join(env.DATA_DIR, 'admin-key'), 'utf8').trim();
  b = await spawnApi({ ...env, DATA_DIR: `${env.DATA_DIR}-b` });
}, 60_000);

afterAll(async () => {
  expect(await b?.stop()).toBe(0);
  expect(await a?.stop()).toBe(0);
  await dropSchema(env.DATABASE_SCHEMA);
  await deleteRedisPrefix(testRedisTarget(), env.REDIS_PREFIX);
});

it('delivers an event published by one process to a subscriber on the other', async () => {
  const onA = new GraphQLTestClient(a.url, token);
  const onB = new GraphQLTestClient(b.url, token);
  expect(a.url).not.toBe(b.url);
  const ws = onA.ws();
  const sub = collect(ws, ApiKeyEventsDocument);
  // The subscription becomes live on A at some point after connecting (later on a loaded
  // machine); keys are created on B until one event arrives, and it must be one of them.
  const created: string[] = [];
  let event: { apiKeyEvents: { kind: string; keyId: string } } | undefined;
  for (let i = 0; !event && i < 20; i++) {
    const k = await onB.ok(CreateApiKeyDocument, {
      input: { name: `from-b-${i}`, role: 'VIEWER' },
    });
    created.push(k.createApiKey.apiKey.id);
    event = (await sub.next(1, 500).catch(() => []))[0];
  }
  expect(event?.apiKeyEvents.kind).toBe('CREATED');
  expect(created).toContain(event?.apiKeyEvents.keyId);
  sub.dispose();
  await ws.dispose();
});

it('a key revoked on one process is refused by the other at once', async () => {
  const onA = new GraphQLTestClient(a.url, token);
  const onB = new GraphQLTestClient(b.url, token);
  const created = await onB.ok(CreateApiKeyDocument, {
    input: { name: 'short-lived', role: 'EDITOR' },
  });
  const victimOnA = onA.withToken(created.createApiKey.token);
  expect((await victimOnA.ok(ViewerDocument)).viewer.role).toBe('EDITOR'); // now cached on A
  await onB.ok(RevokeApiKeyDocument, { id: created.createApiKey.apiKey.id });
  // A hears of the revocation through Redis pub/sub: milliseconds, not a cache expiry
  // (which is minutes); polled so a loaded machine does not fail the test.
  const revokedAt = Date.now();
  let after = await victimOnA.request(ViewerDocument);
  while (!after.errors && Date.now() - revokedAt < 5_000) {
    await new Promise((r) => setTimeout(r, 25));
    after = await victimOnA.request(ViewerDocument);
  }
  expect(after.errors?.[0].extensions).toMatchObject({
    code: 'UNAUTHENTICATED',
    reason: 'REVOKED_KEY',
  });
});

it('refuses a subscription without a valid key', async () => {
  const anon = new GraphQLTestClient(a.url, 'aek_00000000_' + 'A'.repeat(43));
  const ws = anon.ws();
  const sub = collect(ws, ApiKeyEventsDocument);
  await expect(sub.next(1, 3_000)).rejects.toThrow(/subscription error/);
  await ws.dispose();
});
