import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import path from 'node:path';
import { detectGpus } from './gpus';
import { HardwareSampler, type HardwareSampleInput } from './hardware';
import { parseTrainerEvent, protocolEnvironment, type TrainerEvent } from './protocol';
import { loadSandboxConfig } from './runner-config';
import { readLines, TrainerSandbox } from './trainer-sandbox';

/**
 * A GPU host's check, before it joins the fleet (README, "More runners"): the runner's own
 * GPU code against the host's real GPUs and PyTorch, with no api. It finds the GPUs as the
 * runner does (nvidia-smi), runs the reference PyTorch trainer confined as the runner runs it
 * with one GPU in CUDA_VISIBLE_DEVICES, samples that GPU as the runner does, kills a second
 * attempt right after its epoch-3 checkpoint (a runner that died) and resumes a third from
 * that checkpoint, which must end with exactly the metrics and model of the uninterrupted one.
 *
 *   node dist/gpu-runner/gpu-check.js <python with torch and pyarrow> [report.json]
 *
 * Exits 0 when every check passed, 1 otherwise; prints the report (JSON) either way.
 */
const EPOCHS = 6;
const KILL_AFTER_EPOCH = 3;
const ROWS = 100_000;
const FEATURES = 16;
const TRAINER = path.join(__dirname, '..', '..', 'gpu-runner', 'examples', 'pytorch_trainer.py');

interface Attempt {
  exit: number | null;
  signal: string | null;
  epochs: Extract<TrainerEvent, { type: 'epoch' }>[];
  checkpoint: Buffer | null;
  modelSha256: string | null;
  stderr: string;
  /** The first lines, kept apart: the tail is cut to 8 KiB. */
  stderrHead: string;
  samples: HardwareSampleInput[];
  seconds: number;
}

const DATASET_PY = `
import sys, math, random, datetime
import pyarrow as pa, pyarrow.ipc as ipc
rows, d = int(sys.argv[2]), int(sys.argv[3])
rng = random.Random(7)
w = [rng.gauss(0, 1) for _ in range(d)]
cols = [[rng.gauss(0, 1) for _ in range(rows)] for _ in range(d)]
label = [1.0 if sum(w[j] * cols[j][i] for j in range(d)) + rng.gauss(0, 0.5) > 0 else 0.0 for i in range(rows)]
t0 = datetime.datetime(2026, 1, 1, tzinfo=datetime.timezone.utc)
table = pa.table({
  "entity_key": [f"e{i}" for i in range(rows)],
  "ts": pa.array([t0 + datetime.timedelta(seconds=i) for i in range(rows)], pa.timestamp("ms", tz="UTC")),
  "label": label,
  **{f"v@1:f{j}": cols[j] for j in range(d)},
})
with ipc.new_file(sys.argv[1], table.schema) as w_:
  w_.write_table(table)
`;

async function attempt(
  sandbox: TrainerSandbox,
  python: string,
  dataset: string,
  gpu: number,
  o: { killAfterEpoch?: number; resume?: Buffer },
): Promise<Attempt> {
  const ws = await sandbox.workspace();
  const started = Date.now();
  try {
    await fs.promises.copyFile(dataset, ws.datasetPath);
    const trainer = path.join(ws.dir, 'pytorch_trainer.py');
    await fs.promises.copyFile(TRAINER, trainer);
    if (o.resume) await fs.promises.writeFile(ws.resumePath, o.resume);
    const child = await ws.start(
      python,
      [trainer],
      protocolEnvironment({
        runId: 'gpu-check',
        trainer: 'pytorch_mlp',
        hyperparameters: { epochs: EPOCHS, hidden: 256, batchSize: 4096, seed: 11 },
        datasetPath: ws.datasetPath,
        outputDir: ws.outputDir,
        checkpointDir: ws.checkpointDir,
        resumeCheckpoint: o.resume ? ws.resumePath : null,
        gpus: [gpu],
      }),
    );
    const sampler = new HardwareSampler(child.pid ?? 0, [gpu]);
    const samples: HardwareSampleInput[] = [];
    const timer = setInterval(() => samples.push(sampler.sample()), 250);
    const out: Attempt = {
      exit: null,
      signal: null,
      epochs: [],
      checkpoint: null,
      modelSha256: null,
      stderr: '',
      stderrHead: '',
      samples,
      seconds: 0,
    };
    const pending: Promise<void>[] = [];
    readLines(child.stdout, 1 << 20, (line) => {
      const e = parseTrainerEvent(line);
      if (e?.type === 'epoch') out.epochs.push(e);
      if (e?.type === 'checkpoint' && e.epoch === o.killAfterEpoch)
        pending.push(
          ws.readTrainerFile(e.path).then((b) => {
            out.checkpoint = b;
            ws.kill('SIGKILL');
          }),
        );
      if (e?.type === 'model')
        pending.push(
          ws.readTrainerFile(e.path).then((b) => {
            out.modelSha256 = createHash('sha256').update(b).digest('hex');
          }),
        );
    });
    child.stderr.on('data', (b: Buffer) => {
      if (out.stderrHead.length < 4096)
        out.stderrHead = (out.stderrHead + b.toString()).slice(0, 4096);
      out.stderr = (out.stderr + b.toString()).slice(-8192);
    });
    [out.exit, out.signal] = await new Promise<[number | null, string | null]>((resolve) =>
      child.once('close', (code, signal) => resolve([code, signal])),
    );
    clearInterval(timer);
    await Promise.all(pending);
    out.seconds = (Date.now() - started) / 1000;
    return out;
  } finally {
    await ws.remove();
  }
}

