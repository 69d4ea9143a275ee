import { type DuckDBConnection, DuckDBInstance } from '@duckdb/node-api';
import fc from 'fast-check';
import {
  AggregationFn,
  BinClosure,
  FeatureType,
  type FeatureSpec,
  type FeatureValue,
  type FeatureViewVersion,
} from '../src/domain/features/feature-definition';
import {
  compareEvents,
  evaluateView,
  type FeatureEvent,
  seriesOf,
} from '../src/domain/features/point-in-time';
import { distributableShape, planShape } from './support/plan-shape';
import {
  historyRelation,
  pointInTimeSql,
  SPINE_RELATION,
  SqlDialect,
} from '../src/domain/features/point-in-time-sql';

/**
 * The SQL form of the point-in-time join (docs/adr/0031) against the evaluator, which is the
 * definition: generated histories with corrections (same event, later known time, new value),
 * late backfills (known long after the event), nulls, ties on event time, labels exactly on
 * event times, on the TTL edge and on window edges, entities without data. DuckDB runs the
 * SQL; every value must equal the evaluator's (sums and means within 1e-9: SQL adds in any
 * order).
 */
const S = 1000;
const feature = (
  name: string,
  type: FeatureType,
  source: string,
  extra: Partial<FeatureSpec> = {},
): FeatureSpec => ({
  name,
  type,
  source,
  transform: { kind: 'IDENTITY' },
  aggregation: null,
  validation: {},
  ...extra,
});
const window = (fn: AggregationFn, seconds: number) => ({
  aggregation: { fn, windowSeconds: seconds },
});

const VERSION: FeatureViewVersion = {
  id: 'v1',
  viewId: 'view',
  viewName: 'meter',
  version: 3,
  fingerprint: 'f',
  createdAt: new Date(0),
  retiredAt: null,
  schema: {
    entity: 'meter',
    source: 'meter_src',
    ttlSeconds: 20,
    allowedLatenessSeconds: 0,
    features: [
      feature('x', FeatureType.FLOAT, 'x'),
      feature('n', FeatureType.INT, 'n'),
      feature('s', FeatureType.STRING, 's'),
      feature('b', FeatureType.BOOL, 'b'),
      feature('x_bin_left', FeatureType.FLOAT, 'x', {
        transform: { kind: 'BIN', edges: [-1, 0, 0.5, 1], closed: BinClosure.LEFT },
      }),
      feature('x_bin_right', FeatureType.FLOAT, 'x', {
        transform: { kind: 'BIN', edges: [-1, 0, 0.5, 1], closed: BinClosure.RIGHT },
      }),
      feature('s_idx', FeatureType.STRING, 's', {
        transform: { kind: 'CATEGORY_INDEX', categories: ['red', "o'range", 'blue'] },
      }),
      feature('n_idx', FeatureType.INT, 'n', {
        transform: { kind: 'CATEGORY_INDEX', categories: ['2', '02', '-1', 'x', '0'] },
      }),
      feature('b_idx', FeatureType.BOOL, 'b', {
        transform: { kind: 'CATEGORY_INDEX', categories: ['false', 'true'] },
      }),
      feature('x_count_10s', FeatureType.FLOAT, 'x', window(AggregationFn.COUNT, 10)),
      feature('x_sum_10s', FeatureType.FLOAT, 'x', window(AggregationFn.SUM, 10)),
      feature('x_mean_30s', FeatureType.FLOAT, 'x', window(AggregationFn.MEAN, 30)),
      feature('x_min_10s', FeatureType.FLOAT, 'x', window(AggregationFn.MIN, 10)),
      feature('x_max_30s', FeatureType.FLOAT, 'x', window(AggregationFn.MAX, 30)),
      feature('x_last_10s', FeatureType.FLOAT, 'x', window(AggregationFn.LAST, 10)),
      feature('s_last_30s', FeatureType.STRING, 's', window(AggregationFn.LAST, 30)),
      feature('n_bin_count_30s', FeatureType.INT, 'n', {
        transform: { kind: 'BIN', edges: [0, 2, 4], closed: BinClosure.LEFT },
        ...window(AggregationFn.COUNT, 30),
      }),
      feature('b_count_10s', FeatureType.BOOL, 'b', window(AggregationFn.COUNT, 10)),
    ],
  },
};
const SOURCES = ['x', 'n', 's', 'b'];
const features = VERSION.schema.features.map((f, position) => ({
  ref: `meter@3:${f.name}`,
  version: VERSION,
  position,
}));

