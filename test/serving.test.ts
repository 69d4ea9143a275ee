/**
 * @jest-environment ./test/support/onnx-environment.cjs
 */
import { randomUUID } from 'node:crypto';
import { ModelState, type ModelVersion } from '../src/domain/registry/model';
import { ServingRole } from '../src/domain/serving/deployment';
import { toGlobalId } from '../src/schema/node.types';
import {
  CreateDeploymentDocument,
  PredictDocument,
  RecordFeedbackDocument,
  SetAbTestDocument,
  ShadowComparisonDocument,
} from './generated/graphql';
import { buildFloatDataset } from './support/datasets';
import { GraphQLTestClient } from './support/graphql-client';
import { startTestApp, type TestApp } from './support/test-app';
import { registerKnownModel } from './support/trained-model';

/**
 * Serving on real Postgres, Redis and ONNX models with known weights: features from the
 * online store by the model's refs, per-version attribution, warm-up before ready, canary
 * assignment that sticks to the request key, a shadow that never answers, micro-batched
 * concurrent callers each getting their own row, and feedback joined to its prediction.
 */
const T0 = Date.now() - 3_600_000;
let app: TestApp;
let gql: GraphQLTestClient;
const F = ['acct@1:a', 'acct@1:b'];
let v1: ModelVersion;
let v2: ModelVersion;
let v3: ModelVersion;
const sigmoid = (z: number) => 1 / (1 + Math.exp(-z));
const values: Record<string, { a: number; b: number }> = {};

async function promote(v: ModelVersion, to: ModelState, datasetId: string): Promise<void> {
  const s = app.services.registry;
  await s.validate(adminActor(), v.id, datasetId);
  const path = [ModelState.STAGING, ModelState.SHADOW, ModelState.CANARY, ModelState.PRODUCTION];
  for (const state of path.slice(0, path.indexOf(to) + 1))
    await s.transition(adminActor(), v.id, state, 'test');
}
const adminActor = () => ({ keyId: 'test', name: 'test', role: 'ADMIN' as never });

beforeAll(async () => {
  app = await startTestApp(__filename, { env: { FEATURE_STREAM_CONSUMER: 'off' } });
  gql = new GraphQLTestClient(app.url, app.adminToken);
  const s = app.services;
  for (let i = 0; i < 50; i++) values[`u${i}`] = { a: (i % 7) - 3, b: (i % 5) / 2 };
  const snapshot = await buildFloatDataset(s, {
    view: 'acct',
    features: ['a', 'b'],
    rows: Object.entries(values).map(([entityKey, v], i) => ({
      entityKey,
      at: T0,
      values: v,
      label: i % 2,
    })),
  });
  v1 = await registerKnownModel(s, {
    model: 'risk',
    datasetId: snapshot.id,
    features: F,
    weights: [1, 0],
    bias: 0,
  });
  v2 = await registerKnownModel(s, {
    model: 'risk',
    datasetId: snapshot.id,
    features: F,
    weights: [0, 1],
    bias: 0,
  });
  v3 = await registerKnownModel(s, {
    model: 'risk',
    datasetId: snapshot.id,
    features: F,
    weights: [-1, -1],
    bias: 0,
  });
  await promote(v1, ModelState.PRODUCTION, snapshot.id);
  await promote(v2, ModelState.CANARY, snapshot.id);
  await promote(v3, ModelState.SHADOW, snapshot.id);
}, 60_000);

afterAll(() => app.stop());

