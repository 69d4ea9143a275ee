/**
 * @jest-environment ./test/support/onnx-environment.cjs
 */
import { LineageDirection } from '../src/domain/lineage/lineage';
import { ModelState } from '../src/domain/registry/model';
import { localIdOf, toGlobalId } from '../src/schema/node.types';
import {
  AdvanceRetrainingsDocument,
  CreateMonitorDocument,
  OpenAlertsDocument,
  RetrainingsDocument,
  ReviewCanariesNowDocument,
  RunMonitorDocument,
  SetRetrainingPolicyDocument,
} from './generated/graphql';
import { GraphQLTestClient } from './support/graphql-client';
import { type RunnerProcess, until } from './support/runner-process';
import { servedChampion } from './support/champion';
import { startTestApp, type TestApp } from './support/test-app';

/**
 * The closed loop, through the graph, with a real gpu-runner process training the models:
 * the world turns (the label now goes against the feature the champion learned), feedback
 * arrives, the performance monitor alerts, the policy retrains on a fresh point-in-time
 * snapshot of the labelled traffic (validated first), the challenger beats the champion on
 * the held-out part behind the registry's gate, shadows, is the canary, and the canary
 * controller promotes it — with lineage from the alert to the new version. Then a retraining
 * whose data fails validation stops and raises a DATA_VALIDATION alert.
 */
let app: TestApp;
let gql: GraphQLTestClient;
let runner: RunnerProcess;
const ENTITIES = 400;
let a: number[];
let seq = 0;

beforeAll(async () => {
  app = await startTestApp(__filename, {
    env: { FEATURE_STREAM_CONSUMER: 'off', MONITOR_INTERVAL_MS: '0', CANARY_INTERVAL_MS: '0' },
  });
  gql = new GraphQLTestClient(app.url, app.adminToken);
  ({ a, runner } = await servedChampion(app, {
    seed: 3,
    entities: ENTITIES,
    runnerName: 'loop',
    canaryPolicy: {
      steps: [0.5, 1],
      stepMs: 0,
      windowMs: 600_000,
      maxErrorRateDelta: 0.05,
      maxP99Ratio: 20,
      minSamples: 5,
    },
  }));
}, 120_000);

afterAll(async () => {
  runner.child.kill('SIGKILL');
  await runner.exited;
  await app.stop();
});

/** One prediction per entity, each labelled by `truth` through recordFeedback. */
async function labelledTraffic(truth: (a: number) => number): Promise<void> {
  for (let i = 0; i < ENTITIES; i++) {
    const [p] = await app.services.serving.predict('risk', `user-${seq++}`, [`u${i}`], null);
    await app.services.serving.recordFeedback({ predictionId: p.id }, truth(a[i]));
  }
}

const retrainings = async () => (await gql.ok(RetrainingsDocument, { model: 'risk' })).retrainings;