interface Stored {
  entityKey: string;
  event: FeatureEvent;
}

/** Events of a few entities; some get corrections, some arrive long after they happened. */
const histories = fc
  .array(
    fc.record({
      entity: fc.constantFrom('a', 'b', 'c'),
      id: fc.constantFrom('e0', 'e1', 'e2', 'e3', 'e4', 'e5', 'e6', 'E7'),
      eventS: fc.oneof(fc.constantFrom(0, 5, 10), fc.integer({ min: 0, max: 20 })),
      // Known at the event, a little later, or much later (a backfill); more for corrections.
      delays: fc.uniqueArray(fc.constantFrom(0, 1, 2, 5, 9, 10, 25, 40), {
        minLength: 1,
        maxLength: 3,
      }),
      values: fc.array(
        fc.tuple(
          // 0.1, 0.7 and 1e16 make a sum's order show in its last bits.
          fc.option(fc.constantFrom(-1, -0.5, 0, 0.1, 0.25, 0.5, 0.7, 1, 1.5, 3.75, 1e16), {
            nil: null,
          }),
          fc.option(fc.integer({ min: -1, max: 4 }), { nil: null }),
          fc.option(fc.constantFrom('red', "o'range", 'blue', 'grün'), { nil: null }),
          fc.option(fc.boolean(), { nil: null }),
        ),
        { minLength: 3, maxLength: 3 },
      ),
    }),
    { maxLength: 30 },
  )
  .map((raw) => {
    // One event per (entity, id): the first draw decides its event time.
    const seen = new Map<string, number>();
    const out: Stored[] = [];
    for (const r of raw) {
      const key = `${r.entity}/${r.id}`;
      if (seen.has(key)) continue;
      seen.set(key, r.eventS);
      [...r.delays]
        .sort((x, y) => x - y)
        .forEach((delay, k) =>
          out.push({
            entityKey: r.entity,
            event: {
              eventId: r.id,
              eventTs: r.eventS * S,
              createdTs: (r.eventS + delay) * S,
              values: r.values[k],
            },
          }),
        );
    }
    return out;
  });

/** Label times: on event times, known times, TTL and window edges, and between. */
const spines = fc.array(
  fc.record({
    entityKey: fc.constantFrom('a', 'b', 'c', 'none'),
    ts: fc.integer({ min: 0, max: 70 }).map((s) => s * S),
    label: fc.option(fc.integer({ min: 0, max: 1 }), { nil: null }),
  }),
  { minLength: 1, maxLength: 25 },
);

let instance: DuckDBInstance;
let duck: DuckDBConnection;
const { relations } = pointInTimeSql(features, SqlDialect.DUCKDB);

beforeAll(async () => {
  instance = await DuckDBInstance.create(':memory:');
  duck = await instance.connect();
  for (const r of relations)
    await duck.run(
      `CREATE TABLE "${r.name}" (${r.columns.map((c) => `"${c.name}" ${c.type}`).join(', ')})`,
    );
});
afterAll(() => {
  duck.closeSync();
  instance.closeSync();
});

const literal = (v: FeatureValue): string =>
  v === null
    ? 'NULL'
    : typeof v === 'string'
      ? `'${v.replace(/'/g, "''")}'`
      : typeof v === 'boolean'
        ? String(v)
        : `CAST('${String(v)}' AS DOUBLE)`;

async function load(
  history: Stored[],
  spine: { entityKey: string; ts: number; label: number | null }[],
) {
  const table = historyRelation(VERSION);
  await duck.run(`DELETE FROM "${table}"`);
  await duck.run(`DELETE FROM "${SPINE_RELATION}"`);
  if (history.length)
    await duck.run(
      // Newest first: nothing may rest on the order rows are stored in.
      `INSERT INTO "${table}" VALUES ${[...history]
        .reverse()
        .map(
          (h) =>
            `('${h.entityKey}', '${h.event.eventId}', ${h.event.eventTs}, ${h.event.createdTs}, ${h.event.values.map(literal).join(', ')})`,
        )
        .join(', ')}`,
    );
  await duck.run(
    `INSERT INTO "${SPINE_RELATION}" VALUES ${spine
      .map((r, i) => `(${i}, '${r.entityKey}', ${r.ts}, ${r.label ?? 'NULL'})`)
      .join(', ')}`,
  );
}

