import { Role } from '../src/domain/auth/role';
import { FeatureType } from '../src/domain/features/feature-definition';
import { RunStatus, type TrainingRun } from '../src/domain/training/training-run';
import { Rng } from '../src/domain/training/rng';
import { localIdOf, toGlobalId } from '../src/schema/node.types';
import {
  CancelTrainingJobDocument,
  CompareRunsDocument,
  RunProgressDocument,
  SubmitTrainingJobDocument,
} from './generated/graphql';
import { collect, GraphQLTestClient } from './support/graphql-client';
import { type RunnerProcess, startRunner, until } from './support/runner-process';
import { startTestApp, type TestApp } from './support/test-app';

/**
 * Training end to end with real runner processes: a runner killed with SIGKILL mid-run
 * loses its lease, the run goes back in line and another runner resumes it from the last
 * checkpoint, ending with exactly the metrics of an uninterrupted run; a crashing trainer is
 * retried up to its limit and fails with its log; the trainer sees exactly its GPUs.
 */
// Short enough to keep the test quick, long enough for renewals (every 500 ms) to arrive on
// a loaded 2-core CI machine.
const LEASE_MS = 4_000;
let app: TestApp;
let gql: GraphQLTestClient;
let key: string;
let datasetId: string;
const runners: RunnerProcess[] = [];

const runnerEnv = (name: string, gpus = '') => ({
  RUNNER_NAME: name,
  GPU_RUNNER_GPUS: gpus,
  RUNNER_POLL_MS: '100',
  RUNNER_LEASE_RENEW_MS: '500',
  RUNNER_REPORT_MS: '100',
  RUNNER_HARDWARE_MS: '200',
  RUNNER_HEARTBEAT_MS: '500',
});

function runner(name: string, gpus = ''): RunnerProcess {
  const r = startRunner(app.url, key, runnerEnv(name, gpus));
  runners.push(r);
  return r;
}

beforeAll(async () => {
  app = await startTestApp(__filename, {
    env: { FEATURE_STREAM_CONSUMER: 'off', TRAINING_LEASE_MS: String(LEASE_MS) },
  });
  gql = new GraphQLTestClient(app.url, app.adminToken);
  const s = app.services;
  key = (await s.apiKeys.create(null, { name: 'runners', role: Role.RUNNER })).token;
  // A learnable table: the label depends on three features (one interaction) plus noise.
  await s.featureRegistry.createEntity({ name: 'cust', joinKeys: ['cust_id'] });
  const { version } = await s.featureRegistry.createView({
    name: 'cust_stats',
    entity: 'cust',
    source: 'cust_src',
    ttlSeconds: 30 * 86_400,
    allowedLatenessSeconds: 30 * 86_400,
    features: ['a', 'b', 'c'].map((name) => ({
      name,
      type: FeatureType.FLOAT,
      source: name,
      transform: { kind: 'IDENTITY' as const },
      aggregation: null,
      validation: {},
    })),
  });
  const T0 = Date.now() - 10 * 86_400_000;
  const rng = new Rng(11);
  const records = [];
  const spine = [];
  for (let i = 0; i < 4_000; i++) {
    const f = { a: rng.normal(), b: rng.normal(), c: rng.normal() };
    records.push({ entityKey: `c${i}`, eventId: 'e', eventTs: T0 + i * 1000, fields: f });
    const z = f.a + f.b * f.c + 0.5 * rng.normal();
    spine.push({ entityKey: `c${i}`, ts: T0 + i * 1000 + 60_000, label: z > 0 ? 1 : 0 });
  }
  await s.ingestion.ingest([version], records, 'test');
  const { snapshot, done } = await s.datasets.build({
    name: 'cust-train',
    featureRefs: ['cust_stats@1:*'],
    spine,
  });
  await done;
  datasetId = toGlobalId('DatasetSnapshot', snapshot.id);
});

afterAll(async () => {
  for (const r of runners) r.child.kill('SIGKILL');
  await Promise.all(runners.map((r) => r.exited));
  await app.stop();
});

async function submit(input: Record<string, unknown>): Promise<string> {
  const r = await gql.ok(SubmitTrainingJobDocument, {
    input: { experiment: 'e2e', datasetId, ...input } as never,
  });
  return r.submitTrainingJob.id;
}

