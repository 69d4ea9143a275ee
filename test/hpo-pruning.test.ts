import { Role } from '../src/domain/auth/role';
import { buildCustomerDataset } from './support/datasets';
import { randomSampler } from '../src/domain/hpo/samplers';
import { Direction, ParamKind, type SearchSpace } from '../src/domain/hpo/study';
import { RunStatus } from '../src/domain/training/training-run';
import { localIdOf, toGlobalId } from '../src/schema/node.types';
import {
  CreateStudyDocument,
  type CreateStudyInput,
  StudyProgressDocument,
  type StudyProgressSubscription,
  StudyTrialRunsDocument,
  type StudyTrialRunsQuery,
} from './generated/graphql';
import { collect, GraphQLTestClient } from './support/graphql-client';
import { type RunnerProcess, startRunner, until } from './support/runner-process';
import { startTestApp, type TestApp } from './support/test-app';

/**
 * Pruning from checkpoints (ADR 0030), with a real gpu-runner process holding one GPU and the
 * built-in trainers (a checkpoint every epoch): a MEDIAN-pruned trial's run stops at its next
 * checkpoint and its GPU goes at once to the run waiting for it; under ASHA a trial promoted
 * to the next rung resumes from the checkpoint its previous run left and trains only the
 * epochs after it. Both publish their trials' pruning on `studyProgress`.
 */
let app: TestApp;
let gql: GraphQLTestClient;
let datasetId: string;
let runner: RunnerProcess;

beforeAll(async () => {
  app = await startTestApp(__filename, {
    env: { FEATURE_STREAM_CONSUMER: 'off', TRAINING_LEASE_MS: '4000', HPO_INTERVAL_MS: '100' },
  });
  gql = new GraphQLTestClient(app.url, app.adminToken);
  const s = app.services;
  const snapshot = await buildCustomerDataset(s, 1_000);
  datasetId = snapshot.id;
  const key = (await s.apiKeys.create(null, { name: 'runners', role: Role.RUNNER })).token;
  runner = startRunner(app.url, key, {
    RUNNER_NAME: 'one-gpu',
    GPU_RUNNER_GPUS: '0',
    RUNNER_POLL_MS: '50',
    RUNNER_LEASE_RENEW_MS: '200',
    RUNNER_REPORT_MS: '50',
    RUNNER_HARDWARE_MS: '1000',
    RUNNER_HEARTBEAT_MS: '500',
  });
});

afterAll(async () => {
  runner.child.kill('SIGKILL');
  await runner.exited;
  await app.stop();
});

type Progress = StudyProgressSubscription['studyProgress'];
type TrialRuns = NonNullable<StudyTrialRunsQuery['study']>['trials'][number];

async function createStudy(input: Omit<CreateStudyInput, 'datasetId'>): Promise<string> {
  return (
    await gql.ok(CreateStudyDocument, {
      input: { ...input, datasetId: toGlobalId('DatasetSnapshot', datasetId) },
    })
  ).createStudy.id;
}

/** Waits for the study to end, with its trials and their runs as the graph shows them. */
async function ended(id: string): Promise<TrialRuns[]> {
  try {
    return await until(async () => {
      const s = (await gql.ok(StudyTrialRunsDocument, { id })).study;
      return s && s.status !== 'RUNNING' ? s.trials : undefined;
    }, 90_000);
  } catch (e) {
    throw new Error(`study did not end: ${runner.log().slice(-3000)}`, { cause: e });
  }
}

