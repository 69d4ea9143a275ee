import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { type Principal } from '../src/domain/auth/api-key';
import { Role } from '../src/domain/auth/role';
import { FeatureType } from '../src/domain/features/feature-definition';
import { RunStatus } from '../src/domain/training/training-run';
import { localIdOf, toGlobalId } from '../src/schema/node.types';
import {
  CancelTrainingJobDocument,
  ClaimRunDocument,
  FinishRunDocument,
  RegisterRunnerDocument,
  RenewRunLeaseDocument,
  RunDocument,
  RunHistoryDocument,
  RunUpdatesDocument,
  SubmitTrainingJobDocument,
  TrainersDocument,
} from './generated/graphql';
import { collect, GraphQLTestClient } from './support/graphql-client';
import { until } from './support/runner-process';
import { ManualClock } from '../src/domain/shared/clock';
import { RedisRunQueue } from '../src/infra/redis/run-queue';
import { closeRedis, createRedisClient, type RedisClient } from '../src/infra/redis/redis-client';
import { startTestApp, type TestApp } from './support/test-app';

/**
 * The run queue with real Postgres and Redis: validation before anything is queued, strict
 * FIFO and no GPU overcommit under concurrent claims from many runners, leases that send a
 * dead runner's run back to its own place, retries with the log tail, cancellation.
 */
const T0 = Date.parse('2026-08-01T00:00:00Z');
const clock = new ManualClock(T0);
let app: TestApp;
let gql: GraphQLTestClient;
let runnerGql: GraphQLTestClient;
let runnerPrincipal: Principal;
let datasetId: string;
let redis: RedisClient;

beforeAll(async () => {
  app = await startTestApp(__filename, {
    env: { FEATURE_STREAM_CONSUMER: 'off', TRAINING_LEASE_MS: '60000' },
    overrides: { clock },
  });
  gql = new GraphQLTestClient(app.url, app.adminToken);
  redis = createRedisClient(app.redisTarget, 'training-queue-test');
  const s = app.services;
  const runnerKey = await s.apiKeys.create(null, { name: 'runners', role: Role.RUNNER });
  runnerGql = gql.withToken(runnerKey.token);
  runnerPrincipal = { keyId: runnerKey.key.id, name: runnerKey.key.name, role: Role.RUNNER };
  await s.featureRegistry.createEntity({ name: 'user', joinKeys: ['user_id'] });
  const { version } = await s.featureRegistry.createView({
    name: 'clicks',
    entity: 'user',
    source: 'clicks_src',
    ttlSeconds: 86_400,
    allowedLatenessSeconds: 86_400,
    features: [
      {
        name: 'n',
        type: FeatureType.FLOAT,
        source: 'n',
        transform: { kind: 'IDENTITY' },
        aggregation: null,
        validation: {},
      },
    ],
  });
  await s.ingestion.ingest(
    [version],
    [{ entityKey: 'u1', eventId: 'e1', eventTs: T0 - 1000, fields: { n: 1 } }],
    'test',
  );
  const { snapshot, done } = await s.datasets.build({
    name: 'clicks-train',
    featureRefs: ['clicks@1:n'],
    spine: [{ entityKey: 'u1', ts: T0, label: 1 }],
  });
  await done;
  datasetId = snapshot.id;
});

afterAll(async () => {
  await closeRedis(redis);
  await app.stop();
});

const submit = (over: Record<string, unknown> = {}) =>
  app.services.training.submit({
    experiment: 'queue-test',
    builtinTrainer: 'logistic_regression',
    datasetId,
    ...over,
  });

async function register(
  name: string,
  gpus: number,
  slots?: number,
  memoryMb = 16_000,
): Promise<string> {
  const r = await app.services.runners.register(runnerPrincipal, {
    name,
    hostname: 'test',
    gpus: Array.from({ length: gpus }, (_, index) => ({ index, name: 'sim', memoryMb })),
    slots,
  });
  return r.id;
}

/** Finishes every run still queued or running, so each test starts with an empty queue. */
async function drain(): Promise<void> {
  for (const status of [RunStatus.QUEUED, RunStatus.RUNNING]) {
    for (;;) {
      const open = (await app.services.training.list({ limit: 100, backward: false }, { status }))
        .items;
      if (!open.length) break;
      for (const r of open) {
        if (r.status === RunStatus.QUEUED) await app.services.training.cancel(r.id);
        else
          await app.services.runExecution.finish(runnerPrincipal, r.id, r.runnerId as string, {
            outcome: RunStatus.CANCELLED,
          });
      }
    }
  }
}

