import { ArtifactIntegrityError, ArtifactNotFoundError } from '../artifacts/artifact-errors';
import { type ArtifactRef, type ArtifactStore, type ByteSource } from '../artifacts/artifact-store';
import { type Principal } from '../auth/api-key';
import { Permission, requirePermission } from '../auth/role';
import { type EventBus, Topics } from '../events/event-bus';
import { type DatasetSnapshot, DatasetStatus } from '../features/dataset';
import { type RunnerService } from '../runners/runner.service';
import { type Clock } from '../shared/clock';
import { ConflictError, InvalidInputError, NotFoundError } from '../shared/domain-error';
import { type Page, type PageRequest } from '../shared/pagination';
import { MODEL_NAME_RE } from '../registry/model';
import { type RunQueue } from './run-queue';
import { builtinTrainer, MAX_COMMAND_PARAMS_BYTES, validateHyperparameters } from './trainers';
import {
  FINISHED,
  type HardwareSample,
  type MetricPoint,
  MAX_GPUS_PER_RUN,
  type RunCheckpoint,
  MAX_RETRIES,
  METRIC_NAME_RE,
  RUN_LEASE_MS,
  RunStatus,
  TrainerKind,
  type TrainerSpec,
  TrainingErrorCode,
  type TrainingRun,
} from './training-run';
import { type TrainingRunRepository } from './training-run.repository';
import { type TableFile } from '../features/table-file';

/** A point-in-time training set to build for a run (see DatasetService.build). */
export interface DatasetBuildRequest {
  name: string;
  featureRefs: string[];
  /** The spine as rows, or as a file in the artifact store (one of the two). */
  spine?: { entityKey: string; ts: number; label: number | null }[];
  spineFile?: TableFile;
}

export interface SubmitRunInput {
  experiment: string;
  /** A built-in trainer's name, or a command for an external trainer (not both). */
  builtinTrainer?: string | null;
  command?: { name: string; argv: string[] } | null;
  /** A READY snapshot, or (instead) a training set to build first. */
  datasetId?: string | null;
  buildDataset?: DatasetBuildRequest | null;
  hyperparameters?: Record<string, unknown> | null;
  gpuCount?: number | null;
  gpuMemoryMb?: number | null;
  maxRetries?: number | null;
  gitCommit?: string | null;
  /** Register the trained model under this name when the run succeeds. */
  registerAs?: string | null;
}

export interface RunEvent {
  runId: string;
  status: RunStatus;
  at: string;
}

/** What `runProgress` streams: the run's state, and each epoch's metrics as it ends. */
export interface RunProgressEvent {
  runId: string;
  status: RunStatus;
  epoch: number;
  epochs: number | null;
  /** The epoch's metrics (for a status change, the latest summary). */
  metrics: Record<string, number>;
  at: string;
}

export interface ProgressReport {
  /** Whole epochs: their per-epoch metrics. */
  epochs?: { epoch: number; epochs?: number | null; metrics: Record<string, number> }[];
  /** Opt-in per-step metrics, sent in batches. */
  steps?: MetricPoint[];
  hardware?: HardwareSample[];
}

export interface ComparedRun {
  run: TrainingRun;
  /** The latest value of every metric, plus duration_seconds. */
  metrics: Record<string, number>;
}

export interface FinishReport {
  outcome: RunStatus.SUCCEEDED | RunStatus.FAILED | RunStatus.CANCELLED;
  /** For FAILED: whether trying again may succeed (a crash) or not (bad input, a bug). */
  retryable?: boolean;
  error?: string | null;
  logTail?: string | null;
}

export interface DatasetLookup {
  byIds(ids: readonly string[]): Promise<DatasetSnapshot[]>;
  build(
    req: DatasetBuildRequest,
  ): Promise<{ snapshot: DatasetSnapshot; done: Promise<DatasetSnapshot> }>;
}

/** Keep the tail of a log that fits a graph field comfortably. */
export const LOG_TAIL_BYTES = 16 * 1024;
const MAX_STALE_CLAIMS = 16;
const MAX_POINTS_PER_REPORT = 5_000;
const MAX_COMPARED_RUNS = 500;
const progressTopic = (runId: string) => `${Topics.runs}:${runId}`;