const normal = (v: unknown): FeatureValue =>
  typeof v === 'bigint' ? Number(v) : (v as FeatureValue);

it('generates SQL whose relations name every source column', () => {
  expect(relations.map((r) => r.name)).toEqual([SPINE_RELATION, 'aether_history_meter_v3']);
  expect(relations[1].columns.map((c) => c.name)).toEqual([
    'entity_key',
    'event_id',
    'event_ts',
    'known_ts',
    ...SOURCES,
  ]);
});

/**
 * The statement of a schema whose TTL is `ttlSeconds` (the windows are 10 and 30 s): under
 * 30 s the widest window bounds what the join reads, over it the TTL does.
 */
/** The history with every version of an event at its first version's event time. */
function sameEventTimes(history: Stored[]): Stored[] {
  const first = new Map<string, number>();
  return history.map((h) => {
    const k = `${h.entityKey}\u0000${h.event.eventId}`;
    if (!first.has(k)) first.set(k, h.event.eventTs);
    return { ...h, event: { ...h.event, eventTs: first.get(k) as number } };
  });
}

it.each([
  [20, false],
  [35, false],
  [20, true],
  [35, true],
  [20, 'latest values only'],
])(
  'gives exactly what the evaluator gives, on DuckDB, for generated histories (TTL %i s, ASOF form: %s)',
  async (ttlSeconds, asof) => {
    const version = { ...VERSION, schema: { ...VERSION.schema, ttlSeconds } };
    // The ASOF form without windows reads no superseded times at all.
    const mine = features
      .map((f) => ({ ...f, version }))
      .filter(
        (f) => asof !== 'latest values only' || !version.schema.features[f.position].aggregation,
      );
    const statement = pointInTimeSql(mine, SqlDialect.DUCKDB, { asof: asof !== false }).sql;
    await fc.assert(
      fc.asyncProperty(histories, spines, async (generated, spine) => {
        // The ASOF form's precondition: an event's versions share its event time.
        const history = asof !== false ? sameEventTimes(generated) : generated;
        await load(history, spine);
        const rows = (await duck.runAndReadAll(statement)).getRowObjects();
        expect(rows.length).toBe(spine.length);
        const byEntity = new Map<string, FeatureEvent[]>();
        for (const h of history)
          byEntity.set(h.entityKey, [...(byEntity.get(h.entityKey) ?? []), h.event]);
        spine.forEach((label, i) => {
          const events = [...(byEntity.get(label.entityKey) ?? [])].sort(compareEvents);
          const want = evaluateView(version.schema, seriesOf(events), label.ts, {
            nullWhenStale: true,
          }).values;
          const row = rows[i];
          expect(normal(row.row_id)).toBe(i);
          // Bit for bit, sums and means too: the DuckDB engine's datasets must hash as the
          // evaluator's do.
          mine.forEach((f) => {
            const got = normal(row[f.ref]);
            const context = { row: i, feature: f.ref, label, got, want: want[f.position] };
            expect(context).toEqual({ ...context, got: want[f.position] });
          });
        });
      }),
      { numRuns: 150, seed: 31 },
    );
  },
  120_000,
);

/** A source field may hold quotes, backticks and backslashes (ADR 0031: each dialect quotes). */
const HOSTILE: FeatureViewVersion = {
  ...VERSION,
  id: 'v2',
  viewName: 'odd',
  version: 1,
  schema: {
    ...VERSION.schema,
    features: [
      feature('a', FeatureType.STRING, `it's "a" \`b\` c\\`, {
        transform: { kind: 'CATEGORY_INDEX', categories: [`x'y`, `back\\slash`, '"q"'] },
      }),
      feature(
        'b',
        FeatureType.FLOAT,
        `it's "a" \`b\` c\\`.replace('a', 'z'),
        window(AggregationFn.LAST, 5),
      ),
    ],
  },
};
const both = [
  ...features,
  ...HOSTILE.schema.features.map((f, position) => ({
    ref: `odd@1:${f.name}`,
    version: HOSTILE,
    position,
  })),
];

it('generates Spark and Trino SQL that their own grammars parse', async () => {
  const { SparkSQL, TrinoSQL } = await import('dt-sql-parser');
  expect(new SparkSQL().validate(pointInTimeSql(both, SqlDialect.SPARK).sql)).toEqual([]);
  expect(new TrinoSQL().validate(pointInTimeSql(both, SqlDialect.TRINO).sql)).toEqual([]);
  // The checks can fail: a statement that is not SQL does not parse.
  expect(new TrinoSQL().validate('SELECT FROM WHERE')).not.toEqual([]);
});