afterEach(drain);

describe('submission', () => {
  it('rejects bad input with a code before anything is queued', async () => {
    const before = await app.services.training.queuePositions([]);
    expect(before).toEqual([]);
    const cases: [Record<string, unknown>, string, string][] = [
      [
        { hyperparameters: { epochs: 0, learningRate: -1 } },
        'BAD_USER_INPUT',
        'INVALID_HYPERPARAMETERS',
      ],
      [{ hyperparameters: { epochz: 3 } }, 'BAD_USER_INPUT', 'INVALID_HYPERPARAMETERS'],
      [{ builtinTrainer: 'xgboost_magic' }, 'BAD_USER_INPUT', 'UNKNOWN_TRAINER'],
      [
        { datasetId: toGlobalId('DatasetSnapshot', '00000000-0000-4000-8000-000000000000') },
        'NOT_FOUND',
        'DATASET_NOT_FOUND',
      ],
      [{ gpuCount: 65 }, 'BAD_USER_INPUT', 'INVALID_JOB'],
      [{ builtinTrainer: null }, 'BAD_USER_INPUT', 'INVALID_JOB'],
    ];
    for (const [over, code, reason] of cases) {
      const r = await gql.request(SubmitTrainingJobDocument, {
        input: {
          experiment: 'bad-input',
          builtinTrainer: 'logistic_regression',
          datasetId: toGlobalId('DatasetSnapshot', datasetId),
          ...over,
        },
      });
      expect(r.errors?.[0].extensions).toMatchObject({ code, reason });
    }
    const runs = await app.services.training.list(
      { limit: 10, backward: false },
      {
        experiment: 'bad-input',
      },
    );
    expect(runs.items).toHaveLength(0);
  });

  it('lists the built-in trainers with their parameters, and fills defaults in', async () => {
    const t = await gql.ok(TrainersDocument, {});
    expect(t.trainers.map((x) => x.name)).toEqual(['logistic_regression', 'mlp', 'gbdt']);
    const r = await gql.ok(SubmitTrainingJobDocument, {
      input: {
        experiment: 'defaults',
        builtinTrainer: 'mlp',
        datasetId: toGlobalId('DatasetSnapshot', datasetId),
        hyperparameters: { hiddenUnits: [16, 8] },
        gitCommit: 'abc1234',
      },
    });
    expect(r.submitTrainingJob).toMatchObject({
      status: 'QUEUED',
      queuePosition: 1,
      hyperparameters: { hiddenUnits: [16, 8], epochs: 20, learningRate: 0.001, seed: 42 },
      trainer: { kind: 'BUILTIN', name: 'mlp', version: '1', command: null },
      dataset: { name: 'clicks-train' },
    });
  });
});

describe('submission with a training set to build', () => {
  it('is PENDING until the set is READY, then queued; a bad spec is refused up front', async () => {
    const r = await gql.ok(SubmitTrainingJobDocument, {
      input: {
        experiment: 'build-first',
        builtinTrainer: 'logistic_regression',
        buildDataset: {
          name: 'clicks-fresh',
          featureRefs: ['clicks@1:*'],
          rows: [{ entityKey: 'u1', timestamp: new Date(T0).toISOString(), label: 1 }],
        },
      },
    });
    expect(r.submitTrainingJob.status).toBe('PENDING');
    const id = localIdOf(r.submitTrainingJob.id, 'Run');
    const queued = await until(async () => {
      const run = await app.services.training.get(id);
      return run.status === RunStatus.QUEUED ? run : undefined;
    });
    expect((await app.services.datasets.get(queued.datasetId)).status).toBe('READY');
    expect(await app.services.training.queuePositions([id])).toEqual([1]);

    const bad = await gql.request(SubmitTrainingJobDocument, {
      input: {
        experiment: 'build-first',
        builtinTrainer: 'logistic_regression',
        buildDataset: { name: 'nope', featureRefs: ['nosuchview@1:x'], rows: [] },
      },
    });
    expect(bad.errors?.[0].extensions?.code).toBe('BAD_USER_INPUT');
    const both = await gql.request(SubmitTrainingJobDocument, {
      input: {
        experiment: 'build-first',
        builtinTrainer: 'logistic_regression',
        datasetId: toGlobalId('DatasetSnapshot', datasetId),
        buildDataset: { name: 'x', featureRefs: ['clicks@1:*'], rows: [] },
      },
    });
    expect(both.errors?.[0].extensions).toMatchObject({ reason: 'INVALID_JOB' });
    const runs = await app.services.training.list(
      { limit: 10, backward: false },
      {
        experiment: 'build-first',
      },
    );
    expect(runs.items).toHaveLength(1);
  });
});

