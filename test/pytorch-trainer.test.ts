import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { Role } from '../src/domain/auth/role';
import { FeatureType } from '../src/domain/features/feature-definition';
import { RunStatus } from '../src/domain/training/training-run';
import { Rng } from '../src/domain/training/rng';
import { loadSandboxConfig } from '../gpu-runner/runner-config';
import { localIdOf, toGlobalId } from '../src/schema/node.types';
import { SubmitTrainingJobDocument } from './generated/graphql';
import { GraphQLTestClient } from './support/graphql-client';
import { type RunnerProcess, startRunner, until } from './support/runner-process';
import { startTestApp, type TestApp } from './support/test-app';

/**
 * The reference PyTorch trainer (gpu-runner/examples/pytorch_trainer.py) run by a real
 * gpu-runner as an external command: it trains, checkpoints, and its ONNX model is stored.
 * It needs a python with torch, pyarrow, onnx and onnxscript that the sandboxed trainer can
 * run: with the runner's minimal PATH and, under a root runner, as the trainer user (a
 * pyenv under /root will not do). TEST_PYTHON names it; without it, the venv that `.ci/run`
 * makes (/opt/aether-py, from /usr/bin/python3), else python3 on that PATH. Without a usable
 * one the test is skipped, and says why on the console as well as in its name.
 */
const CI_VENV_PYTHON = '/opt/aether-py/bin/python';
const python =
  process.env.TEST_PYTHON || (fs.existsSync(CI_VENV_PYTHON) ? CI_VENV_PYTHON : 'python3');
const { config: sandbox } = loadSandboxConfig({}, process.getuid?.() ?? -1);
const probe = spawnSync(python, ['-c', 'import torch, pyarrow, onnx, onnxscript'], {
  encoding: 'utf8',
  cwd: '/',
  env: { PATH: sandbox.path },
  ...(sandbox.user ? { uid: sandbox.user.uid, gid: sandbox.user.gid } : {}),
});
const available = probe.status === 0;
const reason = available
  ? ''
  : `${python} with torch, pyarrow, onnx and onnxscript cannot be run${sandbox.user ? ` by ${sandbox.user.name}` : ''} here; set TEST_PYTHON (${(probe.stderr || String(probe.error)).trim().split('\n').pop()})`;

if (!available) {
  console.warn(`pytorch-trainer.test.ts is skipped: ${reason}`);
  it.skip(`runs the reference PyTorch trainer (skipped: ${reason})`, () => undefined);
} else {
  let app: TestApp;
  let runner: RunnerProcess;
  beforeAll(async () => {
    app = await startTestApp(__filename, { env: { FEATURE_STREAM_CONSUMER: 'off' } });
    const key = (await app.services.apiKeys.create(null, { name: 'py', role: Role.RUNNER })).token;
    runner = startRunner(app.url, key, {
      RUNNER_NAME: 'py-runner',
      GPU_RUNNER_GPUS: '',
      RUNNER_POLL_MS: '100',
      RUNNER_REPORT_MS: '100',
    });
  });
  afterAll(async () => {
    runner.child.kill('SIGKILL');
    await runner.exited;
    await app.stop();
  });

  it('runs the reference PyTorch trainer and stores its checkpoints and ONNX model', async () => {
    const s = app.services;
    await s.featureRegistry.createEntity({ name: 'p', joinKeys: ['p_id'] });
    const { version } = await s.featureRegistry.createView({
      name: 'pv',
      entity: 'p',
      source: 'pv_src',
      ttlSeconds: 86_400 * 30,
      allowedLatenessSeconds: 86_400 * 30,
      features: ['a', 'b'].map((name) => ({
        name,
        type: FeatureType.FLOAT,
        source: name,
        transform: { kind: 'IDENTITY' as const },
        aggregation: null,
        validation: {},
      })),
    });
    const T0 = Date.now() - 86_400_000;
    const rng = new Rng(5);
    const records = [];
    const spine = [];
    for (let i = 0; i < 2_000; i++) {
      const f = { a: rng.normal(), b: rng.normal() };
      // Known when it happened: the spine is in the past, and a row sees only what was known
      // by its time (invariant 2), so records known only now would join as all-missing.
      records.push({
        entityKey: `p${i}`,
        eventId: 'e',
        eventTs: T0 + i,
        knownAt: T0 + i,
        fields: f,
      });
      spine.push({ entityKey: `p${i}`, ts: T0 + 10_000 + i, label: f.a + f.b > 0 ? 1 : 0 });
    }
    await s.ingestion.ingest([version], records, 'test');
    const { snapshot, done } = await s.datasets.build({
      name: 'py',
      featureRefs: ['pv@1:*'],
      spine,
    });
    await done;
    const gql = new GraphQLTestClient(app.url, app.adminToken);
    const r = await gql.ok(SubmitTrainingJobDocument, {
      input: {
        experiment: 'pytorch',
        datasetId: toGlobalId('DatasetSnapshot', snapshot.id),
        command: {
          name: 'pytorch_mlp',
          argv: [python, path.resolve(__dirname, '../gpu-runner/examples/pytorch_trainer.py')],
        },
        hyperparameters: { epochs: 3 },
      },
    });
    const id = localIdOf(r.submitTrainingJob.id, 'Run');
    const run = await until(async () => {
      const x = await s.training.get(id);
      return [RunStatus.SUCCEEDED, RunStatus.FAILED].includes(x.status) ? x : undefined;
    }, 120_000);
    expect(run.status).toBe(RunStatus.SUCCEEDED);
    expect(run.summary.val_auc).toBeGreaterThan(0.8);
    expect(run.model?.key).toMatch(/\.onnx$/);
    expect((await s.training.checkpointsOf(id)).map((c) => c.epoch)).toEqual([3, 2, 1]);
  }, 180_000);
}
