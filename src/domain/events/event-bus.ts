/**
 * Port: publish/subscribe across every `api` process (docs/adr/0027). `publish` records the
 * event in the caller's transaction (it exists exactly when the change does); subscribers get
 * each event at least once, in one order shared by all processes, each tagged with a cursor
 * (`eventCursor`) from which a later subscription can resume (`after`).
 */
export interface EventBus {
  publish<T>(topic: string, payload: T): Promise<void>;
  subscribe<T>(topic: string, opts?: SubscribeOptions): EventSubscription<T>;
}

export interface SubscribeOptions {
  /** Resume after this cursor: events since are delivered first. */
  after?: string | null;
}

/** Where a delivered event sits in the order: a non-enumerable property of the event. */
export const EVENT_CURSOR: unique symbol = Symbol('aether.eventCursor');

export function eventCursor(event: unknown): string | null {
  return event && typeof event === 'object'
    ? ((event as { [EVENT_CURSOR]?: string })[EVENT_CURSOR] ?? null)
    : null;
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
