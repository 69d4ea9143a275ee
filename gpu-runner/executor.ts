import path from 'node:path';
import { type ApiClient, ApiError } from './api-client';
import { HardwareSampler, type HardwareSampleInput } from './hardware';
import { createLogScrubber, type Scrubber } from './log-scrubber';
import { EXIT_RETRYABLE, parseTrainerEvent, protocolEnvironment } from './protocol';
import {
  limitSignalReason,
  readLines,
  TrainerFileError,
  type TrainerSandbox,
  type Workspace,
} from './trainer-sandbox';

/** A run as `claimRun` hands it to the runner. */
export interface ClaimedRun {
  id: string;
  gpus: number[];
  hyperparameters: Record<string, unknown>;
  trainer: { kind: 'BUILTIN' | 'COMMAND'; name: string; command: string[] | null };
}

/** The built-in trainers' process; the trainer user must be able to read it (see main.ts). */
export const BUILTIN_TRAINER = path.join(__dirname, 'builtin-trainer.js');

export const CLAIM = `mutation Claim($runnerId: ID!) {
  claimRun(runnerId: $runnerId) { id gpus hyperparameters trainer { kind name command } }
}`;
const RENEW = `mutation Renew($runId: ID!, $runnerId: ID!) {
  renewRunLease(runId: $runId, runnerId: $runnerId) { cancelRequested }
}`;
const REPORT = `mutation Report($runId: ID!, $runnerId: ID!, $input: RunProgressInput!) {
  reportRunProgress(runId: $runId, runnerId: $runnerId, input: $input) { id }
}`;
const FINISH = `mutation Finish($runId: ID!, $runnerId: ID!, $input: FinishRunInput!) {
  finishRun(runId: $runId, runnerId: $runnerId, input: $input) { id status }
}`;

export interface ExecutorOptions {
  renewMs: number;
  cancelGraceMs: number;
  reportMs: number;
  hardwareMs: number;
  /** Never to appear in a run's log (the runner's own key). */
  secrets: string[];
  log(msg: string): void;
}

const LOG_KEEP = 32 * 1024;
// Long enough for a model event listing thousands of features.
const MAX_LINE = 1024 * 1024;

/**
 * Runs claimed runs: downloads the dataset and the newest verified checkpoint, starts the
 * trainer in its sandbox with exactly the run's GPUs in CUDA_VISIBLE_DEVICES, relays its
 * metrics, checkpoints and model, renews the lease, honours a cancel, and reports how it
 * ended, with a log from which secrets are scrubbed.
 */
export class RunExecutor {
  private readonly running = new Set<Workspace>();
  private readonly scrub: Scrubber;

  constructor(
    private readonly api: ApiClient,
    private readonly runnerId: string,
    private readonly sandbox: TrainerSandbox,
    private readonly o: ExecutorOptions,
  ) {
    this.scrub = createLogScrubber(o.secrets);
  }

  /** Stops every trainer (the runner is going away); their leases run out and they requeue. */
  killAll(): void {
    for (const ws of this.running) ws.kill('SIGKILL');
  }

