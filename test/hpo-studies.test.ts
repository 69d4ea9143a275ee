import { Role } from '../src/domain/auth/role';
import { FeatureType } from '../src/domain/features/feature-definition';
import { toGlobalId } from '../src/schema/node.types';
import { randomSampler } from '../src/domain/hpo/samplers';
import { Direction, TrialState } from '../src/domain/hpo/study';
import { DatasetStatus } from '../src/domain/features/dataset';
import { tpeSample } from '../src/domain/hpo/tpe';
import { localIdOf } from '../src/schema/node.types';
import {
  AskTrialDocument,
  CancelStudyDocument,
  CreateStudyDocument,
  type CreateStudyInput,
  StudiesDocument,
  StudyDocument,
  TellTrialDocument,
} from './generated/graphql';
import { GraphQLTestClient } from './support/graphql-client';
import { until } from './support/runner-process';
import { startTestApp, type TestApp } from './support/test-app';

/**
 * Studies through the graph (ADR 0030): a search space is checked against the hyperparameters
 * the trainer declares before anything is stored, each problem naming its parameter; studies
 * read back one by one and as a Relay connection; viewers read, editors create and cancel.
 */
const T0 = Date.parse('2026-08-01T00:00:00Z');
let app: TestApp;
let gql: GraphQLTestClient;
let viewer: GraphQLTestClient;
let datasetId: string;

beforeAll(async () => {
  // The study pass runs only when a test calls it (studies.advance()).
  app = await startTestApp(__filename, {
    env: { FEATURE_STREAM_CONSUMER: 'off', HPO_INTERVAL_MS: '0' },
  });
  gql = new GraphQLTestClient(app.url, app.adminToken);
  const s = app.services;
  viewer = gql.withToken(
    (await s.apiKeys.create(null, { name: 'viewer', role: Role.VIEWER })).token,
  );
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
  datasetId = toGlobalId('DatasetSnapshot', snapshot.id);
});

afterAll(async () => {
  await app.stop();
});

let n = 0;
const input = (over: Partial<CreateStudyInput> = {}): CreateStudyInput => ({
  name: `study-${++n}`,
  builtinTrainer: 'gbdt',
  datasetId,
  hyperparameters: { trees: 5 },
  space: [
    { name: 'learningRate', kind: 'FLOAT', low: 0.001, high: 1, log: true },
    { name: 'maxDepth', kind: 'INT', low: 2, high: 8 },
    { name: 'bins', kind: 'CATEGORICAL', choices: [16, 32, 64] },
  ],
  objective: { metric: 'val_loss', direction: 'MINIMIZE' },
  sampler: 'TPE',
  budget: { trials: 4 },
  parallelism: 2,
  seed: 7,
  ...over,
});

it('creates a study and reads it back, alone and as a connection', async () => {
  const created = (await gql.ok(CreateStudyDocument, { input: input({ name: 'readback' }) }))
    .createStudy;
  expect(created).toMatchObject({
    name: 'readback',
    status: 'RUNNING',
    trainer: { kind: 'BUILTIN', name: 'gbdt' },
    hyperparameters: { trees: 5 },
    objective: { metric: 'val_loss', direction: 'MINIMIZE' },
    sampler: 'TPE',
    pruner: { kind: 'NONE', startupTrials: null, minResource: null, rungs: null },
    budget: { trials: 4, gpuSeconds: null },
    parallelism: 2,
    seed: 7,
  });
  expect(created.space).toEqual([
    { name: 'learningRate', kind: 'FLOAT', low: 0.001, high: 1, log: true, choices: null },
    { name: 'maxDepth', kind: 'INT', low: 2, high: 8, log: false, choices: null },
    { name: 'bins', kind: 'CATEGORICAL', low: null, high: null, log: false, choices: [16, 32, 64] },
  ]);
  const read = (await viewer.ok(StudyDocument, { id: created.id })).study;
  expect(read).toMatchObject({ id: created.id, name: 'readback' });
  await gql.ok(CreateStudyDocument, { input: input({ name: 'readback-2' }) });
  const first = (await viewer.ok(StudiesDocument, { first: 1 })).studies;
  expect(first.edges).toHaveLength(1);
  expect(first.pageInfo.hasNextPage).toBe(true);
  const rest = (await viewer.ok(StudiesDocument, { first: 100, after: first.pageInfo.endCursor }))
    .studies;
  const names = [...first.edges, ...rest.edges].map((e) => e.node.name);
  expect(names).toEqual(expect.arrayContaining(['readback', 'readback-2']));
  expect(new Set(names).size).toBe(names.length);
  const again = await gql.request(CreateStudyDocument, { input: input({ name: 'readback' }) });
  expect(again.errors?.[0].extensions).toMatchObject({ code: 'CONFLICT', reason: 'STUDY_EXISTS' });
});

