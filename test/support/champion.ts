import { Role } from '../../src/domain/auth/role';
import { ModelState } from '../../src/domain/registry/model';
import { type CanaryPolicy } from '../../src/domain/serving/canary';
import { Rng } from '../../src/domain/training/rng';
import { RunStatus } from '../../src/domain/training/training-run';
import { buildFloatDataset } from './datasets';
import { type RunnerProcess, startRunner, until } from './runner-process';
import { type TestApp } from './test-app';

const admin = { keyId: 'test', name: 'test', role: 'ADMIN' as never };

/**
 * The starting point of the retraining tests: `entities` accounts whose label follows feature
 * `a`, a logistic regression trained on them by a real gpu-runner process, promoted through
 * the gates to PRODUCTION and served at endpoint `risk`. Returns each account's `a` and the
 * runner (the caller kills it).
 */
export async function servedChampion(
  app: TestApp,
  opts: { seed: number; entities: number; runnerName: string; canaryPolicy: CanaryPolicy },
): Promise<{ a: number[]; runner: RunnerProcess }> {
  const s = app.services;
  const rng = new Rng(opts.seed);
  const a = Array.from({ length: opts.entities }, () => rng.normal());
  const snapshot = await buildFloatDataset(s, {
    view: 'acct',
    features: ['a', 'b'],
    rows: a.map((x, i) => ({
      entityKey: `u${i}`,
      at: Date.now() - 3_600_000,
      values: { a: x, b: rng.normal() },
      label: x + 0.3 * rng.normal() > 0 ? 1 : 0,
    })),
  });
  const key = (await s.apiKeys.create(null, { name: 'r', role: Role.RUNNER })).token;
  const runner = startRunner(app.url, key, {
    RUNNER_NAME: opts.runnerName,
    GPU_RUNNER_GPUS: '',
    RUNNER_POLL_MS: '100',
  });
  const submitted = await s.training.submit({
    experiment: 'risk',
    builtinTrainer: 'logistic_regression',
    datasetId: snapshot.id,
    hyperparameters: { epochs: 30 },
    registerAs: 'risk',
  });
  const run = await until(async () => {
    const x = await s.training.get(submitted.id);
    return x.status === RunStatus.SUCCEEDED && x.modelVersionId ? x : undefined;
  }, 60_000);
  const v1 = run.modelVersionId as string;
  await s.registry.validate(admin, v1, snapshot.id);
  for (const to of [
    ModelState.STAGING,
    ModelState.SHADOW,
    ModelState.CANARY,
    ModelState.PRODUCTION,
  ])
    await s.registry.transition(admin, v1, to, 'test');
  await s.deployments.create(admin, {
    endpoint: 'risk',
    model: 'risk',
    maxWaitUs: 0,
    canaryPolicy: opts.canaryPolicy,
  });
  return { a, runner };
}
