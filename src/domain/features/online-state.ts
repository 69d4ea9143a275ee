import { maxWindowSeconds, type FeatureViewSchema } from './feature-definition';
import { compareEvents, type FeatureEvent } from './point-in-time';
import { type OnlineState } from './feature-store.ports';

/**
 * Merges accepted events into an entity's online state. Idempotent by event id, so a
 * redelivered batch changes nothing, and a batch whose offline write succeeded but whose
 * online write was lost is repaired by redelivery. Keeps the newest event and every event
 * the widest window can still need.
 */
export function mergeOnlineState(
  schema: FeatureViewSchema,
  state: OnlineState | null,
  incoming: readonly FeatureEvent[],
): OnlineState {
  const byId = new Map<string, FeatureEvent>();
  for (const e of state?.events ?? []) byId.set(e.eventId, e);
  for (const e of incoming) if (!byId.has(e.eventId)) byId.set(e.eventId, e);
  const events = [...byId.values()].sort(compareEvents);
  if (events.length === 0) return { events };
  const newest = events[events.length - 1].eventTs;
  // A window read at t >= newest covers (t - w, t], so nothing older than newest - w can
  // count again; a late event (within the allowed lateness) merges itself in when it arrives.
  const keepFrom = newest - maxWindowSeconds(schema) * 1000;
  const kept = events.filter((e) => e.eventTs > keepFrom);
  // The newest event always stays: it carries the value of every non-aggregate feature.
  return { events: kept.length ? kept : [events[events.length - 1]] };
}

/** The newest event time of an entity: what lateness is measured against. */
export function watermark(state: OnlineState | null): number | undefined {
  const e = state?.events;
  return e && e.length ? e[e.length - 1].eventTs : undefined;
}