/**
 * Submission, the FIFO queue over runners' GPUs, leases and the run lifecycle. Postgres holds
 * each run's state of record; the queue (order, leases, free GPUs) lives behind `RunQueue`.
 * Every change to one is followed by the matching change to the other, and each side's
 * transitions are conditional, so a crash between the two is repaired by the lease reaper
 * and `rebuildQueue` rather than leaving a run lost or double-run.
 */
export class TrainingService {
  constructor(
    private readonly repo: TrainingRunRepository,
    private readonly queue: RunQueue,
    private readonly runners: RunnerService,
    private readonly datasets: DatasetLookup,
    private readonly artifacts: ArtifactStore,
    private readonly events: EventBus,
    private readonly clock: Clock,
    private readonly leaseMs = RUN_LEASE_MS,
  ) {}

  /**
   * `actor` is the caller through the API; platform loops (retraining) submit as themselves
   * and only with built-in trainers.
   */
  async submit(input: SubmitRunInput, actor?: Principal): Promise<TrainingRun> {
    const { trainer, version, hyperparameters } = checkTrainer(input);
    if (actor && trainer.kind === TrainerKind.COMMAND)
      requirePermission(actor, Permission.COMMAND_TRAINERS, 'A command trainer');
    const gpuCount = input.gpuCount ?? 0;
    if (!Number.isInteger(gpuCount) || gpuCount < 0 || gpuCount > MAX_GPUS_PER_RUN)
      throw invalid(`gpuCount must be an integer from 0 to ${MAX_GPUS_PER_RUN}`, 'gpuCount');
    const gpuMemoryMb = input.gpuMemoryMb ?? null;
    if (gpuMemoryMb !== null && (!Number.isInteger(gpuMemoryMb) || gpuMemoryMb < 1))
      throw invalid('gpuMemoryMb must be a positive integer', 'gpuMemoryMb');
    if (gpuMemoryMb !== null && gpuCount === 0)
      throw invalid('gpuMemoryMb needs gpuCount of at least 1', 'gpuMemoryMb');
    const maxRetries = input.maxRetries ?? 2;
    if (!Number.isInteger(maxRetries) || maxRetries < 0 || maxRetries > MAX_RETRIES)
      throw invalid(`maxRetries must be an integer from 0 to ${MAX_RETRIES}`, 'maxRetries');
    if (!/^[A-Za-z0-9][A-Za-z0-9 ._:/-]{0,99}$/.test(input.experiment))
      throw invalid(
        'experiment must be 1-100 characters of letters, digits, space and . _ : / -',
        'experiment',
      );
    const registerAs = input.registerAs ?? null;
    if (registerAs !== null && !MODEL_NAME_RE.test(registerAs))
      throw invalid('registerAs must be a model name: a lower-case identifier', 'registerAs');
    const gitCommit = input.gitCommit ?? null;
    if (gitCommit !== null && !/^[0-9a-f]{7,64}$/.test(gitCommit))
      throw invalid('gitCommit must be a hex commit id (7 to 64 characters)', 'gitCommit');
    if ((input.datasetId == null) === (input.buildDataset == null))
      throw invalid('Give either datasetId or buildDataset', 'dataset');
    let dataset: DatasetSnapshot;
    let built: Promise<DatasetSnapshot> | null = null;
    if (input.buildDataset) {
      // Everything else is valid: only now is the training set built (its own checks run
      // before anything is stored).
      const b = await this.datasets.build(input.buildDataset);
      dataset = b.snapshot;
      built = b.done;
    } else {
      const [found] = await this.datasets.byIds([input.datasetId as string]);
      if (!found)
        throw new NotFoundError(
          TrainingErrorCode.DATASET_NOT_FOUND,
          `No dataset snapshot ${input.datasetId}`,
        );
      if (found.status !== DatasetStatus.READY)
        throw new ConflictError(
          TrainingErrorCode.DATASET_NOT_READY,
          `Dataset snapshot ${found.name} is ${found.status}, not READY`,
        );
      dataset = found;
    }

    const run = await this.repo.insert({
      status: built ? RunStatus.PENDING : RunStatus.QUEUED,
      experimentName: input.experiment,
      trainer,
      trainerVersion: version,
      datasetId: dataset.id,
      hyperparameters,
      gpuCount,
      gpuMemoryMb,
      maxRetries,
      gitCommit,
      registerAs,
    });
    await this.publish(run);
    if (!built) {
      await this.queue.enqueue(run);
      return run;
    }
    // The run joins the queue (at its submission place) once its training set is READY.
    built.then(
      () => this.activate(run.id),
      (e: unknown) => this.failPending(run.id, e),
    );
    return run;
  }

