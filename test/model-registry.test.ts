/**
 * @jest-environment ./test/support/onnx-environment.cjs
 */
import { PutObjectCommand, S3Client } from '@aws-sdk/client-s3';
import { createHash } from 'node:crypto';
import { type ArtifactStore } from '../src/domain/artifacts/artifact-store';
import { type Principal } from '../src/domain/auth/api-key';
import { Role } from '../src/domain/auth/role';
import { type DatasetSnapshot } from '../src/domain/features/dataset';
import { RunStatus, type TrainingRun } from '../src/domain/training/training-run';
import { createArtifactStore } from '../src/infra/artifacts/create-artifact-store';
import { exportDense } from '../src/infra/onnx/export';
import { localIdOf, toGlobalId } from '../src/schema/node.types';
import { buildFlightsSets } from '../scripts/flights-training-set';
import {
  LineageDocument,
  ModelDocument,
  ModelEventsDocument,
  RegisterModelVersionDocument,
  RollbackModelDocument,
  SetPromotionGatesDocument,
  SubmitTrainingJobDocument,
  TransitionModelVersionDocument,
  ValidateModelVersionDocument,
} from './generated/graphql';
import { collect, GraphQLTestClient } from './support/graphql-client';
import { type RunnerProcess, startRunner, until } from './support/runner-process';
import { startS3, type TestS3 } from './support/s3-server';
import { startTestApp, type TestApp } from './support/test-app';

/**
 * The model registry on real Postgres, Redis, an S3 server and a gpu-runner: flights
 * snapshot → training job → run → registered version → VALIDATED → STAGING, refusals with
 * their reasons, lineage in one query, concurrent registrations and promotions, rollback.
 */
const PREFIX = 'registry';
let s3: TestS3;
let app: TestApp;
let gql: GraphQLTestClient;
let runner: RunnerProcess;
let train: DatasetSnapshot;
let heldOut: DatasetSnapshot;
let run: TrainingRun;
let putDelayMs = 0;

/** The S3 store, with every upload held back `putDelayMs` before it starts. */
function slowed(store: ArtifactStore): ArtifactStore {
  return new Proxy(store, {
    get(target, prop, receiver) {
      const v = Reflect.get(target, prop, receiver) as unknown;
      if (prop !== 'put' || typeof v !== 'function') return v;
      return async (...args: unknown[]) => {
        if (putDelayMs) await new Promise((r) => setTimeout(r, putDelayMs));
        return (v as (...a: unknown[]) => Promise<unknown>).apply(target, args);
      };
    },
  });
}

beforeAll(async () => {
  s3 = await startS3();
  const artifacts = slowed(
    createArtifactStore({
      kind: 's3',
      bucket: s3.bucket,
      prefix: PREFIX,
      endpoint: s3.endpoint,
      region: 'us-east-1',
      forcePathStyle: true,
    }),
  );
  app = await startTestApp(__filename, {
    env: { FEATURE_STREAM_CONSUMER: 'off' },
    overrides: { artifacts },
  });
  gql = new GraphQLTestClient(app.url, app.adminToken);
  const sets = await buildFlightsSets(app.services, {
    flights: 40_000,
    spine: 8_000,
    heldOut: 2_000,
    name: 'delay-train',
  });
  train = sets.train;
  heldOut = sets.heldOut as DatasetSnapshot;
  const key = (await app.services.apiKeys.create(null, { name: 'r', role: Role.RUNNER })).token;
  runner = startRunner(app.url, key, {
    RUNNER_NAME: 'reg',
    GPU_RUNNER_GPUS: '',
    RUNNER_POLL_MS: '100',
  });
  const r = await gql.ok(SubmitTrainingJobDocument, {
    input: {
      experiment: 'delay',
      builtinTrainer: 'logistic_regression',
      datasetId: toGlobalId('DatasetSnapshot', train.id),
      hyperparameters: { epochs: 5 },
      registerAs: 'delay',
      gitCommit: 'abc1234',
    },
  });
  const id = localIdOf(r.submitTrainingJob.id, 'Run');
  run = await until(async () => {
    const x = await app.services.training.get(id);
    return x.status === RunStatus.SUCCEEDED && x.modelVersionId ? x : undefined;
  }, 60_000);
  // Later runs are made in-process (freshRun): the runner must not claim them.
  runner.child.kill('SIGKILL');
  await runner.exited;
}, 120_000);

