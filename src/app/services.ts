import { ApiKeyService } from '../domain/auth/api-key.service';
import { type ArtifactStore } from '../domain/artifacts/artifact-store';
import { type EventBus } from '../domain/events/event-bus';
import { RunnerService } from '../domain/runners/runner.service';
import { type Clock } from '../domain/shared/clock';
import { type Database } from '../infra/db/data-source';
import { TypeOrmApiKeyRepository } from '../infra/db/repositories/api-key.repository';
import { TypeOrmRunnerRepository } from '../infra/db/repositories/runner.repository';

/** The domain services, wired to their adapters. Resolvers see only this. */
export interface Services {
  apiKeys: ApiKeyService;
  runners: RunnerService;
  artifacts: ArtifactStore;
  events: EventBus;
  clock: Clock;
}

export function createServices(deps: {
  db: Database;
  events: EventBus;
  artifacts: ArtifactStore;
  clock: Clock;
}): Services {
  const ds = deps.db.dataSource;
  return {
    apiKeys: new ApiKeyService(new TypeOrmApiKeyRepository(ds), deps.events, deps.clock),
    runners: new RunnerService(new TypeOrmRunnerRepository(ds), deps.events, deps.clock),
    artifacts: deps.artifacts,
    events: deps.events,
    clock: deps.clock,
  };
}