  private async activate(runId: string): Promise<void> {
    const run = await this.repo.markQueued(runId);
    if (!run) return; // cancelled meanwhile
    await this.queue.enqueue(run);
    await this.publish(run);
  }

  private async failPending(runId: string, e: unknown): Promise<void> {
    const done = await this.repo.finish(runId, {
      status: RunStatus.FAILED,
      error: `the training set could not be built: ${e instanceof Error ? e.message : String(e)}`,
      logTail: null,
      at: this.clock.now(),
    });
    if (done) await this.publish(done);
  }

  /**
   * A queued run leaves the queue at once; a running one is asked to stop: its runner sees
   * the request when it renews the lease, stops at its next checkpoint, and kills the trainer
   * after a grace period. If the runner is gone, the run ends when the lease runs out.
   */
  async cancel(id: string): Promise<TrainingRun> {
    const run = await this.get(id);
    if (FINISHED.has(run.status))
      throw new ConflictError(TrainingErrorCode.RUN_FINISHED, `Run ${id} is already ${run.status}`);
    if (run.status === RunStatus.QUEUED || run.status === RunStatus.PENDING) {
      const done = await this.repo.finish(id, {
        status: RunStatus.CANCELLED,
        error: null,
        logTail: null,
        at: this.clock.now(),
      });
      if (done) {
        await this.queue.remove(id);
        await this.publish(done);
        return done;
      }
      // Claimed meanwhile: cancel it as a running run.
    }
    const asked = await this.repo.requestCancel(id, this.clock.now());
    return asked ?? this.get(id);
  }

  /** A runner asks for work: the head of the queue if it fits the runner's free GPUs. */
  async claim(actor: Principal, runnerId: string): Promise<TrainingRun | null> {
    // Expired leases are reaped by a background pass (see app.ts), not on this hot path.
    await this.runners.ownedOnline(actor, runnerId);
    for (let i = 0; i < MAX_STALE_CLAIMS; i++) {
      const now = this.clock.now();
      const leaseExpiresAt = new Date(now.getTime() + this.leaseMs);
      const c = await this.queue.claim(runnerId, leaseExpiresAt.getTime());
      if (!c) return null;
      const run = await this.repo.markRunning(c.runId, {
        runnerId,
        gpus: c.gpus,
        leaseExpiresAt,
        at: now,
      });
      if (run) {
        await this.publish(run);
        return run;
      }
      // Postgres does not have it QUEUED. Finished (cancelled meanwhile): drop it. Still
      // RUNNING (the reaper requeued its expired lease in Redis and is about to record that):
      // put it back at its place, never lose it, and let this claim come back empty.
      const [current] = await this.repo.findByIds([c.runId]);
      if (!current || FINISHED.has(current.status)) {
        await this.queue.release(c.runId, runnerId);
        continue;
      }
      await this.queue.requeue(c.runId, runnerId);
      return null;
    }
    return null;
  }

  /** Extends the runner's lease on a run; tells it whether a cancel was asked for. */
  async renewLease(actor: Principal, runId: string, runnerId: string): Promise<TrainingRun> {
    await this.runners.ownedOnline(actor, runnerId);
    const until = new Date(this.clock.now().getTime() + this.leaseMs);
    const held = await this.queue.renew(runId, runnerId, until.getTime());
    const run = held ? await this.repo.renewLease(runId, runnerId, until) : null;
    if (!run) throw leaseLost(runId);
    return run;
  }

