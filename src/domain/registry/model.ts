import { type ArtifactRef } from '../artifacts/artifact-store';

/** Model names: lower-case identifiers, so they read well in refs like `delay@3`. */
export const MODEL_NAME_RE = /^[a-z][a-z0-9_-]{0,62}$/;

/** Where a model version stands. Moves only by the transitions in TRANSITIONS. */
export enum ModelState {
  REGISTERED = 'REGISTERED',
  VALIDATED = 'VALIDATED',
  STAGING = 'STAGING',
  SHADOW = 'SHADOW',
  CANARY = 'CANARY',
  PRODUCTION = 'PRODUCTION',
  ARCHIVED = 'ARCHIVED',
  ROLLED_BACK = 'ROLLED_BACK',
}

/**
 * The promotion path and its exits. VALIDATED is reached only by `validate` (the automatic
 * checks), PRODUCTION from CANARY, and a PRODUCTION version leaves it when another replaces
 * it (ARCHIVED, kept loadable for rollback) or by `rollback` (ROLLED_BACK).
 */
export const TRANSITIONS: Readonly<Record<ModelState, readonly ModelState[]>> = {
  [ModelState.REGISTERED]: [ModelState.VALIDATED, ModelState.ARCHIVED],
  [ModelState.VALIDATED]: [ModelState.STAGING, ModelState.ARCHIVED],
  [ModelState.STAGING]: [ModelState.SHADOW, ModelState.ARCHIVED],
  [ModelState.SHADOW]: [ModelState.CANARY, ModelState.STAGING, ModelState.ARCHIVED],
  [ModelState.CANARY]: [ModelState.PRODUCTION, ModelState.ROLLED_BACK, ModelState.ARCHIVED],
  [ModelState.PRODUCTION]: [ModelState.ARCHIVED, ModelState.ROLLED_BACK],
  [ModelState.ROLLED_BACK]: [ModelState.STAGING, ModelState.ARCHIVED],
  [ModelState.ARCHIVED]: [],
};

export function canTransition(from: ModelState, to: ModelState): boolean {
  return TRANSITIONS[from].includes(to);
}

/** A tensor of the ONNX graph. */
export interface TensorSignature {
  name: string;
  type: string;
  /** Dimensions; null for a symbolic one (the batch). */
  shape: (number | null)[];
}

export interface ModelSignature {
  inputs: TensorSignature[];
  outputs: TensorSignature[];
  /** Feature refs in input column order, from the model's `aether.features` metadata. */
  features: readonly string[] | null;
}

export interface Model {
  id: string;
  name: string;
  gates: Gate[];
  productionVersionId: string | null;
  previousProductionVersionId: string | null;
  createdAt: Date;
}

export interface ModelVersion {
  id: string;
  modelId: string;
  modelName: string;
  version: number;
  state: ModelState;
  runId: string | null;
  artifact: ArtifactRef;
  datasetId: string | null;
  datasetHash: string | null;
  featureRefs: readonly string[];
  featureViewVersionIds: string[];
  hyperparameters: Record<string, unknown>;
  metrics: Record<string, number>;
  gitCommit: string | null;
  trainer: { kind: string; name: string; version: string | null } | null;
  signature: ModelSignature;
  createdAt: Date;
  stateChangedAt: Date;
}

/** The feature refs a version reads, in its input order (from its signature when recorded). */
export function inputFeatures(
  v: Pick<ModelVersion, 'signature' | 'featureRefs'>,
): readonly string[] {
  return v.signature.features ?? v.featureRefs;
}

/**
 * A condition a version must meet to enter `into`:
 * - AUC_VS_PRODUCTION: its AUC on its evaluation snapshot at least the production version's
 *   AUC on the same snapshot plus `threshold` (e.g. -0.005);
 * - MAX_P99_LATENCY_MS: measured single-row p99 latency at most `threshold`;
 * - MIN_METRIC: evaluation metric `metric` at least `threshold`.
 */
export interface Gate {
  kind: 'AUC_VS_PRODUCTION' | 'MAX_P99_LATENCY_MS' | 'MIN_METRIC';
  into: ModelState;
  threshold: number;
  metric?: string | null;
}

export interface GateResult {
  gate: Gate;
  passed: boolean;
  /** What was measured, and what was required. */
  actual: number | null;
  required: number;
  detail: string;
}

export interface Transition {
  id: string;
  modelVersionId: string;
  from: ModelState | null;
  to: ModelState;
  actor: string;
  reason: string;
  gates: GateResult[];
  at: Date;
}

/** An evaluation of a version on a held-out snapshot. */
export interface Evaluation {
  datasetId: string;
  metrics: { auc: number; log_loss: number; p99_latency_ms: number; rows: number } & Record<
    string,
    number
  >;
  at: Date;
}

export enum RegistryErrorCode {
  MODEL_NOT_FOUND = 'MODEL_NOT_FOUND',
  VERSION_NOT_FOUND = 'VERSION_NOT_FOUND',
  INVALID_MODEL = 'INVALID_MODEL',
  RUN_NOT_REGISTRABLE = 'RUN_NOT_REGISTRABLE',
  ARTIFACT_CHECKSUM_MISMATCH = 'ARTIFACT_CHECKSUM_MISMATCH',
  SIGNATURE_MISMATCH = 'SIGNATURE_MISMATCH',
  INVALID_ONNX = 'INVALID_ONNX',
  ILLEGAL_TRANSITION = 'ILLEGAL_TRANSITION',
  GATE_FAILED = 'GATE_FAILED',
  NOT_EVALUATED = 'NOT_EVALUATED',
  NO_PREVIOUS_PRODUCTION = 'NO_PREVIOUS_PRODUCTION',
  INVALID_GATE = 'INVALID_GATE',
}

/** Feature refs a model reads: the numeric columns of its dataset, in column order. */
export function signatureMismatch(
  signature: ModelSignature,
  featureRefs: readonly string[],
): {
  missing: string[];
  unexpected: string[];
  widthExpected: number;
  widthFound: number | null;
} | null {
  const width = signature.inputs[0]?.shape[1] ?? null;
  if (signature.features) {
    const same =
      signature.features.length === featureRefs.length &&
      signature.features.every((f, i) => f === featureRefs[i]);
    const widthOk = width === null || width === featureRefs.length;
    if (same && widthOk) return null;
    return {
      missing: featureRefs.filter((f) => !signature.features?.includes(f)),
      unexpected: signature.features.filter((f) => !featureRefs.includes(f)),
      widthExpected: featureRefs.length,
      widthFound: width,
    };
  }
  if (width === null || width === featureRefs.length) return null;
  return { missing: [], unexpected: [], widthExpected: featureRefs.length, widthFound: width };
}