it('MEDIAN: a trial worse than the median stops at its next checkpoint and its GPU goes at once to the run waiting for it', async () => {
  // A learning rate that learns and one that barely moves; the seed gives them in that order.
  const space: SearchSpace = [
    { name: 'learningRate', kind: ParamKind.CATEGORICAL, choices: [0.01, 1e-5] },
  ];
  const draw = (seed: number, number: number) =>
    randomSampler({ space, direction: Direction.MINIMIZE, seed, number, history: [] }).learningRate;
  const seed = [...Array(64).keys()].find((s) => draw(s, 0) === 0.01 && draw(s, 1) === 1e-5);
  const epochs = 8;
  const id = await createStudy({
    name: 'median',
    builtinTrainer: 'mlp',
    hyperparameters: { epochs, batchSize: 64, hiddenUnits: [128, 128] },
    space: [{ name: 'learningRate', kind: 'CATEGORICAL', choices: [0.01, 1e-5] }],
    objective: { metric: 'val_loss', direction: 'MINIMIZE' },
    sampler: 'RANDOM',
    pruner: { kind: 'MEDIAN', startupTrials: 1, warmupEpochs: 1 },
    budget: { trials: 2 },
    parallelism: 1,
    seed,
    gpuCount: 1,
  });
  const ws = gql.ws();
  const sub = collect(ws, StudyProgressDocument, { study: id });
  const studyId = localIdOf(id, 'Study');

  // While the second trial trains on the only GPU, another user's job waits for it.
  const second = await until(async () => {
    const t = (await app.services.studies.trials(studyId)).find((x) => x.number === 1);
    if (!t?.runId) return undefined;
    const [run] = await app.services.training.byIds([t.runId]);
    return run.status === RunStatus.RUNNING ? run : undefined;
  }, 60_000);
  const other = await app.services.training.submit({
    experiment: 'someone-else',
    builtinTrainer: 'logistic_regression',
    datasetId,
    hyperparameters: { epochs: 1 },
    gpuCount: 1,
  });
  expect((await app.services.training.byIds([other.id]))[0].status).toBe(RunStatus.QUEUED);

  const trials = await ended(id);
  await sub.completed;
  await ws.dispose();
  const [good, bad] = trials;
  expect(good).toMatchObject({ number: 0, state: 'COMPLETE', prunedAtEpoch: null });
  expect(good.epochsTrained).toBe(epochs);
  expect(good.intermediateValues.map((v) => v.epoch)).toEqual(
    [...Array(epochs).keys()].map((e) => e + 1),
  );
  // Judged after the warm-up epoch: its best by epoch 2 is above the completed trial's there.
  expect(bad).toMatchObject({ number: 1, state: 'PRUNED', prunedAtEpoch: 2 });
  const atTwo = (t: TrialRuns) => t.intermediateValues.find((v) => v.epoch === 2)?.value as number;
  expect(bad.value).toBe(atTwo(bad));
  expect(Math.min(bad.intermediateValues[0].value, atTwo(bad))).toBeGreaterThan(atTwo(good));
  // Its run stopped at a checkpoint well before its last epoch, cancelled, not failed.
  const [pruned] = await app.services.training.byIds([second.id]);
  expect(pruned.status).toBe(RunStatus.CANCELLED);
  expect(pruned.epochsDone).toBeLessThan(epochs);
  expect(bad.epochsTrained).toBe(pruned.epochsDone);
  expect((await app.services.training.checkpointsOf(pruned.id))[0].epoch).toBe(pruned.epochsDone);
  // The waiting job got the GPU as soon as the pruned run let it go.
  const done = await until(async () => {
    const [r] = await app.services.training.byIds([other.id]);
    return r.status === RunStatus.SUCCEEDED ? r : undefined;
  }, 30_000);
  const freedAt = (pruned.finishedAt as Date).getTime();
  const tookAt = (done.startedAt as Date).getTime();
  expect(tookAt).toBeGreaterThanOrEqual(freedAt - 50);
  expect(tookAt - freedAt).toBeLessThan(2_000);
  expect(done.gpus).toEqual([0]);

  // Progress: the pruning is published, and the stream ends with the study.
  expect(sub.errors).toEqual([]);
  const seen: Progress[] = sub.events.map((e) => e.studyProgress);
  const prunedEvent = seen.find((e) => e.kind === 'TRIAL_PRUNED');
  expect(prunedEvent).toMatchObject({
    trial: { number: 1, state: 'PRUNED', value: bad.value },
    trialsPruned: 1,
    trialsComplete: 1,
    bestValue: good.value,
  });
  expect(seen.at(-1)).toMatchObject({ kind: 'STUDY_ENDED', status: 'COMPLETED' });
  // Epochs as the trials report them: each event's epoch newer than the last for its trial,
  // its value the trial's objective there, and every report before the trial's end.
  for (const t of trials) {
    const reports = seen.filter((e) => e.kind === 'TRIAL_REPORTED' && e.trial?.number === t.number);
    expect(reports.length).toBeGreaterThan(0);
    const epochsSeen = reports.map((e) => e.trial?.epoch as number);
    expect(epochsSeen).toEqual([...epochsSeen].sort((x, y) => x - y));
    expect(new Set(epochsSeen).size).toBe(epochsSeen.length);
    for (const e of reports)
      expect(e.trial?.epochValue).toBe(
        t.intermediateValues.find((v) => v.epoch === e.trial?.epoch)?.value,
      );
    const end = seen.findIndex(
      (e) => e.trial?.number === t.number && ['TRIAL_FINISHED', 'TRIAL_PRUNED'].includes(e.kind),
    );
    expect(seen.indexOf(reports.at(-1) as Progress)).toBeLessThan(end);
  }
  expect(
    seen.filter((e) => e.kind === 'TRIAL_REPORTED' && e.trial?.number === 0).at(-1)?.trial,
  ).toMatchObject({ epoch: epochs, epochValue: good.value });
});

