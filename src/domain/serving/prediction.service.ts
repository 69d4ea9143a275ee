import { type Principal } from '../auth/api-key';
import { Role } from '../auth/role';
import { type EventBus, Topics } from '../events/event-bus';
import { type FeatureRegistryService } from '../features/feature-registry.service';
import { type OnlineFeatureService } from '../features/online-features.service';
import { inputFeatures, ModelState, MODEL_NAME_RE, type ModelVersion } from '../registry/model';
import { type ModelRegistryService } from '../registry/model-registry.service';
import { type Clock } from '../shared/clock';
import { ConflictError, InvalidInputError, NotFoundError } from '../shared/domain-error';
import { type Page, type PageRequest } from '../shared/pagination';
import {
  DEFAULT_CANARY_POLICY,
  type Deployment,
  type DeploymentEvent,
  type DeploymentRepository,
  type ModelRunner,
  type PredictionLog,
  type PredictionRecord,
  ServingErrorCode,
  type ShadowComparison,
  ServingRole,
} from './deployment';
import {
  type AutoscalePolicy,
  autoscalePolicyProblem,
  decideScale,
  DEFAULT_AUTOSCALE_POLICY,
  FRESH_SCALE_MEMORY,
  type ScaleMemory,
} from './autoscaler';
import { type CanaryPolicy, judgeCanary, OutcomeWindow } from './canary';
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
  /** Event time of the oldest feature value used (null: inline or none). */
  asOf: Date | null;
}

const ENDPOINT_RE = /^[a-z][a-z0-9-]{0,62}$/;
const MAX_ROWS = 1_000;
/** Weights are relative; bounding them keeps their sum finite and their ratios meaningful. */
const MAX_ARM_WEIGHT = 1_000_000;
const ROUTE_TTL_MS = 1_000;

interface Route {
  at: number;
  deployment: Deployment;
  production: ModelVersion | null;
  canary: ModelVersion | null;
  shadow: ModelVersion | null;
  /** The A/B test's arms that are still serviceable (PRODUCTION or CANARY). */
  arms: { version: ModelVersion; weight: number; id: string }[];
}

/**
 * Predictions: the endpoint's versions come from the registry's states (PRODUCTION serves,
 * CANARY takes its share of request keys by consistent hashing, SHADOW scores a copy off the
 * request path and is never returned); features come from the online store by the model's
 * own feature refs, the code path training sets were built with; every prediction is logged
 * with the version that produced it.
 */
export class PredictionService {
  private readonly routes = new Map<string, Route>();
  private readonly served = new Set<string>();
  /** Outcomes per (deployment, version) in this process: what the canary is judged on. */
  private readonly outcomes = new Map<string, OutcomeWindow>();
  /** Replicas per (deployment, version) in this process, and the autoscaler's memory. */
  private readonly scaled = new Map<string, ScalingState>();

  constructor(
    private readonly repo: DeploymentRepository,
    private readonly registry: ModelRegistryService,
    private readonly features: FeatureRegistryService,
    private readonly online: OnlineFeatureService,
    private readonly runner: ModelRunner,
    private readonly log: PredictionLog,
    private readonly events: EventBus,
    private readonly clock: Clock,
  ) {}

