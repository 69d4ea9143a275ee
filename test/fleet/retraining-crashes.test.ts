/**
 * @jest-environment ./test/support/onnx-environment.cjs
 */
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { ModelState } from '../../src/domain/registry/model';
import { RunStatus } from '../../src/domain/training/training-run';
import { localIdOf } from '../../src/schema/node.types';
import {
  AdvanceRetrainingsDocument,
  CreateMonitorDocument,
  PredictDocument,
  RetrainingsDocument,
  ReviewCanariesNowDocument,
  SetRetrainingPolicyDocument,
} from '../generated/graphql';
import { type ApiProcess, spawnApi } from '../support/api-process';
import { GraphQLTestClient } from '../support/graphql-client';
import { testClusterNodes } from '../support/isolation';
import { type RunnerProcess, until } from '../support/runner-process';
import { servedChampion } from '../support/champion';
import { startTestApp, type TestApp } from '../support/test-app';

/**
 * A retraining survives the death of the process taking any of its steps (docs/adr/0027):
 * on a Redis Cluster, a second api process on the same database takes each step and is
 * SIGKILLed (AETHER_FAILPOINTS) after the step's side effects and before the step is
 * recorded; the first process then takes the step again. At the end there is exactly one
 * training set and one held-out set, one training run, one challenger and one promotion. The
 * canary verdict counts the outcomes of a process that served all the canary's traffic, and
 * survives the death of the process that took it first.
 */
let app: TestApp;
let gql: GraphQLTestClient;
let runner: RunnerProcess;
const ENTITIES = 300;
let a: number[];
let seq = 0;
let monitorId: string;
// Every api process of a fleet reads the same artifacts (S3, or a file system all mount).
const artifacts = fs.mkdtempSync(path.join(os.tmpdir(), 'aether-crashes-artifacts-'));

beforeAll(async () => {
  app = await startTestApp(__filename, {
    env: {
      REDIS_CLUSTER_NODES: testClusterNodes(),
      FEATURE_STREAM_CONSUMER: 'off',
      MONITOR_INTERVAL_MS: '0',
      CANARY_INTERVAL_MS: '0',
      LEASE_TTL_MS: '1000',
      ARTIFACT_STORE_URL: `file://${artifacts}`,
    },
  });
  gql = new GraphQLTestClient(app.url, app.adminToken);
  ({ a, runner } = await servedChampion(app, {
    seed: 5,
    entities: ENTITIES,
    runnerName: 'crashes',
    canaryPolicy: {
      steps: [1],
      stepMs: 0,
      windowMs: 600_000,
      maxErrorRateDelta: 0.05,
      maxP99Ratio: 50,
      minSamples: 5,
    },
  }));
  await gql.ok(SetRetrainingPolicyDocument, {
    model: 'risk',
    policy: {
      cooldownMs: 0,
      dataWindowMs: 3_600_000,
      minRows: 100,
      minAucVsChampion: 0.005,
      shadowMs: 500,
    },
  });
  monitorId = (
    await gql.ok(CreateMonitorDocument, {
      input: {
        endpoint: 'risk',
        kind: 'PERFORMANCE',
        windowMs: 3_600_000,
        stepMs: 60_000,
        performance: { minLabels: 100 },
      },
    })
  ).createMonitor.id;
}, 120_000);

afterAll(async () => {
  runner.child.kill('SIGKILL');
  await runner.exited;
  await app.stop();
  fs.rmSync(artifacts, { recursive: true, force: true });
});

/** One prediction per entity, labelled against the feature the champion learned. */
async function turnedTraffic(): Promise<void> {
  for (let i = 0; i < ENTITIES; i++) {
    const [p] = await app.services.serving.predict('risk', `user-${seq++}`, [`u${i}`], null);
    await app.services.serving.recordFeedback({ predictionId: p.id }, a[i] < 0 ? 1 : 0);
  }
}

/**
 * A second api process on the same database and cluster that SIGKILLs itself at
 * `failpoint`; `call` is sent to it and must not come back.
 */
