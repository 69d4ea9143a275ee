import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { type SpineRow } from '../src/domain/features/dataset';
import { duckDbGroupBytes } from '../src/infra/config/config';
import { PostgresOfflineStore } from '../src/infra/db/features/offline-store';
import { bucketOf } from '../src/infra/db/features/segments';
import { writeParquet } from '../src/infra/datasets/parquet';
import { round, writeResult } from './support/bench';
import { type PitJoinJob, type PitJoinResult } from './support/pit-join-child';
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
 * Each join runs in a process of its own (support/pit-join-child.ts), the evaluator and the
 * engine with the api started in it as a server has it, so its peak RSS (VmHWM) is its
 * own: the api, the spine, the join and the columns it returns. Per size: seconds and peak RSS
 * of each, `rss_before_join_mib_<size>` (the engine's process with the api up and the spine
 * loaded), `ratio_vs_duckdb_<size>` (the engine over plain DuckDB) and
 * `results_identical_<size>`: 1 when the three joins' columns have the same digest, value for
 * value; and the engine's seconds per phase, `engine_<phase>_seconds_<size>` (JoinPhase). Sizes: PIT_SCALE_SIZES (feature rows, default 1M,10M,50M); labels: 1M, 5M from 50M
 * rows. The memory limit of both DuckDB joins: PIT_SCALE_MEMORY_MB (default 2048); the
 * engine's DATASET_DUCKDB_GROUP_MB: PIT_SCALE_GROUP_MB (default: the engine's, an eighth of
 * the memory limit), reported as `group_mib`, and the groups each size made,
 * `engine_groups_<size>`.
 */
const ENTITIES = 100_000;
const MEMORY_LIMIT_MB = Number(process.env.PIT_SCALE_MEMORY_MB ?? 2048);
const GROUP_MB = Number(process.env.PIT_SCALE_GROUP_MB ?? -1);
const FILE_ROWS = 10_000_000;

function label(n: number): string {
  return n >= 1e6 && n % 1e6 === 0 ? `${n / 1e6}m` : String(n);
}

const execFileAsync = promisify(execFile);

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
  const loadStart = process.hrtime.bigint();
  for (const key of keys) {
    const [report] = await s.backfill.file(name, { artifactKey: key, format: null }, 'bench');
    if (report.quarantined) throw new Error(`backfill: ${JSON.stringify(report)}`);
    await s.artifacts.delete(key);
  }
  const loadSeconds = Number(process.hrtime.bigint() - loadStart) / 1e9;
  const refs = Array.from({ length: FIELDS }, (_, f) => `${name}:f${f}`);
  const [version] = await s.featureRegistry.resolveRefs(refs.slice(0, 1));
  const [table] = await new PostgresOfflineStore(p.app.db, s.artifacts).openTables([
    version.version.id,
  ]);
  const work = fs.mkdtempSync(path.join(os.tmpdir(), 'aether-pit-scale-'));
  try {
    const spineFile = path.join(work, 'spine.json');
    fs.writeFileSync(
      spineFile,
      JSON.stringify({ entity: spine.map((r) => r.entityKey), ts: spine.map((r) => r.ts) }),
    );
    spine.length = 0;
    const job = (join: PitJoinJob['join']): PitJoinJob => ({
      join,
      env: p.env,
      refs,
      spineFile,
      memoryLimitMb: MEMORY_LIMIT_MB,
      groupMb: GROUP_MB,
      // As many threads as plain DuckDB takes by default, so the two compare like for like (a
      // server leaves one core to its event loop: DuckDbJoinOptions.threads).
      threads: os.availableParallelism(),
      tempDir: path.join(work, join),
      files: table.files.map((f) => new URL(f.uri).pathname),
    });
    const evaluator = await inChild(job('evaluator'), work);
    const engine = await inChild(job('engine'), work);
    const plain = await inChild(job('asof'), work);
    const n = label(rows);
    return {
      [`feature_rows_${n}`]: featureRows,
      [`label_rows_${n}`]: labels,
      [`load_seconds_${n}`]: round(loadSeconds, 1),
      [`pit_seconds_${n}`]: round(engine.seconds, 2),
      [`peak_rss_mib_${n}`]: Math.round(engine.peakRssMib),
      [`rss_before_join_mib_${n}`]: Math.round(engine.rssBeforeMib),
      [`evaluator_pit_seconds_${n}`]: round(evaluator.seconds, 2),
      [`evaluator_peak_rss_mib_${n}`]: Math.round(evaluator.peakRssMib),
      [`duckdb_asof_seconds_${n}`]: round(plain.seconds, 2),
      [`duckdb_asof_peak_rss_mib_${n}`]: Math.round(plain.peakRssMib),
      [`ratio_vs_duckdb_${n}`]: round(engine.seconds / plain.seconds, 2),
      [`evaluator_ratio_vs_duckdb_${n}`]: round(evaluator.seconds / plain.seconds, 2),
      ...Object.fromEntries(
        Object.entries(engine.phases).map(([k, v]) => [`engine_${k}_seconds_${n}`, round(v, 2)]),
      ),
      [`engine_groups_${n}`]: engine.groups,
      [`results_identical_${n}`]:
        engine.digest === evaluator.digest && plain.digest === evaluator.digest ? 1 : 0,
    };
  } finally {
    fs.rmSync(work, { recursive: true, force: true });
  }
}

/**
 * Runs one join in a process of its own (support/pit-join-child.ts), at most an hour. The
 * evaluator's gets this process's flags (its heap limit: it holds buckets of history in the
 * heap); the DuckDB joins run with Node's defaults, as a server started by `npm start` does.
 */
async function inChild(job: PitJoinJob, work: string): Promise<PitJoinResult> {
  const file = path.join(work, `${job.join}.json`);
  fs.writeFileSync(file, JSON.stringify(job));
  const flags = job.join === 'evaluator' ? process.execArgv : [];
  const { stdout } = await execFileAsync(
    process.execPath,
    [...flags, path.join(__dirname, 'support', 'pit-join-child.js'), file],
    { timeout: 3_600_000, maxBuffer: 1 << 20 },
  );
  return JSON.parse(stdout.trim().split('\n').pop() as string) as PitJoinResult;
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
      group_mib: duckDbGroupBytes(MEMORY_LIMIT_MB, GROUP_MB) / 2 ** 20,
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
