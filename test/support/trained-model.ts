import { createHash } from 'node:crypto';
import { type Services } from '../../src/app/services';
import { Role } from '../../src/domain/auth/role';
import { type ModelVersion } from '../../src/domain/registry/model';
import { RunStatus } from '../../src/domain/training/training-run';
import { exportDense } from '../../src/infra/onnx/export';

/**
 * A model version with known weights, through the real path: a run is submitted and claimed
 * by a runner identity, uploads its ONNX model (logistic regression on `features`, no
 * standardization), finishes, and is registered. Serving and registry tests and benchmarks
 * use it when they need exact, predictable scores.
 */
export async function registerKnownModel(
  s: Services,
  o: {
    model: string;
    datasetId: string;
    features: string[];
    weights: number[];
    bias: number;
    /** A model file of the test's own making instead (its metadata must name `features`). */
    bytes?: Uint8Array;
  },
): Promise<ModelVersion> {
  const key = await s.apiKeys.create(null, {
    name: `runner-${o.model}-${Date.now()}`,
    role: Role.RUNNER,
  });
  const actor = { keyId: key.key.id, name: key.key.name, role: Role.RUNNER };
  const runner = await s.runners.register(actor, {
    name: `r-${o.model}`,
    hostname: 'test',
    gpus: [],
  });
  const run = await s.training.submit({
    experiment: o.model,
    builtinTrainer: 'logistic_regression',
    datasetId: o.datasetId,
  });
  const claimed = await s.runExecution.claim(actor, runner.id);
  if (claimed?.id !== run.id) throw new Error('another run was at the head of the queue');
  const d = o.features.length;
  const bytes =
    o.bytes ??
    exportDense(
      o.model,
      o.features,
      { mean: new Array<number>(d).fill(0), std: new Array<number>(d).fill(1) },
      { layers: [{ w: o.weights, b: [o.bias], in: d, out: 1 }] },
    );
  await s.runExecution.saveModel(
    actor,
    run.id,
    runner.id,
    bytes,
    createHash('sha256').update(bytes).digest('hex'),
  );
  await s.runExecution.finish(actor, run.id, runner.id, { outcome: RunStatus.SUCCEEDED });
  await s.runners.stop(actor, runner.id);
  return s.registry.registerFromRun(null, o.model, run.id);
}
