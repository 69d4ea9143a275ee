import { execFile, spawnSync } from 'node:child_process';
import { promisify } from 'node:util';
import { createHash } from 'node:crypto';
import fs from 'node:fs';
import { fileURLToPath } from 'node:url';
import { DuckDBInstance, type DuckDBConnection } from '@duckdb/node-api';
import { Role } from '../src/domain/auth/role';
import { columnValue } from '../src/domain/features/dataset';
import {
  AggregationFn,
  eventLayout,
  FeatureType,
  type FeatureValue,
  type FeatureViewVersion,
} from '../src/domain/features/feature-definition';
import { type FeatureEvent } from '../src/domain/features/point-in-time';
import { historyRelation, SqlDialect } from '../src/domain/features/point-in-time-sql';
import { type IngestRecord } from '../src/domain/features/validation';
import { ManualClock } from '../src/domain/shared/clock';
import { openTableParquet } from '../src/infra/db/features/open-table-writer';
import {
  bucketOf,
  decodeSegment,
  encodeSegment,
  sortBucketRows,
} from '../src/infra/db/features/segments';
import { OfflineTableDocument } from './generated/graphql';
import { featureSpec, itemView } from './support/datasets';
import { GraphQLTestClient } from './support/graphql-client';
import { startTestApp, type TestApp } from './support/test-app';

/**
 * Open tables (ADR 0033): after a compaction, every bucket of a view version's offline history
 * is a Parquet file that DuckDB and pandas read without Aether, holding every version of every
 * event with its known and superseded times, and the SQL form of the point-in-time join over
 * those files gives the platform's own training rows.
 */
const T0 = Date.parse('2026-06-01T00:00:00Z');
const MIN = 60_000;
const clock = new ManualClock(T0);
// The python3 that .ci/run gives pandas and pyarrow, as test/dataset-download.test.ts uses
// (TEST_PYTHON is the trainers' venv, which has pyarrow but not pandas).
const python = 'python3';
const probe = spawnSync(python, ['-c', 'import pandas, pyarrow'], {
  encoding: 'utf8',
  timeout: 60_000,
});
const noPandas =
  probe.status === 0
    ? ''
    : `${python} cannot import pandas and pyarrow (${(probe.stderr || String(probe.error)).trim().split('\n').pop()})`;

let app: TestApp;
let viewer: GraphQLTestClient;
let instance: DuckDBInstance;
let duck: DuckDBConnection;

const spec = featureSpec;
const FEATURES = [
  spec('f', FeatureType.FLOAT),
  spec('i', FeatureType.INT),
  spec('b', FeatureType.BOOL),
  spec('s', FeatureType.STRING),
  spec('l', FeatureType.FLOAT_LIST),
  spec('f_sum_2h', FeatureType.FLOAT, {
    source: 'f',
    aggregation: { fn: AggregationFn.SUM, windowSeconds: 7200 },
  }),
];

beforeAll(async () => {
  app = await startTestApp(__filename, {
    env: { FEATURE_STREAM_CONSUMER: 'off', OFFLINE_COMPACTION_INTERVAL_MS: '0' },
    overrides: { clock },
  });
  const key = await app.services.apiKeys.create(null, { name: 'analyst', role: Role.VIEWER });
  viewer = new GraphQLTestClient(app.url, key.token);
  await app.services.featureRegistry.createEntity({ name: 'item', joinKeys: ['item_id'] });
  instance = await DuckDBInstance.create(':memory:');
  duck = await instance.connect();
});

afterAll(async () => {
  duck?.closeSync();
  instance?.closeSync();
  await app?.stop();
});

const view = (name: string) => itemView(app.services, name, FEATURES, 30 * 24 * 3600);

/** Deterministic records of every type, with nulls; `ids` names their events. */
function records(n: number, seed: number, entities: number, ids = `r${seed}`): IngestRecord[] {
  let x = seed;
  const rnd = () => (x = (Math.imul(x, 1103515245) + 12345) >>> 0) / 2 ** 32;
  return Array.from({ length: n }, (_, k) => {
    const maybe = <T>(v: T): T | null => (rnd() < 0.15 ? null : v);
    return {
      entityKey: `it${k % entities}`,
      eventId: `${ids}-${k}`,
      eventTs: T0 + Math.floor(rnd() * 40) * 10 * MIN,
      fields: {
        f: maybe(Math.round(rnd() * 1e6) / 1e3),
        i: maybe(Math.floor(rnd() * 100) - 50),
        b: maybe(rnd() < 0.5),
        s: maybe(`v${Math.floor(rnd() * 5)}'"`),
        l: maybe([rnd(), -rnd()]),
      },
    };
  });
}