const local = (id: string) => localIdOf(id, 'Run');
const run = (id: string): Promise<TrainingRun> => app.services.training.get(local(id));
/** Waits for the run to end; on a timeout, says where it was and what the runners logged. */
async function finished(id: string, timeoutMs = 90_000): Promise<TrainingRun> {
  try {
    return await until(async () => {
      const r = await run(id);
      return [RunStatus.SUCCEEDED, RunStatus.FAILED, RunStatus.CANCELLED].includes(r.status)
        ? r
        : undefined;
    }, timeoutMs);
  } catch (e) {
    const r = await run(id);
    throw new Error(
      `run ${id} did not finish: ${r.status}, failures ${r.failures}, epochs ${r.epochsDone}\n` +
        runners.map((x) => x.log().slice(-3000)).join('\n---\n'),
      { cause: e },
    );
  }
}

const mlp = {
  builtinTrainer: 'mlp',
  hyperparameters: {
    epochs: 30,
    hiddenUnits: [48, 48],
    batchSize: 64,
    learningRate: 0.003,
    seed: 7,
  },
};

it('resumes a run on another runner after SIGKILL and ends exactly like an uninterrupted run', async () => {
  const a = runner('runner-a');
  const id = await submit(mlp);
  const ws = gql.ws();
  const progress = collect(ws, RunProgressDocument, { runId: id });

  // Killed once a few checkpoints are stored.
  await until(async () => {
    const cps = await app.services.training.checkpointsOf(local(id));
    return cps.length >= 3 ? cps : undefined;
  }, 60_000);
  a.child.kill('SIGKILL');
  await a.exited;
  const b = runner('runner-b');

  const resumed = await finished(id);
  expect(resumed.status).toBe(RunStatus.SUCCEEDED);
  expect(resumed.failures).toBe(0);
  expect(resumed.logTail).toMatch(/resuming from the checkpoint of epoch \d+/);
  expect(resumed.model?.sha256).toMatch(/^[0-9a-f]{64}$/);
  expect(resumed.summary.onnx_max_abs_diff).toBeLessThan(1e-5);
  // Hardware samples (CPU and memory: no GPUs here) were taken while it trained.
  const hw = (await app.services.training.hardwareOf([resumed.id])).get(resumed.id) ?? [];
  expect(hw.some((h) => h.cpuPercent !== null && (h.memoryMb ?? 0) > 0)).toBe(true);

  // The same spec, never interrupted, on runner b.
  const again = await submit(mlp);
  const clean = await finished(again);
  expect(clean.status).toBe(RunStatus.SUCCEEDED);
  for (const m of ['train_loss', 'val_loss', 'val_auc'])
    expect(resumed.summary[m]).toBe(clean.summary[m]);
  expect(resumed.epochsDone).toBe(30);

  // The subscriber saw the run start, epochs tick, and the end.
  await progress.completed;
  const events = progress.events.map((e) => e.runProgress);
  expect(events[events.length - 1].status).toBe('SUCCEEDED');
  expect(new Set(events.map((e) => e.epoch)).size).toBeGreaterThan(5);
  await ws.dispose();
  void b;
}, 240_000);

it('continues an ended run from its checkpoint with more epochs (resumeFrom), and refuses what cannot be continued', async () => {
  runner('runner-resume');
  const short = { ...mlp, hyperparameters: { ...mlp.hyperparameters, epochs: 4 } };
  const first = await submit(short);
  expect((await finished(first)).status).toBe(RunStatus.SUCCEEDED);

  const more = { ...mlp, hyperparameters: { ...mlp.hyperparameters, epochs: 7 } };
  const r = await gql.ok(SubmitTrainingJobDocument, {
    input: { experiment: 'e2e', datasetId, ...more, resumeFrom: first } as never,
  });
  expect(r.submitTrainingJob.resumedFrom?.id).toBe(first);
  const continued = await finished(r.submitTrainingJob.id);
  expect(continued.status).toBe(RunStatus.SUCCEEDED);
  expect(continued.logTail).toMatch(/resuming from the checkpoint of epoch 4/);
  expect(continued.epochsDone).toBe(7);
  // Only the epochs after the checkpoint were trained by this run.
  const points = (await app.services.training.metricsOf([continued.id])).get(continued.id);
  const epochs = (points ?? []).filter((p) => p.name === 'val_loss').map((p) => p.epoch);
  expect(epochs.length).toBeGreaterThan(0);
  expect(Math.min(...epochs)).toBeGreaterThan(4);

  // A run not ended yet, another dataset, an unknown run: each refused with its reason.
  const queued = await submit(more);
  const notEnded = await gql.request(SubmitTrainingJobDocument, {
    input: { experiment: 'e2e', datasetId, ...more, resumeFrom: queued } as never,
  });
  expect(notEnded.errors?.[0].extensions?.reason).toBe('NO_CHECKPOINT');
  const otherTrainer = await gql.request(SubmitTrainingJobDocument, {
    input: {
      experiment: 'e2e',
      datasetId,
      builtinTrainer: 'logistic_regression',
      resumeFrom: first,
    } as never,
  });
  expect(otherTrainer.errors?.[0].extensions?.code).toBe('BAD_USER_INPUT');
  const unknown = await gql.request(SubmitTrainingJobDocument, {
    input: {
      experiment: 'e2e',
      datasetId,
      ...more,
      resumeFrom: toGlobalId('Run', '00000000-0000-4000-8000-000000000000'),
    } as never,
  });
  expect(unknown.errors?.[0].extensions?.reason).toBe('RUN_NOT_FOUND');
  await app.services.training.cancel(local(queued));
}, 240_000);

