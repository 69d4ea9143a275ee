/**
 * @jest-environment ./test/support/onnx-environment.cjs
 */
import { ModelState, type ModelVersion } from '../src/domain/registry/model';
import { type DeploymentEvent } from '../src/domain/serving/deployment';
import { buildFloatDataset } from './support/datasets';
import { failingModel, slowModel } from './support/onnx-models';
import { startTestApp, type TestApp } from './support/test-app';
import { registerKnownModel } from './support/trained-model';

/**
 * The canary controller with real models: a deliberately slow canary and a deliberately
 * failing one are rolled back (registry state ROLLED_BACK, event published) while production
 * keeps answering; a healthy one steps up to all traffic and is promoted.
 */
let app: TestApp;
let datasetId: string;
const F = ['acct@1:a', 'acct@1:b'];
const admin = { keyId: 'test', name: 'test', role: 'ADMIN' as never };
let seq = 0;

async function promote(v: ModelVersion, to: ModelState): Promise<void> {
  const s = app.services.registry;
  await s.validate(admin, v.id, datasetId);
  const path = [ModelState.STAGING, ModelState.SHADOW, ModelState.CANARY, ModelState.PRODUCTION];
  for (const state of path.slice(0, path.indexOf(to) + 1))
    await s.transition(admin, v.id, state, 'test');
  // Routes follow registry moves through pub/sub, and at worst after their one-second cache;
  // a canary takes traffic once it is loaded and warmed up.
  await new Promise((r) => setTimeout(r, 1_100));
  if (to === ModelState.CANARY) await app.services.deployments.prepare('score');
}

const known = (weights: number[], bytes?: Uint8Array) =>
  registerKnownModel(app.services, {
    model: 'score',
    datasetId,
    features: F,
    weights,
    bias: 0,
    bytes,
  });

beforeAll(async () => {
  app = await startTestApp(__filename, {
    env: { FEATURE_STREAM_CONSUMER: 'off', CANARY_INTERVAL_MS: '0' },
  });
  const s = app.services;
  const T0 = Date.now() - 60_000;
  const snapshot = await buildFloatDataset(s, {
    view: 'acct',
    features: ['a', 'b'],
    rows: Array.from({ length: 40 }, (_, i) => ({
      entityKey: `u${i}`,
      at: T0,
      values: { a: i % 3, b: i % 2 },
      label: i % 2,
    })),
  });
  datasetId = snapshot.id;
  await promote(await known([1, 0]), ModelState.PRODUCTION);
  await s.deployments.create(admin, {
    endpoint: 'score',
    model: 'score',
    maxWaitUs: 0,
    warmupRequests: 3,
    canaryShare: 0.5,
    canaryPolicy: {
      steps: [0.5, 1],
      stepMs: 0,
      windowMs: 60_000,
      maxErrorRateDelta: 0.05,
      maxP99Ratio: 3,
      minSamples: 20,
    },
  });
}, 60_000);

afterAll(() => app.stop());

/** Sequential requests from distinct keys; failures are counted, not thrown. */
async function traffic(
  n: number,
  row: Record<string, number>,
  endpoint = 'score',
): Promise<{ versions: number[]; failures: number }> {
  const versions: number[] = [];
  let failures = 0;
  for (let i = 0; i < n; i++) {
    try {
      const r = await app.services.serving.predict(endpoint, `k${seq++}`, [], [row]);
      versions.push(r[0].version.version);
    } catch {
      failures++;
    }
  }
  return { versions, failures };
}

/**
 * The endpoint's events while `run` runs: at least `expected` of them (events leave through
 * the outbox's relay, so on a busy machine they may come a while after the change), then any
 * that follow within 200 ms.
 */
async function events(run: () => Promise<void>, expected: number): Promise<DeploymentEvent[]> {
  const sub = app.services.deployments.deploymentEvents('score');
  await sub.ready;
  const got: DeploymentEvent[] = [];
  const reading = (async () => {
    for await (const e of sub) got.push(e);
  })();
  await run();
  for (const end = Date.now() + 10_000; got.length < expected && Date.now() < end;)
    await new Promise((r) => setTimeout(r, 50));
  await new Promise((r) => setTimeout(r, 200));
  await sub.close();
  await reading;
  return got;
}

