import {
  AggregationFn,
  type FeatureSpec,
  type FeatureValue,
  type FeatureViewSchema,
} from './feature-definition';
import { applyTransform } from './transforms';

/** One accepted record of a view: raw source fields, when it happened, when we learned it. */
export interface FeatureEvent {
  eventId: string;
  /** Event time, epoch ms. */
  eventTs: number;
  /** Ingestion time, epoch ms. */
  createdTs: number;
  fields: Record<string, FeatureValue>;
}

export interface EvaluatedView {
  values: Record<string, FeatureValue>;
  /** Event time of the newest visible event (epoch ms), or null when none is visible. */
  asOf: number | null;
  /** True when the newest visible event is older than the view's TTL at t. */
  stale: boolean;
}

/** Sort order for event lists: by event time, then ingestion time (latest wins ties). */
export function compareEvents(a: FeatureEvent, b: FeatureEvent): number {
  return (
    a.eventTs - b.eventTs ||
    a.createdTs - b.createdTs ||
    (a.eventId < b.eventId ? -1 : a.eventId > b.eventId ? 1 : 0)
  );
}

/**
 * The value of every feature of a view for one entity as known at time `t` (epoch ms).
 * `events` must be sorted with `compareEvents`. Only events with eventTs <= t and
 * createdTs <= t are visible, so neither future events nor late backfills leak in.
 *
 * Offline (point-in-time joins) and online (reads of the streaming state) both call this
 * with the same semantics; the online state simply holds fewer events.
 *
 * `nullWhenStale`: offline rows get null beyond the TTL; online reads keep the values and
 * report `stale` so a caller can decide, instead of silently serving old data.
 */
export function evaluateView(
  schema: FeatureViewSchema,
  events: readonly FeatureEvent[],
  t: number,
  opts: { nullWhenStale: boolean },
): EvaluatedView {
  const end = upperBound(events, t);
  const latest = latestVisible(events, end, t);
  const values: Record<string, FeatureValue> = {};
  if (!latest) {
    for (const f of schema.features) values[f.name] = emptyValue(f);
    return { values, asOf: null, stale: false };
  }
  const stale = t - latest.eventTs > schema.ttlSeconds * 1000;
  for (const f of schema.features) {
    if (stale && opts.nullWhenStale) values[f.name] = null;
    else
      values[f.name] = f.aggregation
        ? aggregate(f, events, end, t)
        : applyTransform(f.transform, latest.fields[f.source] ?? null);
  }
  return { values, asOf: latest.eventTs, stale };
}

/** Index just past the last event with eventTs <= t. */
function upperBound(events: readonly FeatureEvent[], t: number): number {
  let lo = 0;
  let hi = events.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (events[mid].eventTs <= t) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/** Newest event at or before t that was already known at t (createdTs <= t). */
function latestVisible(
  events: readonly FeatureEvent[],
  end: number,
  t: number,
): FeatureEvent | null {
  for (let i = end - 1; i >= 0; i--) if (events[i].createdTs <= t) return events[i];
  return null;
}

function emptyValue(f: FeatureSpec): FeatureValue {
  return f.aggregation?.fn === AggregationFn.COUNT ? 0 : null;
}

function aggregate(
  f: FeatureSpec,
  events: readonly FeatureEvent[],
  end: number,
  t: number,
): FeatureValue {
  const agg = f.aggregation as NonNullable<FeatureSpec['aggregation']>;
  const from = t - agg.windowSeconds * 1000; // exclusive
  let count = 0;
  let sum = 0;
  let min = Infinity;
  let max = -Infinity;
  let last: FeatureValue = null;
  for (let i = end - 1; i >= 0 && events[i].eventTs > from; i--) {
    const e = events[i];
    if (e.createdTs > t) continue;
    const v = applyTransform(f.transform, e.fields[f.source] ?? null);
    if (v === null) continue;
    if (last === null) last = v;
    count++;
    if (typeof v === 'number') {
      sum += v;
      if (v < min) min = v;
      if (v > max) max = v;
    }
  }
  switch (agg.fn) {
    case AggregationFn.COUNT:
      return count;
    case AggregationFn.SUM:
      return count ? sum : null;
    case AggregationFn.MEAN:
      return count ? sum / count : null;
    case AggregationFn.MIN:
      return count ? min : null;
    case AggregationFn.MAX:
      return count ? max : null;
    case AggregationFn.LAST:
      return last;
  }
}