it('ASHA: a promoted trial resumes from its checkpoint and trains only the epochs of its new rung', async () => {
  const id = await createStudy({
    name: 'asha',
    builtinTrainer: 'logistic_regression',
    hyperparameters: { batchSize: 64, epochs: 4 },
    space: [{ name: 'learningRate', kind: 'FLOAT', low: 0.0005, high: 0.5, log: true }],
    objective: { metric: 'val_loss', direction: 'MINIMIZE' },
    sampler: 'RANDOM',
    pruner: { kind: 'ASHA', minResource: 2, reductionFactor: 2 },
    budget: { trials: 4 },
    parallelism: 2,
    seed: 9,
  });
  const ws = gql.ws();
  const sub = collect(ws, StudyProgressDocument, { study: id });
  const trials = await ended(id);
  await sub.completed;
  await ws.dispose();

  // Every trial trained rung 0 (2 epochs); the top half of rung 0 went on to 4 epochs.
  expect(trials).toHaveLength(4);
  const atRung0 = trials.map((t) => t.rungValues[0]).sort((a, b) => a - b);
  const complete = trials.filter((t) => t.state === 'COMPLETE');
  const pruned = trials.filter((t) => t.state === 'PRUNED');
  expect(complete.length).toBeGreaterThanOrEqual(1);
  expect(complete.length + pruned.length).toBe(4);
  // The best of rung 0 always goes on (trials promoted while rung 0 was filling may too).
  expect(complete.map((t) => t.rungValues[0])).toContain(atRung0[0]);
  for (const t of complete) {
    expect(t.rung).toBe(1);
    const [first, promoted] = t.runs;
    expect(t.runs).toHaveLength(2);
    expect(first.hyperparameters).toMatchObject({ epochs: 2 });
    expect(promoted.hyperparameters).toMatchObject({
      epochs: 4,
      learningRate: (t.params as Record<string, unknown>).learningRate,
    });
    // Resumed from the first run's checkpoint: it reported epochs 3 and 4 only.
    expect(promoted.resumedFrom?.id).toBe(first.id);
    expect(promoted.logTail).toMatch(/resuming from the checkpoint of epoch 2/);
    expect(first.history.map((p) => p.epoch)).toEqual([1, 2]);
    expect(promoted.history.map((p) => p.epoch)).toEqual([3, 4]);
    // Epochs counted: the trial trained its top rung's 4 epochs, not 2 + 4.
    expect(t.epochsTrained).toBe(4);
    expect(t.intermediateValues.map((v) => v.epoch)).toEqual([1, 2, 3, 4]);
    expect(t.rungValues).toEqual([first.history[1].value, promoted.history[1].value]);
    expect(t.value).toBe(promoted.history[1].value);
    // The first run's wall clock ended before the promoted one began: it waited, not trained.
    expect(Date.parse(String(promoted.startedAt))).toBeGreaterThanOrEqual(
      Date.parse(String(first.finishedAt)),
    );
  }
  for (const t of pruned) {
    expect(t).toMatchObject({ rung: 0, prunedAtEpoch: 2, epochsTrained: 2 });
    expect(t.runs).toHaveLength(1);
    expect(t.value).toBe(t.rungValues[0]);
  }
  // Resuming is exact: the promoted trial's model is the one 4 uninterrupted epochs give.
  const best = complete[0];
  const straight = await app.services.training.submit({
    experiment: 'asha-check',
    builtinTrainer: 'logistic_regression',
    datasetId,
    hyperparameters: best.runs[1].hyperparameters as Record<string, unknown>,
  });
  const straightDone = await until(async () => {
    const [r] = await app.services.training.byIds([straight.id]);
    return r.status === RunStatus.SUCCEEDED ? r : undefined;
  }, 30_000);
  expect(straightDone.summary.val_loss).toBe(best.value);

  expect(sub.errors).toEqual([]);
  const seen: Progress[] = sub.events.map((e) => e.studyProgress);
  const kinds = seen.map((e) => e.kind);
  expect(kinds.filter((k) => k === 'TRIAL_PAUSED').length).toBe(4);
  expect(kinds.filter((k) => k === 'TRIAL_PROMOTED').length).toBe(complete.length);
  expect(
    seen
      .filter((e) => e.kind === 'TRIAL_PRUNED')
      .map((e) => e.trial?.number)
      .sort(),
  ).toEqual(pruned.map((t) => t.number).sort());
  expect(seen.at(-1)).toMatchObject({
    kind: 'STUDY_ENDED',
    trialsPaused: 0,
    trialsComplete: complete.length,
    trialsPruned: pruned.length,
  });
});

