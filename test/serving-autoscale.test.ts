/**
 * @jest-environment ./test/support/onnx-environment.cjs
 */
import { ModelState } from '../src/domain/registry/model';
import { type DeploymentEvent } from '../src/domain/serving/deployment';
import {
  CreateDeploymentDocument,
  DeploymentReplicasDocument,
  ReviewScalingDocument,
  SetAutoscalingDocument,
} from './generated/graphql';
import { buildFloatDataset } from './support/datasets';
import { GraphQLTestClient } from './support/graphql-client';
import { slowModel } from './support/onnx-models';
import { startTestApp, type TestApp } from './support/test-app';
import { registerKnownModel } from './support/trained-model';

/**
 * The autoscaler with a real, deliberately slow model (a few ms a row) behind an endpoint
 * that does not batch: concurrent callers queue for its one replica, two hot passes add a
 * replica (published as SCALED), the new replica warms up before it takes traffic and every
 * caller still gets its answer; idle passes take it back down; a cool-down holds it; the
 * bounds are enforced when the policy changes. Passes are run through the graph.
 */
let app: TestApp;
let gql: GraphQLTestClient;
const F = ['acct@1:a', 'acct@1:b'];
const admin = { keyId: 'test', name: 'test', role: 'ADMIN' as never };

beforeAll(async () => {
  app = await startTestApp(__filename, {
    env: { FEATURE_STREAM_CONSUMER: 'off', AUTOSCALE_INTERVAL_MS: '0' },
  });
  gql = new GraphQLTestClient(app.url, app.adminToken);
  const s = app.services;
  const snapshot = await buildFloatDataset(s, {
    view: 'acct',
    features: ['a', 'b'],
    rows: Array.from({ length: 20 }, (_, i) => ({
      entityKey: `u${i}`,
      at: Date.now() - 60_000,
      values: { a: i, b: 1 },
      label: i % 2,
    })),
  });
  const v = await registerKnownModel(s, {
    model: 'slow',
    datasetId: snapshot.id,
    features: F,
    weights: [0, 0],
    bias: 0,
    bytes: slowModel(F, 5_000),
  });
  await s.registry.validate(admin, v.id, snapshot.id);
  for (const to of [
    ModelState.STAGING,
    ModelState.SHADOW,
    ModelState.CANARY,
    ModelState.PRODUCTION,
  ])
    await s.registry.transition(admin, v.id, to, 'test');
}, 60_000);

afterAll(() => app.stop());

/** `callers` concurrent loops of single-row predictions until `stop()`; counts answers. */
function load(callers: number): { stop(): Promise<{ answered: number; failed: number }> } {
  let running = true;
  let answered = 0;
  let failed = 0;
  const loops = Array.from({ length: callers }, async (_, c) => {
    for (let i = 0; running; i++)
      await app.services.serving.predict('slow', `k${c}-${i}`, [], [{ [F[0]]: 1, [F[1]]: 2 }]).then(
        (r) => (r[0].score === 0.5 ? answered++ : failed++),
        () => failed++,
      );
  });
  return {
    async stop() {
      running = false;
      await Promise.all(loops);
      return { answered, failed };
    },
  };
}

async function review(): Promise<{ replicas: number; changed: boolean; reason: string }> {
  const r = await gql.ok(ReviewScalingDocument, {});
  const mine = r.reviewScaling.filter((d) => d.endpoint === 'slow');
  expect(mine).toHaveLength(1);
  return mine[0];
}

async function replicas(): Promise<number> {
  const d = await gql.ok(DeploymentReplicasDocument, { endpoint: 'slow' });
  return d.deployment?.versions[0].replicas ?? -1;
}

