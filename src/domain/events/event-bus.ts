/**
 * Port: publish/subscribe across every `api` process. Delivery is at-most-once and
 * fire-and-forget (a live view, not a log): anything that must not be lost is stored
 * first and the event only says where to look.
 */
export interface EventBus {
  publish<T>(topic: string, payload: T): Promise<void>;
  subscribe<T>(topic: string): EventSubscription<T>;
}

export interface EventSubscription<T> extends AsyncIterableIterator<T> {
  /** Stops delivery and frees the channel when it was the last listener. */
  close(): Promise<void>;
  /** Resolves once the subscription is active on the broker (events after this are seen). */
  ready: Promise<void>;
}

/** Topic names, one place, so publishers and subscribers cannot drift apart. */
export const Topics = {
  apiKeys: 'api-keys',
  runners: 'runners',
  runs: 'training-runs',
  models: 'model-events',
  deployments: 'deployment-events',
} as const;
