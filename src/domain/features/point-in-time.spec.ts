import {
  AggregationFn,
  FeatureType,
  type FeatureValue,
  type FeatureViewSchema,
} from './feature-definition';
import fc from 'fast-check';
import { onlineRetention } from './online-state';
import { compareEvents, evaluateView, type FeatureEvent, seriesOf } from './point-in-time';

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

  it('is null beyond the TTL offline (windows keep their own value), and reports staleness online', () => {
    // The 2.5h backfill (known at 9h) is not visible at 7.5h: the newest is 3h, 4.5h old.
    expect(evaluateView(schema, seriesOf(events), 7.5 * H, { nullWhenStale: true })).toEqual({
      values: [null, 0, null],
      asOf: 3 * H,
      stale: true,
    });
    const online = evaluateView(schema, seriesOf(events), 7.5 * H, { nullWhenStale: false });
    expect(online.stale).toBe(true);
    expect(online.values[0]).toBe(30);
  });

  it('breaks ties on event time by known time, then event id: the event learned last wins', () => {
    const tie = [...events, ev('d', 3, 3.5, 31)].sort(compareEvents);
    const at = (h: number) =>
      evaluateView(schema, seriesOf(tie), h * H, { nullWhenStale: true }).values;
    expect(at(3.25)).toEqual([30, 1, 25]);
    expect(at(3.5)).toEqual([31, 2, 27]);
    const sameInstant = [...events, ev('b2', 3, 3, 32)].sort(compareEvents);
    // c and b2 happened at 3h and were learned at 3h: the greater id, c, is the latest.
    expect(
      evaluateView(schema, seriesOf(sameInstant), 3 * H, { nullWhenStale: true }).values[0],
    ).toBe(30);
  });

  it('counts a corrected event once, with the version known at t, in the value and every window', () => {
    // c (3h) is corrected at 3.5h (31), then again at 5h (33); b is moved to 2.5h at 4h.
    const history = [
      ...events,
      ev('c', 3, 3.5, 31),
      ev('c', 3, 5, 33),
      { ...ev('b', 2.5, 4, 22) },
    ].sort(compareEvents);
    const at = (h: number) =>
      byName(evaluateView(schema, seriesOf(history), h * H, { nullWhenStale: true }).values);
    expect(at(3.25)).toEqual({ delay: 30, n_1h: 1, mean_2h: 25 });
    expect(at(3.5)).toEqual({ delay: 31, n_1h: 1, mean_2h: 25.5 });
    // At 4h, b's known version happened at 2.5h: inside (2h, 4h] and out of (3h, 4h].
    expect(at(4)).toEqual({ delay: 31, n_1h: 0, mean_2h: 26.5 });
    expect(at(5)).toEqual({ delay: 33, n_1h: 0, mean_2h: null });
  });

  it('gives an empty window COUNT and SUM 0, the other aggregates null, also beyond the TTL', () => {
    const sums: FeatureViewSchema = {
      ...schema,
      features: ['COUNT', 'SUM', 'MEAN', 'MIN', 'MAX', 'LAST'].map((fn) => ({
        ...schema.features[1],
        name: fn,
        aggregation: { fn: fn as AggregationFn, windowSeconds: 3600 },
      })),
    };
    for (const [history, t] of [
      [[], 5 * H],
      [events, 20 * H],
    ] as const)
      expect(evaluateView(sums, seriesOf(history), t, { nullWhenStale: true }).values).toEqual([
        0,
        0,
        null,
        null,
        null,
        null,
      ]);
  });

  it('agrees with a brute-force reading of the rules, for any history of versions', () => {
    const version = fc.record({
      id: fc.constantFrom('a', 'b', 'c', 'd'),
      eventH: fc.integer({ min: 0, max: 12 }),
      knownAfterH: fc.integer({ min: 0, max: 6 }),
      v: fc.integer({ min: -5, max: 5 }),
    });
    fc.assert(
      fc.property(
        fc.uniqueArray(version, {
          maxLength: 12,
          selector: (x) => `${x.id}@${x.eventH + x.knownAfterH}`,
        }),
        fc.integer({ min: 0, max: 20 }),
        (versions, tH) => {
          const history = versions
            .map((x) => ev(x.id, x.eventH, x.eventH + x.knownAfterH, x.v))
            .sort(compareEvents);
          const got = evaluateView(schema, seriesOf(history), tH * H, { nullWhenStale: true });
          expect(got.values).toEqual(bruteForce(history, tH * H));
        },
      ),
      { numRuns: 500 },
    );
  });

  it('online retention: the widest window, trimmed in eighths; none without aggregates', () => {
    expect(onlineRetention(schema)).toEqual({ windowMs: 2 * H, trimStepMs: H / 4 });
    const latestOnly = { ...schema, features: [schema.features[0]] };
    expect(onlineRetention(latestOnly)).toEqual({ windowMs: 0, trimStepMs: 0 });
  });
});

/** The rules read literally: each event's version known at t, then latest and windows. */
function bruteForce(history: FeatureEvent[], t: number): FeatureValue[] {
  const known = new Map<string, FeatureEvent>();
  for (const e of history)
    if (e.createdTs <= t) {
      const held = known.get(e.eventId);
      if (!held || e.createdTs > held.createdTs) known.set(e.eventId, e);
    }
  const visible = [...known.values()].filter((e) => e.eventTs <= t).sort(compareEvents);
  const latest = visible[visible.length - 1];
  const inWindow = (s: number) => visible.filter((e) => e.eventTs > t - s * 1000);
  const n = inWindow(3600).length;
  const two = inWindow(7200).map((e) => e.values[0] as number);
  const stale = latest !== undefined && t - latest.eventTs > schema.ttlSeconds * 1000;
  return [
    latest && !stale ? latest.values[0] : null,
    n,
    two.length ? two.reduce((a, b) => a + b, 0) / two.length : null,
  ];
}