type Stored = { entityKey: string; event: FeatureEvent };

async function ingestAt(v: FeatureViewVersion, batch: IngestRecord[], at: number) {
  clock.set(at);
  const [report] = await app.services.ingestion.ingest([v], batch, 'test');
  expect(report.quarantined).toBe(0);
  const { sources } = eventLayout(v.schema);
  return batch.map((r): Stored => ({
    entityKey: r.entityKey,
    event: {
      eventId: r.eventId,
      eventTs: r.eventTs,
      createdTs: at,
      values: sources.map((s) => (r.fields[s] as FeatureValue | undefined) ?? null),
    },
  }));
}

interface OpenRow {
  entity_key: string;
  event_id: string;
  event_ts: number;
  known_ts: number;
  superseded_ts: number | null;
  f: unknown;
  i: unknown;
  b: unknown;
  s: unknown;
  l: unknown;
}

/** Every stored version as a row of the open table, with when it was superseded. */
function expectedRows(history: Stored[]) {
  const byEvent = new Map<string, Stored[]>();
  for (const h of history) {
    const k = `${h.entityKey}\u0000${h.event.eventId}`;
    byEvent.set(k, [...(byEvent.get(k) ?? []), h]);
  }
  const out: OpenRow[] = [];
  for (const versions of byEvent.values()) {
    versions.sort((a, b) => a.event.createdTs - b.event.createdTs);
    versions.forEach((h, j) =>
      out.push({
        entity_key: h.entityKey,
        event_id: h.event.eventId,
        event_ts: h.event.eventTs,
        known_ts: h.event.createdTs,
        superseded_ts: versions[j + 1]?.event.createdTs ?? null,
        f: h.event.values[0],
        i: h.event.values[1],
        b: h.event.values[2],
        s: h.event.values[3],
        l: h.event.values[4],
      }),
    );
  }
  return sortRows(out);
}

function sortRows<T extends { entity_key: string; event_id: string; known_ts: number }>(
  rows: T[],
): T[] {
  const key = (r: T) =>
    `${r.entity_key}\u0000${r.event_id}\u0000${String(r.known_ts).padStart(16)}`;
  return rows.sort((a, b) => (key(a) < key(b) ? -1 : key(a) > key(b) ? 1 : 0));
}

async function offlineTable(name: string) {
  const res = await viewer.request(OfflineTableDocument, { name });
  expect(res.errors).toBeUndefined();
  return res.data!.featureView!.versions[0].offlineTable;
}

const num = (v: unknown) => (typeof v === 'bigint' ? Number(v) : v);

async function duckRows(uris: string[]) {
  const list = uris.map((u) => `'${u}'`).join(', ');
  const res = await duck.runAndReadAll(
    `SELECT entity_key, event_id, epoch_ms(event_ts) AS event_ts, epoch_ms(known_ts) AS known_ts,
            epoch_ms(superseded_ts) AS superseded_ts, f, i, b, s, l
       FROM read_parquet([${list}])`,
  );
  return sortRows(
    res.getRowObjectsJS().map((r) => ({
      entity_key: r.entity_key as string,
      event_id: r.event_id as string,
      event_ts: num(r.event_ts) as number,
      known_ts: num(r.known_ts) as number,
      superseded_ts: num(r.superseded_ts) as number | null,
      f: r.f,
      i: r.i,
      b: r.b,
      s: r.s,
      l: r.l,
    })),
  );
}