it('deploys with every version warmed up, scores from online features, and names the version', async () => {
  const d = await gql.ok(CreateDeploymentDocument, {
    input: { endpoint: 'risk', model: 'risk', canaryShare: 0.3, warmupRequests: 5 },
  });
  expect(d.createDeployment.ready).toBe(true);
  expect(d.createDeployment.versions.map((v) => [v.role, v.version.version, v.ready])).toEqual([
    ['PRODUCTION', 1, true],
    ['CANARY', 2, true],
    ['SHADOW', 3, true],
  ]);

  const ready = (await (await fetch(app.url.replace('/graphql', '/readyz'))).json()) as {
    checks: Record<string, { ok: boolean }>;
  };
  expect(ready.checks.endpoints).toEqual({ ok: true });

  const r = await gql.ok(PredictDocument, {
    endpoint: 'risk',
    requestKey: 'user-1',
    entityKeys: ['u4', 'u9'],
  });
  for (const p of r.predict) {
    const x = values[p.entityKey as string];
    const expected = p.version.version === 1 ? sigmoid(x.a) : sigmoid(x.b);
    expect(p.score).toBeCloseTo(expected, 6);
    expect(new Date(p.asOf as string).getTime()).toBe(T0);
    expect(p.role).toBe(p.version.version === 1 ? 'PRODUCTION' : 'CANARY');
  }
});

it('answers the lean JSON path with the same code: same version, same score, same error codes', async () => {
  const post = async (path: string, body: unknown, token: string | null = app.adminToken) => {
    const res = await fetch(app.url.replace('/graphql', path), {
      method: 'POST',
      headers: {
        'content-type': 'application/json',
        ...(token ? { authorization: `Bearer ${token}` } : {}),
      },
      body: JSON.stringify(body),
    });
    return { status: res.status, body: (await res.json()) as Record<string, unknown> };
  };
  const viaGraph = await gql.ok(PredictDocument, {
    endpoint: 'risk',
    requestKey: 'user-7',
    entityKeys: ['u3'],
  });
  const viaJson = await post('/v1/predict/risk', { requestKey: 'user-7', entityKeys: ['u3'] });
  expect(viaJson.status).toBe(200);
  const [p] = viaJson.body.predictions as {
    score: number;
    version: string;
    versionId: string;
    role: string;
    entityKey: string;
    asOf: string;
  }[];
  const g = viaGraph.predict[0];
  expect(p).toMatchObject({
    entityKey: 'u3',
    score: g.score,
    version: `risk@${g.version.version}`,
    role: g.role,
    asOf: new Date(T0).toISOString(),
  });
  expect(p.versionId).toBe(g.version.id);

  const inline = await post('/v1/predict/risk', {
    requestKey: 'user-7',
    rows: [{ 'acct@1:a': 1 }],
  });
  expect(inline.status).toBe(400);
  expect(JSON.stringify(inline.body)).toContain('missing acct@1:b');
  const noKey = await post('/v1/predict/risk', { entityKeys: ['u3'] });
  expect(noKey.status).toBe(400);
  expect(JSON.stringify(noKey.body)).toContain('requestKey');
  const unknown = await post('/v1/predict/nope', { requestKey: 'k', entityKeys: ['u3'] });
  expect(unknown.status).toBe(404);
  expect(JSON.stringify(unknown.body)).toContain('DEPLOYMENT_NOT_FOUND');
  expect((await post('/v1/predict/risk', { requestKey: 'k' }, null)).status).toBe(401);
});

