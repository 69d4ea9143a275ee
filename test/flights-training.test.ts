/**
 * @jest-environment ./test/support/onnx-environment.cjs
 */
import { fit, type FitResult } from '../src/domain/training/fit';
import { type GbdtState } from '../src/domain/training/learners/gbdt';
import { type DenseState } from '../src/domain/training/learners/linear';
import { builtinTrainer, validateHyperparameters } from '../src/domain/training/trainers';
import { readTrainingTable } from '../src/infra/datasets/training-table';
import { exportDense, exportGbdt } from '../src/infra/onnx/export';
import { predictOnnx } from '../src/infra/onnx/session';
import { buildFlightsTrainingSet, FLIGHTS_TRAINER_SETTINGS } from '../scripts/flights-training-set';
import { startTestApp, type TestApp } from './support/test-app';

/**
 * The claim `npm run demo:train` prints, on the same slice of the real flights: on the
 * delay snapshot built through the feature store, the tree model beats logistic
 * regression, every model beats the constant predictor, and each ONNX export agrees with
 * its trainer.
 */
let app: TestApp;
const results: Record<string, FitResult> = {};

beforeAll(async () => {
  app = await startTestApp(__filename, { env: { FEATURE_STREAM_CONSUMER: 'off' } });
  const snap = await buildFlightsTrainingSet(app.services, {
    // The slice demo:train uses by default. (On the first 120k flights, early January, no
    // model beats the base rate's log loss: the label shifts between train and validation.)
    flights: 200_000,
    spine: 50_000,
    name: 'flights-test',
  });
  const { table, ts } = readTrainingTable(
    await app.services.artifacts.getBytes(snap.artifact!.key),
  );
  for (const [name, given] of Object.entries(FLIGHTS_TRAINER_SETTINGS)) {
    results[name] = await fit({
      trainer: name,
      hyperparameters: validateHyperparameters(builtinTrainer(name)!, given),
      table,
      ts,
      onEpoch: async () => undefined,
    });
  }
}, 120_000);

afterAll(() => app.stop());

it('ranks gbdt over logistic regression, and every model over the constant predictor', () => {
  const m = (k: string) => results[k].metrics;
  expect(m('gbdt').val_auc).toBeGreaterThan(m('logistic_regression').val_auc);
  for (const k of Object.keys(results)) {
    expect(m(k).val_auc).toBeGreaterThan(0.6);
    expect(m(k).val_loss).toBeLessThan(m(k).constant_val_loss);
  }
});

it('exports every model to ONNX that agrees with the trainer within 1e-5', async () => {
  for (const [name, r] of Object.entries(results)) {
    const model =
      name === 'gbdt'
        ? exportGbdt(name, r.valRaw.names, r.standardizer, r.state as GbdtState)
        : exportDense(name, r.valRaw.names, r.standardizer, r.state as DenseState);
    const p = await predictOnnx(model, r.valRaw.x, r.valRaw.n, r.valRaw.d);
    let diff = 0;
    for (let i = 0; i < p.length; i++) diff = Math.max(diff, Math.abs(p[i] - r.valPredictions[i]));
    expect(diff).toBeLessThan(1e-5);
  }
});