describe('the queue', () => {
  it('is strict FIFO and never overcommits GPUs with many runners claiming at once', async () => {
    // 24 runners with 1 to 8 GPUs each (a slot per GPU), 300 runs needing 0 to 8 GPUs.
    const runners = await Promise.all(
      Array.from({ length: 24 }, (_, i) => register(`fifo-${i}`, 1 + (i % 8))),
    );
    const inventory = new Map(runners.map((id, i) => [id, 1 + (i % 8)]));
    const runs = [];
    for (let i = 0; i < 300; i++) runs.push(await submit({ gpuCount: (i * 7) % 9 }));
    const seqOf = new Map(runs.map((r) => [r.id, r.seq]));

    const claimed: string[] = [];
    let rng = 7;
    const random = () => (rng = (rng * 1103515245 + 12345) % 2 ** 31) / 2 ** 31;
    for (let round = 0; round < 400 && claimed.length < runs.length; round++) {
      // Every runner claims at once, as often as it gets something.
      await Promise.all(
        runners.map(async (id) => {
          for (;;) {
            const r = await app.services.runExecution.claim(runnerPrincipal, id);
            if (!r) return;
            claimed.push(r.id);
          }
        }),
      );
      // The claimed runs are exactly the oldest ones: a prefix of submission order.
      const claimedSeqs = claimed.map((id) => seqOf.get(id) as number).sort((a, b) => a - b);
      expect(claimedSeqs).toEqual(runs.slice(0, claimed.length).map((r) => r.seq));
      // No runner holds more GPUs than it has, and no GPU is given twice.
      const running = (
        await app.services.training.list(
          { limit: 100, backward: false },
          { status: RunStatus.RUNNING },
        )
      ).items;
      const held = new Map<string, number[]>();
      for (const r of running)
        held.set(r.runnerId as string, [...(held.get(r.runnerId as string) ?? []), ...r.gpus]);
      for (const [id, gpus] of held) {
        expect(new Set(gpus).size).toBe(gpus.length);
        expect(gpus.every((g) => g >= 0 && g < (inventory.get(id) as number))).toBe(true);
      }
      // Some runs end, freeing their GPUs.
      for (const r of running)
        if (random() < 0.5)
          await app.services.runExecution.finish(runnerPrincipal, r.id, r.runnerId as string, {
            outcome: RunStatus.SUCCEEDED,
          });
    }
    expect(claimed).toHaveLength(runs.length);
  });

  it('holds later small runs back while a big run at the head waits for GPUs', async () => {
    const small = await register('small-2gpu', 2);
    const big = await submit({ gpuCount: 4 });
    const later = await submit({ gpuCount: 1 });
    expect(await app.services.runExecution.claim(runnerPrincipal, small)).toBeNull();
    expect(await app.services.training.queuePositions([big.id, later.id])).toEqual([1, 2]);
    const large = await register('large-4gpu', 4);
    expect((await app.services.runExecution.claim(runnerPrincipal, large))?.id).toBe(big.id);
    expect((await app.services.runExecution.claim(runnerPrincipal, small))?.id).toBe(later.id);
  });
});

describe('GPU memory', () => {
  it('gives a run only GPUs with the memory it asked for', async () => {
    const small = await register('mem-16g', 2);
    const big = await submit({ gpuCount: 1, gpuMemoryMb: 40_000 });
    expect(await app.services.runExecution.claim(runnerPrincipal, small)).toBeNull();
    const large = await register('mem-80g', 2, undefined, 81_559);
    expect(await app.services.runExecution.claim(runnerPrincipal, large)).toMatchObject({
      id: big.id,
      gpus: [0],
    });
  });
});

