import { InvalidInputError } from '../shared/domain-error';
import {
  AggregationFn,
  eventLayout,
  FeatureType,
  type FeatureSpec,
  type FeatureViewVersion,
  type Transform,
} from './feature-definition';
import { FeatureErrorCode } from './feature-errors';

/**
 * The point-in-time join as SQL, for teams that run it on their own engine (docs/adr/0031).
 * It states exactly the rules of `evaluateView` (point-in-time.ts stays the definition; a
 * property test holds the two together on DuckDB):
 *
 * - a version of an event counts at t when it was known at t: known_ts <= t and t is before
 *   the next version of the same (entity, event id) became known;
 * - its event time must be at or before t;
 * - the latest value is the visible version with the greatest (event_ts, known_ts, event_id);
 *   beyond the view's TTL (t - event_ts > ttl) latest values are null;
 * - windowed aggregates are over (t - w, t], nulls skipped; an empty window gives COUNT and
 *   SUM 0, the others null; LAST is the latest non-null value in the window.
 *
 * It reads relations the caller binds (a view, a table, `read_parquet(…)`):
 * `aether_spine(row_id, entity_key, ts, label)` and, per view version,
 * `aether_history_<view>_v<version>(entity_key, event_id, event_ts, known_ts, <one column per
 * source field>)`, times as epoch milliseconds (BIGINT).
 */
export enum SqlDialect {
  DUCKDB = 'DUCKDB',
  SPARK = 'SPARK',
  TRINO = 'TRINO',
}

export interface SqlFeature {
  /** The output column's name (the feature ref). */
  ref: string;
  version: FeatureViewVersion;
  /** Index in `version.schema.features`. */
  position: number;
}

export interface SqlRelation {
  name: string;
  /** The view version it holds; null for the spine. */
  viewVersion: { view: string; version: number } | null;
  columns: { name: string; type: string }[];
}

export interface PointInTimeSql {
  sql: string;
  relations: SqlRelation[];
}

export const SPINE_RELATION = 'aether_spine';

export function historyRelation(v: FeatureViewVersion): string {
  return `aether_history_${v.viewName}_v${v.version}`;
}

interface Dialect {
  /**
   * Whether an aggregate takes ORDER BY: sums are then added in the evaluator's order, newest
   * first, so they are the evaluator's doubles bit for bit (a dataset built on the engine has
   * the same content hash as one built by the evaluator); elsewhere they may differ in the
   * last bits.
   */
  orderedAggregates: boolean;
  id(name: string): string;
  str(s: string): string;
  tuple(parts: string[]): string;
  types: { int: string; double: string; string: string; bool: string; list: string };
}

const DIALECTS: Record<SqlDialect, Dialect> = {
  [SqlDialect.DUCKDB]: {
    orderedAggregates: true,
    id: (n) => `"${n.replace(/"/g, '""')}"`,
    str: (s) => `'${s.replace(/'/g, "''")}'`,
    tuple: (p) => `ROW(${p.join(', ')})`,
    types: {
      int: 'BIGINT',
      double: 'DOUBLE',
      string: 'VARCHAR',
      bool: 'BOOLEAN',
      list: 'DOUBLE[]',
    },
  },
  [SqlDialect.TRINO]: {
    orderedAggregates: false,
    id: (n) => `"${n.replace(/"/g, '""')}"`,
    str: (s) => `'${s.replace(/'/g, "''")}'`,
    tuple: (p) => `ROW(${p.join(', ')})`,
    types: {
      int: 'BIGINT',
      double: 'DOUBLE',
      string: 'VARCHAR',
      bool: 'BOOLEAN',
      list: 'ARRAY(DOUBLE)',
    },
  },
  [SqlDialect.SPARK]: {
    orderedAggregates: false,
    id: (n) => `\`${n.replace(/`/g, '``')}\``,
    // Spark reads backslash escapes inside string literals.
    str: (s) => `'${s.replace(/\\/g, '\\\\').replace(/'/g, "\\'")}'`,
    tuple: (p) => `struct(${p.join(', ')})`,
    types: {
      int: 'BIGINT',
      double: 'DOUBLE',
      string: 'STRING',
      bool: 'BOOLEAN',
      list: 'ARRAY<DOUBLE>',
    },
  },
};

function sqlType(d: Dialect, t: FeatureType): string {
  switch (t) {
    // Ingestion takes any integral double as INT (1e300 too): a BIGINT could not hold it.
    case FeatureType.INT:
    case FeatureType.FLOAT:
      return d.types.double;
    case FeatureType.BOOL:
      return d.types.bool;
    case FeatureType.STRING:
      return d.types.string;
    case FeatureType.FLOAT_LIST:
      return d.types.list;
  }
}