async function main(): Promise<number> {
  const [python, reportPath] = process.argv.slice(2);
  if (!python || !path.isAbsolute(python)) {
    console.error(
      'usage: gpu-check <absolute path of a python with torch and pyarrow> [report.json]',
    );
    return 2;
  }
  const checks: Record<string, boolean> = {};
  const report: Record<string, unknown> = { at: new Date().toISOString(), checks };
  const gpus = detectGpus(process.env);
  report.gpus = gpus;
  checks.gpus_found = gpus.length > 0;
  if (!checks.gpus_found) return finish(report, reportPath);
  const { config } = loadSandboxConfig(process.env, process.getuid?.() ?? -1);
  const sandbox = new TrainerSandbox(config);
  sandbox.check([python, TRAINER]);
  report.trainer_user = config.user?.name ?? null;

  const dir = fs.mkdtempSync(path.join(fs.realpathSync('/tmp'), 'gpu-check-'));
  const gpu = gpus[0].index;
  let full: Attempt, killed: Attempt, resumed: Attempt | null;
  try {
    const dataset = path.join(dir, 'dataset.arrow');
    const made = spawnSync(python, ['-c', DATASET_PY, dataset, String(ROWS), String(FEATURES)], {
      encoding: 'utf8',
    });
    if (made.status !== 0) throw new Error(`could not make the dataset: ${made.stderr}`);
    full = await attempt(sandbox, python, dataset, gpu, {});
    killed = await attempt(sandbox, python, dataset, gpu, { killAfterEpoch: KILL_AFTER_EPOCH });
    resumed = killed.checkpoint
      ? await attempt(sandbox, python, dataset, gpu, { resume: killed.checkpoint })
      : null;
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }

  const busy = full.samples.flatMap((s) => s.gpus).filter((g) => g.index === gpu);
  checks.trainer_on_cuda = /device cuda/.test(full.stderrHead);
  checks.full_run_succeeded =
    full.exit === 0 && full.epochs.length === EPOCHS && !!full.modelSha256;
  checks.gpu_sampled = busy.length > 0 && Math.max(...busy.map((g) => g.memoryMb)) > 0;
  checks.killed_after_checkpoint = killed.signal === 'SIGKILL' && !!killed.checkpoint;
  const tail = (a: Attempt | null) =>
    JSON.stringify(a?.epochs.filter((e) => e.epoch > KILL_AFTER_EPOCH).map((e) => e.metrics));
  checks.resume_started_after_checkpoint =
    !!resumed && resumed.epochs[0]?.epoch === KILL_AFTER_EPOCH + 1 && resumed.exit === 0;
  checks.resume_metrics_identical = !!resumed && tail(resumed) === tail(full);
  checks.resume_model_identical = !!resumed && resumed.modelSha256 === full.modelSha256;
  Object.assign(report, {
    rows: ROWS,
    features: FEATURES,
    epochs: EPOCHS,
    full_seconds: full.seconds,
    resumed_seconds: resumed?.seconds ?? null,
    max_gpu_utilization_percent: busy.length
      ? Math.max(...busy.map((g) => g.utilizationPercent))
      : null,
    max_gpu_memory_mb: busy.length ? Math.max(...busy.map((g) => g.memoryMb)) : null,
    gpu_samples: busy.length,
    final_metrics: full.epochs.at(-1)?.metrics ?? null,
    trainer_stderr_head: full.stderrHead.split('\n').slice(0, 3),
    resumed_exit: resumed ? (resumed.signal ?? resumed.exit) : null,
    resumed_stderr_tail: resumed?.stderr.trim().split('\n').slice(-3) ?? null,
  });
  return finish(report, reportPath);
}

function finish(report: Record<string, unknown>, reportPath: string | undefined): number {
  const ok = Object.values(report.checks as Record<string, boolean>).every(Boolean);
  report.ok = ok;
  const text = JSON.stringify(report, null, 2);
  console.log(text);
  if (reportPath) fs.writeFileSync(reportPath, text + '\n');
  return ok ? 0 : 1;
}

main().then(
  (code) => process.exit(code),
  (e: unknown) => {
    console.error(e);
    process.exit(1);
  },
);
