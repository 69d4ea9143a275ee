import { Role } from '../src/domain/auth/role';
import { buildCustomerDataset } from './support/datasets';
import {
  Direction,
  ParamKind,
  SamplerKind,
  StudyStatus,
  TrialState,
} from '../src/domain/hpo/study';
import { RunStatus } from '../src/domain/training/training-run';
import { type Principal } from '../src/domain/auth/api-key';
import { type RunnerProcess, startRunner, until } from './support/runner-process';
import { startTestApp, type TestApp } from './support/test-app';

/**
 * Trials are runs of the one training queue (ADR 0030): a study never has more than
 * `parallelism` trials queued or running, however many passes run at once (so it cannot
 * flood the queue ahead of other users' jobs); with a real gpu-runner process a study runs
 * its whole budget, each trial's objective read from its run's final metric; a runner killed
 * mid-trial loses its lease, and another runner resumes the trial's own run from its
 * checkpoint: no trial lost, none started twice.
 */
let app: TestApp;
let key: string;
let datasetId: string;
let editor: Principal;
const runners: RunnerProcess[] = [];

beforeAll(async () => {
  app = await startTestApp(__filename, {
    env: { FEATURE_STREAM_CONSUMER: 'off', TRAINING_LEASE_MS: '4000', HPO_INTERVAL_MS: '200' },
  });
  const s = app.services;
  key = (await s.apiKeys.create(null, { name: 'runners', role: Role.RUNNER })).token;
  const ed = await s.apiKeys.create(null, { name: 'editor', role: Role.EDITOR });
  editor = { keyId: ed.key.id, name: ed.key.name, role: Role.EDITOR };
  const snapshot = await buildCustomerDataset(s, 1_000);
  datasetId = snapshot.id;
});

afterAll(async () => {
  for (const r of runners) r.child.kill('SIGKILL');
  await Promise.all(runners.map((r) => r.exited));
  await app.stop();
});

const study = (name: string, trials: number, parallelism: number) =>
  app.services.studies.create(
    {
      name,
      builtinTrainer: 'logistic_regression',
      datasetId,
      hyperparameters: { epochs: 3, batchSize: 256 },
      space: [
        { name: 'learningRate', kind: ParamKind.FLOAT, low: 0.01, high: 1, log: true },
        { name: 'l2', kind: ParamKind.FLOAT, low: 0, high: 0.1 },
      ],
      objective: { metric: 'val_loss', direction: Direction.MINIMIZE },
      sampler: SamplerKind.RANDOM,
      budget: { trials },
      parallelism,
      seed: 3,
    },
    editor,
  );

/** A runner process with one CPU slot, polling and reporting often. */
const oneSlotRunner = (name: string): RunnerProcess =>
  startRunner(app.url, key, {
    RUNNER_NAME: name,
    GPU_RUNNER_GPUS: '',
    RUNNER_SLOTS: '1',
    RUNNER_POLL_MS: '50',
    RUNNER_LEASE_RENEW_MS: '500',
    RUNNER_REPORT_MS: '100',
    RUNNER_HARDWARE_MS: '500',
    RUNNER_HEARTBEAT_MS: '500',
  });

/** Runs of the study's experiment that are waiting or running. */
async function openRuns(name: string): Promise<number> {
  // One statement, one snapshot: three per-status queries count a run twice when it moves
  // from PENDING to QUEUED (or QUEUED to RUNNING) between them.
  const open = new Set([RunStatus.PENDING, RunStatus.QUEUED, RunStatus.RUNNING]);
  const { items } = await app.services.training.list(
    { limit: 100, backward: false },
    { experiment: `hpo/${name}` },
  );
  return items.filter((r) => open.has(r.status)).length;
}

