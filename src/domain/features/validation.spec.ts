import { FeatureType, type FeatureViewSchema } from './feature-definition';
import { validateBatch, ValidationRule } from './validation';

const schema: FeatureViewSchema = {
  entity: 'user',
  source: 's',
  ttlSeconds: 3600,
  allowedLatenessSeconds: 60,
  features: [
    {
      name: 'age',
      type: FeatureType.INT,
      source: 'age',
      transform: { kind: 'IDENTITY' },
      aggregation: null,
      validation: { min: 0, max: 120 },
    },
    {
      name: 'country',
      type: FeatureType.STRING,
      source: 'country',
      transform: { kind: 'IDENTITY' },
      aggregation: null,
      validation: { allowedValues: ['FR', 'US'], maxNullFraction: 0.25 },
    },
  ],
};

const rec = (i: number, fields: Record<string, unknown>, eventTs = 1_000_000 + i) => ({
  entityKey: `u${i}`,
  eventId: `e${i}`,
  eventTs,
  fields,
});

describe('validateBatch', () => {
  it('accounts for every record: accepted + quarantined = received', () => {
    const records = [
      rec(1, { age: 30, country: 'FR' }),
      rec(2, { age: '30', country: 'FR' }),
      rec(3, { age: 130, country: 'US' }),
      rec(4, { age: 40, country: 'DE' }),
      rec(5, { age: 40.5, country: 'US' }),
    ];
    const out = validateBatch(schema, records, new Map());
    expect(out.accepted.length + out.quarantined.length).toBe(records.length);
    expect(out.accepted.map((a) => a.entityKey)).toEqual(['u1']);
    expect(out.quarantined.map((q) => q.violations[0].rule)).toEqual([
      ValidationRule.WRONG_TYPE,
      ValidationRule.OUT_OF_RANGE,
      ValidationRule.NOT_ALLOWED_VALUE,
      ValidationRule.WRONG_TYPE,
    ]);
  });

  it('quarantines the null records of a feature whose null fraction is breached', () => {
    const records = [
      rec(1, { age: 1, country: 'FR' }),
      rec(2, { age: 2 }),
      rec(3, { age: 3, country: null }),
      rec(4, { age: 4, country: 'US' }),
    ];
    const out = validateBatch(schema, records, new Map());
    expect(out.quarantined.map((q) => [q.record.entityKey, q.violations[0].rule])).toEqual([
      ['u2', ValidationRule.NULL_FRACTION_EXCEEDED],
      ['u3', ValidationRule.NULL_FRACTION_EXCEEDED],
    ]);
    expect(out.quarantined[0].violations[0].message).toContain('50.0% of the batch is null');
  });

  it('quarantines events later than the allowed lateness behind the entity’s newest event', () => {
    const marks = new Map([['u1', 1_000_000]]);
    const out = validateBatch(
      schema,
      [
        rec(1, { age: 1, country: 'FR' }, 1_000_000 - 61_000),
        rec(1, { age: 1, country: 'FR' }, 1_000_000 - 59_000),
      ],
      marks,
    );
    expect(out.quarantined.map((q) => q.violations[0].rule)).toEqual([ValidationRule.LATE_EVENT]);
    expect(out.accepted).toHaveLength(1);
  });
});

describe('text and time at the door of the feature store', () => {
  const now = Date.UTC(2026, 10, 29);
  const opts = { lateness: true, requireKnownAt: false, now };
  const rules = (r: ReturnType<typeof validateBatch>) =>
    r.quarantined.map((q) => q.violations.map((v) => v.rule));

  it('quarantines keys, ids and string values that are not text (NUL, lone surrogates)', () => {
    const out = validateBatch(
      schema,
      [
        { entityKey: 'a\u0000b', eventId: 'e1', eventTs: now, fields: { age: 30, country: 'FR' } },
        { entityKey: 'u2', eventId: '\ud800', eventTs: now, fields: { age: 30, country: 'FR' } },
        { entityKey: 'u3', eventId: 'e3', eventTs: now, fields: { age: 30, country: 'F\u0000R' } },
        { entityKey: 'u4', eventId: 'e4', eventTs: now, fields: { age: 30, country: 'US' } },
      ],
      new Map(),
      opts,
    );
    expect(out.accepted.map((a) => a.entityKey)).toEqual(['u4']);
    expect(rules(out)).toEqual([
      [ValidationRule.INVALID_TEXT],
      [ValidationRule.INVALID_TEXT],
      [ValidationRule.INVALID_TEXT],
    ]);
  });

  it('quarantines event times in year 1 and more than a day ahead of the clock (year 9999)', () => {
    const at = (t: number, i: number) => ({
      entityKey: `u${i}`,
      eventId: `e${i}`,
      eventTs: t,
      fields: { age: 30, country: 'FR' },
    });
    const out = validateBatch(
      schema,
      [
        at(Date.parse('0001-01-01T00:00:00Z'), 1),
        at(Date.UTC(9999, 11, 31), 2),
        at(now + 2 * 86_400_000, 3),
        at(now + 3_600_000, 4),
        at(Date.UTC(1995, 0, 1), 5),
      ],
      new Map(),
      { ...opts, lateness: false },
    );
    expect(out.accepted.map((a) => a.entityKey)).toEqual(['u4', 'u5']);
    expect(rules(out)).toEqual([
      [ValidationRule.INVALID_EVENT_TIME],
      [ValidationRule.INVALID_EVENT_TIME],
      [ValidationRule.INVALID_EVENT_TIME],
    ]);
  });
});