it('quotes hostile source names and categories so that DuckDB runs the join over two views', async () => {
  const two = pointInTimeSql(both, SqlDialect.DUCKDB);
  const odd = two.relations.find((r) => r.viewVersion?.view === 'odd');
  expect(odd?.columns.map((c) => c.name).slice(4)).toEqual([
    `it's "a" \`b\` c\\`,
    `it's "z" \`b\` c\\`,
  ]);
  const id = (n: string) => `"${n.replace(/"/g, '""')}"`;
  await duck.run(
    `CREATE TABLE ${id(odd!.name)} (${odd!.columns.map((c) => `${id(c.name)} ${c.type}`).join(', ')})`,
  );
  await load([], [{ entityKey: 'k', ts: 9 * S, label: 1 }]);
  await duck.run(
    `INSERT INTO ${id(odd!.name)} VALUES ('k', 'e1', ${5 * S}, ${5 * S}, 'back\\slash', 2.5)`,
  );
  const [row] = (await duck.runAndReadAll(two.sql)).getRowObjects();
  expect([row['odd@1:a'], row['odd@1:b'], normal(row['meter@3:x_count_10s'])]).toEqual([1, 2.5, 0]);
});

it('refuses a source field that would collide with a fixed column, whatever its case', () => {
  const clash: FeatureViewVersion = {
    ...VERSION,
    id: 'v3',
    schema: { ...VERSION.schema, features: [feature('k', FeatureType.STRING, 'Event_ID')] },
  };
  expect(() =>
    pointInTimeSql([{ ref: 'meter@3:k', version: clash, position: 0 }], SqlDialect.TRINO),
  ).toThrow(expect.objectContaining({ reason: 'NOT_EXPRESSIBLE_IN_SQL' }));
});

/**
 * Two sums of the same n doubles added in different orders: they differ by at most about n
 * units in the last place of the largest term (`largest`), a sum of 1e16 and 0.1 minus 1e16
 * by nearly 2.
 */
const closeEnough = (a: FeatureValue, b: FeatureValue, largest: number, n: number) =>
  typeof a === 'number' && typeof b === 'number'
    ? Math.abs(a - b) <= 1e-12 * Math.max(1, Math.abs(a)) + n * largest * 2 ** -52
    : a === b;

it("runs Trino's statement on DuckDB, where the dialects meet, with DuckDB's plan shape and values", async () => {
  // Trino's and DuckDB's statements differ here only in their aggregates (DuckDB's add in
  // the evaluator's order) and the list type, which this view does not use: DuckDB can run
  // Trino's and plan it (ADR 0034, "Beyond one machine"). Spark's quoting it cannot read.
  const duckSql = pointInTimeSql(features, SqlDialect.DUCKDB).sql;
  const trinoSql = pointInTimeSql(features, SqlDialect.TRINO).sql;
  expect(trinoSql).not.toBe(duckSql);
  const shape = await planShape(duck, duckSql);
  expect(await planShape(duck, trinoSql)).toEqual(shape);
  // The shape the sizing rests on: every join an equi-join on the entity or the label row,
  // every window partitioned by the entity, nothing a distributed engine would broadcast or
  // run as a nested loop.
  expect(distributableShape(shape)).toEqual({ ok: true, problems: [] });
  await fc.assert(
    fc.asyncProperty(histories, spines, async (history, spine) => {
      await load(history, spine);
      const largest = Math.max(0, ...history.map((h) => Math.abs(Number(h.event.values[0]))));
      const want = (await duck.runAndReadAll(duckSql)).getRowObjects();
      const got = (await duck.runAndReadAll(trinoSql)).getRowObjects();
      expect(got.length).toBe(want.length);
      got.forEach((row, i) =>
        features.forEach((f) => {
          const [a, b] = [normal(row[f.ref]), normal(want[i][f.ref])];
          const context = { row: i, feature: f.ref, got: a, want: b };
          expect(context).toEqual({
            ...context,
            got: closeEnough(a, b, largest, history.length) ? a : b,
          });
        }),
      );
    }),
    { numRuns: 60, seed: 7 },
  );
});
