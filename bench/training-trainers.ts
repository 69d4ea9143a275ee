import { fit } from '../src/domain/training/fit';
import { type GbdtState } from '../src/domain/training/learners/gbdt';
import { type DenseState } from '../src/domain/training/learners/linear';
import { builtinTrainer, validateHyperparameters } from '../src/domain/training/trainers';
import { readTrainingTable } from '../src/infra/datasets/training-table';
import { exportDense, exportGbdt } from '../src/infra/onnx/export';
import { predictOnnx } from '../src/infra/onnx/session';
import { buildFlightsTrainingSet, FLIGHTS_TRAINER_SETTINGS } from '../scripts/flights-training-set';
import { median, round, scale, writeResult } from './support/bench';
import { startBenchPlatform } from './support/platform';

/**
 * training-trainers: each built-in trainer on the flights delay snapshot (the code the
 * runner's trainer process runs, in process here so only training is timed). Per trainer:
 * rows_per_second_per_epoch (median epoch), val_auc, val_loss, onnx_max_abs_diff (the
 * exported ONNX model in onnxruntime against the trainer's own predictions on the
 * validation rows, raw inputs). Baseline in the same run: the constant predictor (the
 * training base rate): val_auc 0.5 and its val_loss.
 */
const PREFIX: Record<string, string> = { logistic_regression: 'logreg', mlp: 'mlp', gbdt: 'gbdt' };

export async function main(): Promise<void> {
  // The slice npm run demo:train uses (first 200k flights of 2001, the last 50k as rows).
  const flights = Math.round(200_000 * scale());
  const spine = Math.round(50_000 * scale());
  const p = await startBenchPlatform('training_trainers', { FEATURE_STREAM_CONSUMER: 'off' });
  try {
    const s = p.app.services;
    const snap = await buildFlightsTrainingSet(s, {
      flights,
      spine,
      name: 'flights-delay',
      log: (m) => console.log(m),
    });
    const { table, ts } = readTrainingTable(await s.artifacts.getBytes(snap.artifact!.key));
    const figures: Record<string, number> = { rows: table.n, features: table.d };
    for (const [name, given] of Object.entries(FLIGHTS_TRAINER_SETTINGS)) {
      const hp = validateHyperparameters(builtinTrainer(name)!, given);
      const seconds: number[] = [];
      let trainRows = 0;
      const r = await fit({
        trainer: name,
        hyperparameters: hp,
        table,
        ts,
        onEpoch: async (e) => {
          seconds.push(e.seconds);
          trainRows = e.trainRows;
        },
      });
      const model =
        name === 'gbdt'
          ? exportGbdt(name, table.names, r.standardizer, r.state as GbdtState)
          : exportDense(name, table.names, r.standardizer, r.state as DenseState);
      const onnx = await predictOnnx(model, r.valRaw.x, r.valRaw.n, r.valRaw.d);
      let diff = 0;
      for (let i = 0; i < onnx.length; i++)
        diff = Math.max(diff, Math.abs(onnx[i] - r.valPredictions[i]));
      const k = PREFIX[name];
      figures[`${k}_rows_per_second_per_epoch`] = round(trainRows / median(seconds), 0);
      figures[`${k}_val_auc`] = round(r.metrics.val_auc, 4);
      figures[`${k}_val_loss`] = round(r.metrics.val_loss, 4);
      figures[`${k}_onnx_max_abs_diff`] = Number(diff.toExponential(2));
      figures.constant_val_loss = round(r.metrics.constant_val_loss, 4);
      console.log(`${name}: ${JSON.stringify(r.metrics)}`);
    }
    figures.constant_val_auc = 0.5;
    writeResult('training-trainers', figures);
  } finally {
    await p.close();
  }
}
