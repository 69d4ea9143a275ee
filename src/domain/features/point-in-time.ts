import {
  AggregationFn,
  eventLayout,
  type FeatureSpec,
  type FeatureValue,
  type FeatureViewSchema,
} from './feature-definition';
import { applyTransform } from './transforms';

/**
 * One version of an event of a view: raw source values, when it happened, when we learned
 * this version. An event is identified by (entity, eventId); a correction is a later version
 * of it (same eventId, later createdTs), and every version is kept.
 */
export interface FeatureEvent {
  eventId: string;
  /** Event time, epoch ms. */
  eventTs: number;
  /** When this version became known (the record's knownAt, else its ingestion time), epoch ms. */
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

/**
 * Sort order for event lists: by event time, then known time, then event id (UTF-16 code
 * units). This order is also the tie rule: of the visible versions with the newest event
 * time, the one learned last is the latest value, and of those learned at the same instant
 * the greatest event id. Two versions of one event learned at the same instant (which
 * ingestion refuses, but a race of two writers could store) are ordered by their values, so
 * every sort of the same history gives the same order.
 */
export function compareEvents(a: FeatureEvent, b: FeatureEvent): number {
  return (
    a.eventTs - b.eventTs ||
    a.createdTs - b.createdTs ||
    (a.eventId < b.eventId ? -1 : a.eventId > b.eventId ? 1 : 0) ||
    valueOrder(a, b)
  );
}

function valueOrder(a: FeatureEvent, b: FeatureEvent): number {
  const x = JSON.stringify(a.values);
  const y = JSON.stringify(b.values);
  return x < y ? -1 : x > y ? 1 : 0;
}

/**
 * The event versions of one entity and view version, sorted with `compareEvents`, as
 * evaluation reads them: an array of events online, columns of a compacted segment offline.
 * Values are addressed by position in the version's event layout. A version is the one
 * known at t when `createdTs(i) <= t < supersededTs(i)`.
 */
export interface EventSeries {
  readonly length: number;
  eventTs(i: number): number;
  createdTs(i: number): number;
  /** When the next version of the same event became known; Infinity for the newest. */
  supersededTs(i: number): number;
  value(i: number, position: number): FeatureValue;
}

/**
 * For each version of a sorted event array, when the next version of the same event became
 * known (Infinity for an event's newest version): the end of the known-time interval in
 * which it is the event's value. Events with one version (nearly all) cost one map entry.
 */
export function supersession(events: readonly FeatureEvent[]): Float64Array {
  const until = new Float64Array(events.length).fill(Infinity);
  const first = new Map<string, number>();
  let repeated: Map<string, number[]> | null = null;
  for (let i = 0; i < events.length; i++) {
    const id = events[i].eventId;
    const at = first.get(id);
    if (at === undefined) first.set(id, i);
    else {
      repeated ??= new Map();
      const list = repeated.get(id) ?? [at];
      list.push(i);
      repeated.set(id, list);
    }
  }
  for (const list of repeated?.values() ?? []) {
    list.sort(
      (x, y) =>
        events[x].createdTs - events[y].createdTs ||
        events[x].eventTs - events[y].eventTs ||
        valueOrder(events[x], events[y]),
    );
    for (let k = 0; k + 1 < list.length; k++) until[list[k]] = events[list[k + 1]].createdTs;
  }
  return until;
}

/** A sorted event array as a series. */
export function seriesOf(events: readonly FeatureEvent[]): EventSeries {
  const until = supersession(events);
  return {
    length: events.length,
    eventTs: (i) => events[i].eventTs,
    createdTs: (i) => events[i].createdTs,
    supersededTs: (i) => until[i],
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
 * Each event counts with its version known at t (createdTs <= t < supersededTs) and only if
 * that version's eventTs <= t, so neither future events, nor late backfills, nor corrections
 * learned after t leak in, and a corrected event is never counted twice.
 *
 * Offline (point-in-time joins over compacted columns) and online (reads of the streaming
 * state) both call this with the same semantics; the online state simply holds fewer events.
 *
 * Windowed aggregates are the value of their window `(t - w, t]`, whatever the TTL: an empty
 * window gives COUNT and SUM 0, MEAN, MIN, MAX and LAST null. The TTL applies to the other
 * features (latest values), `nullWhenStale`: offline rows get null beyond the TTL; online
 * reads keep the values and report `stale` so a caller can decide, instead of silently
 * serving old data.
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
    if (f.aggregation) sink.set(i, aggregate(f, positions[i], events, end, t));
    else if (stale && opts.nullWhenStale) sink.set(i, null);
    else sink.set(i, applyTransform(f.transform, events.value(latest, positions[i])));
  }
  sink.freshness(asOf, stale);
}

/** Whether version i is its event's version known at t (its event time is checked apart). */
function knownAt(events: EventSeries, i: number, t: number): boolean {
  return events.createdTs(i) <= t && t < events.supersededTs(i);
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

/**
 * Index of the latest version visible at t (event time at or before t, the version known at
 * t), or -1: in `compareEvents` order, so ties on event time go to the version learned last.
 */
function latestVisible(events: EventSeries, end: number, t: number): number {
  for (let i = end - 1; i >= 0; i--) if (knownAt(events, i, t)) return i;
  return -1;
}

/** A feature's value when no event is visible: an empty window counts and sums to 0. */
function emptyValue(f: FeatureSpec): FeatureValue {
  const fn = f.aggregation?.fn;
  return fn === AggregationFn.COUNT || fn === AggregationFn.SUM ? 0 : null;
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
    if (!knownAt(events, i, t)) continue;
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
      return sum;
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