describe('a study that builds its training set first', () => {
  const spec = (name: string) => ({
    name,
    featureRefs: ['clicks@1:n'],
    rows: [{ entityKey: 'u1', timestamp: new Date(T0).toISOString(), label: 1 }],
  });
  const setStatus = (id: string, status: string, error: string | null = null) =>
    app.db.dataSource.query(`UPDATE dataset_snapshot SET status = $2, error = $3 WHERE id = $1`, [
      id,
      status,
      error,
    ]);
  const readyDataset = (studyId: string) =>
    until(async () => {
      const { datasetId: id } = await app.services.studies.get(studyId);
      const d = await app.services.datasets.get(id as string);
      return d.status === DatasetStatus.READY ? d : undefined;
    });

  it('starts no trial until the set is READY, then runs its trials on it', async () => {
    const created = (
      await gql.ok(CreateStudyDocument, {
        input: input({ name: 'build-first', datasetId: null, buildDataset: spec('hpo-built') }),
      })
    ).createStudy;
    expect(created).toMatchObject({ status: 'RUNNING', trialsStarted: 0, error: null });
    expect(['BUILDING', 'READY']).toContain(created.dataset?.status);
    const id = localIdOf(created.id, 'Study');
    const d = await readyDataset(id);
    expect(d.name).toBe('hpo-built');
    // As while its build is still running (here, or in another process that took it over).
    await setStatus(d.id, DatasetStatus.BUILDING);
    await app.services.studies.advance();
    expect(await app.services.studies.trials(id)).toEqual([]);
    // A trial asked for meanwhile (run elsewhere) does not open the gate for queue trials.
    await gql.ok(AskTrialDocument, { studyId: created.id });
    await app.services.studies.advance();
    expect((await app.services.studies.trials(id)).map((t) => t.asked)).toEqual([true]);
    await setStatus(d.id, DatasetStatus.READY);
    await app.services.studies.advance();
    const trials = (await app.services.studies.trials(id)).filter((t) => !t.asked);
    expect(trials).toHaveLength(2);
    const runs = await app.services.training.byIds(trials.map((t) => t.runId as string));
    expect(runs.map((r) => [r.datasetId, r.status])).toEqual([
      [d.id, 'QUEUED'],
      [d.id, 'QUEUED'],
    ]);
  });

  it('ends FAILED, saying why, when the set cannot be built', async () => {
    const created = (
      await gql.ok(CreateStudyDocument, {
        input: input({ name: 'build-fails', datasetId: null, buildDataset: spec('hpo-doomed') }),
      })
    ).createStudy;
    const id = localIdOf(created.id, 'Study');
    const d = await readyDataset(id);
    await setStatus(d.id, DatasetStatus.FAILED, 'disk full');
    await app.services.studies.advance();
    const read = (await viewer.ok(StudyDocument, { id: created.id })).study;
    expect(read).toMatchObject({
      status: 'FAILED',
      trialsStarted: 0,
      trials: [],
      dataset: { status: 'FAILED' },
    });
    expect(read?.error).toBe('its training set hpo-doomed could not be built: disk full');
    expect(read?.finishedAt).not.toBeNull();
    const again = await gql.request(CancelStudyDocument, { id: created.id });
    expect(again.errors?.[0].extensions).toMatchObject({ reason: 'STUDY_FINISHED' });
  });

  it('refuses both a dataset and a set to build, or neither, and a taken name before building', async () => {
    const cases: [Partial<CreateStudyInput>, string][] = [
      [{ buildDataset: spec('both') }, 'dataset'],
      [{ datasetId: null }, 'dataset'],
      [{ builtinTrainer: null, datasetId: null, buildDataset: spec('ask') }, 'trainer'],
      [{ datasetId: null, buildDataset: { ...spec('bad'), rows: [] } }, ''],
    ];
    for (const [over, field] of cases) {
      const r = await gql.request(CreateStudyDocument, { input: input(over) });
      expect(r.errors?.[0].extensions?.code).toBe('BAD_USER_INPUT');
      if (field) expect(r.errors?.[0].extensions?.details).toMatchObject({ field });
    }
    const taken = await gql.request(CreateStudyDocument, {
      input: input({ name: 'build-first', datasetId: null, buildDataset: spec('never-built') }),
    });
    expect(taken.errors?.[0].extensions).toMatchObject({
      code: 'CONFLICT',
      reason: 'STUDY_EXISTS',
    });
    const built: unknown[] = await app.db.dataSource.query(
      `SELECT name FROM dataset_snapshot WHERE name = ANY($1)`,
      [['never-built', 'both', 'ask', 'bad']],
    );
    expect(built).toEqual([]);
  });
});