afterAll(async () => {
  await app.stop();
  await s3.stop();
});

let copier: { actor: Principal; runnerId: string } | null = null;

/**
 * Another SUCCEEDED run with the trained run's model (its own copy of the file): a run is
 * registered once per model, so each new version needs a run of its own.
 */
async function freshRun(): Promise<string> {
  const s = app.services;
  if (!copier) {
    const key = await s.apiKeys.create(null, { name: 'copier', role: Role.RUNNER });
    const actor = { keyId: key.key.id, name: key.key.name, role: Role.RUNNER };
    const r = await s.runners.register(actor, { name: 'copier', hostname: 'test', gpus: [] });
    copier = { actor, runnerId: r.id };
  }
  const bytes = await s.artifacts.getBytes(run.model!.key);
  const next = await s.training.submit({
    experiment: 'delay',
    builtinTrainer: 'logistic_regression',
    datasetId: train.id,
  });
  const claimed = await s.runExecution.claim(copier.actor, copier.runnerId);
  if (claimed?.id !== next.id) throw new Error('another run was at the head of the queue');
  await s.runExecution.saveModel(
    copier.actor,
    next.id,
    copier.runnerId,
    bytes,
    createHash('sha256').update(bytes).digest('hex'),
  );
  await s.runExecution.finish(copier.actor, next.id, copier.runnerId, {
    outcome: RunStatus.SUCCEEDED,
  });
  return next.id;
}

const register = async (model: string, runId?: string) =>
  gql.request(RegisterModelVersionDocument, {
    model,
    runId: toGlobalId('Run', runId ?? (await freshRun())),
  });
const move = (id: string, to: string, reason = 'test') =>
  gql.request(TransitionModelVersionDocument, { id, to: to as never, reason });
const validate = (id: string) =>
  gql.ok(ValidateModelVersionDocument, {
    id,
    datasetId: toGlobalId('DatasetSnapshot', heldOut.id),
  });

it('walks flights snapshot → run → version → VALIDATED → STAGING, refuses an illegal jump and a failed gate, and shows the lineage', async () => {
  const m = await gql.ok(ModelDocument, { name: 'delay' });
  const v1 = m.model?.versions[0];
  expect(v1).toMatchObject({
    version: 1,
    state: 'REGISTERED',
    datasetHash: train.contentHash,
    gitCommit: 'abc1234',
    trainer: { name: 'logistic_regression' },
    hyperparameters: { epochs: 5 },
    run: { id: toGlobalId('Run', run.id) },
  });
  expect(v1?.signature.features).toEqual(train.featureRefs);
  expect(v1?.signature.inputs[0]).toMatchObject({
    name: 'features',
    shape: [null, train.featureRefs.length],
  });

  const validated = await validate(v1!.id);
  expect(validated.validateModelVersion.state).toBe('VALIDATED');
  expect(
    (validated.validateModelVersion.evaluations[0].metrics as { auc: number }).auc,
  ).toBeGreaterThan(0.5);
  expect((await move(v1!.id, 'STAGING')).data?.transitionModelVersion.state).toBe('STAGING');

  const jump = await move(v1!.id, 'PRODUCTION');
  expect(jump.errors?.[0].extensions).toMatchObject({
    code: 'CONFLICT',
    reason: 'ILLEGAL_TRANSITION',
    details: { from: 'STAGING', to: 'PRODUCTION', allowed: ['SHADOW', 'ARCHIVED'] },
  });
  await gql.ok(SetPromotionGatesDocument, {
    model: 'delay',
    gates: [{ kind: 'MIN_METRIC', into: 'SHADOW', threshold: 0.99, metric: 'auc' }],
  });
  const gated = await move(v1!.id, 'SHADOW');
  expect(gated.errors?.[0].extensions).toMatchObject({ code: 'CONFLICT', reason: 'GATE_FAILED' });
  expect(gated.errors?.[0].message).toMatch(/MIN_METRIC \(auc 0\.\d+ is 0\.\d+ short of 0\.99\)/);
  await gql.ok(SetPromotionGatesDocument, { model: 'delay', gates: [] });

  // Upstream from the version, in one query: the run, its snapshot, the feature view version
  // (read directly when serving, and through the snapshot) and its source.
  const up = await gql.ok(LineageDocument, { id: v1!.id, direction: 'UPSTREAM', depth: 6 });
  expect(up.lineage.nodes.map((n) => [n.kind, n.depth])).toEqual([
    ['ModelVersion', 0],
    ['FeatureViewVersion', 1],
    ['Run', 1],
    ['DatasetSnapshot', 2],
    ['Source', 2],
  ]);
  expect(up.lineage.edges.map((e) => e.relation).sort()).toEqual([
    'builds',
    'materializes',
    'produces',
    'serves',
    'trains',
  ]);
  const snapshotNode = up.lineage.nodes.find((n) => n.kind === 'DatasetSnapshot');
  expect(snapshotNode?.node).toMatchObject({ contentHash: train.contentHash });
  const runNode = up.lineage.nodes.find((n) => n.kind === 'Run');
  expect(runNode?.node).toMatchObject({ hyperparameters: { epochs: 5 }, gitCommit: 'abc1234' });
  // Downstream from the feature view version: the datasets, the run, the model version.
  const fvv = up.lineage.nodes.find((n) => n.kind === 'FeatureViewVersion')!;
  const down = await gql.ok(LineageDocument, { id: fvv.id, direction: 'DOWNSTREAM', depth: 6 });
  expect(new Set(down.lineage.nodes.map((n) => n.kind))).toEqual(
    new Set(['FeatureViewVersion', 'DatasetSnapshot', 'Run', 'ModelVersion']),
  );
  // The feature view version lists the model version among its consumers.
  const consumers = await app.services.featureRegistry.consumersOf([
    localIdOf(fvv.id, 'FeatureViewVersion'),
  ]);
  expect([...consumers.values()][0]).toContainEqual({
    kind: 'MODEL_VERSION',
    id: localIdOf(v1!.id, 'ModelVersion'),
    name: 'delay@1',
  });
  const tooBig = await gql.request(LineageDocument, {
    id: fvv.id,
    direction: 'DOWNSTREAM',
    depth: 6,
    limit: 2,
  });
  expect(tooBig.errors?.[0].extensions).toMatchObject({ reason: 'LINEAGE_TOO_LARGE' });
});

