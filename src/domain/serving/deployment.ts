import { type Page, type PageRequest } from '../shared/pagination';
import { type ModelVersion } from '../registry/model';
import { type AutoscalePolicy, type ScaleMemory } from './autoscaler';
import { type CanaryPolicy } from './canary';

/** An endpoint serving one model: its PRODUCTION, CANARY and SHADOW versions by state. */
export interface Deployment {
  id: string;
  endpoint: string;
  modelId: string;
  /** Share of request keys sent to the CANARY version while there is one. */
  canaryShare: number;
  maxBatch: number;
  maxWaitUs: number;
  warmupRequests: number;
  canaryPolicy: CanaryPolicy;
  /** How many replicas each of its versions runs, and when that changes. */
  autoscalePolicy: AutoscalePolicy;
  /** When the canary share last changed (the step clock). */
  canarySteppedAt: Date | null;
  /** An A/B test: when set, request keys are split over these versions by weight. */
  abArms: { versionId: string; weight: number }[];
  /** Replicas each api process runs per version, as the fleet's autoscaler last decided. */
  replicas: Record<string, number>;
  createdAt: Date;
}

/** The autoscaler's state for one version of a deployment: shared by every process. */
export interface ScalingRecord {
  replicas: number;
  memory: ScaleMemory;
  /** When the autoscaler last judged it (null: never). */
  reviewedAt: number | null;
}

export const DEFAULT_CANARY_POLICY: CanaryPolicy = {
  steps: [0.1, 0.25, 0.5, 1],
  stepMs: 300_000,
  windowMs: 300_000,
  maxErrorRateDelta: 0.02,
  maxP99Ratio: 2,
  minSamples: 100,
};

/** What an endpoint tells `deploymentEvents`. */
export interface DeploymentEvent {
  endpoint: string;
  kind: 'READY' | 'CANARY_STEP' | 'CANARY_ROLLED_BACK' | 'CANARY_PROMOTED' | 'SCALED';
  versionId: string | null;
  share: number | null;
  /** SCALED: the version's replica count now. */
  replicas: number | null;
  detail: string;
  at: string;
}

export enum ServingRole {
  PRODUCTION = 'PRODUCTION',
  /** An arm of the endpoint's A/B test. */
  ARM = 'ARM',
  CANARY = 'CANARY',
  SHADOW = 'SHADOW',
}

export enum ServingErrorCode {
  DEPLOYMENT_NOT_FOUND = 'DEPLOYMENT_NOT_FOUND',
  INVALID_DEPLOYMENT = 'INVALID_DEPLOYMENT',
  NO_SERVING_VERSION = 'NO_SERVING_VERSION',
  INVALID_FEATURES = 'INVALID_FEATURES',
  PREDICTION_NOT_FOUND = 'PREDICTION_NOT_FOUND',
  /** The version's model could not be loaded (corrupt or missing file, not valid ONNX). */
  MODEL_UNAVAILABLE = 'MODEL_UNAVAILABLE',
}

export interface PredictionRecord {
  id: string;
  deploymentId: string;
  versionId: string;
  role: ServingRole;
  requestKey: string;
  entityKey: string | null;
  /** The row the model was given, as it was given (float32; NaN where a feature had no value). */
  inputs: Float32Array;
  score: number;
  latencyUs: number;
  at: Date;
}

export interface ShadowComparison {
  shadowVersionId: string;
  /** Requests scored by both the shadow and the version that answered. */
  pairs: number;
  meanAbsDiff: number;
  maxAbsDiff: number;
  /** Share of pairs on the same side of 0.5. */
  agreement: number;
}

export interface DeploymentRepository {
  create(
    d: Omit<Deployment, 'id' | 'canarySteppedAt' | 'abArms' | 'replicas'>,
  ): Promise<Deployment>;
  setArms(id: string, arms: Deployment['abArms']): Promise<void>;
  setAutoscalePolicy(id: string, policy: AutoscalePolicy): Promise<void>;
  all(): Promise<Deployment[]>;
  /**
   * Moves the canary's share from `from` to `share` (compare-and-set): false when another
   * pass moved it first, so a step is never taken twice.
   */
  setCanaryShare(id: string, from: number, share: number, at: Date): Promise<boolean>;
  /** The autoscaler's record of the version on the deployment (null: never judged). */
  scaling(deploymentId: string, versionId: string): Promise<ScalingRecord | null>;
  /** Stores its next state if the record is still the one judged (compare-and-set). */
  saveScaling(
    deploymentId: string,
    versionId: string,
    next: ScalingRecord,
    expectedReviewedAt: number | null,
  ): Promise<boolean>;
  findByEndpoint(endpoint: string): Promise<Deployment | null>;
  findByIds(ids: readonly string[]): Promise<Deployment[]>;
  list(page: PageRequest): Promise<Page<Deployment>>;
  /** Records that the endpoint served this version (the lineage edge version → deployment). */
  markServed(deploymentId: string, versionId: string): Promise<void>;
}

/** Port: ONNX sessions per version, loaded, verified and warmed up before they serve. */
export interface ModelRunner {
  /** Loads (file verified against its SHA-256) and warms the version up; idempotent. */
  load(v: ModelVersion, warmupRequests: number): Promise<void>;
  isReady(versionId: string): boolean;
  /**
   * Why the version's last load failed, while that failure stands (further loads fail at
   * once with it until it expires), or null.
   */
  loadError(versionId: string): string | null;
  /** One row through the version's micro-batcher; resolves to its probability. */
  score(
    v: ModelVersion,
    row: Float32Array,
    batching: { maxBatch: number; maxWaitUs: number },
  ): Promise<number>;
  /**
   * Runs the (loaded) version on `replicas` replicas, each with its own session: resolves
   * once the added ones are warmed up and taking traffic; removed ones finish what they hold.
   */
  scale(v: ModelVersion, replicas: number): Promise<void>;
  /** Stops the version's replicas once they have answered what they hold (it no longer serves). */
  release(versionId: string): Promise<void>;
  /** The version's replicas and the mean queue its requests met since the last call (resets it). */
  pressure(versionId: string): RunnerPressure | null;
}

export interface RunnerPressure {
  replicas: number;
  /** Mean rows each arriving request found waiting for a replica. */
  queueDepth: number;
  /** Requests that arrived since the last call (the mean's weight). */
  arrivals: number;
}

/**
 * Port: the prediction log, written in batches off the request path. `append` waits only
 * when the buffer is full (back-pressure); rows are never dropped silently.
 */
export interface PredictionLog {
  append(rows: PredictionRecord[]): Promise<void>;
  /** Writes everything buffered now. */
  flush(): Promise<void>;
  stats(): { written: number; buffered: number; lost: number; failedFlushes: number };
  /** Shadow scores beside the answers given for the same requests, per shadow version. */
  compareShadow(deploymentId: string, since: Date): Promise<ShadowComparison[]>;
  /** Attaches a label to one prediction (by id) or to the latest for a request key. */
  recordFeedback(
    by: { predictionId?: string; requestKey?: string },
    label: number,
    at: Date,
  ): Promise<number>;
}
