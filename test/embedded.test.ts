import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { CreateApiKeyDocument, ViewerDocument } from './generated/graphql';
import { type ApiProcess, spawnApi } from './support/api-process';
import { GraphQLTestClient } from './support/graphql-client';

/**
 * The newcomer's path: no DATABASE_URL, no REDIS_URL. The api starts its own
 * redis-server and PGlite under DATA_DIR, migrates, creates an admin key, and cleans up.
 */
const dataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'aether-embedded-'));
const env = { NODE_ENV: 'test', LOG_LEVEL: 'info', HOST: '127.0.0.1', DATA_DIR: dataDir };
const pidFile = path.join(dataDir, 'redis', 'aether-redis.pid');
let api: ApiProcess | undefined;

afterAll(async () => {
  await api?.stop();
  fs.rmSync(dataDir, { recursive: true, force: true });
});

const alive = (pid: number) => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

async function waitDead(pid: number): Promise<boolean> {
  for (let i = 0; i < 50 && alive(pid); i++) await new Promise((r) => setTimeout(r, 100));
  return !alive(pid);
}

it('starts the embedded stack, serves authenticated GraphQL, and stops everything it started', async () => {
  api = await spawnApi(env, { readyTimeoutMs: 60_000 });
  expect(api.output()).toContain('"database":"pglite"');
  const keyFile = path.join(dataDir, 'admin-key');
  expect(fs.statSync(keyFile).mode & 0o777).toBe(0o600);
  const token = fs.readFileSync(keyFile, 'utf8').trim();

  const client = new GraphQLTestClient(api.url, token);
  expect((await client.ok(ViewerDocument)).viewer.role).toBe('ADMIN');
  const anon = await client.withToken(undefined).request(ViewerDocument);
  expect(anon.errors?.[0].extensions?.code).toBe('UNAUTHENTICATED');
  await client.ok(CreateApiKeyDocument, { input: { name: 'persisted', role: 'VIEWER' } });

  const redisPid = Number(fs.readFileSync(pidFile, 'utf8'));
  expect(alive(redisPid)).toBe(true);
  expect(await api.stop()).toBe(0);
  expect(await waitDead(redisPid)).toBe(true);
  expect(fs.existsSync(pidFile)).toBe(false);

  // Restart on the same data: no lock left behind, data and key survived, no second admin key.
  api = await spawnApi(env, { readyTimeoutMs: 60_000 });
  expect(api.output()).not.toContain('created the first admin API key');
  expect(fs.readFileSync(keyFile, 'utf8').trim()).toBe(token);
  const again = new GraphQLTestClient(api.url, token);
  expect((await again.ok(ViewerDocument)).viewer.role).toBe('ADMIN');
});

it('cleans up a redis-server orphaned by a killed api on the next start', async () => {
  const current = api as ApiProcess;
  const orphan = Number(fs.readFileSync(pidFile, 'utf8'));
  current.child.kill('SIGKILL');
  await current.stop();
  expect(alive(orphan)).toBe(true);
  api = await spawnApi(env, { readyTimeoutMs: 60_000 });
  expect(await waitDead(orphan)).toBe(true);
  expect(Number(fs.readFileSync(pidFile, 'utf8'))).not.toBe(orphan);
});

it.each([
  ['PORT', 'abc', 'Invalid configuration: PORT must be an integer from 0 to 65535 (got "abc")'],
  [
    'DATABASE_URL',
    'mysql://x',
    'Invalid configuration: DATABASE_URL must use postgres: or postgresql: like postgres://user:pass@host:5432/db (got "mysql:")',
  ],
  [
    'ARTIFACT_STORE_URL',
    'ftp://x',
    'Invalid configuration: ARTIFACT_STORE_URL must use file: or s3: like file://.data/artifacts or s3://bucket/prefix (got "ftp:")',
  ],
])('exits with code 2 and one clear line when %s=%s', (name, value, line) => {
  const r = spawnSync(process.execPath, [path.resolve(__dirname, '../dist/src/main.js')], {
    env: {
      PATH: process.env.PATH ?? '',
      ...env,
      DATA_DIR: path.join(dataDir, 'bad'),
      [name]: value,
    },
    encoding: 'utf8',
  });
  expect(r.status).toBe(2);
  expect(r.stderr).toBe(`${line}\n`);
});