it('ASHA: cancelling a study ends its waiting trials with it, and its progress stream with them', async () => {
  const id = await createStudy({
    name: 'asha-cancel',
    builtinTrainer: 'logistic_regression',
    hyperparameters: { batchSize: 64, epochs: 9 },
    space: [{ name: 'learningRate', kind: 'FLOAT', low: 0.001, high: 0.5, log: true }],
    objective: { metric: 'val_loss', direction: 'MINIMIZE' },
    sampler: 'RANDOM',
    pruner: { kind: 'ASHA' },
    budget: { trials: 9 },
    parallelism: 1,
    seed: 4,
  });
  const studyId = localIdOf(id, 'Study');
  // The first trial trains rung 0 (1 epoch of 1, 3, 9) and waits: one trial cannot be in the
  // top third of its rung while more may come.
  await until(async () => {
    const t = await app.services.studies.trials(studyId);
    return t[0]?.state === 'PAUSED' ? t : undefined;
  }, 30_000);
  const ws = gql.ws();
  const sub = collect(ws, StudyProgressDocument, { study: id });
  await sub.next(1);
  const cancelled = await app.services.studies.cancel(studyId);
  expect(cancelled.status).toBe('CANCELLED');
  expect(cancelled.trialsActive).toBe(0);
  await sub.completed;
  await ws.dispose();
  const trials = await app.services.studies.trials(studyId);
  expect(trials.every((t) => t.state === 'CANCELLED')).toBe(true);
  expect(trials[0]).toMatchObject({ rung: 0, epochsTrained: 1 });
  expect(trials[0].rungValues).toHaveLength(1);
  const last = sub.events.at(-1)?.studyProgress;
  expect(last).toMatchObject({ trialsPaused: 0, trialsRunning: 0, status: 'CANCELLED' });
  expect(last?.trialsCancelled).toBe(trials.length);
});

it('a run resumes only from an ended run of its trainer and dataset that left a checkpoint', async () => {
  const s = app.services.training;
  const [ended] = (
    await s.list(
      { limit: 1, backward: false },
      { experiment: 'hpo/asha', status: RunStatus.SUCCEEDED },
    )
  ).items;
  const submit = (resumeFrom: string, over: Record<string, unknown> = {}) =>
    s.submit({
      experiment: 'resume-checks',
      builtinTrainer: 'logistic_regression',
      datasetId,
      resumeFrom,
      ...over,
    });
  await expect(submit(ended.id, { builtinTrainer: 'mlp' })).rejects.toMatchObject({
    reason: 'INVALID_JOB',
    details: { field: 'resumeFrom' },
  });
  // Waiting for two GPUs on a one-GPU runner: not ended, and no checkpoint once cancelled.
  const waiting = await s.submit({
    experiment: 'resume-checks',
    builtinTrainer: 'logistic_regression',
    datasetId,
    gpuCount: 2,
  });
  await expect(submit(waiting.id)).rejects.toMatchObject({ reason: 'NO_CHECKPOINT' });
  await s.cancel(waiting.id);
  await expect(submit(waiting.id)).rejects.toThrow(/left no checkpoint/);
  // An ended run with checkpoints: accepted, and it starts from the newest.
  const resumed = await submit(ended.id, { hyperparameters: { epochs: 5 } });
  expect(resumed.resumeFromRunId).toBe(ended.id);
  const done = await until(async () => {
    const [r] = await s.byIds([resumed.id]);
    return r.status === RunStatus.SUCCEEDED ? r : undefined;
  }, 30_000);
  const from = (await s.checkpointsOf(ended.id))[0].epoch;
  expect(
    (await s.metricsOf([done.id])).get(done.id)?.find((p) => p.name === 'val_loss')?.epoch,
  ).toBe(from + 1);
});
