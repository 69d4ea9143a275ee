import { type EventBus, Topics } from '../events/event-bus';
import { type Clock } from '../shared/clock';
import { type DeploymentEvent } from './deployment';

/** `deploymentEvents`: one topic per endpoint, for every part of serving that decides. */
export class DeploymentEvents {
  constructor(
    private readonly events: EventBus,
    private readonly clock: Clock,
  ) {}

  /** Recorded in the caller's transaction (the outbox). */
  async publish(
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

  subscribe(endpoint: string, after: string | null = null) {
    return this.events.subscribe<DeploymentEvent>(`${Topics.deployments}:${endpoint}`, { after });
  }
}
