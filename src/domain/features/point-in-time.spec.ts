import {
  AggregationFn,
  FeatureType,
  type FeatureValue,
  type FeatureViewSchema,
} from './feature-definition';
import { canonicalEvents, onlineRetention } from './online-state';
import { evaluateView, type FeatureEvent, seriesOf } from './point-in-time';

const H = 3_600_000;
const schema: FeatureViewSchema = {
  entity: 'airport',
  source: 's',
  ttlSeconds: 4 * 3600,
  allowedLatenessSeconds: 3600,
  features: [
    {
      name: 'delay',
      type: FeatureType.FLOAT,
      source: 'delay',
      transform: { kind: 'IDENTITY' },
      aggregation: null,
      validation: {},
    },
    {
      name: 'n_1h',
      type: FeatureType.FLOAT,
      source: 'delay',
      transform: { kind: 'IDENTITY' },
      aggregation: { fn: AggregationFn.COUNT, windowSeconds: 3600 },
      validation: {},
    },
    {
      name: 'mean_2h',
      type: FeatureType.FLOAT,
      source: 'delay',
      transform: { kind: 'IDENTITY' },
      aggregation: { fn: AggregationFn.MEAN, windowSeconds: 7200 },
      validation: {},
    },
  ],
};

const ev = (id: string, eventH: number, createdH: number, delay: number): FeatureEvent => ({
  eventId: id,
  eventTs: eventH * H,
  createdTs: createdH * H,
  values: [delay],
});

/** Evaluated values by feature name, for readable expectations. */
const byName = (values: FeatureValue[]) =>
  Object.fromEntries(schema.features.map((f, i) => [f.name, values[i]]));

describe('evaluateView (point in time)', () => {
  const events = [ev('a', 1, 1, 10), ev('b', 2, 2, 20), ev('late', 2.5, 9, 99), ev('c', 3, 3, 30)];

  it('sees only events that happened and were known by t', () => {
    const at = (hours: number) =>
      byName(evaluateView(schema, seriesOf(events), hours * H, { nullWhenStale: true }).values);
    expect(at(0.5)).toEqual({ delay: null, n_1h: 0, mean_2h: null });
    expect(at(2)).toEqual({ delay: 20, n_1h: 1, mean_2h: 15 });
    // The backfill at 2.5h was only learned at 9h: invisible at 2.75h.
    expect(at(2.75)).toEqual({ delay: 20, n_1h: 1, mean_2h: 15 });
    // Windows are (t - w, t]: at 3h, the 1h window holds only the 3h event.
    expect(at(3)).toEqual({ delay: 30, n_1h: 1, mean_2h: 25 });
    // No event in (3.5h, 4.5h], and the data is not stale yet: a count of zero.
    expect(at(4.5).n_1h).toBe(0);
  });

  it('is null beyond the TTL offline, and reports staleness online', () => {
    expect(evaluateView(schema, seriesOf(events), 7.5 * H, { nullWhenStale: true })).toEqual({
      values: [null, null, null],
      asOf: 3 * H,
      stale: true,
    });
    const online = evaluateView(schema, seriesOf(events), 7.5 * H, { nullWhenStale: false });
    expect(online.stale).toBe(true);
    expect(online.values[0]).toBe(30);
  });

  it('breaks ties on event time by ingestion time: the correction wins', () => {
    const withCorrection = [...events, ev('c-fix', 3, 3.5, 31)];
    expect(
      evaluateView(schema, seriesOf(withCorrection), 3.25 * H, { nullWhenStale: true }).values[0],
    ).toBe(30);
    expect(
      evaluateView(schema, seriesOf(withCorrection), 3.5 * H, { nullWhenStale: true }).values[0],
    ).toBe(31);
  });

  it('online state: reads dedupe by id (first ingestion wins) and retention keeps what windows need', () => {
    const redelivered = { ...events[1], createdTs: 50 * H };
    expect(canonicalEvents([events[1], redelivered, events[0]])).toEqual(events.slice(0, 2));
    // Newest at 10h, widest window 2h: events at or before 8h can never count again.
    expect(onlineRetention(schema, 10 * H)).toEqual({ before: 8 * H, inclusive: true });
    // No aggregate: only the newest event time (and its corrections) is needed.
    const latestOnly = { ...schema, features: [schema.features[0]] };
    expect(onlineRetention(latestOnly, 10 * H)).toEqual({ before: 10 * H, inclusive: false });
  });
});
