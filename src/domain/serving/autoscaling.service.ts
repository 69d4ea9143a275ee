import { type Clock } from '../shared/clock';
import { type UnitOfWork } from '../shared/unit-of-work';
import { decideScale, FRESH_SCALE_MEMORY } from './autoscaler';
import { type DeploymentRepository } from './deployment';
import { type DeploymentEvents } from './deployment-events';
import { type OutcomeStore } from './outcomes';
import { type ServingRoutes, servingVersions } from './serving-routes';

/** Below this many requests in an interval, a p99 is one slow request, not a trend. */
const MIN_P99_SAMPLES = 20;

export interface ScalingDecision {
  endpoint: string;
  versionId: string;
  replicas: number;
  changed: boolean;
  reason: string;
}

/**
 * The autoscaler's pass, for the fleet: for every version an endpoint serves, what every api
 * process saw since the last pass (the queue its requests met, their p99: the OutcomeStore)
 * decides how many replicas each process runs, within the policy's bounds (`decideScale`:
 * hysteresis and cool-down). The decision and the autoscaler's memory are stored with
 * compare-and-set, so whichever process holds the lease next carries on from them; each
 * change is a SCALED deployment event, and every process applies it (DeploymentService
 * .reconcile).
 */
export class AutoscalingService {
  constructor(
    private readonly repo: DeploymentRepository,
    private readonly routes: ServingRoutes,
    private readonly outcomes: OutcomeStore,
    private readonly events: DeploymentEvents,
    private readonly uow: UnitOfWork,
    private readonly clock: Clock,
    /** Brings this process's own latest figures in first (the others report every second). */
    private readonly reportLocal: () => Promise<unknown>,
  ) {}

  async review(): Promise<ScalingDecision[]> {
    await this.reportLocal();
    const out: ScalingDecision[] = [];
    const now = this.clock.now().getTime();
    for (const d of await this.repo.all()) {
      const r = await this.routes.route(d.endpoint, true);
      for (const v of servingVersions(r)) {
        const state = (await this.repo.scaling(d.id, v.id)) ?? {
          replicas: d.autoscalePolicy.minReplicas,
          memory: FRESH_SCALE_MEMORY,
          reviewedAt: null,
        };
        // The store counts per whole second, and the second now falls in has only begun: a
        // window of at least two seconds always holds the last full one, whatever the phase
        // of `now` (with one, a pass just after a second's start judged a few ms of traffic).
        const since = Math.max(2_000, now - (state.reviewedAt ?? now));
        const seen = await this.outcomes.stats(d.id, v.id, now, since);
        const decision = decideScale(
          d.autoscalePolicy,
          {
            replicas: state.replicas,
            queueDepth: seen.queueDepth ?? 0,
            p99Ms: seen.n >= MIN_P99_SAMPLES ? seen.p99Ms : null,
            requests: seen.n,
          },
          state.memory,
          now,
        );
        const changed = decision.replicas !== state.replicas;
        const saved = await this.uow.run(async () => {
          const ok = await this.repo.saveScaling(
            d.id,
            v.id,
            { replicas: decision.replicas, memory: decision.memory, reviewedAt: now },
            state.reviewedAt,
          );
          if (ok && changed)
            await this.events.publish(
              d.endpoint,
              'SCALED',
              v.id,
              null,
              `${v.modelName}@${v.version}: ${decision.reason}`,
              decision.replicas,
            );
          return ok;
        });
        if (saved && changed) this.routes.forget(d.endpoint);
        out.push({
          endpoint: d.endpoint,
          versionId: v.id,
          replicas: saved ? decision.replicas : state.replicas,
          changed: saved && changed,
          reason: saved ? decision.reason : 'another autoscaler pass decided first',
        });
      }
    }
    return out;
  }
}