it('never has more than parallelism trials open, with many passes racing; cancel stops them', async () => {
  const s = await study('racing', 20, 3);
  // Eight passes at once (as from processes whose leases overlapped), on top of the app's loop.
  await Promise.all(Array.from({ length: 8 }, () => app.services.studies.advance()));
  await Promise.all(Array.from({ length: 8 }, () => app.services.studies.advance()));
  expect(await openRuns('racing')).toBe(3);
  const after = await app.services.studies.get(s.id);
  expect(after.trialsStarted).toBe(3);
  expect(after.trialsActive).toBe(3);
  const trials = await app.services.studies.trials(s.id);
  expect(trials.map((t) => t.number)).toEqual([0, 1, 2]);
  expect(trials.every((t) => t.runId !== null && t.state === TrialState.RUNNING)).toBe(true);
  // Another user's job, submitted now, waits behind at most the study's three.
  const other = await app.services.training.submit({
    experiment: 'someone-else',
    builtinTrainer: 'logistic_regression',
    datasetId,
  });
  expect((await app.services.training.queuePositions([other.id]))[0]).toBeLessThanOrEqual(4);
  await app.services.training.cancel(other.id);

  const cancelled = await app.services.studies.cancel(s.id);
  expect(cancelled.status).toBe(StudyStatus.CANCELLED);
  expect(cancelled.trialsActive).toBe(0);
  const runs = await app.services.training.byIds(trials.map((t) => t.runId as string));
  expect(runs.map((r) => r.status)).toEqual([
    RunStatus.CANCELLED,
    RunStatus.CANCELLED,
    RunStatus.CANCELLED,
  ]);
  expect((await app.services.studies.trials(s.id)).map((t) => t.state)).toEqual([
    TrialState.CANCELLED,
    TrialState.CANCELLED,
    TrialState.CANCELLED,
  ]);
  await app.services.studies.advance();
  expect(await openRuns('racing')).toBe(0);
});

it('runs a whole study on a real gpu-runner, never more than parallelism trials waiting or running', async () => {
  runners.push(
    startRunner(app.url, key, {
      RUNNER_NAME: 'hpo-runner',
      GPU_RUNNER_GPUS: '',
      RUNNER_SLOTS: '4',
      RUNNER_POLL_MS: '50',
      RUNNER_LEASE_RENEW_MS: '500',
      RUNNER_REPORT_MS: '100',
      RUNNER_HARDWARE_MS: '500',
      RUNNER_HEARTBEAT_MS: '500',
    }),
  );
  const s = await study('full', 5, 2);
  let most = 0;
  let sampling = true;
  const sampler = (async () => {
    while (sampling) {
      most = Math.max(most, await openRuns('full'));
      await new Promise((r) => setTimeout(r, 30));
    }
  })();
  let done;
  try {
    done = await until(async () => {
      const x = await app.services.studies.get(s.id);
      return x.status === StudyStatus.RUNNING ? undefined : x;
    }, 120_000);
  } catch (e) {
    throw new Error(`study did not end: ${runners[0].log().slice(-3000)}`, { cause: e });
  } finally {
    sampling = false;
    await sampler;
  }
  expect(done.status).toBe(StudyStatus.COMPLETED);
  expect(most).toBeLessThanOrEqual(2);
  // It did run trials side by side.
  expect(most).toBe(2);
  const trials = await app.services.studies.trials(s.id);
  expect(trials.map((t) => t.number)).toEqual([0, 1, 2, 3, 4]);
  const runs = new Map(
    (await app.services.training.byIds(trials.map((t) => t.runId as string))).map((r) => [r.id, r]),
  );
  for (const t of trials) {
    const run = runs.get(t.runId as string);
    expect(run?.status).toBe(RunStatus.SUCCEEDED);
    expect(t.state).toBe(TrialState.COMPLETE);
    // The objective is the run's final value of the metric.
    expect(t.value).toBe(run?.summary.val_loss);
    expect(run?.hyperparameters).toMatchObject({ ...t.params, epochs: 3, batchSize: 256 });
    expect(run?.experimentName).toBe('hpo/full');
  }
  expect(done.trialsActive).toBe(0);
  expect(done.gpuSecondsUsed).toBeGreaterThan(0);
});

