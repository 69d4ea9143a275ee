import { type EventBus, Topics } from '../events/event-bus';
import { ModelState, type ModelVersion } from '../registry/model';
import { type ModelRegistryService } from '../registry/model-registry.service';
import { NotFoundError } from '../shared/domain-error';
import { type Deployment, type DeploymentRepository, ServingErrorCode } from './deployment';

/** An endpoint's versions by registry state, as traffic is routed to them. */
export interface Route {
  at: number;
  deployment: Deployment;
  production: ModelVersion | null;
  canary: ModelVersion | null;
  shadow: ModelVersion | null;
  /** The A/B test's arms that are still serviceable (PRODUCTION or CANARY). */
  arms: { version: ModelVersion; weight: number; id: string }[];
}

export const ARM_STATES: ReadonlySet<ModelState> = new Set([
  ModelState.PRODUCTION,
  ModelState.CANARY,
]);

const ROUTE_TTL_MS = 1_000;

/**
 * Where each endpoint's traffic goes, read from the registry's states and the deployment row,
 * cached a second on the request path (fresh when asked) and forgotten whenever any process
 * moves a model version. One cache shared by prediction, deployments, the canary controller
 * and the autoscaler of a process.
 */
export class ServingRoutes {
  private readonly routes = new Map<string, Route>();

  constructor(
    private readonly repo: DeploymentRepository,
    private readonly registry: ModelRegistryService,
    private readonly events: EventBus,
  ) {}

  async route(endpoint: string, fresh: boolean): Promise<Route> {
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

  forget(endpoint: string): void {
    this.routes.delete(endpoint);
  }

  /**
   * Forgets cached routes whenever any process moves a model version, so a promotion or
   * rollback reaches traffic at once instead of after the cache's second.
   */
  async followModelEvents(): Promise<() => Promise<void>> {
    const sub = this.events.subscribe<unknown>(Topics.models);
    await sub.ready;
    void (async () => {
      for await (const _ of sub) this.routes.clear();
    })();
    return () => sub.close();
  }
}

/** Every version an endpoint's route runs: production, canary, shadow and A/B arms. */
export function servingVersions(r: Route): ModelVersion[] {
  return [
    ...new Set(
      [r.production, r.canary, r.shadow, ...r.arms.map((a) => a.version)].filter(
        (v): v is ModelVersion => v !== null,
      ),
    ),
  ];
}
