import { type Page, type PageRequest } from '../shared/pagination';
import { type ArtifactRef } from '../artifacts/artifact-store';
import {
  type HardwareSample,
  type MetricPoint,
  type RunCheckpoint,
  type RunStatus,
  type TrainerSpec,
  type TrainingRun,
} from './training-run';

export interface NewRun {
  status: RunStatus.PENDING | RunStatus.QUEUED;
  experimentName: string;
  trainer: TrainerSpec;
  trainerVersion: string | null;
  datasetId: string;
  hyperparameters: Record<string, unknown>;
  gpuCount: number;
  gpuMemoryMb: number | null;
  maxRetries: number;
  gitCommit: string | null;
  registerAs: string | null;
  /** A caller's key for this submission: a second submission with it is the same run. */
  idempotencyKey: string | null;
  resumeFromRunId: string | null;
}

/** Port: runs and experiments, the state of record. Every transition is conditional. */
export interface TrainingRunRepository {
  /**
   * Creates the experiment when it does not exist yet, and the run (PENDING or QUEUED) in it;
   * with an idempotency key already used, returns that run instead (`created` false).
   */
  insert(run: NewRun): Promise<{ run: TrainingRun; created: boolean }>;
  /** The run submitted with this idempotency key, if any. */
  findByIdempotencyKey(key: string): Promise<TrainingRun | null>;
  findByIds(ids: readonly string[]): Promise<TrainingRun[]>;
  list(
    page: PageRequest,
    filter: { experiment?: string; status?: RunStatus },
  ): Promise<Page<TrainingRun>>;
  /** QUEUED runs in submission order: what the queue must hold. */
  queued(): Promise<{ id: string; seq: number; gpuCount: number; gpuMemoryMb: number | null }[]>;
  /** PENDING runs with their dataset ids. */
  pending(): Promise<{ id: string; datasetId: string }[]>;
  /** RUNNING runs whose recorded lease ran out before `before`. */
  leaseExpired(before: Date): Promise<string[]>;
  /** PENDING → QUEUED once the dataset is READY. */
  markQueued(id: string): Promise<TrainingRun | null>;
  /** QUEUED → RUNNING on a runner; null when the run is no longer QUEUED. */
  markRunning(
    id: string,
    r: { runnerId: string; gpus: number[]; leaseExpiresAt: Date; at: Date },
  ): Promise<TrainingRun | null>;
  renewLease(id: string, runnerId: string, leaseExpiresAt: Date): Promise<TrainingRun | null>;
  /** RUNNING → QUEUED (lost lease or a retry); `failed` counts a trainer failure. */
  backToQueue(
    id: string,
    r: { failed: boolean; error: string | null; logTail: string | null },
  ): Promise<TrainingRun | null>;
  /** PENDING, QUEUED or RUNNING → a final status. */
  finish(
    id: string,
    r: { status: RunStatus; error: string | null; logTail: string | null; at: Date },
  ): Promise<TrainingRun | null>;
  requestCancel(id: string, at: Date): Promise<TrainingRun | null>;
  /** Stores metric points (a point reported again replaces itself) and moves the summary on. */
  addMetrics(
    runId: string,
    points: MetricPoint[],
    progress: { epochsDone: number; epochsTotal: number | null } | null,
  ): Promise<void>;
  metricsOf(runIds: readonly string[]): Promise<Map<string, MetricPoint[]>>;
  addHardware(runId: string, samples: HardwareSample[]): Promise<void>;
  hardwareOf(runIds: readonly string[]): Promise<Map<string, HardwareSample[]>>;
  addCheckpoint(runId: string, epoch: number, artifact: ArtifactRef): Promise<void>;
  /** Newest first. */
  checkpointsOf(runId: string): Promise<RunCheckpoint[]>;
  setModel(runId: string, artifact: ArtifactRef): Promise<void>;
  /** Adds a note to a finished run's error (e.g. its automatic registration failed). */
  noteError(runId: string, note: string): Promise<void>;
  /** Runs of the experiments and ids given, any status. */
  forComparison(
    filter: { experiments: string[]; runIds: string[] },
    limit: number,
  ): Promise<TrainingRun[]>;
}
