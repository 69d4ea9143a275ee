import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { DuckDBInstance } from '@duckdb/node-api';
import { columnValue, type FeatureColumn, type SpineRow } from '../src/domain/features/dataset';
import { PostgresOfflineStore } from '../src/infra/db/features/offline-store';
import { DuckDbPointInTimeEngine } from '../src/infra/duckdb/point-in-time-engine';
import { bucketOf } from '../src/infra/db/features/segments';
import { writeParquet } from '../src/infra/datasets/parquet';
import { round, writeResult } from './support/bench';
import { startBenchPlatform, type BenchPlatform } from './support/platform';
import { asTable, DAY, FIELDS, floatFeatures, history, rng, T0 } from './support/synthetic-history';

/**
 * features-pit-scale: the point-in-time join at growing history sizes (issue 18, item 3):
 * 100k entities, 10 FLOAT features, about 2% of events corrected; history loaded by a backfill
 * (so it lies in segments and the open tables' Parquet files), then one spine joined by
 *
 * - the evaluator (`DatasetService.pointInTimeJoin`, the JavaScript join);
 * - the DuckDB engine (ADR 0034: `datasetSql` over the open tables, memory limit set);
 * - plain DuckDB: two ASOF joins over the same Parquet files (the latest event at or before
 *   the label among first versions, then its version known at the label time), under the
 *   same memory limit and on the same threads: the baseline.
 *
 * Per size: seconds and peak RSS (this whole process, the api and the harness included, sampled
 * every 20 ms while each runs) of each,
 * `ratio_vs_duckdb_<size>` (the engine over plain DuckDB), and `results_identical_<size>`:
 * 1 when the engine's columns equal the evaluator's value for value, and the baseline's agree.
 * Sizes: PIT_SCALE_SIZES (feature rows, default 1M,10M,50M); labels: 1M, 5M from 50M rows.
 */
const ENTITIES = 100_000;
const MEMORY_LIMIT_MB = 4096;
const FILE_ROWS = 10_000_000;

function label(n: number): string {
  return n >= 1e6 && n % 1e6 === 0 ? `${n / 1e6}m` : String(n);
}

/** Runs `work`, sampling this process's RSS; its time and the highest RSS seen. */
async function measured<T>(
  work: () => Promise<T>,
): Promise<{ value: T; s: number; rssMib: number }> {
  let peak = process.memoryUsage.rss();
  const timer = setInterval(() => (peak = Math.max(peak, process.memoryUsage.rss())), 20);
  const t = process.hrtime.bigint();
  try {
    const value = await work();
    peak = Math.max(peak, process.memoryUsage.rss());
    return { value, s: Number(process.hrtime.bigint() - t) / 1e9, rssMib: peak / 2 ** 20 };
  } finally {
    clearInterval(timer);
  }
}

/**
 * Writes the history as Parquet files of at most about FILE_ROWS rows (Arrow's string builder
 * and parquet-wasm's 4 GiB both cap one file), each holding whole entity buckets, so each
 * backfill writes buckets of its own and none rewrites another's; returns their keys and the
 * spine: random entities and times, one label in ten exactly on one of its entity's event
 * times. The generated rows are dropped on return: the api never holds them, and this process
 * need not while it measures.
 */