it('gives each row its own entity’s asOf, over GraphQL and the JSON path alike', async () => {
  // Three entities of different ages, one with no features at all, in an order where a
  // time shared across rows (the oldest, the newest, the first's) would show.
  const newer = T0 + 40 * 60_000;
  const older = T0 + 10 * 60_000;
  const versions = await app.services.featureRegistry.liveVersions('acct');
  await app.services.ingestion.ingest(
    versions,
    [
      { entityKey: 'age-new', eventId: 'n1', eventTs: newer, fields: { a: 1, b: 1 } },
      { entityKey: 'age-old', eventId: 'o1', eventTs: older, fields: { a: 2, b: 2 } },
    ],
    'test',
  );
  const keys = ['age-new', 'age-none', 'age-old', 'u5'];
  const expected = [
    new Date(newer).toISOString(),
    null,
    new Date(older).toISOString(),
    new Date(T0).toISOString(),
  ];
  const g = await gql.ok(PredictDocument, {
    endpoint: 'risk',
    requestKey: 'ages',
    entityKeys: keys,
  });
  expect(g.predict.map((p) => [p.entityKey, p.asOf])).toEqual(keys.map((k, i) => [k, expected[i]]));
  const res = await fetch(app.url.replace('/graphql', '/v1/predict/risk'), {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${app.adminToken}` },
    body: JSON.stringify({ requestKey: 'ages', entityKeys: [...keys].reverse() }),
  });
  expect(res.status).toBe(200);
  const j = (await res.json()) as { predictions: { entityKey: string; asOf: string | null }[] };
  expect(j.predictions.map((p) => [p.entityKey, p.asOf])).toEqual(
    keys.map((k, i) => [k, expected[i]]).reverse(),
  );
  // Alone, each entity gives the same time as in company.
  for (const [i, k] of keys.entries()) {
    const [alone] = await app.services.serving.predict('risk', 'ages', [k], null);
    expect(alone.asOf?.toISOString() ?? null).toBe(expected[i]);
  }
});

it('keeps each request key on one version, sends the canary its share, and never answers from the shadow', async () => {
  const seen = new Map<string, number>();
  for (let i = 0; i < 300; i++) {
    const key = `user-${i}`;
    const r = await app.services.serving.predict('risk', key, ['u1'], null);
    seen.set(key, r[0].version.version);
    expect(r[0].version.id).not.toBe(v3.id);
  }
  for (let i = 0; i < 300; i += 7) {
    const again = await app.services.serving.predict('risk', `user-${i}`, ['u1'], null);
    expect(again[0].version.version).toBe(seen.get(`user-${i}`));
  }
  const canary = [...seen.values()].filter((v) => v === 2).length / seen.size;
  expect(canary).toBeGreaterThan(0.2);
  expect(canary).toBeLessThan(0.4);
  // The shadow scored copies off the request path; they are logged, tagged SHADOW.
  await new Promise((r) => setTimeout(r, 200));
  await app.services.predictionLog.flush();
  const rows = (await app.db.dataSource.query(
    `SELECT role, model_version_id, count(*)::int AS n FROM prediction_log GROUP BY 1, 2`,
  )) as { role: string; model_version_id: string; n: number }[];
  const shadow = rows.find((x) => x.role === ServingRole.SHADOW);
  expect(shadow?.model_version_id).toBe(v3.id);
  expect(shadow?.n).toBeGreaterThan(300);
  expect(app.services.predictionLog.stats().lost).toBe(0);
  // The shadow's scores beside the answers given for the same requests.
  const cmp = await gql.ok(ShadowComparisonDocument, { endpoint: 'risk' });
  expect(cmp.shadowComparison).toHaveLength(1);
  expect(cmp.shadowComparison[0]).toMatchObject({ shadow: { version: 3 } });
  expect(cmp.shadowComparison[0].pairs).toBeGreaterThan(300);
  expect(cmp.shadowComparison[0].meanAbsDiff).toBeGreaterThan(0);
  // Metrics name the version that ran, shadow included.
  const metrics = await (await fetch(app.url.replace('/graphql', '/metrics'))).text();
  expect(metrics).toMatch(
    /aether_predictions_total\{endpoint="risk",version="risk@3",role="SHADOW",outcome="ok"\} \d+/,
  );
  expect(metrics).toMatch(
    /aether_predictions_total\{endpoint="risk",version="risk@2",role="CANARY",outcome="ok"\} \d+/,
  );
});

it('gives each of many concurrent callers its own row (micro-batched), and joins feedback to its prediction', async () => {
  const rows = Array.from({ length: 64 }, (_, i) => ({ [F[0]]: i / 10 - 3, [F[1]]: 0 }));
  const answers = await Promise.all(
    rows.map((row, i) => app.services.serving.predict('risk', `prod-only-${i}`, [], [row])),
  );
  answers.forEach((a, i) => {
    const p = a[0];
    const expected = p.version.version === 1 ? sigmoid(rows[i][F[0]]) : sigmoid(rows[i][F[1]]);
    expect(p.score).toBeCloseTo(expected, 6);
  });

  const bad = await gql.request(PredictDocument, {
    endpoint: 'risk',
    requestKey: 'x',
    entityKeys: [],
    rows: [{ [F[0]]: 1, extra: 2 }],
  });
  expect(bad.errors?.[0].extensions).toMatchObject({
    code: 'BAD_USER_INPUT',
    reason: 'INVALID_FEATURES',
  });
  expect(bad.errors?.[0].message).toContain(`missing ${F[1]}`);
  expect(bad.errors?.[0].message).toContain('extra');

  const p = answers[0][0];
  const fb = await gql.ok(RecordFeedbackDocument, { predictionId: p.id, label: 1 });
  expect(fb.recordFeedback).toBe(1);
  const [row] = (await app.db.dataSource.query(
    `SELECT label, model_version_id FROM prediction_log WHERE id = $1`,
    [p.id],
  )) as { label: number; model_version_id: string }[];
  expect(row).toEqual({ label: 1, model_version_id: p.version.id });
  const byKey = await gql.ok(RecordFeedbackDocument, { requestKey: 'prod-only-5', label: 0 });
  expect(byKey.recordFeedback).toBe(1);
  const none = await gql.request(RecordFeedbackDocument, { requestKey: 'nobody', label: 0 });
  expect(none.errors?.[0].extensions).toMatchObject({ code: 'NOT_FOUND' });
  // An id that is not a UUID names no prediction either: not a database error.
  for (const predictionId of ['not-a-uuid', "' OR 1=1 --", 'x'.repeat(200)]) {
    const bad = await gql.request(RecordFeedbackDocument, { predictionId, label: 0 });
    expect(bad.errors?.[0].extensions).toMatchObject({
      code: 'NOT_FOUND',
      reason: 'PREDICTION_NOT_FOUND',
    });
  }
});

it('splits keys over A/B arms by weight, each key staying on its arm, and refuses an arm that does not serve', async () => {
  const set = await gql.ok(SetAbTestDocument, {
    endpoint: 'risk',
    arms: [
      { versionId: toGlobalId('ModelVersion', v1.id), weight: 1 },
      { versionId: toGlobalId('ModelVersion', v2.id), weight: 1 },
    ],
  });
  expect(set.setABTest.deployment.abArms).toHaveLength(2);
  const first = new Map<string, number>();
  for (let i = 0; i < 200; i++) {
    const [p] = await app.services.serving.predict('risk', `ab-${i}`, ['u1'], null);
    expect(p.role).toBe(ServingRole.ARM);
    first.set(`ab-${i}`, p.version.version);
  }
  for (let i = 0; i < 200; i += 9)
    expect(
      (await app.services.serving.predict('risk', `ab-${i}`, ['u1'], null))[0].version.version,
    ).toBe(first.get(`ab-${i}`));
  const share = [...first.values()].filter((v) => v === 2).length / first.size;
  expect(share).toBeGreaterThan(0.38);
  expect(share).toBeLessThan(0.62);
  const shadowArm = await gql.request(SetAbTestDocument, {
    endpoint: 'risk',
    arms: [{ versionId: toGlobalId('ModelVersion', v3.id), weight: 1 }],
  });
  expect(shadowArm.errors?.[0].extensions).toMatchObject({ code: 'CONFLICT' });
  await gql.ok(SetAbTestDocument, { endpoint: 'risk', arms: [] });
  const [after] = await app.services.serving.predict('risk', 'ab-0', ['u1'], null);
  expect(after.role).not.toBe(ServingRole.ARM);
});

it('logs what each prediction was given and answered, exactly, whatever its text or score', async () => {
  const [p] = await app.services.serving.predict(
    'risk',
    'log-exact',
    [],
    [{ [F[0]]: 0.25, [F[1]]: -1.5 }],
  );
  await app.services.predictionLog.flush();
  const read = async (id: string) =>
    (
      (await app.db.dataSource.query(
        `SELECT deployment_id, model_version_id, role, request_key, entity_key, prediction_inputs(inputs_f32) AS inputs, score, latency_us, created_at FROM prediction_log WHERE id = $1`,
        [id],
      )) as Record<string, unknown>[]
    )[0];
  const logged = await read(p.id);
  expect(logged).toMatchObject({
    model_version_id: p.version.id,
    role: p.role,
    request_key: 'log-exact',
    entity_key: null,
    score: p.score,
  });
  expect(logged.inputs).toEqual([0.25, -1.5]);
  expect(Math.abs((logged.created_at as Date).getTime() - Date.now())).toBeLessThan(60_000);

  // Text that array literals and JSON both escape, a score that is not a number.
  const odd = {
    id: randomUUID(),
    deploymentId: logged.deployment_id as string,
    versionId: p.version.id,
    role: ServingRole.PRODUCTION,
    requestKey: 'q"u\\o\'te {a,b} ✓ \n end',
    entityKey: 'NULL',
    inputs: Float32Array.of(Number.NaN, 1e-7, -0, 3.5e38, -1e-45, 3.4028234663852886e38),
    score: Number.NaN,
    latencyUs: 12,
    at: new Date(T0),
  };
  await app.services.predictionLog.append([odd]);
  await app.services.predictionLog.flush();
  const back = await read(odd.id);
  expect(back).toMatchObject({
    request_key: odd.requestKey,
    entity_key: 'NULL',
    // Exactly the float32 values the model was given (3.5e38 is past float32: Infinity).
    inputs: [null, Math.fround(1e-7), -0, Infinity, -1.401298464324817e-45, 3.4028234663852886e38],
    latency_us: 12,
  });
  expect(back.score).toBeNaN();
  expect((back.created_at as Date).getTime()).toBe(T0);
  expect(app.services.predictionLog.stats()).toMatchObject({ lost: 0, deadLettered: 0 });
});

it('refuses a logged prediction naming a version that does not exist, and a logged version’s deletion, as foreign keys would', async () => {
  const [p] = await app.services.serving.predict(
    'risk',
    'log-refs',
    [],
    [{ [F[0]]: 0.5, [F[1]]: 0.5 }],
  );
  await app.services.predictionLog.flush();
  const [{ deployment_id: deploymentId }] = (await app.db.dataSource.query(
    `SELECT deployment_id FROM prediction_log WHERE id = $1`,
    [p.id],
  )) as { deployment_id: string }[];
  // The references are checked once per INSERT (ADR 0038); a batch with one bad row is split
  // until the row is found, as with any poison row, and the rest is written.
  const row = (versionId: string) => ({
    id: randomUUID(),
    deploymentId,
    versionId,
    role: ServingRole.PRODUCTION,
    requestKey: 'log-refs',
    entityKey: null,
    inputs: Float32Array.of(0.5, 0.5),
    score: 0.5,
    latencyUs: 1,
    at: new Date(),
  });
  const good = [row(p.version.id), row(p.version.id)];
  const orphan = row(randomUUID());
  await app.services.predictionLog.append([good[0], orphan, good[1]]);
  await app.services.predictionLog.flush();
  expect(app.services.predictionLog.stats()).toMatchObject({ lost: 0, deadLettered: 1 });
  const written = (await app.db.dataSource.query(
    `SELECT id FROM prediction_log WHERE id = ANY($1) ORDER BY id`,
    [[...good, orphan].map((r) => r.id)],
  )) as { id: string }[];
  expect(written.map((r) => r.id)).toEqual(good.map((r) => r.id).sort());
  // Whatever else a foreign key refused is refused too, with its code.
  const refused = (sql: string, params: unknown[], message: RegExp) =>
    expect(app.db.dataSource.query(sql, params)).rejects.toMatchObject({
      driverError: { code: '23503' },
      message,
    });
  for (const [table, id] of [
    ['model_version', p.version.id],
    ['deployment', deploymentId],
  ]) {
    await refused(`DELETE FROM ${table} WHERE id = $1`, [id], /named by the prediction log/);
    await refused(
      `UPDATE ${table} SET id = $2 WHERE id = $1`,
      [id, randomUUID()],
      /named by the prediction log/,
    );
    await refused(`TRUNCATE ${table} CASCADE`, [], /named by the prediction log/);
  }
  await refused(
    `UPDATE prediction_log SET model_version_id = $2 WHERE id = $1`,
    [p.id, orphan.versionId],
    /model version .* does not exist/,
  );
  // A label is an update too: it is not checked, and goes through.
  await app.db.dataSource.query(`UPDATE prediction_log SET label = 1 WHERE id = $1`, [p.id]);
});
