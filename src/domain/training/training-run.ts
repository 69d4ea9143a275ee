import { type ArtifactRef } from '../artifacts/artifact-store';

/**
 * A training run: submitted as a job, queued, run by a gpu-runner, tracked as a run of an
 * experiment. One object from submission to its final metrics (ADR 0011).
 */
export enum RunStatus {
  /** Waiting for the dataset it was submitted with to be built. */
  PENDING = 'PENDING',
  QUEUED = 'QUEUED',
  RUNNING = 'RUNNING',
  SUCCEEDED = 'SUCCEEDED',
  FAILED = 'FAILED',
  CANCELLED = 'CANCELLED',
}

export const FINISHED: ReadonlySet<RunStatus> = new Set([
  RunStatus.SUCCEEDED,
  RunStatus.FAILED,
  RunStatus.CANCELLED,
]);

export enum TrainerKind {
  BUILTIN = 'BUILTIN',
  COMMAND = 'COMMAND',
}

/** A built-in trainer by name, or an external command following the trainer protocol. */
export type TrainerSpec =
  | { kind: TrainerKind.BUILTIN; name: string }
  | { kind: TrainerKind.COMMAND; name: string; command: string[] };

export interface TrainingRun {
  id: string;
  /** Submission order: the run's place in the queue, kept when it goes back there. */
  seq: number;
  experimentId: string;
  experimentName: string;
  trainer: TrainerSpec;
  /** Version of the built-in trainer's code, or null for a command. */
  trainerVersion: string | null;
  datasetId: string;
  hyperparameters: Record<string, unknown>;
  gpuCount: number;
  gpuMemoryMb: number | null;
  maxRetries: number;
  /** Trainer failures so far; a lost lease (runner died) is not one. */
  failures: number;
  gitCommit: string | null;
  status: RunStatus;
  runnerId: string | null;
  /** GPU indexes on the runner, exactly those in CUDA_VISIBLE_DEVICES. */
  gpus: number[];
  leaseExpiresAt: Date | null;
  cancelRequestedAt: Date | null;
  error: string | null;
  logTail: string | null;
  createdAt: Date;
  startedAt: Date | null;
  finishedAt: Date | null;
  /** Epochs reported so far, of `epochsTotal`. */
  epochsDone: number;
  epochsTotal: number | null;
  /** The latest per-epoch value of every metric reported. */
  summary: Record<string, number>;
  /** The trained model (ONNX), once the run has uploaded it. */
  model: ArtifactRef | null;
  /** Register the model under this name when the run succeeds. */
  registerAs: string | null;
  /** The model version registered from this run. */
  modelVersionId: string | null;
  /**
   * The ended run whose newest verified checkpoint this run starts from (until it has one of
   * its own): it continues that run's training rather than starting over.
   */
  resumeFromRunId: string | null;
}

/** One metric value: per epoch (`step` null) or, opted into, per step. */
export interface MetricPoint {
  epoch: number;
  step: number | null;
  name: string;
  value: number;
}

/** Utilization while the run trained: GPUs from nvidia-smi when present, else CPU and RAM. */
export interface HardwareSample {
  at: Date;
  cpuPercent: number | null;
  memoryMb: number | null;
  gpus: { index: number; utilizationPercent: number; memoryMb: number }[];
}

export interface RunCheckpoint {
  epoch: number;
  artifact: ArtifactRef;
  createdAt: Date;
}

export enum TrainingErrorCode {
  INVALID_JOB = 'INVALID_JOB',
  UNKNOWN_TRAINER = 'UNKNOWN_TRAINER',
  INVALID_HYPERPARAMETERS = 'INVALID_HYPERPARAMETERS',
  DATASET_NOT_FOUND = 'DATASET_NOT_FOUND',
  DATASET_NOT_READY = 'DATASET_NOT_READY',
  RUN_NOT_FOUND = 'RUN_NOT_FOUND',
  RUN_FINISHED = 'RUN_FINISHED',
  /** The caller's runner does not hold this run's lease (it expired or was never given). */
  LEASE_LOST = 'LEASE_LOST',
  INVALID_REPORT = 'INVALID_REPORT',
  /** An upload whose bytes do not match the checksum the runner sent. */
  UPLOAD_CORRUPT = 'UPLOAD_CORRUPT',
  NO_CHECKPOINT = 'NO_CHECKPOINT',
  UNKNOWN_METRIC = 'UNKNOWN_METRIC',
}

/** A runner that has not renewed a run's lease for this long has lost it; the run is requeued. */
export const RUN_LEASE_MS = 30_000;
/** Metric names, as trainers report them and gates and comparisons name them. */
export const METRIC_NAME_RE = /^[a-z][a-z0-9_.]{0,62}$/;

export const MAX_GPUS_PER_RUN = 64;
export const MAX_RETRIES = 20;
