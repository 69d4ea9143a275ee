import { maxWindowSeconds, type FeatureViewSchema } from './feature-definition';

/**
 * How the online state of a view version forgets what can never count again. The online
 * state holds, per entity, the newest known version of each event it still needs; an update
 * merges records into it and trims it in one atomic step (the store's script), judged
 * against `newest`, the entity's newest stored event time not among the update's own
 * events (so a redelivered update gets the same verdicts as its first delivery):
 *
 * - With aggregates, a window read at t >= newest covers (t - w, t]: events at or before
 *   newest - w (w: the widest window) can never count again. Without, only events at the
 *   newest event time are needed.
 * - A record of such an event is not stored (and removes its event's older version).
 * - Trims run each time the newest event time enters a new step of `trimStepMs` (an eighth of
 *   the widest window), holding at most 1/8 of a window more than needed instead of paying a
 *   trim per event; views without aggregates trim on every update.
 * - A record is merged only if it is newer (known later) than the version the state holds of
 *   its event: the online store serves each event's newest version.
 */
export interface RetentionPolicy {
  /** The widest window in ms; 0 when the view has no aggregate. */
  windowMs: number;
  /** 0: trim on every update. */
  trimStepMs: number;
}

/** Windows are trimmed each time the newest event time enters a new eighth of the widest. */
const TRIM_STEPS_PER_WINDOW = 8;

export function onlineRetention(schema: FeatureViewSchema): RetentionPolicy {
  const windowMs = maxWindowSeconds(schema) * 1000;
  return { windowMs, trimStepMs: windowMs / TRIM_STEPS_PER_WINDOW };
}