it('rolls back a slow canary while production keeps answering', async () => {
  // About 100 ms a request here: the verdict holds even when the machine is busy enough to
  // slow a couple of production requests past 30 ms (the baseline's p99 is its 2nd slowest).
  const slow = await known([0, 0], slowModel(F, 60_000));
  await promote(slow, ModelState.CANARY);
  // Enough for a p99 on each side (at least 100 samples: see judgeCanary).
  const t = await traffic(240, { [F[0]]: 1, [F[1]]: 1 });
  expect(t.failures).toBe(0);
  expect(t.versions).toContain(slow.version);
  const got = await events(async () => {
    const [review] = await app.services.canary.review();
    expect(review.action).toBe('ROLLBACK');
    expect(review.reason).toMatch(/^p99 .* ms vs baseline .* ms \(allowed ×3\)$/);
  }, 1);
  expect(got.map((e) => e.kind)).toEqual(['CANARY_ROLLED_BACK']);
  expect((await app.services.registry.version(slow.id)).state).toBe(ModelState.ROLLED_BACK);
  const after = await traffic(20, { [F[0]]: 1, [F[1]]: 1 });
  expect(new Set(after.versions)).toEqual(new Set([1]));
});

it('rolls back a failing canary', async () => {
  const failing = await known([0, 0], failingModel(F));
  await promote(failing, ModelState.CANARY);
  const t = await traffic(60, { [F[0]]: 1, [F[1]]: 99 });
  expect(t.failures).toBeGreaterThan(10);
  const [review] = await app.services.canary.review();
  expect(review).toMatchObject({ action: 'ROLLBACK' });
  expect(review.reason).toMatch(/^error rate/);
  expect((await app.services.registry.version(failing.id)).state).toBe(ModelState.ROLLED_BACK);
});

it('steps a healthy canary up to all traffic, then promotes it', async () => {
  const good = await known([0.5, 0.5]);
  await promote(good, ModelState.CANARY);
  // About 300 samples a side, so each side's p99 is its 4th slowest: one stall of a busy
  // machine on the canary's side cannot pass for a slow version (it did with 120 a side).
  await traffic(600, { [F[0]]: 1, [F[1]]: 1 });
  const got = await events(async () => {
    expect((await app.services.canary.review())[0]).toMatchObject({ action: 'STEP' });
    const all = await traffic(30, { [F[0]]: 1, [F[1]]: 1 });
    expect(new Set(all.versions)).toEqual(new Set([good.version]));
    expect((await app.services.canary.review())[0]).toMatchObject({ action: 'PROMOTE' });
  }, 2);
  expect(got.map((e) => [e.kind, e.share])).toEqual([
    ['CANARY_STEP', 1],
    ['CANARY_PROMOTED', 1],
  ]);
  const m = await app.services.registry.model('score');
  expect(m.productionVersionId).toBe(good.id);
});

it('lets a canary that arrives long after the last step dwell a whole step first', async () => {
  const s = app.services;
  const stepMs = 4_000;
  await s.deployments.create(admin, {
    endpoint: 'score-dwell',
    model: 'score',
    maxWaitUs: 0,
    warmupRequests: 3,
    canaryShare: 0.5,
    canaryPolicy: {
      steps: [0.5, 1],
      stepMs,
      windowMs: 60_000,
      maxErrorRateDelta: 0.05,
      maxP99Ratio: 3,
      minSamples: 20,
    },
  });
  await new Promise((r) => setTimeout(r, stepMs + 100)); // the endpoint is older than a step
  const late = await known([0.4, 0.6]);
  await promote(late, ModelState.CANARY);
  await s.deployments.prepare('score-dwell');
  await traffic(120, { [F[0]]: 1, [F[1]]: 1 }, 'score-dwell');
  const review = async () => (await s.canary.review()).find((d) => d.endpoint === 'score-dwell');
  expect(await review()).toMatchObject({
    action: 'HOLD',
    reason: 'healthy; waiting for the next step',
  });
  const arrived = (await app.services.registry.versionsByIds([late.id]))[0].stateChangedAt;
  await new Promise((r) => setTimeout(r, arrived.getTime() + stepMs + 50 - Date.now()));
  expect(await review()).toMatchObject({ action: 'STEP' });
}, 30_000);