  async create(
    _actor: Principal,
    input: {
      endpoint: string;
      model: string;
      canaryShare?: number | null;
      maxBatch?: number | null;
      maxWaitUs?: number | null;
      warmupRequests?: number | null;
      canaryPolicy?: Partial<CanaryPolicy> | null;
      autoscalePolicy?: Partial<AutoscalePolicy> | null;
    },
  ): Promise<Deployment> {
    const bad = (m: string) => new InvalidInputError(ServingErrorCode.INVALID_DEPLOYMENT, m);
    if (!ENDPOINT_RE.test(input.endpoint))
      throw bad('endpoint must be a lower-case name like flight-delay');
    if (!MODEL_NAME_RE.test(input.model)) throw bad('model must be a model name');
    const canaryPolicy = { ...DEFAULT_CANARY_POLICY, ...(input.canaryPolicy ?? {}) };
    const problem = policyProblem(canaryPolicy);
    if (problem) throw bad(`canaryPolicy: ${problem}`);
    const autoscalePolicy = { ...DEFAULT_AUTOSCALE_POLICY, ...(input.autoscalePolicy ?? {}) };
    const scaling = autoscalePolicyProblem(autoscalePolicy);
    if (scaling) throw bad(`autoscalePolicy: ${scaling}`);
    const canaryShare = input.canaryShare ?? canaryPolicy.steps[0];
    if (!(canaryShare >= 0 && canaryShare <= 1)) throw bad('canaryShare must be within [0, 1]');
    const maxBatch = input.maxBatch ?? 32;
    if (!Number.isInteger(maxBatch) || maxBatch < 1 || maxBatch > 4_096)
      throw bad('maxBatch must be 1 to 4096');
    const maxWaitUs = input.maxWaitUs ?? 2_000;
    if (!Number.isInteger(maxWaitUs) || maxWaitUs < 0 || maxWaitUs > 1_000_000)
      throw bad('maxWaitUs must be 0 to 1000000');
    const warmupRequests = input.warmupRequests ?? 10;
    if (!Number.isInteger(warmupRequests) || warmupRequests < 0 || warmupRequests > 10_000)
      throw bad('warmupRequests must be 0 to 10000');
    const model = await this.registry.model(input.model);
    const existing = await this.repo.findByEndpoint(input.endpoint);
    if (existing)
      throw new ConflictError(
        ServingErrorCode.INVALID_DEPLOYMENT,
        `Endpoint ${input.endpoint} exists`,
      );
    // The stored files are checked now, not trusted from a copy another endpoint holds in
    // memory: an endpoint is never created over a model that cannot load again.
    const served = [ModelState.PRODUCTION, ModelState.CANARY, ModelState.SHADOW];
    for (const v of await this.registry.versionsOf([model.id]))
      if (served.includes(v.state)) await this.registry.verifyModelFile(v);
    const d = await this.repo.create({
      endpoint: input.endpoint,
      modelId: model.id,
      canaryShare,
      maxBatch,
      maxWaitUs,
      warmupRequests,
      canaryPolicy,
      autoscalePolicy,
      // The canary controller's step timer starts here, on the same clock it reads.
      createdAt: this.clock.now(),
    });
    await this.prepare(d.endpoint);
    return d;
  }

  /**
   * Loads and warms up every version the endpoint serves now, on the replicas the autoscaler
   * last chose (at least the policy's minimum); resolves when all are ready.
   */
  async prepare(endpoint: string): Promise<void> {
    const r = await this.route(endpoint, true);
    await Promise.all(
      servingVersions(r).map(async (v) => {
        await this.runner.load(v, r.deployment.warmupRequests);
        await this.runner.scale(v, this.scaling(r.deployment, v.id).replicas);
      }),
    );
  }

  async status(endpoint: string): Promise<{
    deployment: Deployment;
    versions: {
      role: ServingRole;
      version: ModelVersion;
      ready: boolean;
      replicas: number;
      error: string | null;
    }[];
    ready: boolean;
  }> {
    const r = await this.route(endpoint, true);
    const roles: [ServingRole, ModelVersion | null][] = [
      [ServingRole.PRODUCTION, r.production],
      [ServingRole.CANARY, r.canary],
      [ServingRole.SHADOW, r.shadow],
    ];
    const versions = roles.flatMap(([role, version]) => {
      if (!version) return [];
      const ready = this.runner.isReady(version.id);
      const replicas = ready ? this.scaling(r.deployment, version.id).replicas : 0;
      return [{ role, version, ready, replicas, error: this.runner.loadError(version.id) }];
    });
    const answering = versions.filter((v) => v.role !== ServingRole.SHADOW);
    return {
      deployment: r.deployment,
      versions,
      ready: answering.length > 0 && answering.every((v) => v.ready),
    };
  }

  /** One deployment by its id (null when there is none). */
  async deployment(id: string): Promise<Deployment | null> {
    return (await this.repo.findByIds([id]))[0] ?? null;
  }