it('numbers 50 concurrent registrations 1..50 with no gap, and never shows a version before its file is stored', async () => {
  const seen = new Set<string>();
  let polling = true;
  const poller = (async () => {
    while (polling) {
      const m = await gql.ok(ModelDocument, { name: 'many' });
      for (const v of m.model?.versions ?? []) {
        if (seen.has(v.id)) continue;
        seen.add(v.id);
        // Visible means stored: the file is there, whole, with its checksum.
        const stat = await app.services.artifacts.stat(v.artifact.key);
        expect(stat?.sha256).toBe(v.artifact.sha256);
      }
      await new Promise((r) => setTimeout(r, 10));
    }
  })();
  const runs: string[] = [];
  for (let i = 0; i < 50; i++) runs.push(await freshRun());
  putDelayMs = 300;
  const results = await Promise.all(runs.map((id) => register('many', id)));
  polling = false;
  await poller;
  putDelayMs = 0;
  expect(results.every((r) => !r.errors)).toBe(true);
  const numbers = results.map((r) => r.data!.registerModelVersion.version).sort((a, b) => a - b);
  expect(numbers).toEqual(Array.from({ length: 50 }, (_, i) => i + 1));
  expect(seen.size).toBeGreaterThan(0);
});

async function toCanary(model: string): Promise<string> {
  const v = (await register(model)).data!.registerModelVersion.id;
  await validate(v);
  for (const to of ['STAGING', 'SHADOW', 'CANARY'])
    expect((await move(v, to)).errors).toBeUndefined();
  return v;
}

