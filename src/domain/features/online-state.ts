import { maxWindowSeconds, type FeatureViewSchema } from './feature-definition';
import { compareEvents, type FeatureEvent } from './point-in-time';

/**
 * What the online state of an entity may forget once its newest event time is `newest`:
 * every event with eventTs below `before` (or at it, when `inclusive`). A window read at
 * t >= newest covers (t - w, t], so nothing at or before newest - w can count again; with no
 * aggregate only the newest event time is needed (its corrections included). A late event
 * (within the allowed lateness) simply joins the state when it arrives.
 */
export interface Retention {
  before: number;
  inclusive: boolean;
}

export function onlineRetention(schema: FeatureViewSchema, newest: number): Retention {
  const w = maxWindowSeconds(schema) * 1000;
  return w > 0 ? { before: newest - w, inclusive: true } : { before: newest, inclusive: false };
}

/** Windows are trimmed each time the newest event time enters a new eighth of the widest. */
const TRIM_STEPS_PER_WINDOW = 8;

/**
 * Whether an append that moves an entity's newest event time from `previous` to `newest`
 * should also trim. Views without aggregates trim on every append, so a read decodes one
 * event time; windowed views trim in steps, holding at most 1/8 of a window more than they
 * need, instead of paying a trim per event.
 */
export function shouldTrim(
  schema: FeatureViewSchema,
  previous: number | undefined,
  newest: number,
): boolean {
  const step = (maxWindowSeconds(schema) * 1000) / TRIM_STEPS_PER_WINDOW;
  return (
    step === 0 || previous === undefined || Math.floor(newest / step) > Math.floor(previous / step)
  );
}

/**
 * The online state as evaluation needs it: sorted with `compareEvents`, one event per id.
 * Appends are idempotent only up to the id: a redelivered record may be stored again with a
 * later ingestion time, and the first one is the one the offline store kept, so it wins.
 */
export function canonicalEvents(events: FeatureEvent[]): FeatureEvent[] {
  if (events.length < 2) return events;
  const byId = new Map<string, FeatureEvent>();
  for (const e of events) {
    const seen = byId.get(e.eventId);
    if (!seen || e.createdTs < seen.createdTs) byId.set(e.eventId, e);
  }
  return (byId.size === events.length ? events : [...byId.values()]).sort(compareEvents);
}
