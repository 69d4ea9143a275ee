import { type FeatureEvent } from '../../src/domain/features/point-in-time';

/** An event of one value, known when it happened. */
export const event = (id: string, eventTs: number, v: number): FeatureEvent => ({
  eventId: id,
  eventTs,
  createdTs: eventTs,
  values: [v],
});

/** The events' ids, sorted. */
export const ids = (events: FeatureEvent[]) => events.map((e) => e.eventId).sort();

/** Retention that never trims. */
export const noTrim = { windowMs: 1e12, trimStepMs: 1e12 };
