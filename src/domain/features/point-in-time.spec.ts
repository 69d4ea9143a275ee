import { AggregationFn, FeatureType, type FeatureViewSchema } from './feature-definition';
import { mergeOnlineState } from './online-state';
import { evaluateView, type FeatureEvent } from './point-in-time';

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
  fields: { delay },
});

describe('evaluateView (point in time)', () => {
  const events = [ev('a', 1, 1, 10), ev('b', 2, 2, 20), ev('late', 2.5, 9, 99), ev('c', 3, 3, 30)];

  it('sees only events that happened and were known by t', () => {
    const at = (hours: number) =>
      evaluateView(schema, events, hours * H, { nullWhenStale: true }).values;
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
    expect(evaluateView(schema, events, 7.5 * H, { nullWhenStale: true })).toEqual({
      values: { delay: null, n_1h: null, mean_2h: null },
      asOf: 3 * H,
      stale: true,
    });
    const online = evaluateView(schema, events, 7.5 * H, { nullWhenStale: false });
    expect(online.stale).toBe(true);
    expect(online.values.delay).toBe(30);
  });

  it('breaks ties on event time by ingestion time: the correction wins', () => {
    const withCorrection = [...events, ev('c-fix', 3, 3.5, 31)];
    expect(
      evaluateView(schema, withCorrection, 3.25 * H, { nullWhenStale: true }).values.delay,
    ).toBe(30);
    expect(
      evaluateView(schema, withCorrection, 3.5 * H, { nullWhenStale: true }).values.delay,
    ).toBe(31);
  });

  it('online state merges idempotently and keeps what the windows need', () => {
    const s1 = mergeOnlineState(schema, null, events.slice(0, 2));
    const s2 = mergeOnlineState(schema, s1, events.slice(0, 2));
    expect(s2).toEqual(s1);
    const far = mergeOnlineState(schema, s1, [ev('z', 10, 10, 5)]);
    // Nothing older than the 2h window before 10h can count again: the 1h and 2h events go.
    expect(far.events.map((e) => e.eventId)).toEqual(['z']);
  });
});
