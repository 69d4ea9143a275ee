import {
  Field,
  Float64,
  makeVector,
  Schema,
  Table,
  TimestampMillisecond,
  Utf8,
  vectorFromArray,
} from 'apache-arrow';
import { Client } from 'pg';
import { from as copyFrom } from 'pg-copy-streams';
import { FeatureType } from '../src/domain/features/feature-definition';
import { writeParquet } from '../src/infra/datasets/parquet';
import { median, round, scale, writeResult } from './support/bench';
import { startBenchPlatform } from './support/platform';

/**
 * features-backfill: a history of 5M rows (100k entities × 50 events, 10 FLOAT fields, about
 * 2% of events corrected by a later version) as a Parquet file in the artifact store, loaded
 * by `backfillFeatures(file)`: read, validated, judged against the stored history, written
 * into columnar segments, the online store offered the newest. Beside it, in the same run,
 * PostgreSQL COPY of the same rows (as CSV) into a plain table with no index: what the
 * database alone takes to store them row by row.
 */
const FIELDS = 10;
const DAY = 86_400_000;
const T0 = Date.parse('2026-01-01T00:00:00Z');

interface History {
  n: number;
  entity: string[];
  id: string[];
  eventTs: Float64Array;
  knownAt: Float64Array;
  fields: Float64Array[];
}

function history(entities: number, perEntity: number): History {
  let a = 42;
  const r = () => {
    a = (Math.imul(a ^ (a >>> 15), 2246822519) + 0x9e3779b9) >>> 0;
    return a / 4294967296;
  };
  const cap = Math.ceil(entities * perEntity * 1.03);
  const h: History = {
    n: 0,
    entity: new Array<string>(cap),
    id: new Array<string>(cap),
    eventTs: new Float64Array(cap),
    knownAt: new Float64Array(cap),
    fields: Array.from({ length: FIELDS }, () => new Float64Array(cap)),
  };
  const push = (e: string, id: string, ts: number, known: number) => {
    h.entity[h.n] = e;
    h.id[h.n] = id;
    h.eventTs[h.n] = ts;
    h.knownAt[h.n] = known;
    for (let f = 0; f < FIELDS; f++) h.fields[f][h.n] = Math.round(r() * 1e6) / 1e3;
    h.n++;
  };
  const span = 90 * DAY;
  for (let e = 0; e < entities; e++) {
    const key = `e${e}`;
    for (let k = 0; k < perEntity; k++) {
      const ts = T0 + Math.floor(((k + r() * 0.9) * span) / perEntity / 1000) * 1000;
      push(key, `${key}-${k}`, ts, ts);
      // A correction of the same event, learned 1-60 s later.
      if (r() < 0.02 && h.n < cap)
        push(key, `${key}-${k}`, ts, ts + (1 + Math.floor(r() * 60)) * 1000);
    }
  }
  return h;
}

function asTable(h: History): Table {
  const fields = [
    new Field('entity_key', new Utf8(), false),
    new Field('event_id', new Utf8(), false),
    new Field('event_ts', new TimestampMillisecond(), false),
    new Field('known_at', new TimestampMillisecond(), false),
    ...Array.from({ length: FIELDS }, (_, f) => new Field(`f${f}`, new Float64(), false)),
  ];
  return new Table(new Schema(fields), {
    entity_key: vectorFromArray(h.entity.slice(0, h.n), new Utf8()),
    event_id: vectorFromArray(h.id.slice(0, h.n), new Utf8()),
    event_ts: vectorFromArray(Array.from(h.eventTs.subarray(0, h.n)), new TimestampMillisecond()),
    known_at: vectorFromArray(Array.from(h.knownAt.subarray(0, h.n)), new TimestampMillisecond()),
    ...Object.fromEntries(h.fields.map((col, f) => [`f${f}`, makeVector(col.subarray(0, h.n))])),
  });
}

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
        features: Array.from({ length: FIELDS }, (_, f) => ({
          name: `f${f}`,
          type: FeatureType.FLOAT,
          source: `f${f}`,
          transform: { kind: 'IDENTITY' as const },
          aggregation: null,
          validation: {},
        })),
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