async function stageHistory(
  p: BenchPlatform,
  name: string,
  perEntity: number,
  labels: number,
): Promise<{ featureRows: number; spine: SpineRow[]; keys: string[] }> {
  const byBucket = new Map<number, number[]>();
  for (let e = 0; e < ENTITIES; e++) {
    const b = bucketOf(`e${e}`);
    const list = byBucket.get(b);
    if (list) list.push(e);
    else byBucket.set(b, [e]);
  }
  const buckets = [...byBucket.keys()].sort((x, y) => x - y);
  const perFile = Math.max(
    1,
    Math.floor((FILE_ROWS / (perEntity * 1.03 * ENTITIES)) * buckets.length),
  );
  const r = rng(7);
  const spine: SpineRow[] = [];
  const keys: string[] = [];
  let featureRows = 0;
  let entitiesDone = 0;
  for (let i = 0; i < buckets.length; i += perFile) {
    const ids = buckets.slice(i, i + perFile).flatMap((b) => byBucket.get(b) as number[]);
    const h = history(ids, perEntity);
    featureRows += h.n;
    entitiesDone += ids.length;
    const mine = Math.round((labels * entitiesDone) / ENTITIES) - spine.length;
    for (let k = 0; k < mine; k++) {
      if (k % 10 === 0) {
        const at = Math.floor(r() * h.n);
        spine.push({ entityKey: h.entity[at], ts: h.eventTs[at], label: r() < 0.3 ? 1 : 0 });
      } else
        spine.push({
          entityKey: `e${ids[Math.floor(r() * ids.length)]}`,
          ts: T0 + Math.floor((r() * 90 * DAY) / 1000) * 1000,
          label: r() < 0.3 ? 1 : 0,
        });
    }
    const key = `uploads/${name}-${keys.length}.parquet`;
    await p.app.services.artifacts.put(key, await writeParquet(asTable(h)));
    keys.push(key);
  }
  // Spine rows in no particular order.
  for (let i = spine.length - 1; i > 0; i--) {
    const j = Math.floor(r() * (i + 1));
    [spine[i], spine[j]] = [spine[j], spine[i]];
  }
  return { featureRows, spine, keys };
}