  async finish(
    actor: Principal,
    runId: string,
    runnerId: string,
    report: FinishReport,
  ): Promise<TrainingRun> {
    await this.runners.ownedOnline(actor, runnerId);
    const run = await this.get(runId);
    if (run.runnerId !== runnerId || run.status !== RunStatus.RUNNING) throw leaseLost(runId);
    const logTail = report.logTail ? tail(report.logTail) : null;
    const error = report.error ?? null;
    const retry =
      report.outcome === RunStatus.FAILED &&
      report.retryable === true &&
      run.cancelRequestedAt === null &&
      run.failures < run.maxRetries;
    if (retry) {
      if (!(await this.queue.requeue(runId, runnerId))) throw leaseLost(runId);
      const back = await this.repo.backToQueue(runId, { failed: true, error, logTail });
      if (!back) throw leaseLost(runId);
      await this.publish(back);
      return back;
    }
    if (!(await this.queue.release(runId, runnerId))) throw leaseLost(runId);
    const done = await this.repo.finish(runId, {
      status: report.outcome,
      error,
      logTail,
      at: this.clock.now(),
    });
    if (!done) throw leaseLost(runId);
    await this.publish(done);
    if (done.status === RunStatus.SUCCEEDED && done.registerAs && this.succeeded) {
      // The registry checks the model on its own; a refusal is noted on the run, which
      // still succeeded (its model can be registered by hand once the cause is fixed).
      await this.succeeded(done).catch((e: unknown) =>
        this.repo.noteError(
          runId,
          `automatic registration as ${done.registerAs} failed: ${e instanceof Error ? e.message : String(e)}`,
        ),
      );
    }
    return done;
  }

  private succeeded: ((run: TrainingRun) => Promise<unknown>) | null = null;

  /** Called with each run that succeeded and asked to be registered (the model registry). */
  onRegistrableRun(listener: (run: TrainingRun) => Promise<unknown>): void {
    this.succeeded = listener;
  }

  /**
   * Runs whose lease ran out (their runner died or lost its way) go back to their own place
   * in the queue, to resume from their last checkpoint on whichever runner claims them; one
   * whose cancel was asked for ends CANCELLED instead.
   */
  async reapExpired(): Promise<string[]> {
    const ids = await this.queue.requeueExpired(this.clock.now().getTime());
    for (const run of await this.repo.findByIds(ids)) {
      const changed = run.cancelRequestedAt
        ? await this.queue.remove(run.id).then(() =>
            this.repo.finish(run.id, {
              status: RunStatus.CANCELLED,
              error: 'cancelled; the runner stopped answering',
              logTail: null,
              at: this.clock.now(),
            }),
          )
        : await this.repo.backToQueue(run.id, { failed: false, error: null, logTail: null });
      if (changed) await this.publish(changed);
    }
    return ids;
  }

  /**
   * Puts every QUEUED run of record back in the queue (after a Redis loss, at start), and
   * settles PENDING runs whose training set finished while no process was watching.
   */
  async rebuildQueue(): Promise<number> {
    const queued = await this.repo.queued();
    for (const r of queued) await this.queue.enqueue(r);
    const pending = await this.repo.pending();
    const datasets = new Map(
      (await this.datasets.byIds(pending.map((p) => p.datasetId))).map((d) => [d.id, d]),
    );
    for (const p of pending) {
      const d = datasets.get(p.datasetId);
      if (d?.status === DatasetStatus.READY) await this.activate(p.id);
      else if (d?.status === DatasetStatus.FAILED)
        await this.failPending(p.id, new Error(d.error ?? 'FAILED'));
    }
    return queued.length;
  }

