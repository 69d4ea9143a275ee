import { columnValue, type FeatureColumn } from '../src/domain/features/dataset';
import { DuckDBInstance } from '@duckdb/node-api';
import { type FeatureValue } from '../src/domain/features/feature-definition';
import { readFlights } from '../src/infra/datasets/flights';
import { median, round, scale, writeResult } from './support/bench';
import { startBenchPlatform, type BenchPlatform } from './support/platform';
import { FIELDS, floatFeatures, rng } from './support/synthetic-history';

/**
 * features-pit: a point-in-time join of label rows against feature history, by Aether's
 * DatasetService (offline history compacted into columnar segments, `evaluateView` per row)
 * and, in the same run, by DuckDB's ASOF JOIN on the same data. `results_identical` compares
 * a checksum over every joined value.
 *
 * The history has corrections: about 2% of events get a second version (same event id and
 * event time, another value, known 1-60 s later), some a third. Each event's first version
 * is known at its event time, so DuckDB's query takes two ASOF joins: the latest event at or
 * before the label time among first versions, then that event's version with the latest
 * known time at or before the label time. A label exactly on an event time sees the original,
 * not its later correction, in both engines.
 */
const DAY = 86_400_000;
const T0 = Date.parse('2026-01-01T00:00:00Z');

interface Data {
  entities: string[];
  rows: {
    entityKey: string;
    event: { eventId: string; eventTs: number; createdTs: number; fields: Record<string, number> };
  }[];
  labels: { entityKey: string; ts: number; label: number | null }[];
}

function synthetic(entities: number, rowsPerEntity: number, labels: number): Data {
  const r = rng(42);
  const keys = Array.from({ length: entities }, (_, i) => `e${i}`);
  const rows: Data['rows'] = [];
  const eventTimes: number[][] = keys.map(() => []);
  const span = 90 * DAY;
  let id = 0;
  const values = () =>
    Object.fromEntries(
      Array.from({ length: FIELDS }, (_, j) => [`f${j}`, Math.round(r() * 1e6) / 1e3]),
    );
  keys.forEach((k, e) => {
    for (let n = 0; n < rowsPerEntity; n++) {
      const ts = T0 + Math.floor(((n + r() * 0.9) * span) / rowsPerEntity / 1000) * 1000;
      eventTimes[e].push(ts);
      const eventId = `r${id++}`;
      rows.push({ entityKey: k, event: { eventId, eventTs: ts, createdTs: ts, fields: values() } });
      // About 2% of events get a correction (same event, learned 1-60 s later), a fifth of
      // those a second one.
      let known = ts;
      for (let c = 0; c < 2 && r() < (c === 0 ? 0.02 : 0.2); c++) {
        known += (1 + Math.floor(r() * 60)) * 1000;
        rows.push({
          entityKey: k,
          event: { eventId, eventTs: ts, createdTs: known, fields: values() },
        });
      }
    }
  });
  const ls: Data['labels'] = [];
  for (let i = 0; i < labels; i++) {
    const e = Math.floor(r() * entities);
    // One label in ten sits exactly on one of its entity's event times.
    const ts =
      r() < 0.1
        ? eventTimes[e][Math.floor(r() * rowsPerEntity)]
        : T0 + Math.floor((r() * span) / 1000) * 1000;
    ls.push({ entityKey: keys[e], ts, label: r() < 0.3 ? 1 : 0 });
  }
  return { entities: keys, rows, labels: ls };
}