async function runSize(p: BenchPlatform, rows: number): Promise<Record<string, number>> {
  const s = p.app.services;
  const name = `scale_${label(rows)}`;
  const perEntity = Math.max(1, Math.round(rows / ENTITIES / 1.02));
  const labels = rows >= 50_000_000 ? 5_000_000 : 1_000_000;

  // The history as a Parquet file in the artifact store, loaded by a backfill.
  const { featureRows, spine, keys } = await stageHistory(p, name, perEntity, labels);
  await s.featureRegistry.createView({
    name,
    entity: 'thing',
    source: `${name}_src`,
    ttlSeconds: 400 * 86_400,
    allowedLatenessSeconds: 3600,
    features: floatFeatures(),
  });
  // Each file a backfill of its own, in turn, into buckets no other file holds.
  const load = await measured(async () => {
    for (const key of keys) {
      const [report] = await s.backfill.file(name, { artifactKey: key, format: null }, 'bench');
      if (report.quarantined) throw new Error(`backfill: ${JSON.stringify(report)}`);
      await s.artifacts.delete(key);
    }
  });
  const refs = await s.featureRegistry.resolveRefs(
    Array.from({ length: FIELDS }, (_, f) => `${name}:f${f}`),
  );

  const evaluator = await measured(() =>
    s.datasets.pointInTimeJoin(
      { id: '00000000-0000-0000-0000-000000000000', rowCount: spine.length },
      refs,
      spine,
    ),
  );
  const tempDir = fs.mkdtempSync(path.join(os.tmpdir(), 'aether-pit-scale-'));
  const offline = new PostgresOfflineStore(p.app.db, s.artifacts);
  // As many threads as plain DuckDB takes by default, so the two compare like for like (a
  // server leaves one core to its event loop: DuckDbJoinOptions.threads).
  const engine = new DuckDbPointInTimeEngine(offline, s.artifacts, {
    memoryLimitMb: MEMORY_LIMIT_MB,
    tempDir,
    threads: os.availableParallelism(),
  });
  const duckdbEngine = await measured(() => engine.join(refs, spine));
  const identical = sameColumns(evaluator.value, duckdbEngine.value, spine.length);

  // Plain DuckDB over the same Parquet files: the baseline.
  const [table] = await offline.openTables([refs[0].version.id]);
  const files = table.files.map((f) => `'${new URL(f.uri).pathname}'`).join(', ');
  const plain = await measured(async () => {
    const instance = await DuckDBInstance.create(':memory:', {
      memory_limit: `${MEMORY_LIMIT_MB}MB`,
    });
    const duck = await instance.connect();
    try {
      await duck.run('CREATE TABLE labels (i INTEGER, entity VARCHAR, ts BIGINT)');
      const a = await duck.createAppender('labels');
      spine.forEach((l, i) => {
        a.appendInteger(i);
        a.appendVarchar(l.entityKey);
        a.appendBigInt(BigInt(l.ts));
        a.endRow();
      });
      a.closeSync();
      const res = await duck.runAndReadAll(`
        WITH feat AS (
          SELECT entity_key AS entity, event_id, epoch_ms(event_ts) AS event_ts,
                 epoch_ms(known_ts) AS created_ts, ${Array.from({ length: FIELDS }, (_, j) => `f${j}`).join(', ')}
            FROM read_parquet([${files}])),
        firsts AS (SELECT entity, event_id, event_ts FROM feat WHERE created_ts = event_ts),
        latest AS (
          SELECT l.i, l.entity, l.ts, e.event_id
          FROM labels l ASOF LEFT JOIN firsts e ON l.entity = e.entity AND l.ts >= e.event_ts)
        SELECT a.i, ${Array.from({ length: FIELDS }, (_, j) => `v.f${j}`).join(', ')}
        FROM latest a ASOF LEFT JOIN feat v
          ON a.entity = v.entity AND a.event_id = v.event_id AND a.ts >= v.created_ts
        ORDER BY a.i`);
      return res.getColumns().slice(1) as (number | null)[][];
    } finally {
      duck.closeSync();
      instance.closeSync();
    }
  });
  fs.rmSync(tempDir, { recursive: true, force: true });
  const baselineAgrees = evaluator.value.every((c, j) =>
    plain.value[j].every((v, i) => Object.is(columnValue(c, i), v)),
  );

  const n = label(rows);
  return {
    [`feature_rows_${n}`]: featureRows,
    [`label_rows_${n}`]: labels,
    [`load_seconds_${n}`]: round(load.s, 1),
    [`pit_seconds_${n}`]: round(duckdbEngine.s, 2),
    [`peak_rss_mib_${n}`]: Math.round(duckdbEngine.rssMib),
    [`evaluator_pit_seconds_${n}`]: round(evaluator.s, 2),
    [`evaluator_peak_rss_mib_${n}`]: Math.round(evaluator.rssMib),
    [`duckdb_asof_seconds_${n}`]: round(plain.s, 2),
    [`duckdb_asof_peak_rss_mib_${n}`]: Math.round(plain.rssMib),
    [`ratio_vs_duckdb_${n}`]: round(duckdbEngine.s / plain.s, 2),
    [`evaluator_ratio_vs_duckdb_${n}`]: round(evaluator.s / plain.s, 2),
    [`results_identical_${n}`]: identical && baselineAgrees ? 1 : 0,
  };
}

function sameColumns(a: FeatureColumn[], b: FeatureColumn[], rows: number): boolean {
  return a.every((c, j) => {
    for (let i = 0; i < rows; i++)
      if (!Object.is(columnValue(c, i), columnValue(b[j], i))) return false;
    return true;
  });
}

export async function main(): Promise<void> {
  const sizes = (process.env.PIT_SCALE_SIZES ?? '1000000,10000000,50000000')
    .split(',')
    .map((x) => Number(x.trim()));
  const p = await startBenchPlatform('features_pit_scale', {
    FEATURE_STREAM_CONSUMER: 'off',
    OFFLINE_COMPACTION_INTERVAL_MS: '0',
  });
  try {
    await p.app.services.featureRegistry.createEntity({ name: 'thing', joinKeys: ['id'] });
    let figures: Record<string, number> = {
      memory_limit_mib: MEMORY_LIMIT_MB,
      engine_threads: os.availableParallelism(),
    };
    // Written after each size: a larger one that fails leaves the smaller ones' figures.
    for (const rows of sizes) {
      figures = { ...figures, ...(await runSize(p, rows)) };
      writeResult('features-pit-scale', figures);
    }
  } finally {
    await p.close();
  }
}
