import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import {
  type EmbeddedRedis,
  freePort,
  startEmbeddedRedis,
} from '../src/infra/redis/embedded-redis';
import { startTestApp, type TestApp } from './support/test-app';

/** Readiness follows Redis down and back up, without restarting the api. */
let redis: EmbeddedRedis;
let app: TestApp;
let port: number;
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'aether-readiness-redis-'));

beforeAll(async () => {
  port = await freePort();
  redis = await startEmbeddedRedis({ dir, port, persist: false });
  app = await startTestApp(__filename, { env: { REDIS_URL: redis.url } });
});
afterAll(async () => {
  await app.stop();
  await redis.stop();
  fs.rmSync(dir, { recursive: true, force: true });
});

async function readyz(): Promise<{
  status: number;
  body: {
    status: string;
    failing: string[];
    checks: Record<string, { ok: boolean; error?: string }>;
  };
}> {
  const res = await fetch(app.url.replace('/graphql', '/readyz'));
  return {
    status: res.status,
    body: (await res.json()) as Awaited<ReturnType<typeof readyz>>['body'],
  };
}

async function until(pred: () => Promise<boolean>, timeoutMs: number): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (!(await pred())) {
    if (Date.now() > end) throw new Error(`condition not met within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

it('answers 503 naming Redis while it is down, and 200 again once it is back', async () => {
  expect((await readyz()).status).toBe(200);

  await redis.stop();
  const down = await readyz();
  expect(down.status).toBe(503);
  expect(down.body.failing).toEqual(['redis']);
  expect(down.body.checks.redis.ok).toBe(false);
  expect(down.body.checks.postgres.ok).toBe(true);
  // Liveness is unaffected: the process itself is fine.
  expect((await fetch(app.url.replace('/graphql', '/healthz'))).status).toBe(200);

  redis = await startEmbeddedRedis({ dir, port, persist: false });
  await until(async () => (await readyz()).status === 200, 15_000);
  expect((await readyz()).body).toMatchObject({ status: 'ready', failing: [] });
});
