import { Client } from 'pg';
import { from as copyFrom } from 'pg-copy-streams';
import { writeParquet } from '../src/infra/datasets/parquet';
import { median, round, scale, writeResult } from './support/bench';
import { startBenchPlatform } from './support/platform';
import { asTable, FIELDS, floatFeatures, history, type History } from './support/synthetic-history';

/**
 * features-backfill: a history of 5M rows (100k entities × 50 events, 10 FLOAT fields, about
 * 2% of events corrected by a later version) as a Parquet file in the artifact store, loaded
 * by `backfillFeatures(file)`: read, validated, judged against the stored history, written
 * into columnar segments, the online store offered the newest. Beside it, in the same run,
 * PostgreSQL COPY of the same rows (as CSV) into a plain table with no index: what the
 * database alone takes to store them row by row.
 */
/** COPY … FROM STDIN (CSV) of the same rows, generated as it streams. */
async function copyRows(url: string, schema: string, h: History): Promise<number> {
  const c = new Client({ connectionString: url });
  await c.connect();
  try {
    await c.query(`SET search_path TO "${schema}"`);
    await c.query('DROP TABLE IF EXISTS copy_baseline');
    await c.query(
      `CREATE TABLE copy_baseline (entity_key text, event_id text, event_ts timestamptz, known_at timestamptz, ${Array.from({ length: FIELDS }, (_, f) => `f${f} float8`).join(', ')})`,
    );
    const start = process.hrtime.bigint();
    const stream = c.query(copyFrom('COPY copy_baseline FROM STDIN (FORMAT csv)'));
    const done = new Promise<void>((resolve, reject) => {
      stream.on('finish', resolve);
      stream.on('error', reject);
    });
    for (let i = 0; i < h.n; i += 10_000) {
      let chunk = '';
      for (let k = i; k < Math.min(i + 10_000, h.n); k++) {
        chunk += `${h.entity[k]},${h.id[k]},${new Date(h.eventTs[k]).toISOString()},${new Date(h.knownAt[k]).toISOString()}`;
        for (let f = 0; f < FIELDS; f++) chunk += `,${h.fields[f][k]}`;
        chunk += '\n';
      }
      if (!stream.write(chunk)) await new Promise((r) => stream.once('drain', r));
    }
    stream.end();
    await done;
    return Number(process.hrtime.bigint() - start) / 1e9;
  } finally {
    await c.end();
  }
}

export async function main(): Promise<void> {
  const sc = scale();
  const repeats = 3;
  let h: History | null = history(Math.round(100_000 * sc), 49);
  const p = await startBenchPlatform('features_backfill', {
    FEATURE_STREAM_CONSUMER: 'off',
    OFFLINE_COMPACTION_INTERVAL_MS: '0',
  });
  try {
    const s = p.app.services;
    const rows = h.n;
    const parquet = await writeParquet(asTable(h));
    await s.artifacts.put('uploads/history.parquet', parquet);
    const copies: number[] = [];
    for (let i = 0; i < repeats; i++)
      copies.push(await copyRows(p.env.DATABASE_URL, p.env.DATABASE_SCHEMA, h));
    // The generated rows are the harness's: the api process that loads the file never holds
    // them, and neither does this one while it times the load.
    h = null;
    await s.featureRegistry.createEntity({ name: 'thing', joinKeys: ['id'] });
    const ours: number[] = [];
    let report = null;
    for (let i = 0; i < repeats; i++) {
      // A fresh view each time: every run loads the whole history into an empty version.
      await s.featureRegistry.createView({
        name: `hist${i}`,
        entity: 'thing',
        source: `hist${i}_src`,
        ttlSeconds: 400 * 86_400,
        allowedLatenessSeconds: 3600,
        features: floatFeatures(),
      });
      const start = process.hrtime.bigint();
      [report] = await s.backfill.file(
        `hist${i}`,
        { artifactKey: 'uploads/history.parquet', format: null },
        'bench',
      );
      ours.push(Number(process.hrtime.bigint() - start) / 1e9);
      if (report.accepted !== rows) throw new Error(`backfill: ${JSON.stringify(report)}`);
    }
    const seconds = median(ours);
    const copySeconds = median(copies);
    writeResult('features-backfill', {
      rows,
      parquet_mb: round(parquet.length / 2 ** 20, 1),
      seconds: round(seconds, 2),
      rows_per_second: round(rows / seconds, 0),
      corrections: report?.corrections ?? 0,
      postgres_copy_seconds: round(copySeconds, 2),
      postgres_copy_rows_per_second: round(rows / copySeconds, 0),
      ratio_vs_postgres_copy: round(copySeconds / seconds, 2),
    });
  } finally {
    await p.close();
  }
}
