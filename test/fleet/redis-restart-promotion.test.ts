/**
 * @jest-environment ./test/support/onnx-environment.cjs
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import {
  type EmbeddedRedis,
  freePort,
  startEmbeddedRedis,
} from '../../src/infra/redis/embedded-redis';
import { toGlobalId } from '../../src/schema/node.types';
import {
  ModelEventsDocument,
  TransitionModelVersionDocument,
  ValidateModelVersionDocument,
} from '../generated/graphql';
import { buildFloatDataset } from '../support/datasets';
import { collect, GraphQLTestClient } from '../support/graphql-client';
import { until } from '../support/runner-process';
import { startTestApp, type TestApp } from '../support/test-app';
import { registerKnownModel } from '../support/trained-model';

/**
 * A promotion through the gates while Redis restarts (docs/adr/0027): every mutation
 * succeeds with Redis down (the changes and their events commit to PostgreSQL), and a
 * subscriber gets every move once Redis is back, in order, none twice.
 */
let redis: EmbeddedRedis;
let app: TestApp;
let port: number;
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'aether-promotion-redis-'));

beforeAll(async () => {
  port = await freePort();
  redis = await startEmbeddedRedis({ dir, port, persist: false });
  app = await startTestApp(__filename, {
    env: {
      REDIS_URL: redis.url,
      RELAY_INTERVAL_MS: '200',
      LEASE_TTL_MS: '2000',
      FEATURE_STREAM_CONSUMER: 'off',
    },
  });
}, 60_000);

afterAll(async () => {
  await app.stop();
  await redis.stop();
  fs.rmSync(dir, { recursive: true, force: true });
});

it('promotes through the gates while Redis is down; every move reaches the subscriber once', async () => {
  const F = ['acct@1:a', 'acct@1:b'];
  const snapshot = await buildFloatDataset(app.services, {
    view: 'acct',
    features: ['a', 'b'],
    rows: Array.from({ length: 40 }, (_, i) => ({
      entityKey: `u${i}`,
      at: Date.now() - 60_000,
      values: { a: i % 3, b: i % 2 },
      label: i % 2,
    })),
  });
  const v = await registerKnownModel(app.services, {
    model: 'risk',
    datasetId: snapshot.id,
    features: F,
    weights: [1, 0],
    bias: 0,
  });
  const gql = new GraphQLTestClient(app.url, app.adminToken);
  const ws = gql.ws();
  const sub = collect(ws, ModelEventsDocument);
  await new Promise((r) => setTimeout(r, 500));

  await redis.stop();
  const id = toGlobalId('ModelVersion', v.id);
  await gql.ok(ValidateModelVersionDocument, {
    id,
    datasetId: toGlobalId('DatasetSnapshot', snapshot.id),
  });
  for (const to of ['STAGING', 'SHADOW', 'CANARY', 'PRODUCTION'] as const)
    await gql.ok(TransitionModelVersionDocument, { id, to, reason: 'during a Redis restart' });

  redis = await startEmbeddedRedis({ dir, port, persist: false });
  const moves = () => sub.events.map((e) => e.modelEvents.to);
  await until(async () => (moves().includes('PRODUCTION') ? true : undefined), 30_000);
  await new Promise((r) => setTimeout(r, 500));
  sub.dispose();
  await ws.dispose();
  expect(moves()).toEqual(['VALIDATED', 'STAGING', 'SHADOW', 'CANARY', 'PRODUCTION']);
  expect((await app.services.registry.version(v.id)).state).toBe('PRODUCTION');
}, 90_000);