describe('checkpoints', () => {
  it('never resumes from a checkpoint whose stored bytes no longer verify', async () => {
    const runnerId = await register('ckpt', 0);
    const run = await submit();
    expect((await app.services.runExecution.claim(runnerPrincipal, runnerId))?.id).toBe(run.id);
    const put = (epoch: number, text: string) => {
      const bytes = Buffer.from(text);
      return app.services.runExecution.saveCheckpoint(
        runnerPrincipal,
        run.id,
        runnerId,
        epoch,
        bytes,
        createHash('sha256').update(bytes).digest('hex'),
      );
    };
    await put(1, 'state after epoch 1');
    const second = await put(2, 'state after epoch 2');
    // An upload whose bytes do not match the checksum sent is refused and not recorded.
    await expect(
      app.services.runExecution.saveCheckpoint(
        runnerPrincipal,
        run.id,
        runnerId,
        3,
        Buffer.from('x'),
        'ab'.repeat(32),
      ),
    ).rejects.toMatchObject({ reason: 'UPLOAD_CORRUPT' });
    expect((await app.services.training.checkpointsOf(run.id)).map((c) => c.epoch)).toEqual([2, 1]);
    // The newest checkpoint's file is damaged on disk: the one before it is served.
    fs.writeFileSync(path.join(app.dataDir, 'artifacts', second.key), 'state after epoch 9');
    const latest = await app.services.runExecution.latestCheckpoint(
      runnerPrincipal,
      run.id,
      runnerId,
    );
    expect(latest?.epoch).toBe(1);
    expect(Buffer.from(latest!.bytes).toString()).toBe('state after epoch 1');
  });
});

describe('metric history', () => {
  it('gives every point without a name (omitted or null) and one metric’s points with one', async () => {
    const runnerId = await register('history', 0);
    const run = await submit();
    expect((await app.services.runExecution.claim(runnerPrincipal, runnerId))?.id).toBe(run.id);
    await app.services.runExecution.reportProgress(runnerPrincipal, run.id, runnerId, {
      epochs: [
        { epoch: 1, epochs: 2, metrics: { loss: 0.5, val_auc: 0.7 } },
        { epoch: 2, epochs: 2, metrics: { loss: 0.25, val_auc: 0.75 } },
      ],
      steps: [{ epoch: 1, step: 3, name: 'loss', value: 0.6 }],
    });
    const key = (p: { epoch: number; step?: number | null; name: string }) =>
      `${p.name}@${p.epoch}/${p.step ?? '-'}`;
    const r = await gql.ok(RunHistoryDocument, { id: toGlobalId('Run', run.id), name: 'val_auc' });
    expect(r.run?.all.map(key).sort()).toEqual(
      ['loss@1/-', 'loss@1/3', 'loss@2/-', 'val_auc@1/-', 'val_auc@2/-'].sort(),
    );
    expect(r.run?.explicitNull).toHaveLength(5);
    expect(r.run?.named).toEqual([
      { epoch: 1, name: 'val_auc', value: 0.7 },
      { epoch: 2, name: 'val_auc', value: 0.75 },
    ]);
    // A null variable is the explicit-null form too; an unknown name has no points.
    const viaVariable = await gql.ok(RunHistoryDocument, {
      id: toGlobalId('Run', run.id),
      name: null,
    });
    expect(viaVariable.run?.named).toHaveLength(5);
    const none = await gql.ok(RunHistoryDocument, { id: toGlobalId('Run', run.id), name: 'nope' });
    expect(none.run?.named).toEqual([]);
  });
});