  /** Metrics and hardware samples from the runner holding the run. */
  async reportProgress(
    actor: Principal,
    runId: string,
    runnerId: string,
    report: ProgressReport,
  ): Promise<TrainingRun> {
    await this.held(actor, runId, runnerId);
    const epochs = report.epochs ?? [];
    const points: MetricPoint[] = [
      ...epochs.flatMap((e) =>
        Object.entries(e.metrics).map(([name, value]) => ({
          epoch: e.epoch,
          step: null,
          name,
          value,
        })),
      ),
      ...(report.steps ?? []),
    ];
    if (points.length > MAX_POINTS_PER_REPORT)
      throw badReport(`At most ${MAX_POINTS_PER_REPORT} metric points per report`);
    for (const p of points) {
      if (!METRIC_NAME_RE.test(p.name))
        throw badReport(`"${p.name}" is not a metric name like val_auc`);
      if (!Number.isFinite(p.value)) throw badReport(`${p.name} must be a finite number`);
      if (!Number.isInteger(p.epoch) || p.epoch < 0)
        throw badReport('epoch must be a non-negative integer');
      if (p.step !== null && (!Number.isInteger(p.step) || p.step < 0))
        throw badReport('step must be a non-negative integer');
    }
    const last = epochs.reduce<(typeof epochs)[number] | null>(
      (a, e) => (!a || e.epoch >= a.epoch ? e : a),
      null,
    );
    await this.repo.addMetrics(
      runId,
      points,
      last ? { epochsDone: last.epoch, epochsTotal: last.epochs ?? null } : null,
    );
    await this.repo.addHardware(runId, report.hardware ?? []);
    const run = await this.get(runId);
    for (const e of [...epochs].sort((a, b) => a.epoch - b.epoch)) {
      const event: RunProgressEvent = {
        runId,
        status: run.status,
        epoch: e.epoch,
        epochs: e.epochs ?? run.epochsTotal,
        metrics: e.metrics,
        at: this.clock.now().toISOString(),
      };
      await this.events.publish(progressTopic(runId), event);
    }
    return run;
  }

  /** The dataset the run trains on, streamed (and verified) for the runner holding it. */
  async openDataset(
    actor: Principal,
    runId: string,
    runnerId: string,
  ): Promise<{ ref: ArtifactRef; body: AsyncIterable<Uint8Array> }> {
    const run = await this.held(actor, runId, runnerId);
    const [d] = await this.datasets.byIds([run.datasetId]);
    if (!d?.artifact)
      throw new NotFoundError(
        TrainingErrorCode.DATASET_NOT_FOUND,
        `Run ${runId} has no dataset file`,
      );
    return { ref: d.artifact, body: await this.artifacts.get(d.artifact.key, d.artifact.sha256) };
  }

  /**
   * The newest checkpoint whose bytes verify against their recorded checksum; a corrupt or
   * missing one is skipped for the one before it, so a run never resumes from bad state.
   */
  async latestCheckpoint(
    actor: Principal,
    runId: string,
    runnerId: string,
  ): Promise<{ epoch: number; bytes: Uint8Array } | null> {
    await this.held(actor, runId, runnerId);
    for (const c of await this.repo.checkpointsOf(runId)) {
      try {
        return {
          epoch: c.epoch,
          bytes: await this.artifacts.getBytes(c.artifact.key, c.artifact.sha256),
        };
      } catch (e) {
        if (!isArtifactFault(e)) throw e;
      }
    }
    return null;
  }

  /**
   * Stores a checkpoint and records it only once the stored bytes match the checksum the
   * runner computed: a partial or corrupted upload is never recorded, so never resumed from.
   */
  async saveCheckpoint(
    actor: Principal,
    runId: string,
    runnerId: string,
    epoch: number,
    body: ByteSource,
    sha256: string,
  ): Promise<ArtifactRef> {
    if (!Number.isInteger(epoch) || epoch < 0)
      throw badReport('epoch must be a non-negative integer');
    await this.held(actor, runId, runnerId);
    const ref = await this.upload(
      `runs/${runId}/checkpoints/${epoch}-${sha256.slice(0, 16)}.ckpt`,
      body,
      sha256,
    );
    await this.repo.addCheckpoint(runId, epoch, ref);
    return ref;
  }

  /** Stores the trained model (ONNX) and links it to the run. */
  async saveModel(
    actor: Principal,
    runId: string,
    runnerId: string,
    body: ByteSource,
    sha256: string,
  ): Promise<ArtifactRef> {
    await this.held(actor, runId, runnerId);
    const ref = await this.upload(`runs/${runId}/model-${sha256.slice(0, 16)}.onnx`, body, sha256);
    await this.repo.setModel(runId, ref);
    return ref;
  }

