import { type FeatureRegistryService } from '../features/feature-registry.service';
import { type OnlineFeatureService } from '../features/online-features.service';
import { inputFeatures, type ModelVersion } from '../registry/model';
import { type Clock } from '../shared/clock';
import { timeOrderedId } from '../shared/time-ordered-id';
import { UUID_RE } from '../shared/uuid';
import { ConflictError, InvalidInputError, NotFoundError } from '../shared/domain-error';
import {
  type Deployment,
  type DeploymentRepository,
  type ModelRunner,
  type PredictionLog,
  type PredictionRecord,
  ServingErrorCode,
  ServingRole,
} from './deployment';
import { type OutcomeStore } from './outcomes';
import { type ServingRoutes } from './serving-routes';
import { inCanary, pickArm } from './traffic';

export interface ServingOutcome {
  endpoint: string;
  /** model@version that actually ran. */
  version: string;
  role: ServingRole;
  ok: boolean;
  latencyMs: number;
}

export interface Prediction {
  id: string;
  entityKey: string | null;
  score: number;
  /** The version that actually produced the score. */
  version: ModelVersion;
  role: ServingRole;
  /**
   * Event time of the oldest feature value this row used: its own entity's, never another
   * row's (null: an inline row, or an entity with no feature values online).
   */
  asOf: Date | null;
}

const MAX_ROWS = 1_000;

/**
 * Predictions: the endpoint's versions come from the registry's states (PRODUCTION serves,
 * CANARY takes its share of request keys by consistent hashing, SHADOW scores a copy off the
 * request path and is never returned); features come from the online store by the model's
 * own feature refs, the code path training sets were built with; every prediction is logged
 * with the version that produced it.
 */
export class PredictionService {
  private readonly served = new Set<string>();

  constructor(
    private readonly repo: DeploymentRepository,
    private readonly routes: ServingRoutes,
    private readonly features: FeatureRegistryService,
    private readonly online: OnlineFeatureService,
    private readonly runner: ModelRunner,
    private readonly log: PredictionLog,
    private readonly outcomes: OutcomeStore,
    private readonly clock: Clock,
  ) {}

  async predict(
    endpoint: string,
    requestKey: string,
    entityKeys: readonly string[],
    inline: Record<string, unknown>[] | null,
  ): Promise<Prediction[]> {
    if (!requestKey || requestKey.length > 256)
      throw new InvalidInputError(
        ServingErrorCode.INVALID_FEATURES,
        'requestKey must be 1 to 256 characters',
      );
    const rowsWanted = inline ? inline.length : entityKeys.length;
    if (rowsWanted < 1 || rowsWanted > MAX_ROWS)
      throw new InvalidInputError(ServingErrorCode.INVALID_FEATURES, `Give 1 to ${MAX_ROWS} rows`);
    const r = await this.routes.route(endpoint, false);
    // An A/B test, when set, splits keys over its arms (weighted rendezvous hashing);
    // otherwise the canary takes its share of keys.
    const arm = r.arms.length ? pickArm(requestKey, r.arms).version : null;
    let version =
      arm ??
      (r.canary && (!r.production || inCanary(requestKey, endpoint, r.deployment.canaryShare))
        ? r.canary
        : r.production);
    // A canary takes traffic only once it is loaded and warmed up; until then production
    // answers its keys and the canary loads in the background (a load failure counts
    // against it, so the controller rolls it back).
    if (version && version === r.canary && r.production && !this.runner.isReady(version.id)) {
      const canary = version;
      this.runner
        .load(canary, r.deployment.warmupRequests)
        .catch(() => this.outcome(r.deployment, canary, ServingRole.CANARY, false, 0));
      version = r.production;
    }
    if (!version)
      throw new ConflictError(
        ServingErrorCode.NO_SERVING_VERSION,
        `${endpoint} has no PRODUCTION or CANARY version to serve`,
      );
    const role =
      version === arm
        ? ServingRole.ARM
        : version === r.canary
          ? ServingRole.CANARY
          : ServingRole.PRODUCTION;
    const input = inline
      ? {
          rows: this.inlineRows(version, inline),
          asOf: inline.map(() => null),
          keys: inline.map(() => null),
        }
      : await this.onlineRows(version, entityKeys);
    const t0 = this.clock.now();
    const batching = { maxBatch: r.deployment.maxBatch, maxWaitUs: r.deployment.maxWaitUs };
    const serving = version;
    let started = performance.now();
    let scores: number[];
    try {
      await this.runner.load(serving, r.deployment.warmupRequests);
      started = performance.now();
      scores = await Promise.all(
        input.rows.map((row) => this.runner.score(serving, row, batching)),
      );
    } catch (e) {
      this.outcome(r.deployment, serving, role, false, performance.now() - started);
      throw e;
    }
    const latencyUs = Math.round((performance.now() - started) * 1_000);
    this.outcome(r.deployment, serving, role, true, latencyUs / 1_000);
    const predictions: Prediction[] = scores.map((score, i) => ({
      id: timeOrderedId(t0.getTime()),
      entityKey: input.keys[i],
      score,
      version,
      role,
      asOf: input.asOf[i],
    }));
    this.markServed(r.deployment.id, version.id);
    await this.log.append(
      predictions.map((p, i) =>
        record(r.deployment.id, requestKey, p, input.rows[i], latencyUs, t0),
      ),
    );
    if (r.shadow) this.shadow(r.deployment, r.shadow, requestKey, input, t0);
    return predictions;
  }

