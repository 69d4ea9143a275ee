import { type Principal } from '../auth/api-key';
import { Permission, requirePermission } from '../auth/role';
import { type DatasetSnapshot, DatasetStatus } from '../features/dataset';
import { type Clock } from '../shared/clock';
import { NO_TRANSACTION, type UnitOfWork } from '../shared/unit-of-work';
import { ConflictError, InvalidInputError, NotFoundError } from '../shared/domain-error';
import { type Page, type PageRequest } from '../shared/pagination';
import { MODEL_NAME_RE } from '../registry/model';
import { type RunEvent, type RunEvents, type RunProgressEvent } from './run-events';
import { type RunQueue } from './run-queue';
import { builtinTrainer, MAX_COMMAND_PARAMS_BYTES, validateHyperparameters } from './trainers';
import {
  FINISHED,
  type HardwareSample,
  type MetricPoint,
  MAX_GPUS_PER_RUN,
  type RunCheckpoint,
  MAX_RETRIES,
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
  /**
   * The same key twice is one run: a retried submission (a client's, or a workflow step's
   * after a crash) gets the run the first one made, queued once.
   */
  idempotencyKey?: string | null;
  /**
   * An ended run of the same trainer and dataset with a checkpoint: this run starts from its
   * newest verified checkpoint and trains only the epochs after it (a study's trial promoted
   * to a larger epoch budget, ADR 0030).
   */
  resumeFrom?: string | null;
}

export interface ComparedRun {
  run: TrainingRun;
  /** The latest value of every metric, plus duration_seconds. */
  metrics: Record<string, number>;
}

export interface DatasetLookup {
  byIds(ids: readonly string[]): Promise<DatasetSnapshot[]>;
  build(
    req: DatasetBuildRequest,
  ): Promise<{ snapshot: DatasetSnapshot; done: Promise<DatasetSnapshot> }>;
}

const MAX_COMPARED_RUNS = 500;

/**
 * The users' side of training: submission into the FIFO queue over runners' GPUs (after the
 * training set, when one is built first), cancellation, and reading runs, their history and
 * their comparison. The runners' side is RunExecutionService.
 */
export class TrainingService {
  constructor(
    private readonly repo: TrainingRunRepository,
    private readonly queue: RunQueue,
    private readonly datasets: DatasetLookup,
    private readonly runEvents: RunEvents,
    private readonly clock: Clock,
    /** A run's change and its event commit together (the outbox). */
    private readonly uow: UnitOfWork = NO_TRANSACTION,
  ) {}

  /**
   * `actor` is the caller through the API; platform loops (retraining) submit as themselves
   * and only with built-in trainers.
   */
  async submit(input: SubmitRunInput, actor?: Principal): Promise<TrainingRun> {
    const { trainer, version, hyperparameters } = checkTrainer(input);
    if (actor && trainer.kind === TrainerKind.COMMAND)
      requirePermission(actor, Permission.COMMAND_TRAINERS, 'A command trainer');
    const key = input.idempotencyKey ?? null;
    if (key !== null && !/^[A-Za-z0-9:._-]{1,200}$/.test(key))
      throw invalid(
        'idempotencyKey must be 1-200 characters of letters, digits and : . _ -',
        'idempotencyKey',
      );
    if (key !== null) {
      const earlier = await this.repo.findByIdempotencyKey(key);
      if (earlier) {
        // Queued before a crash that came ahead of the queue write: the queue gets it now.
        if (earlier.status === RunStatus.QUEUED) await this.queue.enqueue(earlier);
        return earlier;
      }
    }
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
    const resumeFrom = input.resumeFrom ?? null;
    if (resumeFrom !== null) await this.checkResumable(resumeFrom, trainer, input.datasetId);
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

    const { run, created } = await this.uow.run(async () => {
      const r = await this.repo.insert({
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
        idempotencyKey: key,
        resumeFromRunId: resumeFrom,
      });
      if (r.created) await this.runEvents.changed(r.run);
      return r;
    });
    if (!created) {
      if (run.status === RunStatus.QUEUED) await this.queue.enqueue(run);
      return run;
    }
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

  /** A run to start from: ended, of the same trainer and dataset, with a checkpoint. */
  private async checkResumable(
    id: string,
    trainer: TrainerSpec,
    datasetId: string | null | undefined,
  ): Promise<void> {
    const [from] = await this.repo.findByIds([id]);
    if (!from)
      throw new NotFoundError(TrainingErrorCode.RUN_NOT_FOUND, `No run with id ${id} to resume`);
    if (!FINISHED.has(from.status))
      throw new ConflictError(
        TrainingErrorCode.NO_CHECKPOINT,
        `Run ${id} is ${from.status}: only an ended run can be resumed from`,
      );
    const command = (t: TrainerSpec) => (t.kind === TrainerKind.COMMAND ? t.command : []);
    const same =
      from.trainer.kind === trainer.kind &&
      from.trainer.name === trainer.name &&
      JSON.stringify(command(from.trainer)) === JSON.stringify(command(trainer));
    if (!same || from.datasetId !== datasetId)
      throw invalid(
        'resumeFrom must be a run of the same trainer and dataset snapshot',
        'resumeFrom',
      );
    if ((await this.repo.checkpointsOf(id)).length === 0)
      throw new ConflictError(TrainingErrorCode.NO_CHECKPOINT, `Run ${id} left no checkpoint`);
  }

  private async activate(runId: string): Promise<void> {
    const run = await this.uow.run(async () => {
      const r = await this.repo.markQueued(runId);
      if (r) await this.runEvents.changed(r);
      return r;
    });
    // Cancelled meanwhile: nothing to queue. Queued before a crash here: rebuildQueue adds it.
    if (run) await this.queue.enqueue(run);
  }

  private async failPending(runId: string, e: unknown): Promise<void> {
    await this.uow.run(async () => {
      const done = await this.repo.finish(runId, {
        status: RunStatus.FAILED,
        error: `the training set could not be built: ${e instanceof Error ? e.message : String(e)}`,
        logTail: null,
        at: this.clock.now(),
      });
      if (done) await this.runEvents.changed(done);
    });
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
      const done = await this.uow.run(async () => {
        const d = await this.repo.finish(id, {
          status: RunStatus.CANCELLED,
          error: null,
          logTail: null,
          at: this.clock.now(),
        });
        if (d) await this.runEvents.changed(d);
        return d;
      });
      if (done) {
        await this.queue.remove(id);
        return done;
      }
      // Claimed meanwhile: cancel it as a running run.
    }
    const asked = await this.repo.requestCancel(id, this.clock.now());
    return asked ?? this.get(id);
  }

  /**
   * Puts every QUEUED run of record back in the queue (after a Redis loss, at start), and
   * settles PENDING runs whose training set finished while no process was watching.
   */
  async rebuildQueue(): Promise<number> {
    const queued = await this.repo.queued();
    for (const r of queued) await this.queue.enqueue(r);
    await this.settlePending();
    return queued.length;
  }

  /**
   * PENDING runs whose training set is READY join the queue; those whose set FAILED fail. The
   * set may have been finished by another process (a build taken over): this is how its runs
   * learn of it.
   */
  async settlePending(): Promise<void> {
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
    const live = this.runEvents.subscribeProgress(runId);
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
    const live = this.runEvents.subscribeRuns();
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
}

function invalid(message: string, field: string): InvalidInputError {
  return new InvalidInputError(TrainingErrorCode.INVALID_JOB, message, { field });
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