it('refuses a bad search space with BAD_USER_INPUT naming the parameter, storing nothing', async () => {
  const space = input().space as NonNullable<CreateStudyInput['space']>;
  const cases: [Partial<CreateStudyInput>, string, RegExp][] = [
    // Not declared by the trainer.
    [
      { space: [{ name: 'dropout', kind: 'FLOAT', low: 0, high: 0.5 }] },
      'dropout',
      /not a hyperparameter of gbdt/,
    ],
    // An integer hyperparameter searched as a float.
    [
      { space: [{ name: 'maxDepth', kind: 'FLOAT', low: 2, high: 8 }] },
      'maxDepth',
      /integer hyperparameter/,
    ],
    // Bounds beyond what the trainer accepts (maxDepth <= 16; learningRate > 0).
    [
      { space: [{ name: 'maxDepth', kind: 'INT', low: 2, high: 40 }] },
      'maxDepth',
      /value 40 must be >= 1 and <= 16/,
    ],
    [
      { space: [{ name: 'learningRate', kind: 'FLOAT', low: 0, high: 1 }] },
      'learningRate',
      /value 0 must be > 0/,
    ],
    // A log scale needs low > 0.
    [{ space: [{ name: 'l2', kind: 'FLOAT', low: 0, high: 1, log: true }] }, 'l2', /log scale/],
    [{ space: [{ name: 'bins', kind: 'CATEGORICAL', choices: [] }] }, 'bins', /1 to 256 choices/],
    [{ space: [{ name: 'bins', kind: 'CATEGORICAL', choices: [16, 1000] }] }, 'bins', /value 1000/],
    [
      { space: [{ name: 'maxDepth', kind: 'INT', low: 8, high: 2 }] },
      'maxDepth',
      /low must be less than high/,
    ],
    [
      { space: [...space, { name: 'trees', kind: 'INT', low: 1, high: 9 }] },
      'trees',
      /both searched and fixed/,
    ],
    [{ space: [space[1], space[1]] }, 'maxDepth', /twice/],
  ];
  for (const [over, param, message] of cases) {
    const r = await gql.request(CreateStudyDocument, { input: input({ name: 'bad', ...over }) });
    expect(r.errors?.[0].extensions).toMatchObject({
      code: 'BAD_USER_INPUT',
      reason: 'INVALID_SEARCH_SPACE',
      details: { param },
    });
    expect(r.errors?.[0].message).toMatch(message);
  }
  // Every problem is named at once.
  const both = await gql.request(CreateStudyDocument, {
    input: input({
      name: 'bad',
      space: [
        { name: 'dropout', kind: 'FLOAT', low: 0, high: 0.5 },
        { name: 'maxDepth', kind: 'INT', low: 2, high: 40 },
      ],
    }),
  });
  const problems = (both.errors?.[0].extensions?.details as { problems: { param: string }[] })
    .problems;
  expect(problems.map((p) => p.param)).toEqual(['dropout', 'maxDepth']);
  // The rest of a study is checked too.
  const others: [Partial<CreateStudyInput>, string][] = [
    [{ objective: { metric: 'Val Loss', direction: 'MINIMIZE' } }, 'INVALID_STUDY'],
    [{ budget: { trials: 0 } }, 'INVALID_STUDY'],
    [{ parallelism: 0 }, 'INVALID_STUDY'],
    [{ hyperparameters: { trees: 0 } }, 'INVALID_HYPERPARAMETERS'],
    [{ sampler: 'GRID', budget: { trials: 1000 } }, 'INVALID_STUDY'],
    [{ datasetId: null }, 'INVALID_STUDY'],
  ];
  for (const [over, reason] of others) {
    const r = await gql.request(CreateStudyDocument, { input: input({ name: 'bad', ...over }) });
    expect(r.errors?.[0].extensions).toMatchObject({ code: 'BAD_USER_INPUT', reason });
  }
  // Pruners: bounded settings of their own kind, named by field; ASHA owns the epoch count.
  const pruners: [CreateStudyInput['pruner'], Partial<CreateStudyInput>, string][] = [
    [{ kind: 'MEDIAN', warmupEpochs: -1 }, {}, 'pruner.warmupEpochs'],
    [{ kind: 'MEDIAN', startupTrials: 100_000 }, {}, 'pruner.startupTrials'],
    [{ kind: 'MEDIAN', reductionFactor: 3 }, {}, 'pruner.reductionFactor'],
    [{ kind: 'ASHA', reductionFactor: 1 }, {}, 'pruner.reductionFactor'],
    [{ kind: 'ASHA', minResource: 5 }, {}, 'pruner.minResource'],
    [{ kind: 'ASHA', maxResource: 9_000 }, {}, 'pruner.maxResource'],
    [{ kind: 'ASHA', warmupEpochs: 2 }, {}, 'pruner.warmupEpochs'],
    [{ kind: 'NONE', minResource: 2 }, {}, 'pruner.minResource'],
    [
      { kind: 'ASHA' },
      { hyperparameters: {}, space: [{ name: 'trees', kind: 'INT', low: 1, high: 9 }] },
      'space',
    ],
  ];
  for (const [pruner, over, field] of pruners) {
    const r = await gql.request(CreateStudyDocument, {
      input: input({ name: 'bad', pruner, ...over }),
    });
    expect(r.errors?.[0].extensions).toMatchObject({
      code: 'BAD_USER_INPUT',
      reason: 'INVALID_STUDY',
      details: { field },
    });
  }
  // Defaults: MEDIAN as Optuna's; ASHA up to the epochs (trees) every trial would get.
  const median = (
    await gql.ok(CreateStudyDocument, { input: input({ pruner: { kind: 'MEDIAN' } }) })
  ).createStudy;
  expect(median.pruner).toMatchObject({ kind: 'MEDIAN', startupTrials: 5, warmupEpochs: 0 });
  const asha = (
    await gql.ok(CreateStudyDocument, {
      input: input({ hyperparameters: { trees: 27 }, pruner: { kind: 'ASHA' } }),
    })
  ).createStudy;
  expect(asha.pruner).toMatchObject({
    kind: 'ASHA',
    minResource: 1,
    reductionFactor: 3,
    maxResource: 27,
    resourceParam: 'trees',
    rungs: [1, 3, 9, 27],
  });
  const all = (await gql.ok(StudiesDocument, { first: 100 })).studies.edges;
  expect(all.map((e) => e.node.name)).not.toContain('bad');
});