describe('open tables: the compacted history as Parquet', () => {
  const history: Stored[] = [];
  let version: FeatureViewVersion;

  beforeAll(async () => {
    version = await view('opened');
    const first = records(400, 1, 37);
    history.push(...(await ingestAt(version, first, T0 + 500 * MIN)));
    // Corrections of some events (same events, new values), learned later, twice for a few.
    const corrected = (n: number, seed: number) =>
      records(n, seed, 37).map((r, k) => ({ ...first[k], fields: r.fields }));
    history.push(...(await ingestAt(version, corrected(90, 2), T0 + 520 * MIN)));
    history.push(...(await ingestAt(version, corrected(20, 3), T0 + 540 * MIN)));
    const report = await app.services.compaction.compact('opened', null);
    expect(report).toMatchObject({ rows: 510, compactedRows: 510 });
  });

  it('lists one Parquet file per bucket, to a viewer, with its columns', async () => {
    const table = await offlineTable('opened');
    expect(table.format).toBe('PARQUET');
    expect(table.complete).toBe(true);
    expect(table.layout).toContain('parquet/bucket=<NN>/');
    const buckets = [...new Set(history.map((h) => bucketOf(h.entityKey)))].sort((a, b) => a - b);
    expect(table.files.map((f) => f.bucket)).toEqual(buckets);
    expect(table.files.reduce((s, f) => s + f.rows, 0)).toBe(510);
    for (const f of table.files) {
      expect(f.uri).toBe(`${table.location}/${f.key}`);
      expect(f.key).toMatch(
        new RegExp(`^offline/${version.id}/parquet/bucket=${String(f.bucket).padStart(2, '0')}/`),
      );
      const bytes = fs.readFileSync(fileURLToPath(f.uri));
      expect(createHash('sha256').update(bytes).digest('hex')).toBe(f.sha256);
      expect(bytes.length).toBe(f.size);
    }
    expect(table.columns).toEqual([
      { name: 'entity_key', type: 'string' },
      { name: 'event_id', type: 'string' },
      { name: 'event_ts', type: 'timestamp[ms, UTC]' },
      { name: 'known_ts', type: 'timestamp[ms, UTC]' },
      { name: 'superseded_ts', type: 'timestamp[ms, UTC]' },
      { name: 'f', type: 'double' },
      { name: 'i', type: 'double' },
      { name: 'b', type: 'bool' },
      { name: 's', type: 'string' },
      { name: 'l', type: 'list<double>' },
    ]);
  });

  it('DuckDB reads every stored version with its known and superseded times', async () => {
    const table = await offlineTable('opened');
    const rows = await duckRows(table.files.map((f) => f.uri));
    expect(rows).toEqual(expectedRows(history));
    expect(rows.filter((r) => r.superseded_ts !== null).length).toBe(110);
    const types = await duck.runAndReadAll(
      `DESCRIBE SELECT * FROM read_parquet('${table.files[0].uri}')`,
    );
    expect(
      Object.fromEntries(
        types.getRowObjectsJS().map((r) => [r.column_name as string, r.column_type as string]),
      ),
    ).toMatchObject({
      entity_key: 'VARCHAR',
      event_ts: 'TIMESTAMP WITH TIME ZONE',
      superseded_ts: 'TIMESTAMP WITH TIME ZONE',
      f: 'DOUBLE',
      i: 'DOUBLE',
      b: 'BOOLEAN',
      s: 'VARCHAR',
      l: 'DOUBLE[]',
    });
  });

  it('writes the same bytes for the same rows', async () => {
    const table = await offlineTable('opened');
    const file = table.files[0];
    const mine = sortBucketRows(history.filter((h) => bucketOf(h.entityKey) === file.bucket));
    const rows = decodeSegment(version.schema, encodeSegment(version.schema, mine));
    const again = await openTableParquet(version.schema, rows);
    expect(Buffer.from(again).equals(await openTableParquet(version.schema, rows))).toBe(true);
    expect(createHash('sha256').update(again).digest('hex')).toBe(file.sha256);
  });

  it('datasetSql over the files gives the platform’s training rows', async () => {
    const table = await offlineTable('opened');
    const refs = await app.services.featureRegistry.resolveRefs(
      FEATURES.map((f) => `opened:${f.name}`),
    );
    const labels = Array.from({ length: 120 }, (_, k) => ({
      entityKey: `it${k % 40}`, // three entities with no history
      ts: T0 + ((k * 7919) % 600) * MIN,
    }));
    const cols = await app.services.datasets.pointInTimeJoin(
      { id: '00000000-0000-0000-0000-000000000000', rowCount: labels.length },
      refs,
      labels.map((l) => ({ ...l, label: null })),
    );
    const platform = labels.map((_, i) => cols.map((c) => columnValue(c, i)));

    const { sql } = await app.services.datasets.sql(
      refs.map((r) => r.ref),
      SqlDialect.DUCKDB,
    );
    const list = table.files.map((f) => `'${f.uri}'`).join(', ');
    await duck.run(
      `CREATE OR REPLACE VIEW "${historyRelation(version)}" AS
         SELECT entity_key, event_id, epoch_ms(event_ts) AS event_ts,
                epoch_ms(known_ts) AS known_ts, f, i, b, s, l
           FROM read_parquet([${list}])`,
    );
    await duck.run(
      `CREATE OR REPLACE TABLE aether_spine (row_id BIGINT, entity_key VARCHAR, ts BIGINT, label DOUBLE)`,
    );
    await duck.run(
      `INSERT INTO aether_spine VALUES ${labels
        .map((l, i) => `(${i}, '${l.entityKey}', ${l.ts}, NULL)`)
        .join(', ')}`,
    );
    const res = await duck.runAndReadAll(sql);
    const names = res.columnNames().slice(4);
    expect(names).toEqual(refs.map((r) => r.ref));
    const fromSql = res.getRowObjectsJS().map((r) => names.map((n) => num(r[n]) as FeatureValue));
    expect(fromSql).toEqual(platform);
    // Not vacuous: corrections and windows make some values.
    expect(platform.flat().filter((v) => v !== null).length).toBeGreaterThan(200);
  });

  (noPandas ? it.skip : it)('pandas reads the same rows', async () => {
    if (noPandas) return;
    const table = await offlineTable('opened');
    const script = `
import json, sys
import pandas as pd
df = pd.concat([pd.read_parquet(u) for u in json.loads(sys.argv[1])], ignore_index=True)
def ms(t):
    return None if pd.isna(t) else round(t.timestamp() * 1000)
def val(v):
    if v is None: return None
    if hasattr(v, 'tolist'): return v.tolist()
    if isinstance(v, float) and v != v: return None
    return v
out = []
for r in df.to_dict('records'):
    out.append({
        'entity_key': r['entity_key'], 'event_id': r['event_id'],
        'event_ts': ms(r['event_ts']), 'known_ts': ms(r['known_ts']),
        'superseded_ts': ms(r['superseded_ts']),
        **{c: val(r[c]) for c in ['f', 'i', 'b', 's', 'l']},
    })
print(json.dumps({'dtypes': {c: str(t) for c, t in df.dtypes.items()}, 'rows': out}))
`;
    // Awaited, not spawnSync: the file's timeouts keep working while pandas reads.
    const run = await promisify(execFile)(
      python,
      ['-c', script, JSON.stringify(table.files.map((f) => f.uri))],
      { encoding: 'utf8', maxBuffer: 64 << 20, timeout: 120_000 },
    );
    expect(run.stderr).toBe('');
    const got = JSON.parse(run.stdout) as {
      dtypes: Record<string, string>;
      rows: ReturnType<typeof expectedRows>;
    };
    expect(got.dtypes.event_ts).toMatch(/^datetime64\[(ms|ns), UTC\]$/);
    expect(got.dtypes.f).toBe('float64');
    // pandas holds a boolean column with nulls as objects, and nulls in a double as NaN.
    expect(sortRows(got.rows)).toEqual(expectedRows(history));
  });
  if (noPandas) console.log(`pandas reader test skipped: ${noPandas}`);

  it('a compaction adds a delta beside the bucket’s base, or replaces them with a new base', async () => {
    const before = await offlineTable('opened');
    const target = before.files[0];
    const entity = [...new Set(history.map((h) => h.entityKey))].find(
      (k) => bucketOf(k) === target.bucket,
    ) as string;
    // A few rows: a delta; the base and every other bucket's file stay as they are.
    const few = records(3, 8, 1, 'few').map((r) => ({ ...r, entityKey: entity }));
    history.push(...(await ingestAt(version, few, T0 + 590 * MIN)));
    expect(await app.services.compaction.compact('opened', null)).toMatchObject({
      rows: 3,
      segments: 1,
    });
    const withDelta = await offlineTable('opened');
    expect(withDelta.files.filter((f) => f.bucket === target.bucket)).toEqual([
      target,
      expect.objectContaining({ bucket: target.bucket, run: 1, rows: 3 }),
    ]);
    expect(await duckRows(withDelta.files.map((f) => f.uri))).toEqual(expectedRows(history));
    // More rows than a quarter of the base: the base and its delta merge into a new base.
    const more = records(20, 9, 1, 'late').map((r) => ({ ...r, entityKey: entity }));
    history.push(...(await ingestAt(version, more, T0 + 600 * MIN)));
    expect(await app.services.compaction.compact('opened', null)).toMatchObject({
      rows: 20,
      segments: 1,
    });
    const after = await offlineTable('opened');
    const replaced = after.files.filter((f) => f.bucket === target.bucket);
    expect(replaced).toEqual([expect.objectContaining({ run: 0, rows: target.rows + 23 })]);
    for (const gone of withDelta.files.filter((f) => f.bucket === target.bucket))
      expect(fs.existsSync(fileURLToPath(gone.uri))).toBe(false);
    expect(fs.existsSync(fileURLToPath(replaced[0].uri))).toBe(true);
    // The other buckets' files are untouched.
    expect(after.files.filter((f) => f.bucket !== target.bucket)).toEqual(
      before.files.filter((f) => f.bucket !== target.bucket),
    );
    expect(await duckRows(after.files.map((f) => f.uri))).toEqual(expectedRows(history));
  });
});