it('runs a study of 30 trials on 4 runners within its budget', async () => {
  // The runner of the test above (4 slots) and three more of one slot each.
  if (!runners.length) throw new Error('the whole-study test starts the first runner');
  for (let i = 1; i <= 3; i++) runners.push(oneSlotRunner(`hpo-runner-${i}`));
  const budgetSeconds = 600;
  const s = await app.services.studies.create(
    {
      name: 'thirty',
      builtinTrainer: 'logistic_regression',
      datasetId,
      hyperparameters: { epochs: 2, batchSize: 256 },
      space: [
        { name: 'learningRate', kind: ParamKind.FLOAT, low: 0.01, high: 1, log: true },
        { name: 'l2', kind: ParamKind.FLOAT, low: 0, high: 0.1 },
      ],
      objective: { metric: 'val_loss', direction: Direction.MINIMIZE },
      sampler: SamplerKind.TPE,
      budget: { trials: 30, gpuSeconds: budgetSeconds },
      parallelism: 4,
      seed: 11,
    },
    editor,
  );
  let most = 0;
  let sampling = true;
  const sampler = (async () => {
    while (sampling) {
      most = Math.max(most, await openRuns('thirty'));
      await new Promise((r) => setTimeout(r, 50));
    }
  })();
  let done;
  try {
    done = await until(async () => {
      const x = await app.services.studies.get(s.id);
      return x.status === StudyStatus.RUNNING ? undefined : x;
    }, 180_000);
  } finally {
    sampling = false;
    await sampler;
  }
  expect(done.status).toBe(StudyStatus.COMPLETED);
  expect(done.trialsStarted).toBe(30);
  expect(done.trialsActive).toBe(0);
  expect(done.gpuSecondsUsed).toBeGreaterThan(0);
  expect(done.gpuSecondsUsed).toBeLessThanOrEqual(budgetSeconds);
  expect(most).toBeLessThanOrEqual(4);
  const trials = await app.services.studies.trials(s.id);
  expect(trials.map((t) => t.number)).toEqual(Array.from({ length: 30 }, (_, i) => i));
  expect(trials.every((t) => t.state === TrialState.COMPLETE)).toBe(true);
  const runs = await app.services.training.byIds(trials.map((t) => t.runId as string));
  expect(new Set(runs.map((r) => r.id)).size).toBe(30);
  expect(runs.every((r) => r.status === RunStatus.SUCCEEDED)).toBe(true);
  // The work was shared out: more than one runner ran trials.
  expect(new Set(runs.map((r) => r.runnerId)).size).toBeGreaterThan(1);
}, 240_000);

it('loses no trial and runs none twice when a runner is killed mid-trial: another resumes its run', async () => {
  // Only the runner killed here and the one that takes over.
  const earlier = runners.splice(0);
  for (const r of earlier) r.child.kill('SIGKILL');
  await Promise.all(earlier.map((r) => r.exited));
  const killed = oneSlotRunner('hpo-killed');
  runners.push(killed);
  const s = await app.services.studies.create(
    {
      name: 'killed',
      builtinTrainer: 'mlp',
      datasetId,
      // Long enough to be killed after its first checkpoints, well before its end.
      hyperparameters: { epochs: 200, hiddenUnits: [32, 32], batchSize: 16, seed: 5 },
      space: [{ name: 'learningRate', kind: ParamKind.FLOAT, low: 0.001, high: 0.01, log: true }],
      objective: { metric: 'val_loss', direction: Direction.MINIMIZE },
      sampler: SamplerKind.RANDOM,
      budget: { trials: 2 },
      parallelism: 1,
      seed: 4,
    },
    editor,
  );
  const first = await until(async () => {
    const [t] = await app.services.studies.trials(s.id);
    if (!t?.runId) return undefined;
    return (await app.services.training.checkpointsOf(t.runId)).length >= 2 ? t : undefined;
  }, 60_000);
  killed.child.kill('SIGKILL');
  await killed.exited;
  expect((await app.services.training.byIds([first.runId as string]))[0].status).toBe(
    RunStatus.RUNNING,
  );
  runners.push(oneSlotRunner('hpo-takeover'));

  const done = await until(async () => {
    const x = await app.services.studies.get(s.id);
    return x.status === StudyStatus.RUNNING ? undefined : x;
  }, 180_000);
  expect(done.status).toBe(StudyStatus.COMPLETED);
  expect(done.trialsStarted).toBe(2);
  const trials = await app.services.studies.trials(s.id);
  expect(trials.map((t) => [t.number, t.state])).toEqual([
    [0, TrialState.COMPLETE],
    [1, TrialState.COMPLETE],
  ]);
  // The killed trial kept its run, which the other runner resumed from its checkpoint.
  expect(trials[0].runId).toBe(first.runId);
  const [run] = await app.services.training.byIds([first.runId as string]);
  expect(run.status).toBe(RunStatus.SUCCEEDED);
  expect(run.logTail).toMatch(/resuming from the checkpoint of epoch \d+/);
  expect(trials[0].value).toBe(run.summary.val_loss);
  // No run of the study's was started twice: one run per trial.
  const { items } = await app.services.training.list(
    { limit: 100, backward: false },
    { experiment: 'hpo/killed' },
  );
  expect(items.map((r) => r.id).sort()).toEqual(trials.map((t) => t.runId).sort());
}, 300_000);