  list(page: PageRequest): Promise<Page<Deployment>> {
    return this.repo.list(page);
  }

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
    const r = await this.route(endpoint, false);
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
      ? { rows: this.inlineRows(version, inline), asOf: null, keys: inline.map(() => null) }
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
      id: globalThis.crypto.randomUUID(),
      entityKey: input.keys[i],
      score,
      version,
      role,
      asOf: input.asOf,
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
                id: globalThis.crypto.randomUUID(),
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
  ): Promise<{ rows: Float32Array[]; asOf: Date | null; keys: (string | null)[] }> {
    const refs = inputFeatures(v);
    const resolved = await this.features.resolveRefs(refs);
    const rows = await this.online.readResolved(entityKeys, resolved);
    let asOf: number | null = null;
    for (const r of rows)
      for (const f of r.freshness)
        if (f.asOf && (asOf === null || f.asOf.getTime() < asOf)) asOf = f.asOf.getTime();
    return {
      rows: rows.map((r) =>
        Float32Array.from(r.vector, (x) =>
          typeof x === 'number' ? x : typeof x === 'boolean' ? Number(x) : NaN,
        ),
      ),
      asOf: asOf === null ? null : new Date(asOf),
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

  /**
   * Judges every endpoint's canary on this process's outcomes: rolls it back (registry state
   * ROLLED_BACK) when it errs or slows down beyond the policy, steps its share up when it has
   * been healthy for a step, and promotes it to PRODUCTION after the last step.
   */
  async reviewCanaries(): Promise<{ endpoint: string; action: string; reason: string }[]> {
    const out: { endpoint: string; action: string; reason: string }[] = [];
    const now = this.clock.now();
    for (const d of await this.repo.all()) {
      const r = await this.route(d.endpoint, true);
      if (!r.canary) continue;
      const p = d.canaryPolicy;
      const canary = this.window(d.id, r.canary.id).stats(now.getTime(), p.windowMs);
      // The baseline over the same span as the canary's outcomes: both saw the same load.
      const span = canary.firstAt === null ? p.windowMs : now.getTime() - canary.firstAt;
      const base = r.production
        ? this.window(d.id, r.production.id).stats(now.getTime(), Math.min(p.windowMs, span))
        : null;
      // Each step waits `stepMs`: from the last step, or from the canary's arrival if later
      // (a canary that arrives weeks after the last one does not skip its first dwell).
      const since =
        now.getTime() -
        Math.max((d.canarySteppedAt ?? d.createdAt).getTime(), r.canary.stateChangedAt.getTime());
      const decision = judgeCanary(canary, base, p, d.canaryShare, since);
      const label = `${r.canary.modelName}@${r.canary.version}`;
      if (decision.action === 'ROLLBACK') {
        await this.registry.transition(
          SYSTEM,
          r.canary.id,
          ModelState.ROLLED_BACK,
          `canary: ${decision.reason}`,
        );
        await this.repo.setCanaryShare(d.id, p.steps[0], now);
        await this.publish(
          d.endpoint,
          'CANARY_ROLLED_BACK',
          r.canary.id,
          null,
          `${label}: ${decision.reason}`,
        );
      } else if (decision.action === 'STEP') {
        await this.repo.setCanaryShare(d.id, decision.share, now);
        await this.publish(
          d.endpoint,
          'CANARY_STEP',
          r.canary.id,
          decision.share,
          `${label}: ${decision.reason}`,
        );
      } else if (decision.action === 'PROMOTE') {
        await this.registry.transition(
          SYSTEM,
          r.canary.id,
          ModelState.PRODUCTION,
          `canary: ${decision.reason}`,
        );
        await this.repo.setCanaryShare(d.id, p.steps[0], now);
        await this.publish(
          d.endpoint,
          'CANARY_PROMOTED',
          r.canary.id,
          1,
          `${label}: ${decision.reason}`,
        );
      }
      if (decision.action !== 'HOLD') this.routes.delete(d.endpoint);
      out.push({ endpoint: d.endpoint, action: decision.action, reason: decision.reason });
    }
    return out;
  }

  /**
   * The autoscaler's pass: for every version an endpoint serves, what it saw since the last
   * pass (queue depth per replica, p99) decides its replica count within the policy's bounds
   * (`decideScale`: hysteresis and cool-down). Each change is applied (new replicas warm up
   * before they take traffic) and published as a SCALED deployment event.
   */
  async reviewScaling(): Promise<
    { endpoint: string; versionId: string; replicas: number; changed: boolean; reason: string }[]
  > {
    const out: {
      endpoint: string;
      versionId: string;
      replicas: number;
      changed: boolean;
      reason: string;
    }[] = [];
    const now = this.clock.now().getTime();
    const serving = new Set<string>();
    for (const d of await this.repo.all()) {
      const r = await this.route(d.endpoint, true);
      for (const v of servingVersions(r)) {
        serving.add(`${d.id}:${v.id}`);
        const pressure = this.runner.pressure(v.id);
        if (!pressure) continue;
        const state = this.scaling(d, v.id);
        const since = Math.max(1, now - (state.reviewedAt ?? now - 1));
        const seen = this.window(d.id, v.id).stats(now, since);
        const decision = decideScale(
          d.autoscalePolicy,
          {
            replicas: state.replicas,
            queueDepth: pressure.queueDepth,
            p99Ms: seen.n >= MIN_P99_SAMPLES ? seen.p99Ms : null,
            requests: seen.n,
          },
          state.memory,
          now,
        );
        const changed = decision.replicas !== state.replicas;
        state.memory = decision.memory;
        state.reviewedAt = now;
        state.replicas = decision.replicas;
        if (changed) {
          await this.runner.scale(v, decision.replicas);
          await this.publish(
            d.endpoint,
            'SCALED',
            v.id,
            null,
            `${v.modelName}@${v.version}: ${decision.reason}`,
            decision.replicas,
          );
        }
        out.push({
          endpoint: d.endpoint,
          versionId: v.id,
          replicas: decision.replicas,
          changed,
          reason: decision.reason,
        });
      }
    }
    // Versions no endpoint serves any more (rolled back, archived) give their threads back.
    for (const k of [...this.scaled.keys()].filter((k) => !serving.has(k))) {
      this.scaled.delete(k);
      const versionId = k.slice(k.indexOf(':') + 1);
      if (![...this.scaled.keys()].some((o) => o.endsWith(`:${versionId}`)))
        await this.runner.release(versionId);
    }
    return out;
  }

  /** Replaces an endpoint's autoscaling policy; the next pass applies it (bounds at once). */
  async setAutoscaling(endpoint: string, policy: Partial<AutoscalePolicy>): Promise<Deployment> {
    const d = (await this.route(endpoint, true)).deployment;
    const next = { ...d.autoscalePolicy, ...policy };
    const problem = autoscalePolicyProblem(next);
    if (problem)
      throw new InvalidInputError(
        ServingErrorCode.INVALID_DEPLOYMENT,
        `autoscalePolicy: ${problem}`,
      );
    await this.repo.setAutoscalePolicy(d.id, next);
    this.routes.delete(endpoint);
    return (await this.route(endpoint, true)).deployment;
  }

  /** The autoscaler's state for one version of an endpoint in this process. */
  private scaling(d: Deployment, versionId: string): ScalingState {
    const k = `${d.id}:${versionId}`;
    let s = this.scaled.get(k);
    if (!s)
      this.scaled.set(
        k,
        (s = {
          replicas: d.autoscalePolicy.minReplicas,
          memory: FRESH_SCALE_MEMORY,
          reviewedAt: null,
        }),
      );
    return s;
  }

  /**
   * Forgets cached routes whenever any process moves a model version (Redis pub/sub), so
   * a promotion or rollback reaches traffic at once instead of after the cache's second.
   */
  async followModelEvents(): Promise<() => Promise<void>> {
    const sub = this.events.subscribe<unknown>(Topics.models);
    await sub.ready;
    void (async () => {
      for await (const _ of sub) this.routes.clear();
    })();
    return () => sub.close();
  }

  /**
   * Starts (or, with no arms, ends) an A/B test: request keys are split over the arms by
   * weight, each key staying on its arm; arms must be PRODUCTION or CANARY versions of the
   * endpoint's model.
   */
  async setArms(endpoint: string, arms: { versionId: string; weight: number }[]): Promise<void> {
    const r = await this.route(endpoint, true);
    const bad = (m: string) => new InvalidInputError(ServingErrorCode.INVALID_DEPLOYMENT, m);
    if (arms.length > 10) throw bad('at most 10 arms');
    if (new Set(arms.map((a) => a.versionId)).size !== arms.length)
      throw bad('an arm is given twice');
    const versions = await this.registry.versionsByIds(arms.map((a) => a.versionId));
    for (const a of arms) {
      if (!(a.weight > 0 && a.weight <= MAX_ARM_WEIGHT))
        throw bad(`arm weights must be within (0, ${MAX_ARM_WEIGHT}]`);
      const v = versions.find((x) => x.id === a.versionId);
      if (!v || v.modelId !== r.deployment.modelId)
        throw bad(`${a.versionId} is not a version of the endpoint's model`);
      if (!ARM_STATES.has(v.state))
        throw new ConflictError(
          ServingErrorCode.INVALID_DEPLOYMENT,
          `${v.modelName}@${v.version} is ${v.state}: arms must be PRODUCTION or CANARY`,
        );
    }
    await this.repo.setArms(r.deployment.id, arms);
    this.routes.delete(endpoint);
    await this.prepare(endpoint);
  }

  /** How the shadow's scores compare with the answers given, over the last `minutes`. */
  async shadowComparison(
    endpoint: string,
    minutes: number,
  ): Promise<(ShadowComparison & { shadow: ModelVersion | null })[]> {
    if (!Number.isInteger(minutes) || minutes < 1 || minutes > 43_200)
      throw new InvalidInputError(
        ServingErrorCode.INVALID_DEPLOYMENT,
        'minutes must be 1 to 43200',
      );
    const d = (await this.route(endpoint, false)).deployment;
    const since = new Date(this.clock.now().getTime() - minutes * 60_000);
    const rows = await this.log.compareShadow(d.id, since);
    const versions = await this.registry.versionsByIds(rows.map((r) => r.shadowVersionId));
    return rows.map((r) => ({
      ...r,
      shadow: versions.find((v) => v.id === r.shadowVersionId) ?? null,
    }));
  }

  /** Loads and warms every endpoint's versions (at start, so /readyz turns ready). */
  async prepareAll(): Promise<void> {
    for (const d of await this.repo.all()) await this.prepare(d.endpoint).catch(() => undefined);
  }

  /**
   * For /readyz: resolves when every endpoint's answering versions are ready or have failed
   * to load. A failed one fails its own endpoint (see `failedVersions`), not the process.
   */
  async assertReady(): Promise<void> {
    const waiting: string[] = [];
    for (const d of await this.repo.all()) {
      const s = await this.status(d.endpoint);
      if (s.versions.some((v) => v.role !== ServingRole.SHADOW && !v.ready && v.error === null))
        waiting.push(d.endpoint);
    }
    if (waiting.length) throw new Error(`endpoints not warmed up yet: ${waiting.join(', ')}`);
  }

  /** Versions that failed to load, per endpoint: the detail /readyz shows. */
  async failedVersions(): Promise<{ endpoint: string; version: string; error: string }[]> {
    const out: { endpoint: string; version: string; error: string }[] = [];
    for (const d of await this.repo.all()) {
      for (const v of (await this.status(d.endpoint)).versions)
        if (v.error !== null)
          out.push({
            endpoint: d.endpoint,
            version: `${v.version.modelName}@${v.version.version}`,
            error: v.error,
          });
    }
    return out;
  }

  /** Requests, errors and p99 per version of an endpoint over `windowMs`, in this process. */
  async outcomesOf(
    endpoint: string,
    windowMs: number,
  ): Promise<{ versionId: string; n: number; errors: number; p99Ms: number | null }[]> {
    if (!Number.isInteger(windowMs) || windowMs < 1_000 || windowMs > 86_400_000)
      throw new InvalidInputError(
        ServingErrorCode.INVALID_DEPLOYMENT,
        'the window must be 1 s to 24 h',
      );
    const d = (await this.route(endpoint, false)).deployment;
    const now = this.clock.now().getTime();
    return [...this.outcomes.entries()]
      .filter(([k]) => k.startsWith(`${d.id}:`))
      .map(([k, w]) => ({ versionId: k.slice(d.id.length + 1), ...w.stats(now, windowMs) }));
  }

  /** Events of one endpoint (readiness, canary steps, rollbacks, promotions). */
  deploymentEvents(endpoint: string, after: string | null = null) {
    return this.events.subscribe<DeploymentEvent>(`${Topics.deployments}:${endpoint}`, { after });
  }

  private async publish(
    endpoint: string,
    kind: DeploymentEvent['kind'],
    versionId: string | null,
    share: number | null,
    detail: string,
    replicas: number | null = null,
  ): Promise<void> {
    const e: DeploymentEvent = {
      endpoint,
      kind,
      versionId,
      share,
      replicas,
      detail,
      at: this.clock.now().toISOString(),
    };
    await this.events.publish(`${Topics.deployments}:${endpoint}`, e);
  }

  private window(deploymentId: string, versionId: string): OutcomeWindow {
    const k = `${deploymentId}:${versionId}`;
    let w = this.outcomes.get(k);
    if (!w) this.outcomes.set(k, (w = new OutcomeWindow()));
    return w;
  }

  private outcome(
    d: Deployment,
    v: ModelVersion,
    role: ServingRole,
    ok: boolean,
    latencyMs: number,
  ): void {
    if (role !== ServingRole.SHADOW)
      this.window(d.id, v.id).record(ok, latencyMs, this.clock.now().getTime());
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

  /** The endpoint's versions by registry state, cached for a second (or fresh when asked). */
  private async route(endpoint: string, fresh: boolean): Promise<Route> {
    const hit = this.routes.get(endpoint);
    const now = Date.now();
    if (hit && !fresh && now - hit.at < ROUTE_TTL_MS) return hit;
    const deployment = await this.repo.findByEndpoint(endpoint);
    if (!deployment)
      throw new NotFoundError(ServingErrorCode.DEPLOYMENT_NOT_FOUND, `No endpoint ${endpoint}`);
    const versions = await this.registry.versionsOf([deployment.modelId]);
    const newest = (s: ModelState) =>
      versions.filter((v) => v.state === s).sort((a, b) => b.version - a.version)[0] ?? null;
    const r: Route = {
      at: now,
      deployment,
      production: newest(ModelState.PRODUCTION),
      canary: newest(ModelState.CANARY),
      shadow: newest(ModelState.SHADOW),
      arms: deployment.abArms.flatMap((a) => {
        const v = versions.find((x) => x.id === a.versionId);
        return v && ARM_STATES.has(v.state) ? [{ version: v, weight: a.weight, id: v.id }] : [];
      }),
    };
    this.routes.set(endpoint, r);
    return r;
  }
}

interface ScalingState {
  replicas: number;
  memory: ScaleMemory;
  reviewedAt: number | null;
}

/** Below this many requests in an interval, a p99 is one slow request, not a trend. */
const MIN_P99_SAMPLES = 20;

/** Every version an endpoint's route runs: production, canary, shadow and A/B arms. */
function servingVersions(r: Route): ModelVersion[] {
  return [
    ...new Set(
      [r.production, r.canary, r.shadow, ...r.arms.map((a) => a.version)].filter(
        (v): v is ModelVersion => v !== null,
      ),
    ),
  ];
}

const ARM_STATES: ReadonlySet<ModelState> = new Set([ModelState.PRODUCTION, ModelState.CANARY]);

/** The canary controller acts as this principal in the registry's transition history. */
const SYSTEM: Principal = { keyId: 'system', name: 'canary controller', role: Role.ADMIN };

function policyProblem(p: CanaryPolicy): string | null {
  if (
    !p.steps.length ||
    p.steps.some((s, i) => !(s > 0 && s <= 1) || (i > 0 && s <= p.steps[i - 1]))
  )
    return 'steps must rise within (0, 1]';
  if (p.steps[p.steps.length - 1] !== 1) return 'the last step must be 1';
  for (const k of ['stepMs', 'windowMs', 'minSamples'] as const)
    if (!Number.isInteger(p[k]) || p[k] < 0) return `${k} must be a non-negative integer`;
  if (!(p.maxErrorRateDelta >= 0) || !(p.maxP99Ratio >= 1))
    return 'thresholds: maxErrorRateDelta >= 0, maxP99Ratio >= 1';
  return null;
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
    inputs: Array.from(row, (x) => (Number.isNaN(x) ? null : x)),
    score: p.score,
    latencyUs,
    at,
  };
}