/** Flights as feature history: entity = origin, event time = actual departure. */
async function flightsData(n: number): Promise<Data> {
  const flights = await readFlights(0, n);
  // Several flights of one airport can depart in the same minute; nudge by milliseconds so
  // every (origin, event time) is unique and both engines agree on which row is latest.
  const used = new Map<string, Set<number>>();
  const rows = flights.map((f) => {
    const seen = used.get(f.origin) ?? new Set<number>();
    used.set(f.origin, seen);
    let ts = f.departed;
    while (seen.has(ts)) ts++;
    seen.add(ts);
    const fields = Object.fromEntries(
      Array.from({ length: FIELDS }, (_, j) => [
        `f${j}`,
        j === 0 ? f.delayMinutes : f.distanceMiles + j,
      ]),
    );
    return { entityKey: f.origin, event: { eventId: f.id, eventTs: ts, createdTs: ts, fields } };
  });
  // One delay in a hundred is re-reported half an hour after departure.
  const corrected = rows
    .filter((_, i) => i % 100 === 7)
    .map((r) => ({
      entityKey: r.entityKey,
      event: {
        ...r.event,
        createdTs: r.event.createdTs + 30 * 60_000,
        fields: { ...r.event.fields, f0: r.event.fields.f0 + 5 },
      },
    }));
  rows.push(...corrected);
  const labels = flights
    .filter((_, i) => i % 3 === 0)
    .map((f) => ({ entityKey: f.origin, ts: f.scheduled, label: f.delayMinutes > 15 ? 1 : 0 }));
  return { entities: [...new Set(flights.map((f) => f.origin))], rows, labels };
}

function checksum(columns: FeatureValue[][], n: number): number {
  let h = 0;
  for (let i = 0; i < n; i++) {
    for (const col of columns) {
      const v = col[i];
      const x = v === null || v === undefined ? 7 : Math.round((v as number) * 1000) + 11;
      h = (h * 31 + x) % 2147483647;
    }
  }
  return h;
}

