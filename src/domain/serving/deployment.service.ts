import { type Principal } from '../auth/api-key';
import { ModelState, MODEL_NAME_RE, type ModelVersion } from '../registry/model';
import { type ModelRegistryService } from '../registry/model-registry.service';
import { type Clock } from '../shared/clock';
import { ConflictError, InvalidInputError } from '../shared/domain-error';
import { type Page, type PageRequest } from '../shared/pagination';
import {
  type AutoscalePolicy,
  autoscalePolicyProblem,
  DEFAULT_AUTOSCALE_POLICY,
} from './autoscaler';
import { type CanaryPolicy } from './canary';
import {
  DEFAULT_CANARY_POLICY,
  type Deployment,
  type DeploymentRepository,
  type ModelRunner,
  type PredictionLog,
  ServingErrorCode,
  ServingRole,
  type ShadowComparison,
} from './deployment';
import { type DeploymentEvents } from './deployment-events';
import { type OutcomeStore } from './outcomes';
import { ARM_STATES, type Route, type ServingRoutes, servingVersions } from './serving-routes';

const ENDPOINT_RE = /^[a-z][a-z0-9-]{0,62}$/;
/** Weights are relative; bounding them keeps their sum finite and their ratios meaningful. */
const MAX_ARM_WEIGHT = 1_000_000;

export interface VersionTraffic {
  versionId: string;
  n: number;
  errors: number;
  p99Ms: number | null;
}

/**
 * Endpoints: creating them over a model, their settings (A/B arms, autoscaling), what they
 * serve and whether it is ready, and, in every api process, running what the fleet decided:
 * each version loaded and warmed up on the replica count the autoscaler chose (`reconcile`),
 * with the queue its requests met reported for the next decision.
 */
export class DeploymentService {
  constructor(
    private readonly repo: DeploymentRepository,
    private readonly registry: ModelRegistryService,
    private readonly routes: ServingRoutes,
    private readonly runner: ModelRunner,
    private readonly log: PredictionLog,
    private readonly outcomes: OutcomeStore,
    private readonly events: DeploymentEvents,
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
    const r = await this.routes.route(endpoint, true);
    await Promise.all(
      servingVersions(r).map(async (v) => {
        await this.runner.load(v, r.deployment.warmupRequests);
        await this.runner.scale(v, replicasOf(r.deployment, v.id));
      }),
    );
  }

  /** Loads and warms every endpoint's versions (at start, so /readyz turns ready). */
  async prepareAll(): Promise<void> {
    for (const d of await this.repo.all()) await this.prepare(d.endpoint).catch(() => undefined);
  }

  /**
   * This process runs what the fleet decided: each served version on the replica count the
   * autoscaler chose, versions no endpoint serves any more given back; and the queue its
   * requests met since the last pass is reported for the autoscaler's next decision.
   */
  async reconcile(): Promise<void> {
    const serving = new Set<string>();
    for (const r of await this.reportPressure()) {
      for (const v of servingVersions(r)) {
        serving.add(v.id);
        const p = this.runner.pressure(v.id);
        if (p && p.replicas !== replicasOf(r.deployment, v.id))
          await this.runner.scale(v, replicasOf(r.deployment, v.id));
      }
    }
    for (const id of this.loaded) if (!serving.has(id)) await this.runner.release(id);
    this.loaded = serving;
  }

  /**
   * Adds the queue this process's requests met since the last report to the fleet's counts
   * (the autoscaler asks for it before it decides); returns the routes it read.
   */
  async reportPressure(): Promise<Route[]> {
    const now = this.clock.now().getTime();
    const routes: Route[] = [];
    for (const d of await this.repo.all()) {
      const r = await this.routes.route(d.endpoint, true);
      routes.push(r);
      for (const v of servingVersions(r)) {
        const p = this.runner.isReady(v.id) ? this.runner.pressure(v.id) : null;
        if (p?.arrivals) this.outcomes.recordPressure(d.id, v.id, p.queueDepth, p.arrivals, now);
      }
    }
    return routes;
  }

  private loaded = new Set<string>();

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
    const r = await this.routes.route(endpoint, true);
    const roles: [ServingRole, ModelVersion | null][] = [
      [ServingRole.PRODUCTION, r.production],
      [ServingRole.CANARY, r.canary],
      [ServingRole.SHADOW, r.shadow],
    ];
    const versions = roles.flatMap(([role, version]) => {
      if (!version) return [];
      const ready = this.runner.isReady(version.id);
      const replicas = ready ? replicasOf(r.deployment, version.id) : 0;
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

  /**
   * Starts (or, with no arms, ends) an A/B test: request keys are split over the arms by
   * weight, each key staying on its arm; arms must be PRODUCTION or CANARY versions of the
   * endpoint's model.
   */
  async setArms(endpoint: string, arms: { versionId: string; weight: number }[]): Promise<void> {
    const r = await this.routes.route(endpoint, true);
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
    this.routes.forget(endpoint);
    await this.prepare(endpoint);
  }

  /** Replaces an endpoint's autoscaling policy; the next pass applies it (bounds at once). */
  async setAutoscaling(endpoint: string, policy: Partial<AutoscalePolicy>): Promise<Deployment> {
    const d = (await this.routes.route(endpoint, true)).deployment;
    const next = { ...d.autoscalePolicy, ...policy };
    const problem = autoscalePolicyProblem(next);
    if (problem)
      throw new InvalidInputError(
        ServingErrorCode.INVALID_DEPLOYMENT,
        `autoscalePolicy: ${problem}`,
      );
    await this.repo.setAutoscalePolicy(d.id, next);
    this.routes.forget(endpoint);
    return (await this.routes.route(endpoint, true)).deployment;
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
    const d = (await this.routes.route(endpoint, false)).deployment;
    const since = new Date(this.clock.now().getTime() - minutes * 60_000);
    const rows = await this.log.compareShadow(d.id, since);
    const versions = await this.registry.versionsByIds(rows.map((r) => r.shadowVersionId));
    return rows.map((r) => ({
      ...r,
      shadow: versions.find((v) => v.id === r.shadowVersionId) ?? null,
    }));
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

  /**
   * Requests, errors and p99 per version of an endpoint over `windowMs`, as the whole fleet
   * served them (the figures the canary controller and the autoscaler judge).
   */
  async traffic(endpoint: string, windowMs: number): Promise<VersionTraffic[]> {
    if (!Number.isInteger(windowMs) || windowMs < 1_000 || windowMs > 86_400_000)
      throw new InvalidInputError(
        ServingErrorCode.INVALID_DEPLOYMENT,
        'the window must be 1 s to 24 h',
      );
    const r = await this.routes.route(endpoint, false);
    const now = this.clock.now().getTime();
    const out: VersionTraffic[] = [];
    for (const v of servingVersions(r)) {
      const s = await this.outcomes.stats(r.deployment.id, v.id, now, windowMs);
      if (s.n > 0) out.push({ versionId: v.id, n: s.n, errors: s.errors, p99Ms: s.p99Ms });
    }
    return out;
  }

  /** Events of one endpoint (readiness, canary steps, rollbacks, promotions, scaling). */
  deploymentEvents(endpoint: string, after: string | null = null) {
    return this.events.subscribe(endpoint, after);
  }
}

/** The replicas each process runs for the version: the fleet's decision, else the minimum. */
export function replicasOf(d: Deployment, versionId: string): number {
  return d.replicas[versionId] ?? d.autoscalePolicy.minReplicas;
}

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
