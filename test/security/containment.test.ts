/**
 * @jest-environment ./test/support/onnx-environment.cjs
 */
import fs from 'node:fs';
import path from 'node:path';
import { ServingRole } from '../../src/domain/serving/deployment';
import { type ApiProcess, spawnApi } from '../support/api-process';
import { type SecurityFixture, startSecurityFixture } from './fixture';

/**
 * What one bad input or one bad file can break is only itself: a poison row of the
 * prediction log is dead-lettered (with an alert) while every other prediction is written,
 * and a corrupt model fails its own endpoint, visibly, while the process stays ready.
 */
let fx: SecurityFixture;

beforeAll(async () => {
  fx = await startSecurityFixture(__filename);
}, 180_000);
afterAll(() => fx.app.stop());

async function gql(
  url: string,
  query: string,
  variables: Record<string, unknown> = {},
  token = fx.tokens.ADMIN,
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

const PREDICT =
  'mutation($k: String!, $e: [String!]!) { predict(endpoint: "fz-endpoint", requestKey: $k, entityKeys: $e) { id score } }';

async function logged(requestKey: string): Promise<number> {
  const rows: { n: number }[] = await fx.app.db.dataSource.query(
    'SELECT count(*)::int AS n FROM prediction_log WHERE request_key = $1',
    [requestKey],
  );
  return rows[0].n;
}

it('refuses a NUL in a request or entity key at the door, over GraphQL and REST', async () => {
  for (const vars of [
    { k: 'a\u0000b', e: ['e1'] },
    { k: 'ok', e: ['e\u0000'] },
  ]) {
    const r = await gql(fx.app.url, PREDICT, vars, fx.tokens.VIEWER);
    expect(r.body.data?.predict ?? null).toBeNull();
    expect(r.body.errors?.[0].extensions).toMatchObject({
      code: 'BAD_USER_INPUT',
      reason: 'INVALID_TEXT',
    });
  }
  const rest = await fetch(fx.app.url.replace('/graphql', '/v1/predict/fz-endpoint'), {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${fx.tokens.VIEWER}` },
    body: JSON.stringify({ requestKey: 'x\u0000', entityKeys: ['e1'] }),
  });
  expect(rest.status).toBe(400);
  expect(
    ((await rest.json()) as { errors: { extensions: unknown }[] }).errors[0].extensions,
  ).toMatchObject({
    code: 'BAD_USER_INPUT',
    reason: 'INVALID_TEXT',
    details: { argument: 'body.requestKey', problem: 'NUL_CHARACTER' },
  });
});

it('dead-letters a poison row with an alert and writes every other prediction', async () => {
  const s = fx.app.services;
  // Rows that reach the log past the door (any writer may have a bug): one is poison.
  const template = {
    deploymentId: (await s.deployments.status('fz-endpoint')).deployment.id,
    versionId: fx.version.id,
    role: ServingRole.PRODUCTION,
    entityKey: 'e1',
    inputs: Float32Array.of(1, Number.NaN),
    score: 0.5,
    latencyUs: 10,
    at: new Date(),
  };
  const rows = ['good-1', 'poison\u0000', 'good-2', 'good-3'].map((requestKey) => ({
    ...template,
    id: globalThis.crypto.randomUUID(),
    requestKey,
  }));
  await s.predictionLog.append(rows);
  await s.predictionLog.flush();
  for (const k of ['good-1', 'good-2', 'good-3']) expect(await logged(k)).toBe(1);
  expect(s.predictionLog.stats()).toMatchObject({ lost: 0, deadLettered: 1, buffered: 0 });

  const dead = await gql(
    fx.app.url,
    '{ deadLetters(source: "prediction_log") { edges { node { source error payload } } } }',
  );
  const letters = (
    dead.body.data?.deadLetters as { edges: { node: { payload: string; error: string } }[] }
  ).edges;
  expect(letters).toHaveLength(1);
  expect(letters[0].node.payload).toContain('poison\\\\u0000');
  // The letter keeps the row's inputs as numbers (null: no value), not as a typed array.
  expect(letters[0].node.payload).toContain('"inputs":[1,null]');
  const alerts = await gql(
    fx.app.url,
    '{ alerts(open: true, first: 20) { edges { node { kind summary } } } }',
  );
  expect(
    (
      alerts.body.data?.alerts as { edges: { node: { kind: string; summary: string } }[] }
    ).edges.map((e) => e.node.kind),
  ).toContain('DEAD_LETTER');

  // The log keeps flowing: a prediction made now is written.
  const p = await gql(fx.app.url, PREDICT, { k: 'after-poison', e: ['e1', 'e2'] });
  expect(p.status).toBe(200);
  await s.predictionLog.flush();
  expect(await logged('after-poison')).toBe(2);
  expect(
    (await gql(fx.app.url, '{ deadLetters { edges { node { id } } } }', {}, fx.tokens.EDITOR)).body
      .errors?.[0].extensions,
  ).toMatchObject({ code: 'FORBIDDEN' });
});

describe('a corrupt model file', () => {
  let b: ApiProcess | undefined;
  afterAll(async () => {
    await b?.stop();
  });

  it('fails its own endpoint, visibly, and keeps the process ready', async () => {
    const file = path.join(fx.app.dataDir, 'artifacts', fx.version.artifact.key);
    const bytes = fs.readFileSync(file);
    bytes[bytes.length >> 1] ^= 0xff;
    fs.writeFileSync(file, bytes);

    // A new endpoint over it is refused: the stored file is checked, not a copy in memory.
    const create = await gql(
      fx.app.url,
      'mutation { createDeployment(input: { endpoint: "fz-two", model: "fz_model" }) { ready } }',
    );
    expect(create.body.errors?.[0].extensions).toMatchObject({
      code: 'CONFLICT',
      reason: 'ARTIFACT_CHECKSUM_MISMATCH',
    });

    // A fresh process cannot load it: ready all the same, the failure named in the detail.
    b = await spawnApi({ ...fx.app.env, LOG_LEVEL: 'silent' }, { readyTimeoutMs: 60_000 });
    const ready = await fetch(`${b.base}/readyz`);
    expect(ready.status).toBe(200);
    const detail = (await ready.json()) as {
      failedModels: { endpoint: string; version: string }[];
    };
    expect(detail.failedModels).toEqual([
      expect.objectContaining({ endpoint: 'fz-endpoint', version: 'fz_model@1' }),
    ]);
    const p = await gql(b.url, PREDICT, { k: 'on-corrupt', e: ['e1'] });
    expect(p.body.errors?.[0].extensions).toMatchObject({
      code: 'SERVICE_UNAVAILABLE',
      reason: 'MODEL_UNAVAILABLE',
    });
    const rest = await fetch(`${b.base}/v1/predict/fz-endpoint`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${fx.tokens.ADMIN}` },
      body: JSON.stringify({ requestKey: 'on-corrupt', entityKeys: ['e1'] }),
    });
    expect(rest.status).toBe(503);
    const status = await gql(
      b.url,
      '{ deployment(endpoint: "fz-endpoint") { ready versions { ready error } } }',
    );
    expect(status.body.data?.deployment).toMatchObject({
      ready: false,
      versions: [{ ready: false, error: expect.stringMatching(/corrupt/i) }],
    });
    // Everything else still answers.
    expect((await gql(b.url, '{ viewer { role } }')).status).toBe(200);
  });
});