  /**
   * One row per run of the experiments and ids given, with the latest value of every metric
   * and its duration, sorted by `sortBy` (runs without it last).
   */
  async compare(
    filter: { experiments: string[]; runIds: string[] },
    sortBy: string,
    descending: boolean,
  ): Promise<ComparedRun[]> {
    if (!filter.experiments.length && !filter.runIds.length)
      throw invalid('Name at least one experiment or run', 'experiments');
    const runs = await this.repo.forComparison(filter, MAX_COMPARED_RUNS);
    const rows = runs.map((run) => ({
      run,
      metrics: {
        ...run.summary,
        ...(run.startedAt && run.finishedAt
          ? { duration_seconds: (run.finishedAt.getTime() - run.startedAt.getTime()) / 1000 }
          : {}),
      } as Record<string, number>,
    }));
    if (rows.length && !rows.some((r) => sortBy in r.metrics))
      throw new InvalidInputError(
        TrainingErrorCode.UNKNOWN_METRIC,
        `No compared run has a metric "${sortBy}"`,
        {
          metrics: [...new Set(rows.flatMap((r) => Object.keys(r.metrics)))].sort(),
        },
      );
    const key = (r: ComparedRun) => r.metrics[sortBy];
    return rows.sort((a, b) => {
      const x = key(a);
      const y = key(b);
      if (x === undefined || y === undefined)
        return x === undefined ? (y === undefined ? 0 : 1) : -1;
      return descending ? y - x : x - y;
    });
  }

  /** A run's state, then each epoch as it ends; completes when the run finishes. */
  async *progress(runId: string): AsyncGenerator<RunProgressEvent> {
    const live = this.events.subscribe<RunProgressEvent>(progressTopic(runId));
    try {
      await live.ready;
      const r = await this.get(runId);
      yield {
        runId,
        status: r.status,
        epoch: r.epochsDone,
        epochs: r.epochsTotal,
        metrics: r.summary,
        at: this.clock.now().toISOString(),
      };
      if (FINISHED.has(r.status)) return;
      for await (const e of live) {
        yield e;
        if (FINISHED.has(e.status)) return;
      }
    } finally {
      await live.close();
    }
  }

  private async upload(key: string, body: ByteSource, sha256: string): Promise<ArtifactRef> {
    if (!/^[0-9a-f]{64}$/.test(sha256))
      throw badReport('the upload needs its SHA-256 (64 hex digits)');
    const ref = await this.artifacts.put(key, body);
    if (ref.sha256 !== sha256) {
      await this.artifacts.delete(key);
      throw new InvalidInputError(
        TrainingErrorCode.UPLOAD_CORRUPT,
        'The uploaded bytes do not match their SHA-256; nothing was recorded',
        { expected: sha256, received: ref.sha256 },
      );
    }
    return ref;
  }

  /** The run, if `runnerId` (acting for `actor`) holds it now. */
  private async held(actor: Principal, runId: string, runnerId: string): Promise<TrainingRun> {
    await this.runners.ownedOnline(actor, runnerId);
    const run = await this.get(runId);
    if (run.runnerId !== runnerId || run.status !== RunStatus.RUNNING) throw leaseLost(runId);
    return run;
  }

  async get(id: string): Promise<TrainingRun> {
    const [run] = await this.repo.findByIds([id]);
    if (!run) throw new NotFoundError(TrainingErrorCode.RUN_NOT_FOUND, `No run with id ${id}`);
    return run;
  }

  byIds(ids: readonly string[]): Promise<TrainingRun[]> {
    return this.repo.findByIds(ids);
  }

  list(
    page: PageRequest,
    filter: { experiment?: string; status?: RunStatus },
  ): Promise<Page<TrainingRun>> {
    return this.repo.list(page, filter);
  }

  /**
   * State changes of one run (its current state first; ends once it has finished) or, with
   * no id, of every run.
   */
  async *updates(runId: string | null): AsyncGenerator<RunEvent> {
    const live = this.events.subscribe<RunEvent>(Topics.runs);
    try {
      await live.ready;
      if (runId !== null) {
        const r = await this.get(runId);
        yield { runId, status: r.status, at: this.clock.now().toISOString() };
        if (FINISHED.has(r.status)) return;
      }
      for await (const e of live) {
        if (runId !== null && e.runId !== runId) continue;
        yield e;
        if (runId !== null && FINISHED.has(e.status)) return;
      }
    } finally {
      await live.close();
    }
  }