  async execute(run: ClaimedRun): Promise<void> {
    const ws = await this.sandbox.workspace();
    const q = `?runner=${encodeURIComponent(this.runnerId)}`;
    const route = `/runs/${encodeURIComponent(run.id)}`;
    const ids = { runId: run.id, runnerId: this.runnerId };
    let log = '';
    const appendLog = (s: string) => {
      log += this.scrub(s);
      if (log.length > 2 * LOG_KEEP) log = log.slice(-LOG_KEEP);
    };
    let leaseLost = false;
    const finish = (input: Record<string, unknown>) =>
      this.api.request(FINISH, {
        ...ids,
        input: {
          ...input,
          ...(typeof input.error === 'string' ? { error: this.scrub(input.error) } : {}),
          logTail: log.slice(-16 * 1024),
        },
      });
    try {
      await this.api.download(`${route}/dataset${q}`, ws.datasetPath);
      const resumed = await this.api.download(`${route}/checkpoint${q}`, ws.resumePath);
      if (resumed)
        appendLog(
          `[runner] resuming from the checkpoint of epoch ${resumed.headers.get('x-checkpoint-epoch')}\n`,
        );
      const [cmd, ...args] =
        run.trainer.kind === 'BUILTIN'
          ? [process.execPath, BUILTIN_TRAINER]
          : (run.trainer.command ?? []);
      this.running.add(ws);
      const child = await ws.start(
        cmd,
        args,
        protocolEnvironment({
          runId: run.id,
          trainer: run.trainer.name,
          hyperparameters: run.hyperparameters,
          datasetPath: ws.datasetPath,
          outputDir: ws.outputDir,
          checkpointDir: ws.checkpointDir,
          resumeCheckpoint: resumed ? ws.resumePath : null,
          gpus: run.gpus,
        }),
      );
      const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((r) =>
        child.on('close', (code, signal) => r({ code, signal })),
      );
      const spawnFailed = new Promise<Error>((r) => child.on('error', r));

      // Trainer events: metrics are batched to the api; files are uploaded in order.
      const epochs: { epoch: number; epochs?: number; metrics: Record<string, number> }[] = [];
      const steps: { epoch: number; step: number; name: string; value: number }[] = [];
      const hardware: HardwareSampleInput[] = [];
      let lastEpoch = 0;
      let uploads: Promise<void> = Promise.resolve();
      let uploadError: Error | null = null;
      let modelUploaded = false;
      const upload = (to: string, file: string, then?: () => void) => {
        uploads = uploads.then(() =>
          ws
            .readTrainerFile(file)
            .then((bytes) => this.api.upload(to, bytes))
            .then(then)
            .catch((e: Error) => {
              uploadError ??= e;
            }),
        );
      };
      readLines(child.stdout, MAX_LINE, (line) => {
        const e = parseTrainerEvent(line);
        if (!e) return appendLog(line + '\n');
        if (e.type === 'epoch') {
          lastEpoch = Math.max(lastEpoch, e.epoch);
          epochs.push({ epoch: e.epoch, epochs: e.epochs, metrics: e.metrics });
        } else if (e.type === 'metrics') {
          epochs.push({ epoch: lastEpoch, metrics: e.metrics });
        } else if (e.type === 'step') {
          for (const [name, value] of Object.entries(e.metrics))
            steps.push({ epoch: e.epoch, step: e.step, name, value });
        } else if (e.type === 'checkpoint') {
          upload(`${route}/checkpoints/${e.epoch}${q}`, e.path);
        } else {
          upload(`${route}/model${q}`, e.path, () => (modelUploaded = true));
        }
      });
      readLines(child.stderr, MAX_LINE, (l) => appendLog(l + '\n'));

      let reporting: Promise<void> = Promise.resolve();
      const report = () => {
        reporting = reporting.then(async () => {
          if (!epochs.length && !steps.length && !hardware.length) return;
          const input = {
            epochs: epochs.splice(0),
            steps: steps.splice(0),
            hardware: hardware.splice(0),
          };
          await this.api.request(REPORT, { ...ids, input }).catch((e: Error) => {
            if (e instanceof ApiError && e.code === 'LEASE_LOST') stop('lease');
            else this.o.log(`progress report failed: ${e.message}`);
          });
        });
        return reporting;
      };
      let cancelled = false;
      const stop = (why: 'lease' | 'cancel') => {
        if (why === 'lease') {
          leaseLost = true;
          ws.kill('SIGKILL');
        } else if (!cancelled) {
          cancelled = true;
          appendLog('[runner] cancel requested: stopping the trainer\n');
          ws.kill('SIGTERM');
          setTimeout(() => ws.kill('SIGKILL'), this.o.cancelGraceMs).unref();
        }
      };
      const sampler = child.pid ? new HardwareSampler(child.pid, run.gpus) : null;
      const timers = [
        setInterval(() => void report(), this.o.reportMs),
        setInterval(() => {
          if (sampler) hardware.push(sampler.sample());
        }, this.o.hardwareMs),
        setInterval(() => {
          this.api
            .request<{ renewRunLease: { cancelRequested: boolean } }>(RENEW, ids)
            .then((r) => r.renewRunLease.cancelRequested && stop('cancel'))
            .catch((e: Error) => {
              if (e instanceof ApiError && e.code === 'LEASE_LOST') stop('lease');
              else this.o.log(`lease renewal failed: ${e.message}`);
            });
        }, this.o.renewMs),
      ];
      const outcome = await Promise.race([
        exited,
        spawnFailed.then((e) => ({ code: null, signal: null, error: e })),
      ]);
      timers.forEach(clearInterval);
      if (leaseLost) return void this.o.log(`run ${run.id}: lease lost, trainer stopped`);
      await uploads;
      await report();
      if ('error' in outcome)
        return void (await finish({
          outcome: 'FAILED',
          retryable: false,
          error: `cannot start trainer: ${outcome.error.message}`,
        }));
      const { code, signal } = outcome;
      if (cancelled) return void (await finish({ outcome: 'CANCELLED' }));
      // A file the sandbox refused is the trainer's doing; another attempt would do it again.
      const failedUpload = uploadError as Error | null;
      if (failedUpload instanceof TrainerFileError)
        return void (await finish({
          outcome: 'FAILED',
          retryable: false,
          error: failedUpload.message,
        }));
      if (code === 0 && failedUpload)
        return void (await finish({
          outcome: 'FAILED',
          retryable: true,
          error: `upload failed: ${failedUpload.message}`,
        }));
      if (code === 0 && run.trainer.kind === 'BUILTIN' && !modelUploaded)
        return void (await finish({
          outcome: 'FAILED',
          retryable: false,
          error: 'the trainer exited without a model',
        }));
      if (code === 0) return void (await finish({ outcome: 'SUCCEEDED' }));
      const limit = signal ? limitSignalReason(signal) : null;
      if (limit) return void (await finish({ outcome: 'FAILED', retryable: false, error: limit }));
      // Killed by a signal (a crash, the OOM killer) or asking for another try: retryable.
      const retryable = signal !== null || code === EXIT_RETRYABLE;
      await finish({
        outcome: 'FAILED',
        retryable,
        error: signal ? `trainer killed by ${signal}` : `trainer exited with code ${code}`,
      });
    } catch (e) {
      if (leaseLost) return;
      const err = e as Error;
      this.o.log(`run ${run.id} failed before or after training: ${err.message}`);
      if (err instanceof ApiError && err.code === 'LEASE_LOST') return;
      await finish({ outcome: 'FAILED', retryable: true, error: err.message }).catch((x: Error) =>
        this.o.log(`could not report the failure of run ${run.id}: ${x.message}`),
      );
    } finally {
      this.running.delete(ws);
      await ws
        .remove()
        .catch((e: Error) =>
          this.o.log(`could not remove the directory of run ${run.id}: ${e.message}`),
        );
    }
  }
}
