import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { DuckDBInstance } from '@duckdb/node-api';
import {
  AggregationFn,
  FeatureType,
  type FeatureViewVersion,
} from '../src/domain/features/feature-definition';
import {
  historyRelation,
  pointInTimeSql,
  SPINE_RELATION,
  SqlDialect,
} from '../src/domain/features/point-in-time-sql';
import { featureSpec } from '../test/support/datasets';
import { distributableShape, planShape } from '../test/support/plan-shape';
import { round, writeResult } from './support/bench';
import { DAY, FIELDS, floatFeatures, T0 } from './support/synthetic-history';

/**
 * features-pit-plan: the plan shapes behind the distributed sizing (docs/adr/0032), at the
 * scale benchmark's largest size. A history of the shape features-pit-scale joins at 50M
 * (100k entities, 10 FLOAT sources, about 2 % of events corrected, 90 days) is written as
 * Parquet by DuckDB itself, with a spine of 5M labels; then the join of its ten latest values
 * and three windows over one source is planned (EXPLAIN, not run) twice: as `datasetSql`
 * gives it for Trino, which DuckDB can run (Spark's quoting it cannot read), and for DuckDB.
 * DuckDB plans with the tables' real row counts and statistics, so this is the plan at size,
 * not at the property test's few rows. Figures: whether the two shapes are identical, and
 * whether the shape is one a distributed engine runs without a broadcast or a nested loop
 * (every join an equi-join on the entity or the label row, every window partitioned by the
 * entity). Sizes: PIT_PLAN_ROWS (default 50M) and PIT_PLAN_LABELS (default 5M).
 */
const ENTITIES = 100_000;
const SPAN = 90 * DAY;

export async function main(): Promise<void> {
  const rows = Number(process.env.PIT_PLAN_ROWS ?? 50_000_000);
  const labels = Number(process.env.PIT_PLAN_LABELS ?? 5_000_000);
  const work = fs.mkdtempSync(path.join(os.tmpdir(), 'aether-pit-plan-'));
  const instance = await DuckDBInstance.create(':memory:', {
    memory_limit: '2048MB',
    temp_directory: path.join(work, 'spill'),
  });
  const duck = await instance.connect();
  try {
    const file = path.join(work, 'history.parquet');
    const started = process.hrtime.bigint();
    // Row i holds event ev of entity ev % ENTITIES at a pseudo-random time; one row in fifty
    // is a correction of the row before it (same entity, id and time, learned a minute later).
    await duck.run(`
      COPY (
        SELECT 'e' || (ev % ${ENTITIES}) AS entity_key, 'r' || ev AS event_id,
               ${T0} + (hash(ev) % ${SPAN})::BIGINT AS event_ts,
               ${T0} + (hash(ev) % ${SPAN})::BIGINT + (CASE WHEN fix THEN 60000 ELSE 0 END) AS known_ts,
               ${Array.from({ length: FIELDS }, (_, f) => `round(random() * 1000, 3) AS f${f}`).join(', ')}
          FROM (SELECT i % 50 = 49 AS fix, CASE WHEN i % 50 = 49 THEN i - 1 ELSE i END AS ev
                  FROM range(${rows}) t(i))
      ) TO '${file}' (FORMAT PARQUET)`);
    const generateSeconds = Number(process.hrtime.bigint() - started) / 1e9;
    const version = scaleVersion();
    await duck.run(
      `CREATE VIEW ${historyRelation(version)} AS SELECT * FROM read_parquet('${file}')`,
    );
    await duck.run(`
      CREATE TABLE spine_table AS
        SELECT i::BIGINT AS row_id, 'e' || (hash(i * 7 + 1) % ${ENTITIES}) AS entity_key,
               ${T0} + (hash(i * 7 + 3) % ${SPAN})::BIGINT AS ts, NULL::DOUBLE AS label
          FROM range(${labels}) t(i)`);
    await duck.run(`CREATE VIEW ${SPINE_RELATION} AS SELECT * FROM spine_table`);

    const features = version.schema.features.map((_f, position) => ({
      ref: `scale@1:${version.schema.features[position].name}`,
      version,
      position,
    }));
    const t = process.hrtime.bigint();
    const duckShape = await planShape(duck, pointInTimeSql(features, SqlDialect.DUCKDB).sql);
    const trinoShape = await planShape(duck, pointInTimeSql(features, SqlDialect.TRINO).sql);
    const explainSeconds = Number(process.hrtime.bigint() - t) / 1e9;
    const { problems } = distributableShape(duckShape);
    if (problems.length) console.log('not distributable:', problems);
    if (JSON.stringify(duckShape) !== JSON.stringify(trinoShape))
      console.log('shapes differ:', { duckdb: duckShape, trino: trinoShape });
    const tag = (n: number) => (n >= 1e6 ? `${Math.round(n / 1e6)}m` : `${Math.round(n / 1e3)}k`);
    writeResult('features-pit-plan', {
      history_rows: rows,
      labels,
      generate_seconds: round(generateSeconds, 1),
      explain_seconds: round(explainSeconds, 2),
      [`plan_operators_${tag(rows)}`]: duckShape.length,
      [`plan_hash_joins_${tag(rows)}`]: duckShape.filter((l) => l.includes('HASH_JOIN')).length,
      [`plan_windows_${tag(rows)}`]: duckShape.filter((l) => l.includes('WINDOW')).length,
      [`plan_shape_identical_${tag(rows)}`]:
        JSON.stringify(duckShape) === JSON.stringify(trinoShape) ? 1 : 0,
      [`plan_distributable_${tag(rows)}`]: problems.length ? 0 : 1,
    });
  } finally {
    duck.closeSync();
    instance.closeSync();
    fs.rmSync(work, { recursive: true, force: true });
  }
}

/** The scale benchmark's view (ten FLOAT sources, latest values) and three windows over f0. */
function scaleVersion(): FeatureViewVersion {
  const window = (name: string, fn: AggregationFn, days: number) =>
    featureSpec(name, FeatureType.FLOAT, {
      source: 'f0',
      aggregation: { fn, windowSeconds: days * 86_400 },
    });
  return {
    id: 'scale-v1',
    viewId: 'scale',
    viewName: 'scale',
    version: 1,
    fingerprint: 'scale',
    createdAt: new Date(0),
    retiredAt: null,
    schema: {
      entity: 'thing',
      source: 'scale_src',
      ttlSeconds: 400 * 86_400,
      allowedLatenessSeconds: 3600,
      features: [
        ...floatFeatures(),
        window('f0_sum_7d', AggregationFn.SUM, 7),
        window('f0_mean_30d', AggregationFn.MEAN, 30),
        window('f0_count_1d', AggregationFn.COUNT, 1),
      ],
    },
  };
}
