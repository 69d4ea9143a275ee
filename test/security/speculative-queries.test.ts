import { Role } from '../../src/domain/auth/role';
import { closeRedis, createRedisClient } from '../../src/infra/redis/redis-client';
import { testRedisTarget } from '../support/isolation';
import { startTestApp, type TestApp } from '../support/test-app';

/**
 * A query from a key this process confirmed before runs while the key is confirmed again
 * (ADR 0017): its answer leaves only once the same key and role are confirmed. A revoked
 * key's query may have run, but nothing of it is sent; a mutation never runs ahead; nor does
 * anything of a key refused its request budget in the last second.
 */
let app: TestApp;

beforeAll(async () => {
  app = await startTestApp(__filename, {
    env: { FEATURE_STREAM_CONSUMER: 'off', RATE_LIMIT_PER_SECOND: '1', RATE_LIMIT_BURST: '3' },
  });
});
afterAll(() => app.stop());

const LIST = '{ studies(first: 1) { edges { node { id } } } }';
const CREATE =
  'mutation { createStudy(input: { name: "s", space: [{ name: "x", kind: FLOAT, low: 0, high: 1 }], objective: { metric: "m", direction: MINIMIZE }, budget: { trials: 1 } }) { id } }';

async function post(token: string, query: string) {
  const res = await fetch(app.url, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` },
    body: JSON.stringify({ query }),
  });
  return {
    status: res.status,
    body: (await res.json()) as { data?: unknown; errors?: { extensions?: unknown }[] },
  };
}

/** What another api process's revokeApiKey does: commit, then move the key epoch on. */
async function revokeElsewhere(id: string): Promise<void> {
  await app.db.dataSource.query(`UPDATE api_key SET revoked_at = now() WHERE id = $1`, [id]);
  const redis = createRedisClient(testRedisTarget(), 'other-process');
  await redis.set(`${app.redisPrefix}auth:epoch`, `moved-${id}`);
  await closeRedis(redis);
}

const key = async (role: Role) => app.services.apiKeys.create(null, { name: `k${role}`, role });

it("runs a confirmed key's query ahead of the check, and sends nothing once the key is revoked", async () => {
  const { key: k, token } = await key(Role.VIEWER);
  expect((await post(token, LIST)).status).toBe(200);
  await revokeElsewhere(k.id);
  const list = jest.spyOn(app.services.studies, 'list');
  try {
    const r = await post(token, LIST);
    expect(r.status).toBe(401);
    expect(r.body.data).toBeUndefined();
    expect(r.body.errors?.[0].extensions).toMatchObject({ reason: 'REVOKED_KEY' });
    // It did run: ahead of the check that refused it. Once refused, the key's verdict is
    // forgotten: nothing more runs ahead for it.
    expect(list).toHaveBeenCalledTimes(1);
    expect((await post(token, LIST)).status).toBe(401);
    expect(list).toHaveBeenCalledTimes(1);
  } finally {
    list.mockRestore();
  }
});

it('never runs a mutation ahead of the check', async () => {
  const { key: k, token } = await key(Role.EDITOR);
  expect((await post(token, LIST)).status).toBe(200);
  await revokeElsewhere(k.id);
  const create = jest.spyOn(app.services.studies, 'create');
  try {
    expect((await post(token, CREATE)).status).toBe(401);
    expect(create).not.toHaveBeenCalled();
  } finally {
    create.mockRestore();
  }
});

it('runs nothing ahead for a key refused its budget in the last second', async () => {
  const { token } = await key(Role.VIEWER);
  let refused = 0;
  for (let i = 0; i < 10 && refused === 0; i++)
    if ((await post(token, LIST)).status === 429) refused++;
  expect(refused).toBe(1);
  const list = jest.spyOn(app.services.studies, 'list');
  try {
    const r = await post(token, LIST);
    expect(r.status).toBe(429);
    expect(list).not.toHaveBeenCalled();
  } finally {
    list.mockRestore();
  }
});
