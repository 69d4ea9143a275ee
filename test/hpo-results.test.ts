import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { Role } from '../src/domain/auth/role';
import { localIdOf, toGlobalId } from '../src/schema/node.types';
import {
  AskTrialDocument,
  CreateStudyDocument,
  LineageDocument,
  RegisterBestDocument,
  StudyDocument,
  TellTrialDocument,
} from './generated/graphql';
import { buildCustomerDataset } from './support/datasets';
import { GraphQLTestClient } from './support/graphql-client';
import { type RunnerProcess, startRunner, until } from './support/runner-process';
import { startTestApp, type TestApp } from './support/test-app';

/**
 * What a study leaves behind (ADR 0030), through the graph and HTTP with a real gpu-runner:
 * `registerBest` registers the best complete trial's model as a model version, with clear
 * codes when there is none; the study, its trials, their runs and that version are in the
 * lineage; and the study, exported as an Optuna journal file, is read by Python Optuna with
 * the same best value and parameters (skipped, saying why, without optuna).
 */
const CI_VENV_PYTHON = '/opt/aether-py/bin/python';
const python =
  process.env.TEST_PYTHON || (fs.existsSync(CI_VENV_PYTHON) ? CI_VENV_PYTHON : 'python3');
const probe = spawnSync(python, ['-c', 'import optuna'], { encoding: 'utf8', timeout: 60_000 });
const noOptuna =
  probe.status === 0
    ? null
    : `${python} cannot import optuna (${(probe.stderr || String(probe.error)).trim().split('\n').pop()}); install it with ${python} -m pip install optuna, as .ci/run does`;
if (noOptuna) console.warn(`hpo-results.test.ts reads the journal without Optuna: ${noOptuna}`);

let app: TestApp;
let gql: GraphQLTestClient;
let viewer: GraphQLTestClient;
let viewerToken: string;
let datasetId: string;
let studyId: string;
const runners: RunnerProcess[] = [];
const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'hpo-results-'));

beforeAll(async () => {
  app = await startTestApp(__filename, {
    env: { FEATURE_STREAM_CONSUMER: 'off', TRAINING_LEASE_MS: '4000', HPO_INTERVAL_MS: '200' },
  });
  const s = app.services;
  gql = new GraphQLTestClient(app.url, app.adminToken);
  viewerToken = (await s.apiKeys.create(null, { name: 'viewer', role: Role.VIEWER })).token;
  viewer = gql.withToken(viewerToken);
  const runnerKey = (await s.apiKeys.create(null, { name: 'runners', role: Role.RUNNER })).token;
  const snapshot = await buildCustomerDataset(s, 600);
  datasetId = toGlobalId('DatasetSnapshot', snapshot.id);
  runners.push(
    startRunner(app.url, runnerKey, {
      RUNNER_NAME: 'hpo-results-runner',
      GPU_RUNNER_GPUS: '',
      RUNNER_SLOTS: '2',
      RUNNER_POLL_MS: '50',
      RUNNER_LEASE_RENEW_MS: '500',
      RUNNER_REPORT_MS: '100',
      RUNNER_HARDWARE_MS: '500',
      RUNNER_HEARTBEAT_MS: '500',
    }),
  );
  const created = await gql.ok(CreateStudyDocument, {
    input: {
      name: 'churn-search',
      builtinTrainer: 'logistic_regression',
      datasetId,
      hyperparameters: { epochs: 3 },
      space: [
        { name: 'learningRate', kind: 'FLOAT', low: 0.01, high: 1, log: true },
        { name: 'batchSize', kind: 'INT', low: 32, high: 512, log: true },
        { name: 'seed', kind: 'CATEGORICAL', choices: [1, 2, 3] },
      ],
      objective: { metric: 'val_loss', direction: 'MINIMIZE' },
      sampler: 'RANDOM',
      budget: { trials: 4 },
      parallelism: 2,
      seed: 11,
    },
  });
  studyId = created.createStudy.id;
  try {
    await until(async () => {
      const st = (await viewer.ok(StudyDocument, { id: studyId })).study;
      return st?.status === 'RUNNING' ? undefined : st;
    }, 60_000);
  } catch (e) {
    throw new Error(`the study did not end: ${runners[0].log().slice(-3000)}`, { cause: e });
  }
});

afterAll(async () => {
  for (const r of runners) r.child.kill('SIGKILL');
  await Promise.all(runners.map((r) => r.exited));
  await app.stop();
  fs.rmSync(tmp, { recursive: true, force: true });
});