it('retries a crashing trainer up to its limit, then fails with the log in the graph', async () => {
  runner('runner-c');
  const id = await submit({
    command: {
      name: 'crasher',
      argv: [
        process.execPath,
        '-e',
        "console.error('boom in epoch 1'); process.kill(process.pid, 'SIGSEGV')",
      ],
    },
    maxRetries: 1,
  });
  const r = await finished(id);
  expect(r).toMatchObject({
    status: RunStatus.FAILED,
    failures: 1,
    error: 'trainer killed by SIGSEGV',
  });
  expect(r.logTail).toContain('boom in epoch 1');
}, 120_000);

it('gives an external trainer exactly its GPUs, and compares runs by any metric', async () => {
  runner('runner-gpus', '0,1,2,3');
  const script = [
    'const g = process.env.CUDA_VISIBLE_DEVICES;',
    "console.error('CUDA_VISIBLE_DEVICES=' + g);",
    'const hp = JSON.parse(process.env.AETHER_HYPERPARAMETERS);',
    "for (let step = 1; step <= 3; step++) console.log(JSON.stringify({ type: 'step', epoch: 1, step, metrics: { loss: 1 / step } }));",
    "console.log(JSON.stringify({ type: 'epoch', epoch: 1, epochs: 1, metrics: { val_auc: hp.auc, gpus: g.split(',').length } }));",
  ].join('\n');
  const ids = [];
  for (const auc of [0.61, 0.74, 0.68])
    ids.push(
      await submit({
        experiment: 'external',
        command: { name: 'probe', argv: [process.execPath, '-e', script] },
        hyperparameters: { auc },
        gpuCount: 2,
      }),
    );
  const runs = await Promise.all(ids.map((id) => finished(id)));
  for (const r of runs) {
    expect(r.status).toBe(RunStatus.SUCCEEDED);
    expect(r.gpus).toHaveLength(2);
    expect(r.logTail).toContain(`CUDA_VISIBLE_DEVICES=${r.gpus.join(',')}`);
    expect(r.summary.gpus).toBe(2);
  }
  // Per-step metrics (opt-in) arrive in batches beside the per-epoch ones.
  const history = (await app.services.training.metricsOf([runs[0].id])).get(runs[0].id) ?? [];
  expect(history.filter((p) => p.name === 'loss').map((p) => [p.step, p.value])).toEqual([
    [1, 1],
    [2, 0.5],
    [3, 1 / 3],
  ]);
  expect(history.find((p) => p.name === 'val_auc')?.step).toBeNull();
  const table = await gql.ok(CompareRunsDocument, { experiments: ['external'], sortBy: 'val_auc' });
  const col = table.compareRuns.columns.indexOf('val_auc');
  expect(table.compareRuns.rows.map((row) => row.values[col])).toEqual([0.74, 0.68, 0.61]);
  const bad = await gql.request(CompareRunsDocument, { experiments: ['external'], sortBy: 'nope' });
  expect(bad.errors?.[0].extensions).toMatchObject({
    code: 'BAD_USER_INPUT',
    reason: 'UNKNOWN_METRIC',
  });
}, 120_000);

it('cancels a running built-in run: the trainer stops at its next checkpoint', async () => {
  runner('runner-cancel');
  const id = await submit({ ...mlp, hyperparameters: { ...mlp.hyperparameters, epochs: 500 } });
  await until(async () => {
    const cps = await app.services.training.checkpointsOf(local(id));
    return cps.length >= 1 ? cps : undefined;
  }, 60_000);
  const c = await gql.ok(CancelTrainingJobDocument, { id });
  expect(c.cancelTrainingJob.cancelRequested).toBe(true);
  const r = await finished(id);
  expect(r.status).toBe(RunStatus.CANCELLED);
  expect(r.logTail).toContain('stopping after the next checkpoint');
  expect(r.epochsDone).toBeLessThan(500);
}, 120_000);