async function runOne(
  p: BenchPlatform,
  name: string,
  data: Data,
  repeats: number,
): Promise<Record<string, number>> {
  const s = p.app.services;
  const { version } = await s.featureRegistry.createView({
    name,
    entity: 'thing',
    source: `${name}_src`,
    ttlSeconds: 400 * 86_400,
    allowedLatenessSeconds: 400 * 86_400,
    features: floatFeatures(),
  });
  const loadStart = Date.now();
  let corrections = 0;
  // Through the product's ingestion path (validation, offline append, online state), with
  // each row's created time as its knownAt.
  for (let i = 0; i < data.rows.length; i += 10_000) {
    const batch = data.rows.slice(i, i + 10_000).map((r) => ({
      entityKey: r.entityKey,
      eventId: r.event.eventId,
      eventTs: r.event.eventTs,
      knownAt: r.event.createdTs,
      fields: r.event.fields,
    }));
    const [report] = await s.ingestion.ingest([version], batch, 'bench');
    if (report.quarantined)
      throw new Error(`unexpected quarantine: ${JSON.stringify(report.byRule)}`);
    corrections += report.corrections;
  }
  await p.app.db.dataSource.query('ANALYZE feature_event');
  const loadSeconds = (Date.now() - loadStart) / 1000;
  // What the background compaction does once history is pending: move it into columnar
  // segments (ADR 0010). Timed on its own; the join below reads the segments.
  const compactStart = Date.now();
  await s.compaction.compact(name, null);
  const compactSeconds = (Date.now() - compactStart) / 1000;

  const refs = await s.featureRegistry.resolveRefs(
    Array.from({ length: FIELDS }, (_, j) => `${name}:f${j}`),
  );
  // DuckDB, same data, in memory.
  const duck = await (await DuckDBInstance.create(':memory:')).connect();
  await duck.run(
    `CREATE TABLE feat (entity VARCHAR, event_id VARCHAR, event_ts BIGINT, created_ts BIGINT, ${Array.from({ length: FIELDS }, (_, j) => `f${j} DOUBLE`).join(', ')})`,
  );
  await duck.run('CREATE TABLE labels (i INTEGER, entity VARCHAR, ts BIGINT)');
  const fa = await duck.createAppender('feat');
  for (const r of data.rows) {
    fa.appendVarchar(r.entityKey);
    fa.appendVarchar(r.event.eventId);
    fa.appendBigInt(BigInt(r.event.eventTs));
    fa.appendBigInt(BigInt(r.event.createdTs));
    for (let j = 0; j < FIELDS; j++) fa.appendDouble(r.event.fields[`f${j}`]);
    fa.endRow();
  }
  fa.closeSync();
  const la = await duck.createAppender('labels');
  data.labels.forEach((l, i) => {
    la.appendInteger(i);
    la.appendVarchar(l.entityKey);
    la.appendBigInt(BigInt(l.ts));
    la.endRow();
  });
  la.closeSync();
  // Both engines have the data now; the generated rows are the harness's, not ours to
  // carry through the timing (they would only make every garbage collection slower).
  const featureRows = data.rows.length;
  data.rows.length = 0;

  let ours: FeatureColumn[] = [];
  const pitTimes: number[] = [];
  for (let i = 0; i < repeats; i++) {
    const t = process.hrtime.bigint();
    ours = await s.datasets.pointInTimeJoin(
      { id: '00000000-0000-0000-0000-000000000000', rowCount: data.labels.length },
      refs,
      data.labels,
    );
    pitTimes.push(Number(process.hrtime.bigint() - t) / 1e9);
  }

  const duckTimes: number[] = [];
  let duckCols: FeatureValue[][] = [];
  for (let i = 0; i < repeats; i++) {
    const t = process.hrtime.bigint();
    const res = await duck.runAndReadAll(`
      WITH firsts AS (SELECT entity, event_id, event_ts FROM feat WHERE created_ts = event_ts),
      latest AS (
        SELECT l.i, l.entity, l.ts, e.event_id
        FROM labels l ASOF LEFT JOIN firsts e ON l.entity = e.entity AND l.ts >= e.event_ts
      )
      SELECT a.i, ${Array.from({ length: FIELDS }, (_, j) => `v.f${j}`).join(', ')}
      FROM latest a ASOF LEFT JOIN feat v
        ON a.entity = v.entity AND a.event_id = v.event_id AND a.ts >= v.created_ts
      ORDER BY a.i`);
    duckTimes.push(Number(process.hrtime.bigint() - t) / 1e9);
    const rows = res.getRows();
    duckCols = Array.from({ length: FIELDS }, (_, j) =>
      rows.map((r) => (r[j + 1] as number | null) ?? null),
    );
  }
  duck.closeSync();

  const ourSum = checksum(
    ours.map((c) => Array.from({ length: data.labels.length }, (_, i) => columnValue(c, i))),
    data.labels.length,
  );
  const duckSum = checksum(duckCols, data.labels.length);
  const pit = median(pitTimes);
  const dk = median(duckTimes);
  return {
    pit_seconds: round(pit, 2),
    duckdb_seconds: round(dk, 2),
    ratio_vs_duckdb: round(pit / dk, 2),
    rows_per_second: round(data.labels.length / pit, 0),
    results_identical: ourSum === duckSum ? 1 : 0,
    label_rows: data.labels.length,
    feature_rows: featureRows,
    corrections: corrections,
    entities: data.entities.length,
    load_seconds: round(loadSeconds, 1),
    compaction_seconds: round(compactSeconds, 1),
  };
}

export async function main(): Promise<void> {
  const sc = scale();
  const repeats = 3;
  const p = await startBenchPlatform('features_pit', {
    FEATURE_STREAM_CONSUMER: 'off',
    OFFLINE_COMPACTION_INTERVAL_MS: '0',
  });
  try {
    await p.app.services.featureRegistry.createEntity({ name: 'thing', joinKeys: ['id'] });
    const synth = await runOne(
      p,
      'synthetic',
      synthetic(Math.round(100_000 * sc), 49, Math.round(1_000_000 * sc)),
      repeats,
    );
    const flights = await runOne(
      p,
      'flights',
      await flightsData(Math.round(3_000_000 * sc)),
      repeats,
    );
    writeResult('features-pit', {
      ...synth,
      ...Object.fromEntries(Object.entries(flights).map(([k, v]) => [`flights_${k}`, v])),
    });
  } finally {
    await p.close();
  }
}