  async recordFeedback(
    by: { predictionId?: string | null; requestKey?: string | null },
    label: number,
  ): Promise<number> {
    if ((by.predictionId == null) === (by.requestKey == null))
      throw new InvalidInputError(
        ServingErrorCode.INVALID_FEATURES,
        'Give either predictionId or requestKey',
      );
    if (!Number.isFinite(label))
      throw new InvalidInputError(
        ServingErrorCode.INVALID_FEATURES,
        'label must be a finite number',
      );
    // A prediction's id is a UUID: any other string names no prediction, and is answered so
    // instead of reaching the log's uuid column as a database error.
    if (by.predictionId != null && !UUID_RE.test(by.predictionId))
      throw new NotFoundError(
        ServingErrorCode.PREDICTION_NOT_FOUND,
        `${JSON.stringify(by.predictionId.slice(0, 64))} is not a prediction id`,
      );
    await this.log.flush();
    const n = await this.log.recordFeedback(
      { predictionId: by.predictionId ?? undefined, requestKey: by.requestKey ?? undefined },
      label,
      this.clock.now(),
    );
    if (!n)
      throw new NotFoundError(
        ServingErrorCode.PREDICTION_NOT_FOUND,
        'No logged prediction matches',
      );
    return n;
  }

  /** Scores a copy with the shadow version after the answer is sent; logged, never returned. */
  private shadow(
    d: Deployment,
    v: ModelVersion,
    requestKey: string,
    input: { rows: Float32Array[]; keys: (string | null)[] },
    at: Date,
  ): void {
    setImmediate(() => {
      void (async () => {
        await this.runner.load(v, d.warmupRequests);
        const started = performance.now();
        const scores = await Promise.all(input.rows.map((row) => this.runner.score(v, row, d)));
        const latencyUs = Math.round((performance.now() - started) * 1_000);
        this.outcome(d, v, ServingRole.SHADOW, true, latencyUs / 1_000);
        this.markServed(d.id, v.id);
        await this.log.append(
          scores.map((score, i) =>
            record(
              d.id,
              requestKey,
              {
                id: timeOrderedId(at.getTime()),
                entityKey: input.keys[i],
                score,
                version: v,
                role: ServingRole.SHADOW,
                asOf: null,
              },
              input.rows[i],
              latencyUs,
              at,
            ),
          ),
        );
      })().catch(() => this.outcome(d, v, ServingRole.SHADOW, false, 0));
    });
  }