/** An exact double: the shortest decimal that reads back as the same number. */
function double(d: Dialect, x: number): string {
  return `CAST(${d.str(String(x))} AS ${d.types.double})`;
}

function notExpressible(f: FeatureSpec, why: string): InvalidInputError {
  return new InvalidInputError(
    FeatureErrorCode.NOT_EXPRESSIBLE_IN_SQL,
    `feature "${f.name}": ${why}, which the SQL form of the join does not express`,
    { feature: f.name },
  );
}

/** `applyTransform` on a column of the source's type. */
function transformed(d: Dialect, f: FeatureSpec, col: string): string {
  const t: Transform = f.transform;
  switch (t.kind) {
    case 'IDENTITY':
      return col;
    case 'BIN': {
      const lower = (i: number) =>
        t.closed === 'LEFT'
          ? `${col} >= ${double(d, t.edges[i])}`
          : `${col} > ${double(d, t.edges[i])}`;
      const upper = (i: number) =>
        t.closed === 'LEFT'
          ? `${col} < ${double(d, t.edges[i + 1])}`
          : `${col} <= ${double(d, t.edges[i + 1])}`;
      const arms = t.edges.slice(0, -1).map((_, i) => `WHEN ${lower(i)} AND ${upper(i)} THEN ${i}`);
      return `(CASE ${arms.join(' ')} ELSE NULL END)`;
    }
    case 'CATEGORY_INDEX': {
      // String(raw) === category, per source type.
      const matches = (c: string): string | null => {
        switch (f.type) {
          case FeatureType.STRING:
            // A stored string never holds NUL (INVALID_TEXT), and no dialect's literal may.
            return c.includes('\u0000') ? null : `${col} = ${d.str(c)}`;
          case FeatureType.BOOL:
            return c === 'true' ? `${col}` : c === 'false' ? `NOT ${col}` : null;
          case FeatureType.INT:
          case FeatureType.FLOAT: {
            const n = Number(c);
            return c.trim() !== '' && Number.isFinite(n) && String(n) === c
              ? `${col} = ${double(d, n)}`
              : null;
          }
          case FeatureType.FLOAT_LIST:
            throw notExpressible(f, 'CATEGORY_INDEX on a list');
        }
      };
      const arms = t.categories.flatMap((c, i) => {
        const m = matches(c);
        return m ? [`WHEN ${m} THEN ${i}`] : [];
      });
      const unknown = t.categories.length;
      return `(CASE WHEN ${col} IS NULL THEN NULL ${arms.join(' ')} ELSE ${unknown} END)`;
    }
  }
}

/**
 * The columns of the relation `movedEventsSql` reads: each stored version's event, its event
 * time (as in the history relation) and whether its event may have other versions.
 */
export const VERSIONS_COLUMNS = ['entity_key', 'event_id', 'event_ts', 'candidate'] as const;

/**
 * DuckDB: one row when some event's versions do not share one event time, none otherwise. The
 * ASOF form of the join (`pointInTimeSql(…, { asof: true })`) is exact only on a history for
 * which this returns nothing. `relation` has `VERSIONS_COLUMNS`, a row per stored version, and
 * `candidate` true on at least one version of every event that has several: a base file's
 * rows with a `superseded_ts`, every row of a delta file (its `superseded_ts` knows only its
 * own file, docs/adr/0035) and every row of the log's tail (a tail row may be a new version
 * of an event in the files). Only the candidates' events are grouped; the rest is
 * scanned once for the semi-join, where grouping every event cost a hash table as large as
 * the history.
 */
export function movedEventsSql(relation: string): string {
  const r = DIALECTS[SqlDialect.DUCKDB].id(relation);
  return `WITH c AS (SELECT DISTINCT entity_key, event_id FROM ${r} WHERE candidate)
   SELECT 1 FROM ${r} h SEMI JOIN c ON h.entity_key = c.entity_key AND h.event_id = c.event_id
   GROUP BY h.entity_key, h.event_id HAVING MIN(h.event_ts) <> MAX(h.event_ts) LIMIT 1`;
}

/** An identifier quoted for the dialect. */
export function sqlIdentifier(dialect: SqlDialect, name: string): string {
  return DIALECTS[dialect].id(name);
}

