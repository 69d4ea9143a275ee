import { AggregationFn, FeatureType, type FeatureViewSchema } from './feature-definition';
import { normaliseSchema } from './feature-registry.service';

const view = (features: FeatureViewSchema['features']): FeatureViewSchema => ({
  entity: 'customer',
  source: 'txns',
  ttlSeconds: 3600,
  allowedLatenessSeconds: 0,
  features,
});

const feature = (name: string, source: string, type: FeatureType, windowed = false) => ({
  name,
  type,
  source,
  transform: { kind: 'IDENTITY' as const },
  aggregation: windowed ? { fn: AggregationFn.COUNT, windowSeconds: 60 } : null,
  validation: {},
});

describe('normaliseSchema', () => {
  it('lets several features read one source field of one type', () => {
    const s = normaliseSchema(
      view([
        feature('amount', 'amount', FeatureType.FLOAT),
        feature('amount_count_1m', 'amount', FeatureType.FLOAT, true),
      ]),
    );
    expect(s.features.map((f) => f.source)).toEqual(['amount', 'amount']);
  });

  it('refuses one source field read as two types, naming the feature and the field', () => {
    for (const [a, b] of [
      [FeatureType.FLOAT, FeatureType.BOOL],
      [FeatureType.INT, FeatureType.FLOAT],
      [FeatureType.STRING, FeatureType.FLOAT],
    ])
      expect(() =>
        normaliseSchema(view([feature('first', 'x', a), feature('second', 'x', b)])),
      ).toThrow(
        expect.objectContaining({
          reason: 'INVALID_FEATURE_DEFINITION',
          details: { feature: 'second', source: 'x' },
        }),
      );
  });
});