it('lets viewers read studies but only editors create or cancel them', async () => {
  const denied = await viewer.request(CreateStudyDocument, { input: input() });
  expect(denied.errors?.[0].extensions?.code).toBe('FORBIDDEN');
  const s = (await gql.ok(CreateStudyDocument, { input: input({ name: 'guarded' }) })).createStudy;
  const cancel = await viewer.request(CancelStudyDocument, { id: s.id });
  expect(cancel.errors?.[0].extensions?.code).toBe('FORBIDDEN');
  expect((await viewer.ok(StudyDocument, { id: s.id })).study?.status).toBe('RUNNING');
});

it('cancels a study once; cancelling it again is a CONFLICT', async () => {
  const s = (await gql.ok(CreateStudyDocument, { input: input({ name: 'to-cancel' }) }))
    .createStudy;
  const c = (await gql.ok(CancelStudyDocument, { id: s.id })).cancelStudy;
  expect(c.status).toBe('CANCELLED');
  expect(c.finishedAt).not.toBeNull();
  const again = await gql.request(CancelStudyDocument, { id: s.id });
  expect(again.errors?.[0].extensions).toMatchObject({
    code: 'CONFLICT',
    reason: 'STUDY_FINISHED',
  });
  const cancelled = (await gql.ok(StudiesDocument, { first: 100, status: 'CANCELLED' })).studies;
  expect(cancelled.edges.map((e) => e.node.name)).toEqual(['to-cancel']);
});