async function dieAt(failpoint: string, query: string, variables = {}): Promise<void> {
  const dir = `${app.dataDir}-${failpoint.replace(/\W/g, '_')}`;
  const b: ApiProcess = await spawnApi({
    ...app.env,
    DATA_DIR: dir,
    AETHER_FAILPOINTS: failpoint,
  });
  try {
    const res = await fetch(b.url, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${app.adminToken}` },
      body: JSON.stringify({ query, variables }),
    }).catch((e: unknown) => e);
    // No answer: the process died in the middle of the request.
    const answered = res instanceof Response ? `${failpoint}: ${await res.text()}` : String(res);
    expect(answered).toMatch(/fetch failed/);
    expect(await b.stop()).toBeNull();
    expect(b.child.signalCode).toBe('SIGKILL');
  } finally {
    if (b.child.exitCode === null && b.child.signalCode === null) b.child.kill('SIGKILL');
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

const retraining = async () =>
  (await gql.ok(RetrainingsDocument, { model: 'risk' })).retrainings[0];

const count = async (sql: string, params: unknown[] = []): Promise<number> =>
  Number(((await app.db.dataSource.query(sql, params)) as { n: string }[])[0].n);

it('takes every step exactly once whatever process dies after its side effects', async () => {
  await turnedTraffic();

  // TRIGGERED: the snapshots are asked for, then the process dies before recording them.
  await dieAt('retraining:TRIGGERED', 'mutation($id: ID!) { runMonitor(id: $id) { alerting } }', {
    id: monitorId,
  });
  expect((await retraining()).status).toBe('TRIGGERED');
  await gql.ok(AdvanceRetrainingsDocument, {});
  expect((await retraining()).status).toBe('BUILDING');

  // BUILDING: the run is submitted, then the process dies.
  await until(async () => {
    const r = await retraining();
    const sets = await app.services.datasets.byIds([
      localIdOf(r.trainDatasetId as string, 'DatasetSnapshot'),
      localIdOf(r.holdoutDatasetId as string, 'DatasetSnapshot'),
    ]);
    return sets.every((d) => d.status === 'READY') ? true : undefined;
  }, 60_000);
  await dieAt('retraining:BUILDING', 'mutation { advanceRetrainings { id } }');
  expect((await retraining()).status).toBe('BUILDING');
  await gql.ok(AdvanceRetrainingsDocument, {});
  const training = await retraining();
  expect(training.status).toBe('TRAINING');

  // TRAINING: the challenger is validated and moved to SHADOW, then the process dies.
  await until(async () => {
    const run = await app.services.training.get(localIdOf(training.runId as string, 'Run'));
    return run.status === RunStatus.SUCCEEDED ? true : undefined;
  }, 90_000);
  await dieAt('retraining:TRAINING', 'mutation { advanceRetrainings { id } }');
  expect((await retraining()).status).toBe('TRAINING');
  await gql.ok(AdvanceRetrainingsDocument, {});
  expect((await retraining()).status).toBe('SHADOW');

  // SHADOW: the challenger becomes the CANARY, then the process dies.
  await new Promise((r) => setTimeout(r, 600));
  await dieAt('retraining:SHADOW', 'mutation { advanceRetrainings { id } }');
  expect((await retraining()).status).toBe('SHADOW');
  await gql.ok(AdvanceRetrainingsDocument, {});
  expect((await retraining()).status).toBe('CANARY');

  // The canary's traffic goes to another process only: the verdict is taken on the fleet's
  // outcomes (this process served none of it). The process taking the decision dies first.
  const dir = `${app.dataDir}-traffic`;
  const other = await spawnApi({ ...app.env, DATA_DIR: dir });
  try {
    const onOther = new GraphQLTestClient(other.url, app.adminToken);
    for (let i = 0; i < 40; i++)
      await onOther.ok(PredictDocument, {
        endpoint: 'risk',
        requestKey: `other-${seq++}`,
        entityKeys: [`u${i}`],
      });
  } finally {
    await other.stop();
    fs.rmSync(dir, { recursive: true, force: true });
  }
  await dieAt('canary:decided', 'mutation { reviewCanaries { action } }');
  const [verdict] = (await gql.ok(ReviewCanariesNowDocument, {})).reviewCanaries;
  expect(verdict.action).toBe('PROMOTE');
  await gql.ok(AdvanceRetrainingsDocument, {});
  const done = await retraining();
  expect(done.status).toBe('PROMOTED');
  expect(done.steps.map((s) => s.status)).toEqual([
    'TRIGGERED',
    'BUILDING',
    'TRAINING',
    'SHADOW',
    'CANARY',
    'PROMOTED',
  ]);

  // Exactly one of each effect.
  expect(await count(`SELECT count(*) AS n FROM retraining`)).toBe(1);
  expect(
    await count(
      `SELECT count(*) AS n FROM dataset_snapshot WHERE idempotency_key LIKE 'retraining:%'`,
    ),
  ).toBe(2);
  expect(
    await count(
      `SELECT count(*) AS n FROM training_run r JOIN experiment e ON e.id = r.experiment_id
        WHERE e.name = 'risk-retraining'`,
    ),
  ).toBe(1);
  const versions = await app.services.registry.versionsByIds([
    localIdOf(done.challenger?.id as string, 'ModelVersion'),
  ]);
  expect(versions[0].version).toBe(2);
  expect(versions[0].state).toBe(ModelState.PRODUCTION);
  const moves = (await app.services.registry.transitionsOf([versions[0].id])).get(versions[0].id);
  expect(moves?.map((t) => t.to)).toEqual([
    ModelState.REGISTERED,
    ModelState.VALIDATED,
    ModelState.STAGING,
    ModelState.SHADOW,
    ModelState.CANARY,
    ModelState.PRODUCTION,
  ]);
}, 300_000);