it('leaves exactly one version in PRODUCTION after two concurrent promotions, publishes each move, and rolls back in one step', async () => {
  const ws = gql.ws();
  const events = collect(ws, ModelEventsDocument);
  await new Promise((r) => setTimeout(r, 300));
  const a = await toCanary('duel');
  const b = await toCanary('duel');
  const [ra, rb] = await Promise.all([move(a, 'PRODUCTION'), move(b, 'PRODUCTION')]);
  expect(ra.errors ?? rb.errors).toBeUndefined();
  const m = (await gql.ok(ModelDocument, { name: 'duel' })).model!;
  const inProduction = m.versions.filter((v) => v.state === 'PRODUCTION');
  expect(inProduction).toHaveLength(1);
  expect(m.productionVersion?.id).toBe(inProduction[0].id);
  const other = m.versions.find((v) => v.id !== inProduction[0].id && [a, b].includes(v.id))!;
  expect(other.state).toBe('ARCHIVED');

  const back = await gql.ok(RollbackModelDocument, { model: 'duel', reason: 'p99 regression' });
  expect(back.rollbackModel).toMatchObject({ id: other.id, state: 'PRODUCTION' });
  const after = (await gql.ok(ModelDocument, { name: 'duel' })).model!;
  expect(after.versions.find((v) => v.id === inProduction[0].id)?.state).toBe('ROLLED_BACK');
  // The restored version is loadable: its file verifies.
  const restored = await app.services.registry.version(localIdOf(other.id, 'ModelVersion'));
  expect((await app.services.registry.modelBytes(restored)).length).toBeGreaterThan(0);
  const last = after.versions.find((v) => v.id === other.id)!.transitions.at(-1);
  expect(last).toMatchObject({ to: 'PRODUCTION', reason: 'rollback: p99 regression' });

  const got = await events.next(1, 5_000);
  expect(got[0].modelEvents.model).toBe('duel');
  const all = events.events.map((e) => `${e.modelEvents.versionId}:${e.modelEvents.to}`);
  expect(all).toContain(`${other.id}:PRODUCTION`);
  events.dispose();
  await ws.dispose();
});

it('refuses bad input with a code and leaves the registry unchanged', async () => {
  const count = async () =>
    (await app.services.registry.versionsOf([(await app.services.registry.model('delay')).id]))
      .length;
  const before = await count();
  // Unknown model.
  const unknown = await gql.request(RollbackModelDocument, { model: 'nope', reason: 'x' });
  expect(unknown.errors?.[0].extensions).toMatchObject({
    code: 'NOT_FOUND',
    reason: 'MODEL_NOT_FOUND',
  });
  // Wrong state.
  const vRun = await freshRun();
  const v = (await register('delay', vRun)).data!.registerModelVersion.id;
  const wrong = await move(v, 'STAGING');
  expect(wrong.errors?.[0].extensions).toMatchObject({
    code: 'CONFLICT',
    reason: 'ILLEGAL_TRANSITION',
  });
  const afterGood = await count();
  expect(afterGood).toBe(before + 1);

  // The same run again: the version it already is, not another.
  const twice = await register('delay', vRun);
  expect(twice.data?.registerModelVersion.id).toBe(v);
  expect((await register('delay', run.id)).data?.registerModelVersion.version).toBe(1);
  const settled = await count();
  expect(settled).toBe(afterGood);

  // A model file whose bytes no longer match their checksum.
  const tampered = await freshRun();
  const tamperedModel = (await app.services.training.get(tampered)).model!;
  const raw = new S3Client({ region: 'us-east-1', endpoint: s3.endpoint, forcePathStyle: true });
  await raw.send(
    new PutObjectCommand({
      Bucket: s3.bucket,
      Key: `${PREFIX}/${tamperedModel.key}`,
      Body: Buffer.from('tampered'),
    }),
  );
  raw.destroy();
  const corrupt = await register('delay', tampered);
  expect(corrupt.errors?.[0].extensions).toMatchObject({
    code: 'CONFLICT',
    reason: 'ARTIFACT_CHECKSUM_MISMATCH',
  });

  // A model whose inputs are not the dataset's features.
  const wrongModel = exportDense(
    'wrong',
    ['delay_x', 'delay_y'],
    { mean: [0, 0], std: [1, 1] },
    {
      layers: [{ w: [1, 1], b: [0], in: 2, out: 1 }],
    },
  );
  const wrongRun = await freshRun();
  const ref = await app.services.artifacts.put(`runs/${wrongRun}/wrong.onnx`, wrongModel);
  await app.db.dataSource.query(`UPDATE training_run SET model = $2 WHERE id = $1`, [
    wrongRun,
    JSON.stringify(ref),
  ]);
  const mismatch = await register('delay', wrongRun);
  expect(mismatch.errors?.[0].extensions).toMatchObject({
    code: 'BAD_USER_INPUT',
    reason: 'SIGNATURE_MISMATCH',
  });
  expect(mismatch.errors?.[0].message).toContain('not in the dataset: delay_x, delay_y');

  expect(await count()).toBe(settled);
});
