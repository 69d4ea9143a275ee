import { type Principal } from '../auth/api-key';
import { Role } from '../auth/role';
import { ModelState, type ModelVersion } from '../registry/model';
import { type ModelRegistryService } from '../registry/model-registry.service';
import { type Clock } from '../shared/clock';
import { DomainError } from '../shared/domain-error';
import { type UnitOfWork } from '../shared/unit-of-work';
import { failpoint } from '../shared/failpoints';
import { judgeCanary } from './canary';
import { type Deployment, type DeploymentRepository } from './deployment';
import { type DeploymentEvents } from './deployment-events';
import { type OutcomeStore } from './outcomes';
import { type ServingRoutes } from './serving-routes';

/** The canary controller acts as this principal in the registry's transition history. */
const SYSTEM: Principal = { keyId: 'system', name: 'canary controller', role: Role.ADMIN };

export interface CanaryReview {
  endpoint: string;
  action: string;
  reason: string;
}

/**
 * Judges every endpoint's canary on the outcomes of the whole fleet (the OutcomeStore sums
 * every api process's requests): rolls it back (registry state ROLLED_BACK) when it errs or
 * slows down beyond the policy, steps its share up when it has been healthy for a step, and
 * promotes it to PRODUCTION after the last step. One process runs it at a time (a lease);
 * each move is a compare-and-set (the share from the one judged, the version from CANARY),
 * so a second controller, or this one after a pause, never takes a step twice.
 */
export class CanaryController {
  constructor(
    private readonly repo: DeploymentRepository,
    private readonly registry: ModelRegistryService,
    private readonly routes: ServingRoutes,
    private readonly outcomes: OutcomeStore,
    private readonly events: DeploymentEvents,
    private readonly uow: UnitOfWork,
    private readonly clock: Clock,
  ) {}

  async review(): Promise<CanaryReview[]> {
    const out: CanaryReview[] = [];
    const now = this.clock.now();
    for (const d of await this.repo.all()) {
      const r = await this.routes.route(d.endpoint, true);
      if (!r.canary) continue;
      const p = d.canaryPolicy;
      const canary = await this.outcomes.stats(d.id, r.canary.id, now.getTime(), p.windowMs);
      // The baseline over the same span as the canary's outcomes: both saw the same load.
      const span = canary.firstAt === null ? p.windowMs : now.getTime() - canary.firstAt;
      const base = r.production
        ? await this.outcomes.stats(
            d.id,
            r.production.id,
            now.getTime(),
            Math.max(1_000, Math.min(p.windowMs, span)),
          )
        : null;
      // Each step waits `stepMs`: from the last step, or from the canary's arrival if later
      // (a canary that arrives weeks after the last one does not skip its first dwell).
      const since =
        now.getTime() -
        Math.max((d.canarySteppedAt ?? d.createdAt).getTime(), r.canary.stateChangedAt.getTime());
      const decision = judgeCanary(canary, base, p, d.canaryShare, since);
      if (decision.action !== 'HOLD') failpoint('canary:decided');
      const label = `${r.canary.modelName}@${r.canary.version}`;
      let taken = true;
      if (decision.action === 'ROLLBACK')
        taken = await this.settle(d, r.canary, ModelState.ROLLED_BACK, decision.reason, label);
      else if (decision.action === 'PROMOTE')
        taken = await this.settle(d, r.canary, ModelState.PRODUCTION, decision.reason, label);
      else if (decision.action === 'STEP')
        taken = await this.uow.run(async () => {
          if (!(await this.repo.setCanaryShare(d.id, d.canaryShare, decision.share, now)))
            return false;
          await this.events.publish(
            d.endpoint,
            'CANARY_STEP',
            r.canary!.id,
            decision.share,
            `${label}: ${decision.reason}`,
          );
          return true;
        });
      if (decision.action !== 'HOLD') this.routes.forget(d.endpoint);
      out.push({
        endpoint: d.endpoint,
        action: taken ? decision.action : 'HOLD',
        reason: taken ? decision.reason : 'another controller acted first',
      });
    }
    return out;
  }

  /**
   * Rolls the canary back or promotes it: the version moves from CANARY (the registry's own
   * compare-and-set), the share goes back to the first step, and the event is told, in the
   * move's transaction (the gates are judged before it opens). A canary that already left
   * CANARY was settled by someone else.
   */
  private async settle(
    d: Deployment,
    canary: ModelVersion,
    to: ModelState.ROLLED_BACK | ModelState.PRODUCTION,
    reason: string,
    label: string,
  ): Promise<boolean> {
    const [current] = await this.registry.versionsByIds([canary.id]);
    if (current?.state !== ModelState.CANARY) return false;
    try {
      await this.registry.transition(SYSTEM, canary.id, to, `canary: ${reason}`, async () => {
        await this.repo.setCanaryShare(
          d.id,
          d.canaryShare,
          d.canaryPolicy.steps[0],
          this.clock.now(),
        );
        await this.events.publish(
          d.endpoint,
          to === ModelState.PRODUCTION ? 'CANARY_PROMOTED' : 'CANARY_ROLLED_BACK',
          canary.id,
          to === ModelState.PRODUCTION ? 1 : null,
          `${label}: ${reason}`,
        );
      });
    } catch (e) {
      // Moved by another controller between the look and the move: recognised, not an error.
      if (e instanceof DomainError && e.reason === 'ILLEGAL_TRANSITION') return false;
      throw e;
    }
    return true;
  }
}