it('adds a replica under a queue, warms it up first, publishes it, and scales back down when idle', async () => {
  const created = await gql.ok(CreateDeploymentDocument, {
    input: {
      endpoint: 'slow',
      model: 'slow',
      maxBatch: 1,
      maxWaitUs: 0,
      warmupRequests: 2,
      autoscalePolicy: {
        minReplicas: 1,
        maxReplicas: 2,
        targetP99Ms: 60_000,
        scaleUpQueueDepth: 2,
        upAfter: 2,
        downAfter: 2,
        cooldownMs: 0,
      },
    },
  });
  expect(created.createDeployment.versions.map((v) => v.replicas)).toEqual([1]);

  const sub = app.services.deployments.deploymentEvents('slow');
  await sub.ready;
  const events: DeploymentEvent[] = [];
  const reading = (async () => {
    for await (const e of sub) events.push(e);
  })();

  const traffic = load(12);
  await new Promise((r) => setTimeout(r, 300));
  const first = await review();
  expect(first).toMatchObject({ replicas: 1, changed: false });
  expect(first.reason).toMatch(/^steady: queue (\d+\.\d)\/replica/); // hot once: not yet
  await new Promise((r) => setTimeout(r, 300));
  const second = await review();
  expect(second).toMatchObject({ replicas: 2, changed: true });
  expect(second.reason).toMatch(/^hot for 2 intervals: queue/);
  expect(await replicas()).toBe(2);
  // At the maximum: hot passes hold.
  await new Promise((r) => setTimeout(r, 300));
  expect(await review()).toMatchObject({ replicas: 2, changed: false });
  const served = await traffic.stop();
  expect(served.failed).toBe(0);
  expect(served.answered).toBeGreaterThan(12);

  // Idle: two cold passes in a row take it back to the minimum (the first pass after the
  // load may still see the queue of its last requests; the fleet's counts are kept by the
  // second, so passes a second apart each judge a second of their own).
  const idle: { replicas: number; changed: boolean; reason: string }[] = [];
  while (idle.length < 5 && !idle.some((r) => r.changed)) {
    await new Promise((r) => setTimeout(r, 1_100));
    idle.push(await review());
  }
  expect(idle.length).toBeGreaterThanOrEqual(2);
  expect(idle[idle.length - 1]).toMatchObject({ replicas: 1, changed: true });
  expect(idle[idle.length - 1].reason).toMatch(/^cold for 2 intervals/);
  expect(await replicas()).toBe(1);

  // The decisions' events leave through the outbox's relay: on a busy machine a while later.
  for (
    const end = Date.now() + 10_000;
    events.filter((e) => e.kind === 'SCALED').length < 2 && Date.now() < end;
  )
    await new Promise((r) => setTimeout(r, 50));
  await new Promise((r) => setTimeout(r, 200));
  await sub.close();
  await reading;
  const scaled = events.filter((e) => e.kind === 'SCALED');
  expect(scaled.map((e) => e.replicas)).toEqual([2, 1]);
  expect(scaled[0].detail).toMatch(/^slow@1: hot for 2 intervals/);
  expect(scaled[1].detail).toMatch(/^slow@1: cold for 2 intervals/);
});

it('holds within the cool-down, and applies new bounds at once', async () => {
  const set = await gql.ok(SetAutoscalingDocument, {
    endpoint: 'slow',
    policy: { cooldownMs: 3_600_000 },
  });
  expect(set.setAutoscaling.deployment.autoscalePolicy).toEqual({
    minReplicas: 1,
    maxReplicas: 2,
    cooldownMs: 3_600_000,
  });
  // The last change (down to 1, in the test before) is within the hour: hot passes hold.
  const traffic = load(12);
  for (let i = 0; i < 3; i++) {
    await new Promise((r) => setTimeout(r, 250));
    const r = await review();
    expect(r.replicas).toBe(1);
    if (i > 0) expect(r.reason).toMatch(/^hot but cooling down/);
  }
  expect((await traffic.stop()).failed).toBe(0);

  // A minimum above the count is applied on the next pass, cool-down or not.
  await gql.ok(SetAutoscalingDocument, { endpoint: 'slow', policy: { minReplicas: 2 } });
  const bounded = await review();
  expect(bounded).toMatchObject({ replicas: 2, changed: true });
  expect(bounded.reason).toMatch(/^bounds/);
  expect(await replicas()).toBe(2);

  const bad = await gql.request(SetAutoscalingDocument, {
    endpoint: 'slow',
    policy: { minReplicas: 3, maxReplicas: 2 },
  });
  expect(bad.errors?.[0].message).toMatch(/maxReplicas must be at least minReplicas/);
  expect(bad.errors?.[0].extensions?.code).toBe('BAD_USER_INPUT');
});