  metricsOf(runIds: readonly string[]): Promise<Map<string, MetricPoint[]>> {
    return this.repo.metricsOf(runIds);
  }

  hardwareOf(runIds: readonly string[]): Promise<Map<string, HardwareSample[]>> {
    return this.repo.hardwareOf(runIds);
  }

  checkpointsOf(runId: string): Promise<RunCheckpoint[]> {
    return this.repo.checkpointsOf(runId);
  }

  /** Places in the queue (1 = next), null for runs not queued. */
  queuePositions(ids: readonly string[]): Promise<(number | null)[]> {
    return this.queue.positions(ids);
  }

  private async publish(run: TrainingRun): Promise<void> {
    const at = this.clock.now().toISOString();
    const e: RunEvent = { runId: run.id, status: run.status, at };
    await this.events.publish(Topics.runs, e);
    const p: RunProgressEvent = {
      runId: run.id,
      status: run.status,
      epoch: run.epochsDone,
      epochs: run.epochsTotal,
      metrics: run.summary,
      at,
    };
    await this.events.publish(progressTopic(run.id), p);
  }
}

function invalid(message: string, field: string): InvalidInputError {
  return new InvalidInputError(TrainingErrorCode.INVALID_JOB, message, { field });
}

function badReport(message: string): InvalidInputError {
  return new InvalidInputError(TrainingErrorCode.INVALID_REPORT, message);
}

function isArtifactFault(e: unknown): boolean {
  return e instanceof ArtifactNotFoundError || e instanceof ArtifactIntegrityError;
}

function leaseLost(runId: string): ConflictError {
  return new ConflictError(
    TrainingErrorCode.LEASE_LOST,
    `This runner does not hold run ${runId} any more (its lease expired or the run ended)`,
  );
}

function tail(log: string): string {
  return log.length > LOG_TAIL_BYTES ? log.slice(log.length - LOG_TAIL_BYTES) : log;
}

function checkTrainer(input: SubmitRunInput): {
  trainer: TrainerSpec;
  version: string | null;
  hyperparameters: Record<string, unknown>;
} {
  const given = input.hyperparameters ?? {};
  if (typeof given !== 'object' || Array.isArray(given))
    throw invalid('hyperparameters must be a JSON object', 'hyperparameters');
  if ((input.builtinTrainer == null) === (input.command == null))
    throw invalid('Give either builtinTrainer or command', 'trainer');
  if (input.builtinTrainer != null) {
    const t = builtinTrainer(input.builtinTrainer);
    if (!t)
      throw new InvalidInputError(
        TrainingErrorCode.UNKNOWN_TRAINER,
        `No built-in trainer "${input.builtinTrainer}"`,
        { trainer: input.builtinTrainer },
      );
    return {
      trainer: { kind: TrainerKind.BUILTIN, name: t.name },
      version: t.version,
      hyperparameters: validateHyperparameters(t, given),
    };
  }
  const c = input.command as { name: string; argv: string[] };
  if (!/^[a-z][a-z0-9_.-]{0,62}$/.test(c.name))
    throw invalid('command.name must be a lower-case identifier', 'command.name');
  if (
    c.argv.length === 0 ||
    c.argv.length > 64 ||
    c.argv.some((a) => a.length === 0 || a.length > 4096)
  )
    throw invalid('command.argv must hold 1 to 64 non-empty arguments', 'command.argv');
  if (JSON.stringify(given).length > MAX_COMMAND_PARAMS_BYTES)
    throw invalid(
      `hyperparameters must serialize to at most ${MAX_COMMAND_PARAMS_BYTES} bytes`,
      'hyperparameters',
    );
  return {
    trainer: { kind: TrainerKind.COMMAND, name: c.name, command: [...c.argv] },
    version: null,
    hyperparameters: given,
  };
}
