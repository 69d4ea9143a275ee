import DataLoader from 'dataloader';
import { type ApiKey } from '../domain/auth/api-key';
import { type Runner } from '../domain/runners/runner';
import { type Services } from '../app/services';

/**
 * DataLoaders for relation fields, built fresh for every request (and every subscription
 * event) so nothing cached leaks between callers. N parents asking for their children
 * cost one query.
 */
export interface Loaders {
  apiKey: DataLoader<string, ApiKey | null>;
  runner: DataLoader<string, Runner | null>;
}

/** `cache: false` for subscriptions: a long-lived stream must not serve stale relations. */
export function createLoaders(services: Services, opts: { cache: boolean }): Loaders {
  return {
    apiKey: new DataLoader((ids) => byId(ids, services.apiKeys.byIds(ids)), opts),
    runner: new DataLoader((ids) => byId(ids, services.runners.byIds(ids)), opts),
  };
}

async function byId<T extends { id: string }>(
  ids: readonly string[],
  rows: Promise<T[]>,
): Promise<(T | null)[]> {
  const map = new Map((await rows).map((r) => [r.id, r]));
  return ids.map((id) => map.get(id) ?? null);
}