it('registers the best complete trial’s model, once however often it is asked', async () => {
  const study = (await viewer.ok(StudyDocument, { id: studyId })).study;
  expect(study?.status).toBe('COMPLETED');
  const trials = study?.trials ?? [];
  expect(trials.map((t) => t.state)).toEqual(['COMPLETE', 'COMPLETE', 'COMPLETE', 'COMPLETE']);
  const best = [...trials].sort((a, b) => (a.value as number) - (b.value as number))[0];

  // A viewer may read the study but not register from it.
  const denied = await viewer.request(RegisterBestDocument, { studyId, model: 'churn' });
  expect(denied.errors?.[0].extensions?.code).toBe('FORBIDDEN');

  const r = (await gql.ok(RegisterBestDocument, { studyId, model: 'churn' })).registerBest;
  expect(r.trial).toMatchObject({ id: best.id, number: best.number, value: best.value });
  expect(r.modelVersion).toMatchObject({ version: 1, state: 'REGISTERED' });
  expect(r.modelVersion.run?.id).toBe(best.run?.id);
  // The same run again: the same version, nothing new registered.
  const again = (await gql.ok(RegisterBestDocument, { studyId, model: 'churn', reason: 'again' }))
    .registerBest;
  expect(again.modelVersion.id).toBe(r.modelVersion.id);
  const versions = await app.services.registry.versionsOf([
    (await app.services.registry.model('churn')).id,
  ]);
  expect(versions).toHaveLength(1);
  expect(versions[0].hyperparameters).toMatchObject({
    ...(best.params as Record<string, unknown>),
    epochs: 3,
  });
});

it('says why when there is nothing to register', async () => {
  const created = await gql.ok(CreateStudyDocument, {
    input: {
      name: 'notebook',
      space: [{ name: 'x', kind: 'FLOAT', low: 0, high: 1 }],
      objective: { metric: 'loss', direction: 'MINIMIZE' },
      budget: { trials: 3 },
    },
  });
  const id = created.createStudy.id;
  const none = await gql.request(RegisterBestDocument, { studyId: id, model: 'notebook' });
  expect(none.errors?.[0].extensions).toMatchObject({
    code: 'CONFLICT',
    reason: 'NO_COMPLETE_TRIAL',
  });
  // Its best trial was run by the client (ask and tell): Aether holds no model of it.
  const asked = (await gql.ok(AskTrialDocument, { studyId: id })).askTrial;
  await gql.ok(TellTrialDocument, { trialId: asked.id, input: { value: 0.5 } });
  const told = await gql.request(RegisterBestDocument, { studyId: id, model: 'notebook' });
  expect(told.errors?.[0].extensions).toMatchObject({
    code: 'CONFLICT',
    reason: 'BEST_TRIAL_HAS_NO_RUN',
  });
  expect(told.errors?.[0].message).toMatch(/asked for and told/);
  const missing = await gql.request(RegisterBestDocument, {
    studyId: toGlobalId('Study', '00000000-0000-0000-0000-000000000000'),
    model: 'notebook',
  });
  expect(missing.errors?.[0].extensions?.code).toBe('NOT_FOUND');
});

it('puts the study, its trials, their runs and the registered version in the lineage', async () => {
  const study = (await viewer.ok(StudyDocument, { id: studyId })).study;
  const trials = study?.trials ?? [];
  const best = [...trials].sort((a, b) => (a.value as number) - (b.value as number))[0];
  const version = (await gql.ok(RegisterBestDocument, { studyId, model: 'churn' })).registerBest
    .modelVersion;
  const g = (
    await viewer.ok(LineageDocument, {
      id: studyId,
      direction: 'BOTH',
      depth: 3,
      limit: 100,
    })
  ).lineage;
  const kinds = (kind: string) => g.nodes.filter((n) => n.kind === kind).map((n) => n.id);
  expect(kinds('Study')).toEqual([studyId]);
  expect(kinds('DatasetSnapshot')).toEqual([datasetId]);
  expect(kinds('Trial').sort()).toEqual(trials.map((t) => t.id).sort());
  expect(kinds('Run').sort()).toEqual(trials.map((t) => t.run?.id).sort());
  expect(kinds('ModelVersion')).toEqual([version.id]);
  expect(g.nodes.find((n) => n.id === best.id)?.label).toBe(`churn-search #${best.number}`);
  const edge = (from: string, to: string) =>
    g.edges.find((e) => e.from === from && e.to === to)?.relation;
  expect(edge(datasetId, studyId)).toBe('tunes');
  for (const t of trials) {
    expect(edge(studyId, t.id)).toBe('trial');
    expect(edge(t.id, t.run?.id as string)).toBe('runs');
  }
  expect(edge(best.run?.id as string, version.id)).toBe('produces');
  expect(edge(best.id, version.id)).toBe('best trial of');
  expect(edge(studyId, version.id)).toBe('registered best');
  // From the version, one hop up: the run that made it, the best trial and its study (and
  // the feature view version it serves from).
  const up = (
    await viewer.ok(LineageDocument, {
      id: version.id,
      direction: 'UPSTREAM',
      depth: 1,
      limit: 100,
    })
  ).lineage;
  expect(
    up.nodes
      .filter((n) => n.kind !== 'FeatureViewVersion')
      .map((n) => n.id)
      .sort(),
  ).toEqual([version.id, best.run?.id, best.id, studyId].sort());
  // A lineage search finds studies and trials by name.
  const found = await app.services.lineage.search('churn-search', ['Study'], 10);
  expect(found.map((n) => n.id)).toEqual([`Study:${localIdOf(studyId, 'Study')}`]);
});