/** The join for the given features, in their order, one output row per spine row. */
export function pointInTimeSql(
  features: readonly SqlFeature[],
  dialect: SqlDialect,
  opts: {
    /**
     * DuckDB only: latest values found through ASOF joins instead of every spine row's
     * versions within the TTL, so the work grows with spine rows plus history, not their
     * product (docs/adr/0034). Exact when every version of an event has the same event time
     * (the caller checks; corrections keep it); the default form is exact always.
     */
    asof?: boolean;
    /**
     * Rows in spine order (the default): a caller that places each row by its row_id itself
     * (the DuckDB engine) saves the final sort.
     */
    ordered?: boolean;
  } = {},
): PointInTimeSql {
  const d = DIALECTS[dialect];
  if (opts.asof && dialect !== SqlDialect.DUCKDB)
    throw new Error('the ASOF form of the join is DuckDB’s only');
  const versions = [...new Map(features.map((f) => [f.version.id, f.version])).values()];
  const ctes: string[] = [];
  const joins: string[] = [];
  const columnOf = new Map<SqlFeature, string>();
  const indexOf = new Map(features.map((f, i) => [f, i]));
  const relations: SqlRelation[] = [
    {
      name: SPINE_RELATION,
      viewVersion: null,
      columns: [
        { name: 'row_id', type: d.types.int },
        { name: 'entity_key', type: d.types.string },
        { name: 'ts', type: d.types.int },
        { name: 'label', type: d.types.double },
      ],
    },
  ];

  versions.forEach((v, i) => {
    const schema = v.schema;
    const { sources, positions } = eventLayout(schema);
    const src = (p: number) => d.id(`src_${p}`);
    const taken = new Set(['entity_key', 'event_id', 'event_ts', 'known_ts']);
    for (const name of sources) {
      // Spark and Trino fold names to one case, DuckDB compares them without case.
      if (taken.has(name.toLowerCase()))
        throw new InvalidInputError(
          FeatureErrorCode.NOT_EXPRESSIBLE_IN_SQL,
          `view ${v.viewName}@${v.version}: its source field "${name}" would collide with another column of its history relation, which the SQL form of the join does not express`,
          { view: v.viewName, version: v.version, field: name },
        );
      taken.add(name.toLowerCase());
    }
    const typeOf = (p: number) => schema.features[positions.indexOf(p)].type;
    relations.push({
      name: historyRelation(v),
      viewVersion: { view: v.viewName, version: v.version },
      columns: [
        { name: 'entity_key', type: d.types.string },
        { name: 'event_id', type: d.types.string },
        { name: 'event_ts', type: d.types.int },
        { name: 'known_ts', type: d.types.int },
        ...sources.map((s, p) => ({ name: s, type: sqlType(d, typeOf(p)) })),
      ],
    });
    const mine = features.filter((f) => f.version.id === v.id);
    const latest = mine.filter((f) => !schema.features[f.position].aggregation);
    const aggs = mine.filter((f) => schema.features[f.position].aggregation);
    const col = (f: SqlFeature) => `c${indexOf.get(f)}`;
    const value = (f: SqlFeature, row: string) =>
      transformed(d, schema.features[f.position], `${row}.${src(positions[f.position])}`);

    // Each version with the known time of the next version of its event (what the windows
    // and the general form's latest values need; the ASOF form's latest values do not).
    const superseded =
      aggs.length || !opts.asof
        ? `,
         LEAD(known_ts) OVER (PARTITION BY entity_key, event_id ORDER BY known_ts, event_ts) AS superseded_ts`
        : '';
    ctes.push(`h${i} AS (
  SELECT entity_key, event_id, event_ts, known_ts,
         ${sources.map((s, p) => `${d.id(s)} AS ${src(p)}`).join(', ')}${superseded}
    FROM ${d.id(historyRelation(v))}
)`);
    // A spine row's rows all share its entity: partitioning and grouping by (entity_key,
    // row_id) rather than row_id lets a distributed engine reuse the join's distribution by
    // entity instead of shuffling the joined rows again (docs/adr/0032).
    // What each spine row sees: the versions known at its time, of events at or before it and
    // not older than the TTL or the widest window (a latest value beyond the TTL is null, and
    // windows end at t − w), so the join holds no more of an entity's past than it needs.
    const ttl = schema.ttlSeconds * 1000;
    const reach = Math.max(
      latest.length && !opts.asof ? ttl : 0,
      ...aggs.map((f) => (schema.features[f.position].aggregation?.windowSeconds ?? 0) * 1000),
    );
    if (aggs.length || !opts.asof)
      ctes.push(`s${i} AS (
  SELECT s.row_id, s.ts, h.*
    FROM ${d.id(SPINE_RELATION)} s
    JOIN h${i} h ON h.entity_key = s.entity_key
   WHERE h.event_ts <= s.ts AND h.event_ts >= s.ts - ${reach} AND h.known_ts <= s.ts
     AND (h.superseded_ts IS NULL OR s.ts < h.superseded_ts)
)`);
    if (latest.length && opts.asof) {
      // Every version of an event shares its event time, and from its first availability
      // (its event time and its first known time both passed) one version of it is always
      // visible, the one learned last by then. So the latest event at t has the greatest event
      // time among versions available by t (a running maximum, found by ASOF), and of the
      // versions at that event time known by t, the one learned last, then the greatest event
      // id, is the evaluator's latest visible version.
      ctes.push(`m${i} AS (
  SELECT entity_key, avail,
         MAX(MAX(event_ts)) OVER (PARTITION BY entity_key ORDER BY avail) AS newest
    FROM (SELECT entity_key, event_ts, GREATEST(event_ts, known_ts) AS avail FROM h${i})
   GROUP BY entity_key, avail
)`);
      ctes.push(`n${i} AS (
  SELECT s.row_id, s.entity_key, s.ts, m.newest
    FROM ${d.id(SPINE_RELATION)} s
    ASOF JOIN m${i} m ON s.entity_key = m.entity_key AND s.ts >= m.avail
)`);
      ctes.push(`l${i} AS (
  SELECT row_id, event_ts AS as_of${latest.map((f) => `, ${value(f, 'x')} AS ${col(f)}`).join('')}
    FROM (SELECT n.row_id, h.*, ROW_NUMBER() OVER (
                   PARTITION BY n.row_id ORDER BY h.known_ts DESC, h.event_id DESC) AS rn
            FROM n${i} n
            JOIN h${i} h ON h.entity_key = n.entity_key AND h.event_ts = n.newest
           WHERE h.known_ts <= n.ts) x
   WHERE rn = 1
)`);
    } else if (latest.length) {
      ctes.push(`l${i} AS (
  SELECT row_id, event_ts AS as_of${latest.map((f) => `, ${value(f, 'x')} AS ${col(f)}`).join('')}
    FROM (SELECT v.*, ROW_NUMBER() OVER (
                   PARTITION BY entity_key, row_id
                   ORDER BY event_ts DESC, known_ts DESC, event_id DESC) AS rn
            FROM s${i} v) x
   WHERE rn = 1
)`);
    }
    if (latest.length) {
      joins.push(`LEFT JOIN l${i} ON l${i}.row_id = s.row_id`);
      for (const f of latest)
        columnOf.set(f, `CASE WHEN s.ts - l${i}.as_of > ${ttl} THEN NULL ELSE l${i}.${col(f)} END`);
    }
    if (aggs.length) {
      const exprs = aggs.map((f) => {
        const spec = schema.features[f.position];
        const agg = spec.aggregation as NonNullable<FeatureSpec['aggregation']>;
        const inWindow = `v.event_ts > v.ts - ${agg.windowSeconds * 1000}`;
        const x = `CASE WHEN ${inWindow} THEN ${value(f, 'v')} END`;
        // In doubles, as the evaluator adds: from the newest version back, where the
        // dialect can say so.
        const sum = `SUM(CAST(${x} AS ${d.types.double})${
          d.orderedAggregates ? ' ORDER BY v.event_ts DESC, v.known_ts DESC, v.event_id DESC' : ''
        })`;
        switch (agg.fn) {
          case AggregationFn.COUNT:
            return `COUNT(${x})`;
          case AggregationFn.SUM:
            return sum;
          case AggregationFn.MEAN:
            // The evaluator's sum / count (null when the window holds no value).
            return d.orderedAggregates
              ? `${sum} / COUNT(${x})`
              : `AVG(CAST(${x} AS ${d.types.double}))`;
          case AggregationFn.MIN:
            return `MIN(${x})`;
          case AggregationFn.MAX:
            return `MAX(${x})`;
          case AggregationFn.LAST: {
            const key = d.tuple(['v.event_ts', 'v.known_ts', 'v.event_id']);
            return `MAX_BY(${x}, CASE WHEN ${inWindow} AND ${value(f, 'v')} IS NOT NULL THEN ${key} END)`;
          }
        }
      });
      ctes.push(`a${i} AS (
  SELECT row_id${aggs.map((f, k) => `, ${exprs[k]} AS ${col(f)}`).join('')}
    FROM s${i} v
   GROUP BY entity_key, row_id
)`);
      joins.push(`LEFT JOIN a${i} ON a${i}.row_id = s.row_id`);
      for (const f of aggs) {
        const fn = schema.features[f.position].aggregation?.fn;
        const empty = fn === AggregationFn.COUNT || fn === AggregationFn.SUM;
        columnOf.set(f, empty ? `COALESCE(a${i}.${col(f)}, 0)` : `a${i}.${col(f)}`);
      }
    }
  });

  const select = features.map((f) => `${columnOf.get(f)} AS ${d.id(f.ref)}`);
  const sql = `WITH
${ctes.join(',\n')}
SELECT s.row_id, s.entity_key, s.ts, s.label${select.map((c) => `,\n       ${c}`).join('')}
  FROM ${d.id(SPINE_RELATION)} s
${joins.map((j) => `  ${j}`).join('\n')}${opts.ordered === false ? '' : '\n ORDER BY s.row_id'}
`;
  return { sql, relations };
}
