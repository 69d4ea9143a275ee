import { type Learner, type Rows } from './learners/learner';
import { gbdt } from './learners/gbdt';
import { logisticRegression, mlp } from './learners/linear';
import { auc, logLoss } from './metrics';
import { Rng } from './rng';
import {
  fitStandardizer,
  splitByTime,
  standardize,
  type Standardizer,
  type Table,
  takeRows,
} from './tabular';

export const LEARNERS: Record<string, Learner<unknown>> = {
  logistic_regression: logisticRegression as Learner<unknown>,
  mlp: mlp as Learner<unknown>,
  gbdt: gbdt as Learner<unknown>,
};

/** Everything needed to continue a run exactly: model state, epoch, generator, preprocessing. */
export interface FitCheckpoint {
  trainer: string;
  epoch: number;
  rng: number;
  standardizer: Standardizer;
  state: unknown;
}

export interface EpochReport {
  epoch: number;
  epochs: number;
  /** train_loss, val_loss, val_auc, and constant_val_loss (the base rate's log loss). */
  metrics: Record<string, number>;
  trainRows: number;
  seconds: number;
}

export interface FitResult {
  state: unknown;
  standardizer: Standardizer;
  val: Rows;
  /** The validation rows as given (raw values, NaN = missing): what a served model receives. */
  valRaw: Table;
  /** The model's own predictions on the validation rows (what its ONNX export must match). */
  valPredictions: Float64Array;
  metrics: Record<string, number>;
}

/** Share of the rows, the latest by time, held out for validation. */
export const VALIDATION_FRACTION = 0.2;
/** Train metrics are measured on at most this many training rows per epoch. */
const TRAIN_METRIC_ROWS = 20_000;

/**
 * Trains a built-in model epoch by epoch. `onEpoch` gets each epoch's metrics and, every
 * `checkpointEvery` epochs and at the end, a checkpoint; given `resume`, training continues
 * after the checkpoint's epoch with its state and generator, so the run ends exactly as an
 * uninterrupted one with the same seed.
 */
export async function fit(o: {
  trainer: string;
  hyperparameters: Record<string, unknown>;
  table: Table;
  /** Event time of each row, for the time-ordered split. */
  ts: Float64Array;
  resume?: FitCheckpoint | null;
  onEpoch(report: EpochReport, checkpoint: FitCheckpoint | null): Promise<void>;
  /** Asked after each checkpoint: true stops training there (a cancel). */
  shouldStop?: () => boolean;
  now?: () => number;
}): Promise<FitResult & { stopped: boolean }> {
  const learner = LEARNERS[o.trainer];
  if (!learner) throw new Error(`no built-in trainer ${o.trainer}`);
  const hp = o.hyperparameters;
  const now = o.now ?? (() => performance.now());
  const split = splitByTime(o.ts, VALIDATION_FRACTION);
  const trainTable = takeRows(o.table, split.train);
  const valTable = takeRows(o.table, split.val);
  const standardizer = o.resume?.standardizer ?? fitStandardizer(trainTable);
  const rows = (t: Table): Rows => ({ n: t.n, d: t.d, x: standardize(t, standardizer), y: t.y });
  const train = rows(trainTable);
  const val = rows(valTable);
  // The constant predictor (the training base rate): what every model must beat.
  const baseRate = train.y.reduce((a, b) => a + b, 0) / Math.max(1, train.n);
  const constantValLoss = logLoss(val.y, new Float64Array(val.n).fill(baseRate));
  const step = Math.max(1, Math.floor(train.n / TRAIN_METRIC_ROWS));
  const sample = takeRows(
    trainTable,
    Uint32Array.from({ length: Math.ceil(train.n / step) }, (_, i) => i * step),
  );
  const trainSample = rows(sample);

  let rng: Rng;
  let state: unknown;
  if (o.resume) {
    if (o.resume.trainer !== o.trainer) throw new Error(`checkpoint is from ${o.resume.trainer}`);
    rng = new Rng(o.resume.rng);
    state = o.resume.state;
  } else {
    rng = new Rng(hp.seed as number);
    state = learner.init(train, hp, rng);
  }
  const epochs = learner.epochs(hp);
  const every = (hp.checkpointEvery as number | undefined) ?? 1;
  let metrics: Record<string, number> = {};
  let valPredictions = learner.predict(state, val);
  let stopped = false;
  for (let epoch = (o.resume?.epoch ?? 0) + 1; epoch <= epochs; epoch++) {
    const t0 = now();
    learner.epoch(state, train, hp, rng);
    const seconds = (now() - t0) / 1000;
    valPredictions = learner.predict(state, val);
    const trainPred = learner.predict(state, trainSample);
    metrics = {
      train_loss: logLoss(trainSample.y, trainPred),
      val_loss: logLoss(val.y, valPredictions),
      val_auc: auc(val.y, valPredictions),
      constant_val_loss: constantValLoss,
    };
    const checkpoint =
      epoch % every === 0 || epoch === epochs
        ? {
            trainer: o.trainer,
            epoch,
            rng: rng.state,
            standardizer,
            state: JSON.parse(JSON.stringify(state)) as unknown,
          }
        : null;
    await o.onEpoch({ epoch, epochs, metrics, trainRows: train.n, seconds }, checkpoint);
    if (checkpoint && o.shouldStop?.()) {
      stopped = true;
      break;
    }
  }
  if (!Object.keys(metrics).length) {
    // Resumed from the final checkpoint: nothing left to train, the metrics are the model's.
    const trainPred = learner.predict(state, trainSample);
    metrics = {
      train_loss: logLoss(trainSample.y, trainPred),
      val_loss: logLoss(val.y, valPredictions),
      val_auc: auc(val.y, valPredictions),
      constant_val_loss: constantValLoss,
    };
  }
  return {
    state,
    standardizer,
    val,
    valRaw: valTable,
    valPredictions: Float64Array.from(valPredictions),
    metrics,
    stopped,
  };
}
