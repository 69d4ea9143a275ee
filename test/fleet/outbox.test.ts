import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { createClient, type Client } from 'graphql-ws';
import WebSocket from 'ws';
import {
  type EmbeddedRedis,
  freePort,
  startEmbeddedRedis,
} from '../../src/infra/redis/embedded-redis';
import { until } from '../support/runner-process';
import { startTestApp, type TestApp } from '../support/test-app';

/**
 * The transactional outbox (docs/adr/0027): an event exists exactly when its change does, a
 * Redis outage at commit time neither fails the mutation nor loses the event, and a
 * subscription resumes from the cursor of the last event it saw.
 */
let redis: EmbeddedRedis;
let app: TestApp;
let port: number;
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'aether-outbox-redis-'));

beforeAll(async () => {
  port = await freePort();
  redis = await startEmbeddedRedis({ dir, port, persist: false });
  app = await startTestApp(__filename, {
    env: { REDIS_URL: redis.url, RELAY_INTERVAL_MS: '200', LEASE_TTL_MS: '2000' },
  });
});
afterAll(async () => {
  await app.stop();
  await redis.stop();
  fs.rmSync(dir, { recursive: true, force: true });
});

async function gql(query: string, variables: Record<string, unknown> = {}) {
  const res = await fetch(app.url, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${app.adminToken}` },
    body: JSON.stringify({ query, variables }),
  });
  return (await res.json()) as { data?: Record<string, unknown>; errors?: unknown[] };
}

interface KeyEvent {
  kind: string;
  keyId: string;
  cursor: string;
}

function watch(client: Client, after?: string): { events: KeyEvent[]; stop: () => void } {
  const events: KeyEvent[] = [];
  const stop = client.subscribe<{ apiKeyEvents: KeyEvent }>(
    {
      query: 'subscription($after: String) { apiKeyEvents(after: $after) { kind keyId cursor } }',
      variables: { after },
    },
    {
      next: (r) => r.data && events.push(r.data.apiKeyEvents),
      error: () => undefined,
      complete: () => undefined,
    },
  );
  return { events, stop };
}

const newKey = async (name: string) =>
  (
    (
      await gql(
        `mutation { createApiKey(input: { name: "${name}", role: VIEWER }) { apiKey { id } } }`,
      )
    ).data?.createApiKey as { apiKey: { id: string } }
  ).apiKey.id;

it('delivers each event with a cursor, and resumes after a cursor with what came since', async () => {
  const client = createClient({
    url: app.url.replace(/^http/, 'ws'),
    webSocketImpl: WebSocket,
    connectionParams: { authorization: `Bearer ${app.adminToken}` },
    retryAttempts: 5,
  });
  const live = watch(client);
  await new Promise((r) => setTimeout(r, 300));
  const ids = [await newKey('o1'), await newKey('o2'), await newKey('o3')];
  await until(async () => live.events.length >= 3 || undefined, 10_000);
  expect(live.events.map((e) => e.keyId)).toEqual(ids);
  const cursors = live.events.map((e) => Number(e.cursor));
  expect(cursors).toEqual([...cursors].sort((x, y) => x - y));
  live.stop();

  // A client that saw only the first comes back with its cursor: it gets the other two.
  const resumed = watch(client, live.events[0].cursor);
  await until(async () => resumed.events.length >= 2 || undefined, 10_000);
  expect(resumed.events.map((e) => e.keyId)).toEqual(ids.slice(1));
  resumed.stop();
  await client.dispose();
});

it('commits a change while Redis is down and delivers its event once Redis is back', async () => {
  const client = createClient({
    url: app.url.replace(/^http/, 'ws'),
    webSocketImpl: WebSocket,
    connectionParams: { authorization: `Bearer ${app.adminToken}` },
    retryAttempts: 5,
  });
  const live = watch(client);
  await new Promise((r) => setTimeout(r, 300));
  await redis.stop();
  // The mutation needs only PostgreSQL: its event waits in the outbox.
  const created = await gql(
    'mutation { createApiKey(input: { name: "during-outage", role: VIEWER }) { apiKey { id } } }',
  );
  expect(created.errors).toBeUndefined();
  const id = (created.data?.createApiKey as { apiKey: { id: string } }).apiKey.id;
  const [row] = (await app.db.dataSource.query(
    `SELECT count(*)::int AS n FROM outbox WHERE topic = 'api-keys' AND published_at IS NULL`,
  )) as { n: number }[];
  expect(row.n).toBeGreaterThanOrEqual(1);

  redis = await startEmbeddedRedis({ dir, port, persist: false });
  await until(async () => live.events.some((e) => e.keyId === id) || undefined, 20_000);
  live.stop();
  await client.dispose();
});