describe('ask and tell', () => {
  const f = (p: Record<string, unknown>) => ((p.x as number) - 1.5) ** 2 + (p.kind === 'b' ? 0 : 2);

  it('asks for parameters without a run, learns from what it is told, and ends with its budget', async () => {
    const s = (
      await gql.ok(CreateStudyDocument, {
        input: {
          name: 'ask-tell',
          space: [
            { name: 'x', kind: 'FLOAT', low: -5, high: 5 },
            { name: 'kind', kind: 'CATEGORICAL', choices: ['a', 'b', 'c'] },
          ],
          objective: { metric: 'loss', direction: 'MINIMIZE' },
          sampler: 'TPE',
          budget: { trials: 14 },
          parallelism: 1,
          seed: 11,
        },
      })
    ).createStudy;
    expect(s.trainer).toBeNull();
    const stored = await app.services.studies.get(localIdOf(s.id, 'Study'));
    // The queue pass leaves an ask-and-tell study alone: it starts no trial of its own (it
    // once reserved one and then failed to submit it, taking a number from the budget).
    await app.services.studies.advance();
    expect(await app.services.studies.trials(stored.id)).toEqual([]);
    const told: { params: Record<string, unknown>; state: TrialState; value: number | null }[] = [];
    // Two at a time: asking does not wait for earlier trials to be told.
    for (let number = 0; number < 14; number += 2) {
      const a = (await gql.ok(AskTrialDocument, { studyId: s.id })).askTrial;
      const b = (await gql.ok(AskTrialDocument, { studyId: s.id })).askTrial;
      const aRunning = {
        params: a.params as Record<string, unknown>,
        state: TrialState.RUNNING,
        value: null,
      };
      for (const [i, t] of [a, b].entries()) {
        expect(t).toMatchObject({ number: number + i, asked: true, state: 'RUNNING', run: null });
        // The sampler saw exactly the trials told so far and, for the second, the first one
        // still running (TPE's constant liar counts it among the bad trials).
        const ctx = {
          space: stored.space,
          direction: Direction.MINIMIZE,
          seed: 11,
          number: number + i,
          history: i === 0 ? told : [...told, aRunning],
        };
        expect(t.params).toEqual(tpeSample(ctx));
        if (told.length >= 10) expect(t.params).not.toEqual(randomSampler(ctx));
      }
      for (const t of [a, b]) {
        const params = t.params as Record<string, unknown>;
        const value = f(params);
        const r = (await gql.ok(TellTrialDocument, { trialId: t.id, input: { value } })).tellTrial;
        expect(r).toMatchObject({ state: 'COMPLETE', value });
        told.push({ params, state: TrialState.COMPLETE, value });
      }
    }
    const spent = await gql.request(AskTrialDocument, { studyId: s.id });
    expect(spent.errors?.[0].extensions).toMatchObject({
      code: 'CONFLICT',
      reason: 'STUDY_FINISHED',
    });
    const done = (await gql.ok(StudyDocument, { id: s.id })).study;
    expect(done?.status).toBe('COMPLETED');
    expect(done?.trials).toHaveLength(14);
    expect(done?.bestTrial?.value).toBe(Math.min(...told.map((t) => t.value as number)));
  });

  it('records pruned and failed trials, refuses a second tell and an ambiguous one', async () => {
    const s = (
      await gql.ok(CreateStudyDocument, {
        input: {
          name: 'ask-tell-outcomes',
          space: [{ name: 'x', kind: 'INT', low: 0, high: 9 }],
          objective: { metric: 'accuracy', direction: 'MAXIMIZE' },
          sampler: 'RANDOM',
          budget: { trials: 3 },
        },
      })
    ).createStudy;
    const ask = async () => (await gql.ok(AskTrialDocument, { studyId: s.id })).askTrial;
    const [a, b, c] = [await ask(), await ask(), await ask()];
    const fourth = await gql.request(AskTrialDocument, { studyId: s.id });
    expect(fourth.errors?.[0].extensions).toMatchObject({
      code: 'CONFLICT',
      reason: 'BUDGET_SPENT',
    });
    expect(
      (await gql.ok(TellTrialDocument, { trialId: a.id, input: { pruned: true } })).tellTrial,
    ).toMatchObject({ state: 'PRUNED', value: null });
    expect(
      (await gql.ok(TellTrialDocument, { trialId: b.id, input: { failed: 'out of memory' } }))
        .tellTrial,
    ).toMatchObject({ state: 'FAILED', error: 'out of memory' });
    const twice = await gql.request(TellTrialDocument, { trialId: a.id, input: { value: 1 } });
    expect(twice.errors?.[0].extensions).toMatchObject({
      code: 'CONFLICT',
      reason: 'TRIAL_FINISHED',
    });
    const ambiguous = await gql.request(TellTrialDocument, {
      trialId: c.id,
      input: { value: 1, pruned: true },
    });
    expect(ambiguous.errors?.[0].extensions?.code).toBe('BAD_USER_INPUT');
    await gql.ok(TellTrialDocument, { trialId: c.id, input: { value: 0.5 } });
    const st = (await gql.ok(StudyDocument, { id: s.id })).study;
    // Every trial of its budget has ended: the study is over.
    expect(st?.status).toBe('COMPLETED');
    expect(st?.bestTrial?.id).toBe(c.id);
    const denied = await viewer.request(AskTrialDocument, { studyId: s.id });
    expect(denied.errors?.[0].extensions?.code).toBe('FORBIDDEN');
  });
});
