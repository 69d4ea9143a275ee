import {
  AggregationFn,
  eventLayout,
  type FeatureSpec,
  type FeatureValue,
  type FeatureViewSchema,
} from './feature-definition';
import { applyTransform } from './transforms';

/** One accepted record of a view: raw source values, when it happened, when we learned it. */
export interface FeatureEvent {
  eventId: string;
  /** Event time, epoch ms. */
  eventTs: number;
  /** Ingestion time, epoch ms. */
  createdTs: number;
  /** Source field values laid out by the version's `eventLayout(schema).sources`. */
  values: FeatureValue[];
}

export interface EvaluatedView {
  /** One value per feature, in the order of `schema.features`. */
  values: FeatureValue[];
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
 * The events of one entity and view version, sorted with `compareEvents`, as evaluation
 * reads them: an array of events online, columns of a compacted segment offline. Values are
 * addressed by position in the version's event layout.
 */
export interface EventSeries {
  readonly length: number;
  eventTs(i: number): number;
  createdTs(i: number): number;
  value(i: number, position: number): FeatureValue;
}

/** A sorted event array as a series. */
export function seriesOf(events: readonly FeatureEvent[]): EventSeries {
  return {
    length: events.length,
    eventTs: (i) => events[i].eventTs,
    createdTs: (i) => events[i].createdTs,
    value: (i, p) => events[i].values[p] ?? null,
  };
}

export const NO_EVENTS: EventSeries = seriesOf([]);

/** Receives an evaluated row, feature by feature (in schema order), then its freshness. */
export interface RowSink {
  set(feature: number, value: FeatureValue): void;
  freshness(asOf: number | null, stale: boolean): void;
}

/**
 * The value of every feature of a view for one entity as known at time `t` (epoch ms).
 * Only events with eventTs <= t and createdTs <= t are visible, so neither future events
 * nor late backfills leak in.
 *
 * Offline (point-in-time joins over compacted columns) and online (reads of the streaming
 * state) both call this with the same semantics; the online state simply holds fewer events.
 *
 * `nullWhenStale`: offline rows get null beyond the TTL; online reads keep the values and
 * report `stale` so a caller can decide, instead of silently serving old data.
 */
export function evaluateView(
  schema: FeatureViewSchema,
  events: EventSeries,
  t: number,
  opts: { nullWhenStale: boolean },
): EvaluatedView {
  const out: EvaluatedView = {
    values: new Array<FeatureValue>(schema.features.length),
    asOf: null,
    stale: false,
  };
  evaluateViewInto(schema, events, t, opts, {
    set: (i, v) => (out.values[i] = v),
    freshness: (asOf, stale) => {
      out.asOf = asOf;
      out.stale = stale;
    },
  });
  return out;
}

/**
 * `evaluateView` writing each value straight to `sink`: a join of a million rows into typed
 * columns then allocates nothing per row.
 */
export function evaluateViewInto(
  schema: FeatureViewSchema,
  events: EventSeries,
  t: number,
  opts: { nullWhenStale: boolean },
  sink: RowSink,
): void {
  const features = schema.features;
  const end = upperBound(events, t);
  const latest = latestVisible(events, end, t);
  if (latest < 0) {
    for (let i = 0; i < features.length; i++) sink.set(i, emptyValue(features[i]));
    sink.freshness(null, false);
    return;
  }
  const asOf = events.eventTs(latest);
  const stale = t - asOf > schema.ttlSeconds * 1000;
  const { positions } = eventLayout(schema);
  for (let i = 0; i < features.length; i++) {
    const f = features[i];
    if (stale && opts.nullWhenStale) sink.set(i, null);
    else if (f.aggregation) sink.set(i, aggregate(f, positions[i], events, end, t));
    else sink.set(i, applyTransform(f.transform, events.value(latest, positions[i])));
  }
  sink.freshness(asOf, stale);
}

/** Index just past the last event with eventTs <= t. */
function upperBound(events: EventSeries, t: number): number {
  let lo = 0;
  let hi = events.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if (events.eventTs(mid) <= t) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/** Index of the newest event at or before t that was already known at t (createdTs <= t), or -1. */
function latestVisible(events: EventSeries, end: number, t: number): number {
  for (let i = end - 1; i >= 0; i--) if (events.createdTs(i) <= t) return i;
  return -1;
}

function emptyValue(f: FeatureSpec): FeatureValue {
  return f.aggregation?.fn === AggregationFn.COUNT ? 0 : null;
}

function aggregate(
  f: FeatureSpec,
  position: number,
  events: EventSeries,
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
  for (let i = end - 1; i >= 0 && events.eventTs(i) > from; i--) {
    if (events.createdTs(i) > t) continue;
    const v = applyTransform(f.transform, events.value(i, position));
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
