/**
 * @jest-environment ./test/support/onnx-environment.cjs
 */
import { fit, type FitCheckpoint, type FitResult } from '../src/domain/training/fit';
import { type GbdtState } from '../src/domain/training/learners/gbdt';
import { type DenseState } from '../src/domain/training/learners/linear';
import { Rng } from '../src/domain/training/rng';
import { type Table } from '../src/domain/training/tabular';
import { builtinTrainer, validateHyperparameters } from '../src/domain/training/trainers';
import { exportDense, exportGbdt } from '../src/infra/onnx/export';
import { predictOnnx } from '../src/infra/onnx/session';

/**
 * The built-in trainers on a synthetic table with an interaction and missing values: each
 * learns, the tree model finds the interaction a linear model cannot, every export runs in
 * onnxruntime and agrees with the trainer's own predictions, and a run resumed from a
 * checkpoint ends exactly where the uninterrupted run ends.
 */
function synthetic(n: number, seed: number): { table: Table; ts: Float64Array } {
  const rng = new Rng(seed);
  const d = 5;
  const x = new Float64Array(n * d);
  const y = new Float64Array(n);
  const ts = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < d; j++) x[i * d + j] = rng.normal() * (j + 1) + j * 10;
    const a = x[i * d] - 0 > 0 ? 1 : -1;
    const b = x[i * d + 1] - 10 > 0 ? 1 : -1;
    const z = 1.5 * a * b + (x[i * d + 2] - 20) / 3 + rng.normal() * 0.5;
    y[i] = z > 0 ? 1 : 0;
    if (rng.next() < 0.05) x[i * d + 3] = NaN;
    ts[i] = i;
  }
  return { table: { n, d, x, y, names: ['a', 'b', 'c', 'd', 'e'] }, ts };
}

const data = synthetic(6_000, 3);

async function train(
  name: string,
  given: Record<string, unknown>,
  resume?: FitCheckpoint,
  stopAfter?: number,
): Promise<{
  result: FitResult;
  checkpoints: FitCheckpoint[];
  finalMetrics: Record<string, number>[];
}> {
  const hp = validateHyperparameters(builtinTrainer(name)!, given);
  const checkpoints: FitCheckpoint[] = [];
  const finalMetrics: Record<string, number>[] = [];
  const result = await fit({
    trainer: name,
    hyperparameters: stopAfter ? { ...hp, epochs: stopAfter, trees: stopAfter } : hp,
    table: data.table,
    ts: data.ts,
    resume,
    onEpoch: async (r, c) => {
      finalMetrics.push(r.metrics);
      if (c) checkpoints.push(c);
    },
  });
  return { result, checkpoints, finalMetrics };
}

async function onnxDiff(name: string, r: FitResult): Promise<number> {
  const bytes =
    name === 'gbdt'
      ? exportGbdt(name, data.table.names, r.standardizer, r.state as GbdtState)
      : exportDense(name, data.table.names, r.standardizer, r.state as DenseState);
  const p = await predictOnnx(bytes, r.valRaw.x, r.valRaw.n, r.valRaw.d);
  let max = 0;
  for (let i = 0; i < p.length; i++) max = Math.max(max, Math.abs(p[i] - r.valPredictions[i]));
  return max;
}

const settings: Record<string, Record<string, unknown>> = {
  logistic_regression: { epochs: 8, learningRate: 0.5, batchSize: 256 },
  mlp: { epochs: 8, learningRate: 0.01, batchSize: 128, hiddenUnits: [16] },
  gbdt: { trees: 30, maxDepth: 3, learningRate: 0.3, minSamplesLeaf: 10 },
};

describe.each(Object.keys(settings))('%s', (name) => {
  it('learns, exports ONNX that matches its own predictions, and resumes exactly', async () => {
    const full = await train(name, settings[name]);
    expect(full.result.metrics.val_auc).toBeGreaterThan(0.6);
    expect(await onnxDiff(name, full.result)).toBeLessThan(1e-5);

    // Killed after epoch 3; resumed from that checkpoint in a fresh fit.
    const epochs = name === 'gbdt' ? 30 : 8;
    const cut = full.checkpoints.find((c) => c.epoch === 3) as FitCheckpoint;
    const resumed = await train(
      name,
      settings[name],
      JSON.parse(JSON.stringify(cut)) as FitCheckpoint,
    );
    expect(resumed.finalMetrics).toHaveLength(epochs - 3);
    expect(resumed.result.metrics).toEqual(full.result.metrics);
    expect(Array.from(resumed.result.valPredictions)).toEqual(
      Array.from(full.result.valPredictions),
    );
  });
});

it('ranks the models as the data demands: trees > MLP-free linear on an interaction', async () => {
  const lin = await train('logistic_regression', settings.logistic_regression);
  const trees = await train('gbdt', settings.gbdt);
  expect(trees.result.metrics.val_auc).toBeGreaterThan(lin.result.metrics.val_auc + 0.05);
});
