import { type Page, type PageRequest } from '../shared/pagination';
import { type ArtifactRef } from '../artifacts/artifact-store';
import {
  type Evaluation,
  type Gate,
  type Model,
  type ModelSignature,
  type ModelState,
  type ModelVersion,
  type Transition,
} from './model';

/** Port: reading and running ONNX models (onnxruntime-node in infra). */
export interface ModelInspector {
  /** Inputs, outputs and feature metadata; throws InvalidOnnxError when it is not a model. */
  signature(model: Uint8Array): ModelSignature;
  /**
   * Loads the model in the runtime and evaluates it on a dataset snapshot (Arrow IPC):
   * AUC and log loss over every labelled row, and the p99 latency of single-row calls.
   */
  evaluate(model: Uint8Array, dataset: Uint8Array): Promise<Evaluation['metrics']>;
}

export class InvalidOnnxError extends Error {}

export interface NewVersion {
  modelName: string;
  runId: string | null;
  artifact: ArtifactRef;
  datasetId: string | null;
  datasetHash: string | null;
  featureRefs: string[];
  featureViewVersionIds: string[];
  hyperparameters: Record<string, unknown>;
  metrics: Record<string, number>;
  gitCommit: string | null;
  trainer: ModelVersion['trainer'];
  signature: ModelSignature;
  actor: string;
  reason: string;
}

export interface TransitionRequest {
  versionId: string;
  /** Refused (null returned) unless the version is still in this state. */
  from: ModelState;
  to: ModelState;
  /** Refused unless the model's production version is still this one (gates compared to it). */
  expectedProductionId: string | null;
  actor: string;
  reason: string;
  gates: Transition['gates'];
}

/** Port: models, versions, transitions and evaluations. Writes are transactional. */
export interface ModelRegistryRepository {
  /**
   * Creates the model if needed and the next version number under a lock on the model, in
   * one transaction with its first transition: numbers never repeat or skip.
   */
  /** `created` is false when the run was already a version of the model (that one is returned). */
  insertVersion(v: NewVersion): Promise<{ version: ModelVersion; created: boolean }>;
  /** The version of `modelName` registered from `runId`, if there is one. */
  versionOfRun(modelName: string, runId: string): Promise<ModelVersion | null>;
  findModel(name: string): Promise<Model | null>;
  findModelsByIds(ids: readonly string[]): Promise<Model[]>;
  listModels(page: PageRequest): Promise<Page<Model>>;
  findVersions(ids: readonly string[]): Promise<ModelVersion[]>;
  versionsOf(modelIds: readonly string[]): Promise<ModelVersion[]>;
  /**
   * Applies a transition under a lock on the model. Into PRODUCTION, the current production
   * version (if another) becomes ARCHIVED and is remembered for rollback. Null when the
   * version or the model's production moved meanwhile.
   */
  transition(
    t: TransitionRequest,
  ): Promise<{ version: ModelVersion; replaced: ModelVersion | null } | null>;
  /** PRODUCTION → ROLLED_BACK and the previous production version back; null if none. */
  rollback(
    modelId: string,
    actor: string,
    reason: string,
  ): Promise<{ restored: ModelVersion; rolledBack: ModelVersion } | null>;
  transitionsOf(versionIds: readonly string[]): Promise<Map<string, Transition[]>>;
  saveEvaluation(versionId: string, e: Evaluation): Promise<void>;
  evaluationsOf(versionIds: readonly string[]): Promise<Map<string, Evaluation[]>>;
  setGates(modelId: string, gates: Gate[]): Promise<Model>;
}