it('exports the study as an Optuna journal that Optuna loads with the same best trial', async () => {
  const base = app.url.replace('/graphql', '');
  const url = `${base}/studies/${encodeURIComponent(studyId)}/optuna-journal.log`;
  expect((await fetch(url)).status).toBe(401);
  const res = await fetch(url, { headers: { authorization: `Bearer ${viewerToken}` } });
  expect(res.status).toBe(200);
  expect(res.headers.get('content-type')).toMatch(/ndjson/);
  const text = await res.text();
  const lines = text
    .trimEnd()
    .split('\n')
    .map((l) => JSON.parse(l) as { op_code: number });
  // CREATE_STUDY first, then the trials' CREATE_TRIAL … SET_TRIAL_STATE_VALUES.
  expect(lines[0]).toMatchObject({ op_code: 0, study_name: 'churn-search', directions: [1] });
  expect(lines.filter((l) => l.op_code === 4)).toHaveLength(4);
  expect(lines.filter((l) => l.op_code === 6)).toHaveLength(4);
  // Three epochs of val_loss per trial, as its run reported them.
  expect(lines.filter((l) => l.op_code === 7)).toHaveLength(12);
  const missing = await fetch(
    `${base}/studies/${encodeURIComponent(toGlobalId('Study', '00000000-0000-0000-0000-000000000000'))}/optuna-journal.log`,
    { headers: { authorization: `Bearer ${viewerToken}` } },
  );
  expect(missing.status).toBe(404);

  const study = (await viewer.ok(StudyDocument, { id: studyId })).study;
  const best = study?.bestTrial;
  if (noOptuna) {
    console.warn(`hpo-results.test.ts: not loaded with Optuna: ${noOptuna}`);
    return;
  }
  const file = path.join(tmp, 'journal.log');
  fs.writeFileSync(file, text);
  const script = `
import json, sys
import optuna
from optuna.storages import JournalStorage
from optuna.storages.journal import JournalFileBackend
optuna.logging.set_verbosity(optuna.logging.WARNING)
s = optuna.load_study(study_name="churn-search", storage=JournalStorage(JournalFileBackend(sys.argv[1])))
b = s.best_trial
print(json.dumps({
  "direction": s.direction.name,
  "best_value": s.best_value,
  "best_params": s.best_params,
  "best_number": b.number,
  "intermediate": sorted(b.intermediate_values.items()),
  "states": [t.state.name for t in s.trials],
  "user_attrs": s.user_attrs,
  "trial_attrs": b.user_attrs,
}))
`;
  const out = spawnSync(python, ['-c', script, file], { encoding: 'utf8', timeout: 60_000 });
  expect(out.stderr.split('\n').filter((l) => /Error|Traceback/.test(l))).toEqual([]);
  const o = JSON.parse(out.stdout) as {
    direction: string;
    best_value: number;
    best_params: Record<string, unknown>;
    best_number: number;
    intermediate: [number, number][];
    states: string[];
    user_attrs: Record<string, unknown>;
    trial_attrs: Record<string, unknown>;
  };
  expect(o.direction).toBe('MINIMIZE');
  expect(o.best_value).toBe(best?.value);
  expect(o.best_params).toEqual(best?.params);
  expect(o.best_number).toBe(best?.number);
  expect(o.states).toEqual(['COMPLETE', 'COMPLETE', 'COMPLETE', 'COMPLETE']);
  expect(o.intermediate.map(([step]) => step)).toEqual([1, 2, 3]);
  expect(o.intermediate[2][1]).toBe(best?.value);
  expect(o.user_attrs).toMatchObject({ aether_metric: 'val_loss', aether_status: 'COMPLETED' });
  expect(o.trial_attrs).toMatchObject({
    aether_trial_id: localIdOf(best?.id as string, 'Trial'),
    aether_state: 'COMPLETE',
  });
});