  private async onlineRows(
    v: ModelVersion,
    entityKeys: readonly string[],
  ): Promise<{ rows: Float32Array[]; asOf: (Date | null)[]; keys: (string | null)[] }> {
    const refs = inputFeatures(v);
    const resolved = await this.features.resolveRefs(refs);
    const rows = await this.online.readResolved(entityKeys, resolved);
    return {
      rows: rows.map((r) => modelRow(r.vector)),
      asOf: rows.map((r) => oldest(r.freshness.map((f) => f.asOf))),
      keys: rows.map((r) => r.entityKey),
    };
  }

  /** Inline rows checked against the model's features: a missing or non-numeric one is named. */
  private inlineRows(v: ModelVersion, rows: Record<string, unknown>[]): Float32Array[] {
    const names = inputFeatures(v);
    return rows.map((row, i) => {
      const missing = names.filter((n) => !(n in row));
      const unknown = Object.keys(row).filter((k) => !names.includes(k));
      const mistyped = names.filter(
        (n) =>
          n in row && row[n] !== null && (typeof row[n] !== 'number' || !Number.isFinite(row[n])),
      );
      if (missing.length || unknown.length || mistyped.length)
        throw new InvalidInputError(
          ServingErrorCode.INVALID_FEATURES,
          `row ${i}: ` +
            [
              missing.length ? `missing ${missing.join(', ')}` : '',
              unknown.length
                ? `not features of ${v.modelName}@${v.version}: ${unknown.join(', ')}`
                : '',
              mistyped.length ? `not numbers: ${mistyped.join(', ')}` : '',
            ]
              .filter(Boolean)
              .join('; '),
          { row: i, missing, unknown, mistyped },
        );
      return Float32Array.from(names, (n) => (row[n] === null ? NaN : (row[n] as number)));
    });
  }

  /** Counted for the fleet's judges (canary, A/B, autoscaler), and for this process's metrics. */
  private outcome(
    d: Deployment,
    v: ModelVersion,
    role: ServingRole,
    ok: boolean,
    latencyMs: number,
  ): void {
    if (role !== ServingRole.SHADOW)
      this.outcomes.record(d.id, v.id, ok, latencyMs, this.clock.now().getTime());
    this.observer?.({
      endpoint: d.endpoint,
      version: `${v.modelName}@${v.version}`,
      role,
      ok,
      latencyMs,
    });
  }

  private observer: ((o: ServingOutcome) => void) | null = null;

  /** Every scored request (and shadow copy), tagged with the version that ran: for metrics. */
  observe(observer: (o: ServingOutcome) => void): void {
    this.observer = observer;
  }

  private markServed(deploymentId: string, versionId: string): void {
    const k = `${deploymentId}:${versionId}`;
    if (this.served.has(k)) return;
    this.served.add(k);
    this.repo.markServed(deploymentId, versionId).catch(() => this.served.delete(k));
  }
}

/**
 * A feature vector as the model takes it: numbers and booleans as float32, anything else
 * (null, text) as NaN. A plain loop: `Float32Array.from` with a mapping function costs
 * about 0.1 µs an element, which a 500-feature model pays on every row.
 */
function modelRow(vector: readonly unknown[]): Float32Array {
  const row = new Float32Array(vector.length);
  for (let i = 0; i < vector.length; i++) {
    const x = vector[i];
    row[i] = typeof x === 'number' ? x : typeof x === 'boolean' ? Number(x) : NaN;
  }
  return row;
}

/** The earliest of the times given; null when there is none. */
function oldest(times: readonly (Date | null)[]): Date | null {
  let min: Date | null = null;
  for (const t of times) if (t && (min === null || t.getTime() < min.getTime())) min = t;
  return min;
}

function record(
  deploymentId: string,
  requestKey: string,
  p: Prediction,
  row: Float32Array,
  latencyUs: number,
  at: Date,
): PredictionRecord {
  return {
    id: p.id,
    deploymentId,
    versionId: p.version.id,
    role: p.role,
    requestKey,
    entityKey: p.entityKey,
    inputs: row,
    score: p.score,
    latencyUs,
    at,
  };
}
