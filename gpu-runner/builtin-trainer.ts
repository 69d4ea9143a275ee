import fs from 'node:fs';
import path from 'node:path';
import { fit, type FitCheckpoint } from '../src/domain/training/fit';
import { type GbdtState } from '../src/domain/training/learners/gbdt';
import { type DenseState } from '../src/domain/training/learners/linear';
import { readTrainingTable } from '../src/infra/datasets/training-table';
import { exportDense, exportGbdt } from '../src/infra/onnx/export';
import { predictOnnx } from '../src/infra/onnx/session';
import { EXIT_RETRYABLE, type TrainerEvent } from './protocol';

/**
 * The built-in trainers as a trainer process: it follows docs/trainer-protocol.md exactly
 * like an external one (environment in, JSON lines out, exit code), so the runner treats
 * both the same way.
 */
function emit(e: TrainerEvent): void {
  process.stdout.write(JSON.stringify(e) + '\n');
}

function env(name: string): string {
  const v = process.env[name];
  if (!v) throw new Error(`${name} is not set`);
  return v;
}

async function main(): Promise<void> {
  const trainer = env('AETHER_TRAINER');
  const hp = JSON.parse(env('AETHER_HYPERPARAMETERS')) as Record<string, unknown>;
  const outDir = env('AETHER_OUTPUT_DIR');
  const ckptDir = env('AETHER_CHECKPOINT_DIR');
  const resumePath = process.env.AETHER_RESUME_CHECKPOINT;
  const { table, ts } = readTrainingTable(fs.readFileSync(env('AETHER_DATASET_PATH')));
  if (table.n < 10)
    throw new Error(`the dataset has ${table.n} labelled rows; at least 10 are needed`);
  const resume = resumePath
    ? (JSON.parse(fs.readFileSync(resumePath, 'utf8')) as FitCheckpoint)
    : null;
  process.stderr.write(
    `${trainer}: ${table.n} rows × ${table.d} features (${table.names.join(', ')})${resume ? `, resuming after epoch ${resume.epoch}` : ''}\n`,
  );
  // SIGTERM (a cancel) stops training at the next checkpoint, which is then complete.
  let stopRequested = false;
  process.on('SIGTERM', () => {
    stopRequested = true;
    process.stderr.write('SIGTERM: stopping after the next checkpoint\n');
  });
  const seconds: number[] = [];
  let trainRows = 0;
  const result = await fit({
    shouldStop: () => stopRequested,
    trainer,
    hyperparameters: hp,
    table,
    ts,
    resume,
    onEpoch: async (r, checkpoint) => {
      seconds.push(r.seconds);
      trainRows = r.trainRows;
      emit({ type: 'epoch', epoch: r.epoch, epochs: r.epochs, metrics: r.metrics });
      if (checkpoint) {
        // Written whole, then renamed: the runner never reads half a checkpoint.
        const file = path.join(ckptDir, `epoch-${r.epoch}.json`);
        fs.writeFileSync(`${file}.tmp`, JSON.stringify(checkpoint));
        fs.renameSync(`${file}.tmp`, file);
        emit({ type: 'checkpoint', epoch: r.epoch, path: file });
      }
      // Training is synchronous: let the event loop run so a SIGTERM is seen between epochs.
      await new Promise((resolve) => setImmediate(resolve));
    },
  });
  if (result.stopped) return;
  const model =
    trainer === 'gbdt'
      ? exportGbdt(trainer, table.names, result.standardizer, result.state as GbdtState)
      : exportDense(trainer, table.names, result.standardizer, result.state as DenseState);
  const modelPath = path.join(outDir, 'model.onnx');
  fs.writeFileSync(modelPath, model);
  // The exported graph must give what the trainer's own model gives, on raw inputs.
  const onnx = await predictOnnx(model, result.valRaw.x, result.valRaw.n, result.valRaw.d);
  let diff = 0;
  for (let i = 0; i < onnx.length; i++)
    diff = Math.max(diff, Math.abs(onnx[i] - result.valPredictions[i]));
  const sorted = [...seconds].sort((a, b) => a - b);
  const median = sorted.length ? sorted[Math.floor(sorted.length / 2)] : 0;
  emit({
    type: 'metrics',
    metrics: {
      onnx_max_abs_diff: diff,
      ...(median > 0 ? { rows_per_second_per_epoch: trainRows / median } : {}),
      features: table.d,
      train_rows: trainRows,
      val_rows: result.val.n,
    },
  });
  emit({ type: 'model', path: modelPath, format: 'onnx', features: table.names });
}

main().catch((e: unknown) => {
  process.stderr.write(`${e instanceof Error ? (e.stack ?? e.message) : String(e)}\n`);
  // Running out of disk or memory may pass on another machine; anything else will not.
  const code = (e as NodeJS.ErrnoException).code;
  process.exit(code === 'ENOSPC' || code === 'ENOMEM' || code === 'EIO' ? EXIT_RETRYABLE : 1);
});
