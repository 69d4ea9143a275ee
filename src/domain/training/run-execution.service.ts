import { ArtifactIntegrityError, ArtifactNotFoundError } from '../artifacts/artifact-errors';
import { type ArtifactRef, type ArtifactStore, type ByteSource } from '../artifacts/artifact-store';
import { type Principal } from '../auth/api-key';
import { type DatasetSnapshot } from '../features/dataset';
import { type RunnerService } from '../runners/runner.service';
import { type Clock } from '../shared/clock';
import { ConflictError, InvalidInputError, NotFoundError } from '../shared/domain-error';
import { NO_TRANSACTION, type UnitOfWork } from '../shared/unit-of-work';
import { type RunEvents } from './run-events';
import { type RunQueue } from './run-queue';
import {
  FINISHED,
  type HardwareSample,
  type MetricPoint,
  METRIC_NAME_RE,
  RUN_LEASE_MS,
  RunStatus,
  TrainingErrorCode,
  type TrainingRun,
} from './training-run';
import { type TrainingRunRepository } from './training-run.repository';

export interface ProgressReport {
  /** Whole epochs: their per-epoch metrics. */
  epochs?: { epoch: number; epochs?: number | null; metrics: Record<string, number> }[];
  /** Opt-in per-step metrics, sent in batches. */
  steps?: MetricPoint[];
  hardware?: HardwareSample[];
}

export interface FinishReport {
  outcome: RunStatus.SUCCEEDED | RunStatus.FAILED | RunStatus.CANCELLED;
  /** For FAILED: whether trying again may succeed (a crash) or not (bad input, a bug). */
  retryable?: boolean;
  error?: string | null;
  logTail?: string | null;
}

/** Keep the tail of a log that fits a graph field comfortably. */
export const LOG_TAIL_BYTES = 16 * 1024;
const MAX_STALE_CLAIMS = 16;
const MAX_POINTS_PER_REPORT = 5_000;

/**
 * The runners' side of training: claiming the head of the queue, the lease a runner renews
 * while it trains, its reports, checkpoints and model, how the run ends, and the reaper that
 * puts runs whose lease ran out back in line (a leased loop: docs/adr/0027). Postgres holds
 * each run's state of record, `RunQueue` the order, leases and free GPUs; every change to one
 * is followed by the matching change to the other, and each side's transitions are
 * conditional, so a crash between the two is repaired by the reaper and
 * `TrainingService.rebuildQueue` rather than leaving a run lost or double-run.
 */
export class RunExecutionService {
  constructor(
    private readonly repo: TrainingRunRepository,
    private readonly queue: RunQueue,
    private readonly runners: RunnerService,
    private readonly datasets: { byIds(ids: readonly string[]): Promise<DatasetSnapshot[]> },
    private readonly artifacts: ArtifactStore,
    private readonly runEvents: RunEvents,
    private readonly clock: Clock,
    private readonly leaseMs = RUN_LEASE_MS,
    /** A run's change and its event commit together (the outbox). */
    private readonly uow: UnitOfWork = NO_TRANSACTION,
  ) {}

  /** A runner asks for work: the head of the queue if it fits the runner's free GPUs. */
  async claim(actor: Principal, runnerId: string): Promise<TrainingRun | null> {
    // Expired leases are reaped by a background pass (see app.ts), not on this hot path.
    await this.runners.ownedOnline(actor, runnerId);
    for (let i = 0; i < MAX_STALE_CLAIMS; i++) {
      const now = this.clock.now();
      const leaseExpiresAt = new Date(now.getTime() + this.leaseMs);
      const c = await this.queue.claim(runnerId, leaseExpiresAt.getTime());
      if (!c) return null;
      const run = await this.uow.run(async () => {
        const r = await this.repo.markRunning(c.runId, {
          runnerId,
          gpus: c.gpus,
          leaseExpiresAt,
          at: now,
        });
        if (r) await this.runEvents.changed(r);
        return r;
      });
      if (run) return run;
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
      const back = await this.uow.run(async () => {
        const b = await this.repo.backToQueue(runId, { failed: true, error, logTail });
        if (b) await this.runEvents.changed(b);
        return b;
      });
      if (!back) throw leaseLost(runId);
      return back;
    }
    if (!(await this.queue.release(runId, runnerId))) throw leaseLost(runId);
    const done = await this.uow.run(async () => {
      const d = await this.repo.finish(runId, {
        status: report.outcome,
        error,
        logTail,
        at: this.clock.now(),
      });
      if (d) await this.runEvents.changed(d);
      return d;
    });
    if (!done) throw leaseLost(runId);
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
    const now = this.clock.now();
    const ids = await this.queue.requeueExpired(now.getTime());
    for (const run of await this.repo.findByIds(ids)) {
      if (run.cancelRequestedAt) await this.queue.remove(run.id);
      await this.settleExpired(run);
    }
    // Runs of record whose lease lapsed but that Redis does not hold (it lost its data, or a
    // process died between the two stores' updates): back in line too, never stuck RUNNING.
    const stale = await this.repo.leaseExpired(new Date(now.getTime() - this.leaseMs));
    const leased = await this.queue.leased(stale);
    const orphans = stale.filter((_, i) => !leased[i]);
    for (const run of await this.repo.findByIds(orphans)) {
      const back = await this.settleExpired(run);
      if (back?.status === RunStatus.QUEUED) await this.queue.enqueue(back);
    }
    return [...ids, ...orphans];
  }

  private settleExpired(run: TrainingRun): Promise<TrainingRun | null> {
    return this.uow.run(async () => {
      const changed = run.cancelRequestedAt
        ? await this.repo.finish(run.id, {
            status: RunStatus.CANCELLED,
            error: 'cancelled; the runner stopped answering',
            logTail: null,
            at: this.clock.now(),
          })
        : await this.repo.backToQueue(run.id, { failed: false, error: null, logTail: null });
      if (changed) await this.runEvents.changed(changed);
      return changed;
    });
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
    for (const e of [...epochs].sort((a, b) => a.epoch - b.epoch))
      await this.runEvents.epoch(run, e);
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
   * missing one is skipped for the one before it, so a run never resumes from bad state. A
   * run with none of its own that continues another (`resumeFromRunId`) gets that run's.
   */
  async latestCheckpoint(
    actor: Principal,
    runId: string,
    runnerId: string,
  ): Promise<{ epoch: number; bytes: Uint8Array } | null> {
    const run = await this.held(actor, runId, runnerId);
    return (
      (await this.verifiedCheckpoint(runId)) ??
      (run.resumeFromRunId ? await this.verifiedCheckpoint(run.resumeFromRunId) : null)
    );
  }

  private async verifiedCheckpoint(
    runId: string,
  ): Promise<{ epoch: number; bytes: Uint8Array } | null> {
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

  private async get(id: string): Promise<TrainingRun> {
    const [run] = await this.repo.findByIds([id]);
    if (!run) throw new NotFoundError(TrainingErrorCode.RUN_NOT_FOUND, `No run with id ${id}`);
    return run;
  }
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
