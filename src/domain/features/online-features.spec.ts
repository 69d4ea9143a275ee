import fc from 'fast-check';
import {
  AggregationFn,
  BinClosure,
  FeatureType,
  type FeatureViewSchema,
} from './feature-definition';
import { evaluateOnline } from './online-features.service';
import { compareEvents, evaluateView, type FeatureEvent, seriesOf } from './point-in-time';

const H = 3_600_000;
const feature = (name: string, transform: FeatureViewSchema['features'][number]['transform']) => ({
  name,
  type: FeatureType.FLOAT,
  source: 'delay',
  transform,
  aggregation: null,
  validation: {},
});
/** Latest values only: evaluations are reused while they hold. */
const latest: FeatureViewSchema = {
  entity: 'airport',
  source: 's',
  ttlSeconds: 2 * 3600,
  allowedLatenessSeconds: 3600,
  features: [
    feature('delay', { kind: 'IDENTITY' }),
    feature('delay_bin', { kind: 'BIN', edges: [0, 2], closed: BinClosure.LEFT }),
  ],
};
/** With a window: evaluated every time. */
const windowed: FeatureViewSchema = {
  ...latest,
  features: [
    ...latest.features,
    {
      ...feature('n_1h', { kind: 'IDENTITY' }),
      aggregation: { fn: AggregationFn.COUNT, windowSeconds: 3600 },
    },
  ],
};

describe('evaluateOnline', () => {
  it('answers as a fresh evaluation would, for any history and any order of read times', () => {
    const version = fc.record({
      id: fc.constantFrom('a', 'b', 'c'),
      eventQ: fc.integer({ min: 0, max: 40 }),
      // Known before its event time too (a scheduled event): visible from its event time.
      knownAfterQ: fc.integer({ min: -6, max: 12 }),
      v: fc.integer({ min: -3, max: 3 }),
    });
    fc.assert(
      fc.property(
        fc.uniqueArray(version, {
          maxLength: 8,
          selector: (x) => `${x.id}@${x.eventQ + x.knownAfterQ}`,
        }),
        // Read times in quarter hours, boundaries included (ties with event and known times,
        // and the TTL's edge), in any order: a clock may step back.
        // Half a millisecond either side of each, too.
        fc.array(fc.tuple(fc.integer({ min: 0, max: 90 }), fc.constantFrom(0, -0.5, 0.5)), {
          minLength: 1,
          maxLength: 30,
        }),
        fc.boolean(),
        (versions, times, withWindow) => {
          const schema = withWindow ? windowed : latest;
          const history: FeatureEvent[] = versions
            .map((x) => ({
              eventId: x.id,
              eventTs: (x.eventQ * H) / 4,
              createdTs: ((x.eventQ + x.knownAfterQ) * H) / 4,
              values: [x.v],
            }))
            .sort(compareEvents);
          const series = seriesOf(history);
          for (const [q, off] of times) {
            const t = (q * H) / 4 + off;
            expect(evaluateOnline(schema, series, t)).toEqual(
              evaluateView(schema, series, t, { nullWhenStale: false }),
            );
          }
        },
      ),
      { numRuns: 1_000 },
    );
  });

  it('reuses an evaluation while it holds, and shares it frozen', () => {
    const series = seriesOf([{ eventId: 'a', eventTs: H, createdTs: H, values: [1] }]);
    const first = evaluateOnline(latest, series, 1.5 * H);
    expect(evaluateOnline(latest, series, 2 * H)).toBe(first);
    expect(Object.isFrozen(first.values)).toBe(true);
    // The TTL (2 h) runs out at 3 h: fresh at 3 h itself, stale just after.
    expect(evaluateOnline(latest, series, 3 * H)).toMatchObject({ stale: false });
    const stale = evaluateOnline(latest, series, 3 * H + 0.001);
    expect(stale).not.toBe(first);
    expect(stale).toMatchObject({ stale: true, values: [1, 0] });
  });
});