it('alert → retrain on validated data → gate → shadow → canary → production, with lineage', async () => {
  await gql.ok(SetRetrainingPolicyDocument, {
    model: 'risk',
    policy: {
      cooldownMs: 0,
      dataWindowMs: 3_600_000,
      minRows: 100,
      minAucVsChampion: 0.005,
      shadowMs: 1_000,
    },
  });
  const { createMonitor: monitor } = await gql.ok(CreateMonitorDocument, {
    input: {
      endpoint: 'risk',
      kind: 'PERFORMANCE',
      windowMs: 3_600_000,
      stepMs: 60_000,
      performance: { minLabels: 100 },
    },
  });
  // The world turns: the label now goes against the feature the champion learned.
  await labelledTraffic((x) => (x < 0 ? 1 : 0));
  const [report] = (await gql.ok(RunMonitorDocument, { id: monitor.id })).runMonitor;
  expect(report.alerting).toBe(true);
  const [alert] = (await gql.ok(OpenAlertsDocument, {})).alerts.edges.map((e) => e.node);
  expect(alert.kind).toBe('PERFORMANCE');

  const [started] = await retrainings();
  expect(started.status).toBe('BUILDING');
  expect(started.alertId).toBe(alert.id);
  expect(started.champion?.version).toBe(1);

  // Build, validate, train (the runner process), gate on the held-out part, shadow, canary.
  await until(async () => {
    await gql.ok(AdvanceRetrainingsDocument, {});
    // Live traffic, which the challenger scores off the request path while it is SHADOW.
    for (let i = 0; i < 20; i++)
      await app.services.serving.predict('risk', `user-${seq++}`, [`u${i}`], null);
    const [r] = await retrainings();
    return r.status === 'CANARY' ? r : undefined;
  }, 90_000).catch(async (e: unknown) => {
    // Where it stopped, for whoever reads the failure.
    throw new Error(`${String(e)}: ${JSON.stringify((await retrainings())[0].steps)}`);
  });
  // The canary controller steps the challenger up and promotes it on healthy traffic.
  await until(async () => {
    await labelledTraffic((x) => (x < 0 ? 1 : 0));
    const decisions = (await gql.ok(ReviewCanariesNowDocument, {})).reviewCanaries;
    return decisions.some((d) => d.action === 'PROMOTE') ? true : undefined;
  }, 60_000);
  await gql.ok(AdvanceRetrainingsDocument, {});
  const [done] = await retrainings();
  expect(done.status).toBe('PROMOTED');
  expect(done.challenger).toMatchObject({ version: 2, state: 'PRODUCTION' });
  expect(done.steps.map((s) => s.status)).toEqual([
    'TRIGGERED',
    'BUILDING',
    'TRAINING',
    'SHADOW',
    'CANARY',
    'PROMOTED',
  ]);
  // The retraining is a node: the console and the lineage walk fetch it by its id.
  const node = await gql.raw(
    JSON.stringify({
      query: 'query($id: ID!) { node(id: $id) { id ... on Retraining { status } } }',
      variables: { id: done.id },
    }),
  );
  expect(node.json).toEqual({ data: { node: { id: done.id, status: 'PROMOTED' } } });
  expect(done.steps[1].detail).toMatch(/from labelled traffic/);
  expect(done.steps[2].detail).toMatch(/^data valid \(\d+ rows/);
  expect(done.steps[3].detail).toMatch(/passed the gates on the held-out snapshot/);
  expect(done.steps[4].detail).toMatch(
    /^shadow: \d+ requests scored by both, mean \|Δ\| 0\.\d+, agreement \d+\.\d%/,
  );

  // The registry's history: the gate into STAGING judged the challenger against the champion.
  const challenger = localIdOf(done.challenger?.id as string, 'ModelVersion');
  const transitions =
    (await app.services.registry.transitionsOf([challenger])).get(challenger) ?? [];
  const staging = transitions.find((t) => t.to === ModelState.STAGING);
  expect(staging?.gates[0]?.detail).toMatch(/^AUC \S+ >= \S+ \(production \S+ - 0\.005\)$/);

  // Lineage: the alert leads to the retraining, its snapshots and run, and the new version.
  const down = await app.services.lineage.lineage(
    `Alert:${localIdOf(alert.id, 'Alert')}`,
    LineageDirection.DOWNSTREAM,
    4,
    100,
  );
  const ids = down.nodes.map((n) => n.id);
  expect(ids).toContain(`Retraining:${localIdOf(done.id, 'Retraining')}`);
  expect(ids).toContain(`Run:${localIdOf(done.runId as string, 'Run')}`);
  expect(ids).toContain(`ModelVersion:${challenger}`);
}, 240_000);

it('a retraining whose data fails validation stops and raises a DATA_VALIDATION alert', async () => {
  await gql.ok(SetRetrainingPolicyDocument, { model: 'risk', policy: { minRows: 100_000 } });
  const [monitor] = await app.services.monitoring.monitorsOf('risk');
  // The world turns back: the new champion is now wrong.
  await labelledTraffic((x) => (x > 0 ? 1 : 0));
  await gql.ok(RunMonitorDocument, { id: toGlobalId('Monitor', monitor.id) });
  // The alert started a retraining; a cool-down now keeps the still-open alert from starting
  // another as soon as this one stops.
  await gql.ok(SetRetrainingPolicyDocument, { model: 'risk', policy: { cooldownMs: 600_000 } });
  const stopped = await until(async () => {
    await gql.ok(AdvanceRetrainingsDocument, {});
    const all = await retrainings();
    const last = all[all.length - 1];
    return all.length === 2 && last.status === 'STOPPED_BAD_DATA' ? last : undefined;
  }, 30_000);
  expect(stopped.steps[stopped.steps.length - 1].detail).toMatch(
    /data failed validation: \d+ rows, fewer than 100000/,
  );
  expect(stopped.runId).toBeNull(); // nothing was trained
  const open = (await gql.ok(OpenAlertsDocument, {})).alerts.edges.map((e) => e.node);
  expect(
    open.some((x) => x.kind === 'DATA_VALIDATION' && /fewer than 100000/.test(x.summary)),
  ).toBe(true);
}, 120_000);

it('an alert still open once the cool-down is over starts another retraining', async () => {
  const [, stopped] = await retrainings();
  // A cool-down that ends two seconds from now.
  const cooldownMs = Date.now() - Date.parse(stopped.createdAt) + 2_000;
  await gql.ok(SetRetrainingPolicyDocument, { model: 'risk', policy: { cooldownMs } });
  await gql.ok(AdvanceRetrainingsDocument, {});
  expect(await retrainings()).toHaveLength(2); // still cooling down
  await new Promise((r) => setTimeout(r, 2_100));
  await gql.ok(AdvanceRetrainingsDocument, {});
  const all = await retrainings();
  expect(all).toHaveLength(3);
  expect(all[2].alertId).toBe(stopped.alertId); // the same alert, answered again
  expect(all[2].cause).toMatch(/^PERFORMANCE alert: risk@2/);
}, 60_000);