describe('leases, retries and cancellation', () => {
  it('sends a dead runner’s run back to its own place, and another runner resumes it', async () => {
    const a = await register('lease-a', 1);
    const first = await submit({ gpuCount: 1 });
    expect((await app.services.runExecution.claim(runnerPrincipal, a))?.id).toBe(first.id);
    const second = await submit({ gpuCount: 1 });

    clock.set(clock.ms + 61_000); // runner a stops renewing: its lease runs out
    expect(await app.services.runExecution.reapExpired()).toEqual([first.id]);
    expect(await app.services.training.queuePositions([first.id, second.id])).toEqual([1, 2]);
    const back = await app.services.training.get(first.id);
    expect(back).toMatchObject({ status: RunStatus.QUEUED, failures: 0, runnerId: null });

    // The old runner cannot act on it any more.
    await expect(
      app.services.runExecution.renewLease(runnerPrincipal, first.id, a),
    ).rejects.toMatchObject({ reason: 'LEASE_LOST' });
    const b = await register('lease-b', 1);
    expect((await app.services.runExecution.claim(runnerPrincipal, b))?.id).toBe(first.id);
  });

  it('keeps a run in line when a claim lands between the reaper requeueing it and recording that', async () => {
    const a = await register('race-a', 0);
    const run = await submit();
    expect((await app.services.runExecution.claim(runnerPrincipal, a))?.id).toBe(run.id);
    clock.set(clock.ms + 61_000);
    // The reaper's first half: Redis has the run back in line, Postgres still says RUNNING.
    const redisSide = new RedisRunQueue(redis, app.redisPrefix);
    expect(await redisSide.requeueExpired(clock.ms)).toEqual([run.id]);
    const b = await register('race-b', 0);
    expect(await app.services.runExecution.claim(runnerPrincipal, b)).toBeNull();
    // The reaper's second half, then the claim succeeds: the run was not lost.
    await app.db.dataSource.query(
      `UPDATE training_run SET status = 'QUEUED', runner_id = NULL, gpus = '[]' WHERE id = $1`,
      [run.id],
    );
    expect((await app.services.runExecution.claim(runnerPrincipal, b))?.id).toBe(run.id);
  });

  it('retries a crashing trainer up to its limit, then fails with the log tail in the graph', async () => {
    const r = await runnerGql.ok(RegisterRunnerDocument, {
      input: { name: 'retry', hostname: 'test', gpus: [] },
    });
    const runnerId = r.registerRunner.id;
    const run = await submit({ maxRetries: 1 });
    const runId = toGlobalId('Run', run.id);
    for (let attempt = 1; attempt <= 2; attempt++) {
      const c = await runnerGql.ok(ClaimRunDocument, { runnerId });
      expect(c.claimRun?.id).toBe(runId);
      const renewed = await runnerGql.ok(RenewRunLeaseDocument, { runId, runnerId });
      expect(renewed.renewRunLease.cancelRequested).toBe(false);
      const f = await runnerGql.ok(FinishRunDocument, {
        runId,
        runnerId,
        input: {
          outcome: 'FAILED',
          retryable: true,
          error: `exit code 1 (attempt ${attempt})`,
          logTail: `epoch 3\nSegmentation fault (attempt ${attempt})`,
        },
      });
      expect(f.finishRun).toMatchObject(
        attempt === 1
          ? { status: 'QUEUED', failures: 1, queuePosition: 1 }
          : { status: 'FAILED', failures: 1 },
      );
    }
    const final = await gql.ok(RunDocument, { id: runId });
    expect(final.run).toMatchObject({
      status: 'FAILED',
      error: 'exit code 1 (attempt 2)',
      logTail: 'epoch 3\nSegmentation fault (attempt 2)',
    });
    // Finished: nothing left to claim, and the runner cannot finish it again.
    expect((await runnerGql.ok(ClaimRunDocument, { runnerId })).claimRun).toBeNull();
    const again = await runnerGql.request(FinishRunDocument, {
      runId,
      runnerId,
      input: { outcome: 'SUCCEEDED' },
    });
    expect(again.errors?.[0].extensions).toMatchObject({ code: 'CONFLICT', reason: 'LEASE_LOST' });
  });

  it('cancels a queued run at once and asks a running one to stop; pushes each change', async () => {
    const runnerId = toGlobalId('Runner', await register('cancel', 0));
    const queued = await submit();
    const running = await submit();
    const ws = gql.ws();
    const sub = collect(ws, RunUpdatesDocument, { runId: toGlobalId('Run', queued.id) });
    expect((await sub.next(1, 5_000)).map((e) => e.runUpdates.status)).toEqual(['QUEUED']);
    // The first claim takes the head (queued); cancel it from the graph instead, then claim.
    const cancelled = await gql.ok(CancelTrainingJobDocument, { id: toGlobalId('Run', queued.id) });
    expect(cancelled.cancelTrainingJob).toMatchObject({ status: 'CANCELLED', queuePosition: null });
    const got = await runnerGql.ok(ClaimRunDocument, { runnerId });
    expect(got.claimRun?.id).toBe(toGlobalId('Run', running.id));
    const asked = await gql.ok(CancelTrainingJobDocument, { id: toGlobalId('Run', running.id) });
    expect(asked.cancelTrainingJob).toMatchObject({ status: 'RUNNING', cancelRequested: true });
    const renewed = await runnerGql.ok(RenewRunLeaseDocument, {
      runId: toGlobalId('Run', running.id),
      runnerId,
    });
    expect(renewed.renewRunLease.cancelRequested).toBe(true);
    const stopped = await runnerGql.ok(FinishRunDocument, {
      runId: toGlobalId('Run', running.id),
      runnerId,
      input: { outcome: 'CANCELLED' },
    });
    expect(stopped.finishRun.status).toBe('CANCELLED');
    await sub.completed;
    expect(sub.events.map((e) => e.runUpdates.status)).toEqual(['QUEUED', 'CANCELLED']);
    await ws.dispose();
  });
});
