import fc from 'fast-check';
import { fileURLToPath } from 'node:url';
import { DuckDBInstance } from '@duckdb/node-api';
import { columnValue, JoinEngine } from '../src/domain/features/dataset';
import {
  AggregationFn,
  FeatureType,
  type FeatureViewVersion,
} from '../src/domain/features/feature-definition';
import { IngestionMode } from '../src/domain/features/feature-ingestion.service';
import { type IngestRecord } from '../src/domain/features/validation';
import { ManualClock } from '../src/domain/shared/clock';
import {
  bucketOf,
  DELTA_SHARE,
  MAX_DELTAS,
  planRuns,
  type SegmentRun,
} from '../src/infra/db/features/segments';
import { BuildDatasetDocument, OfflineTableDocument } from './generated/graphql';
import { featureSpec, itemView } from './support/datasets';
import { GraphQLTestClient } from './support/graphql-client';
import { startTestApp, type TestApp } from './support/test-app';

/**
 * Incremental merges of the compacted history (ADR 0035): a compaction writes a bucket's new
 * rows as a delta beside its base, merging deltas geometrically and into the base only when
 * they grow past a share of it, so a streamed history is rewritten a bounded number of times
 * rather than once per compaction. Reads (the evaluator, the DuckDB engine, the open table)
 * give what the same records give never compacted at all.
 */

/** Applies planRuns to a run list as a compaction would: the rows it writes, the new list. */
function step(runs: SegmentRun[], rows: number): { runs: SegmentRun[]; written: number } {
  const plan = planRuns(runs, rows);
  const written =
    rows + runs.filter((r) => plan.replaces.includes(r.run)).reduce((n, r) => n + r.rows, 0);
  return {
    runs: [
      ...runs.filter((r) => !plan.replaces.includes(r.run)),
      { run: plan.run, rows: written, parquetKey: `p${plan.run}` },
    ],
    written,
  };
}

describe('planRuns', () => {
  it('replaces everything or the newest deltas, keeps every row, and at most MAX_DELTAS deltas', () => {
    fc.assert(
      fc.property(fc.array(fc.integer({ min: 1, max: 5_000 }), { maxLength: 200 }), (batches) => {
        let runs: SegmentRun[] = [];
        let total = 0;
        for (const rows of batches) {
          const plan = planRuns(runs, rows);
          const deltas = runs.filter((r) => r.run > 0).sort((a, b) => a.run - b.run);
          if (plan.run === 0)
            expect([...plan.replaces].sort()).toEqual(runs.map((r) => r.run).sort());
          else {
            expect(plan.replaces).toEqual(
              deltas.slice(deltas.length - plan.replaces.length).map((d) => d.run),
            );
            expect(plan.run).toBeGreaterThan(Math.max(0, ...runs.map((r) => r.run)));
          }
          runs = step(runs, rows).runs;
          total += rows;
          const base = runs.find((r) => r.run === 0);
          const inDeltas = runs.filter((r) => r.run > 0).reduce((n, r) => n + r.rows, 0);
          expect(base).toBeDefined();
          expect(runs.reduce((n, r) => n + r.rows, 0)).toBe(total);
          expect(runs.length - 1).toBeLessThanOrEqual(MAX_DELTAS);
          expect(inDeltas).toBeLessThanOrEqual(DELTA_SHARE * (base as SegmentRun).rows);
        }
      }),
    );
  });

  it('rewrites a base written before open tables at once, so it gets its Parquet file', () => {
    const base = { run: 0, rows: 1_000_000 };
    expect(planRuns([{ ...base, parquetKey: 'p0' }], 10)).toEqual({ replaces: [], run: 1 });
    expect(planRuns([{ ...base, parquetKey: null }], 10)).toEqual({ replaces: [0], run: 0 });
  });

  it('rewrites a streamed history about ten times per row, where whole buckets cost a thousand', () => {
    // A bucket of 1M rows, then 1,000 compactions of 2,000 rows each.
    let runs: SegmentRun[] = [{ run: 0, rows: 1_000_000, parquetKey: 'p0' }];
    let written = 0;
    let whole = 0;
    let size = 1_000_000;
    for (let c = 0; c < 1_000; c++) {
      const s = step(runs, 2_000);
      runs = s.runs;
      written += s.written;
      size += 2_000;
      whole += size;
    }
    const inserted = 2_000_000;
    // About 11.4 with DELTA_FANOUT 4, DELTA_SHARE ¼, MAX_DELTAS 6.
    expect(written / inserted).toBeLessThan(16);
    expect(whole / inserted).toBeGreaterThan(900);
  });
});

const T0 = Date.parse('2026-06-01T00:00:00Z');
const MIN = 60_000;
const clock = new ManualClock(T0);
let app: TestApp;
let gql: GraphQLTestClient;

const FEATURES = [
  featureSpec('f', FeatureType.FLOAT),
  featureSpec('s', FeatureType.STRING),
  featureSpec('f_sum_2h', FeatureType.FLOAT, {
    source: 'f',
    aggregation: { fn: AggregationFn.SUM, windowSeconds: 7200 },
  }),
  featureSpec('f_count_1h', FeatureType.FLOAT, {
    source: 'f',
    aggregation: { fn: AggregationFn.COUNT, windowSeconds: 3600 },
  }),
];

beforeAll(async () => {
  app = await startTestApp(__filename, {
    env: { FEATURE_STREAM_CONSUMER: 'off', OFFLINE_COMPACTION_INTERVAL_MS: '0' },
    overrides: { clock },
  });
  gql = new GraphQLTestClient(app.url, app.adminToken);
  await app.services.featureRegistry.createEntity({ name: 'item', joinKeys: ['item_id'] });
});

afterAll(() => app?.stop());

const view = (name: string) => itemView(app.services, name, FEATURES, 3 * 3600);

function records(n: number, seed: number, from: number, span: number): IngestRecord[] {
  let x = seed;
  const rnd = () => (x = (Math.imul(x, 1103515245) + 12345) >>> 0) / 2 ** 32;
  return Array.from({ length: n }, (_, k) => ({
    entityKey: `it${k % 50}`,
    eventId: `r${seed}-${k}`,
    eventTs: T0 + (from + Math.floor(rnd() * span)) * MIN,
    fields: {
      f: rnd() < 0.1 ? null : Math.round(rnd() * 1e6) / 1e3,
      s: `v${Math.floor(rnd() * 4)}`,
    },
  }));
}

async function offlineTable(name: string) {
  const res = await gql.ok(OfflineTableDocument, { name });
  return res.featureView!.versions[0].offlineTable;
}

// Labels over 55 entities (it50 to it53 without compacted history), from before anything was
// known to after the last round.
const spine = Array.from({ length: 600 }, (_, k) => ({
  entityKey: `it${k % 55}`,
  ts: T0 + (250 + ((k * 7919) % 200)) * MIN,
  label: null,
}));

async function join(name: string) {
  const refs = await app.services.featureRegistry.resolveRefs(
    FEATURES.map((f) => `${name}:${f.name}`),
  );
  const cols = await app.services.datasets.pointInTimeJoin(
    { id: '00000000-0000-0000-0000-000000000000', rowCount: spine.length },
    refs,
    spine,
  );
  return spine.map((_, i) => cols.map((c) => columnValue(c, i)));
}

describe('compactions that write deltas', () => {
  let compacted: FeatureViewVersion;
  let logged: FeatureViewVersion;
  let stored = 0;
  const runsSeen = new Set<number>();
  let last: { records: IngestRecord[]; at: number } = { records: [], at: 0 };

  // The same records, at the same times, into two views: one compacted after every batch,
  // one never (its reads come from the log alone: the reference).
  async function both(batch: IngestRecord[], at: number) {
    clock.set(at);
    for (const v of [compacted, logged]) {
      const [report] = await app.services.ingestion.ingest([v], batch, 'test');
      expect(report.quarantined).toBe(0);
    }
    stored += batch.length;
    const report = await app.services.compaction.compact('compacted', null);
    expect(report).toMatchObject({ rows: batch.length, compactedRows: stored });
    for (const f of (await offlineTable('compacted')).files) runsSeen.add(f.run);
  }

  beforeAll(async () => {
    compacted = await view('compacted');
    logged = await view('logged');
    // it54's latest event (minute 290), moved back to minute 20 by a correction after the
    // rounds: read as ASOF, minute 290 would stay it54's latest (docs/adr/0034).
    const moving = { entityKey: 'it54', eventId: 'moving', fields: { f: 2.5, s: 'm' } };
    const first = [
      ...records(800, 1, 0, 300),
      { ...moving, eventId: 'before', eventTs: T0 + 100 * MIN, fields: { f: 1.5, s: 'b' } },
      { ...moving, eventTs: T0 + 290 * MIN },
    ];
    await both(first, T0 + 300 * MIN);
    // Rounds of new events and corrections of earlier ones (their values; only it54's moves, so
    // that DuckDB's check for moved events must find it in a delta).
    for (let round = 0; round < 8; round++) {
      const fresh = records(30, 10 + round, 300 + 10 * round, 10);
      const corrections = first.slice(round * 12, round * 12 + 12).map((r, k) => ({
        ...r,
        fields: { ...r.fields, f: round + k / 8 },
      }));
      last = { records: fresh, at: T0 + (310 + 10 * round) * MIN };
      await both([...fresh, ...corrections], last.at);
    }
    // Last, alone: the correction that moves it54's latest event, into a delta.
    await both([{ ...moving, eventTs: T0 + 20 * MIN, fields: { f: 9, s: 'n' } }], T0 + 390 * MIN);
  });

  it('writes deltas beside the bases, and merges them back', async () => {
    expect([...runsSeen].some((r) => r > 0)).toBe(true);
    const table = await offlineTable('compacted');
    expect(table.complete).toBe(true);
    expect(table.files.reduce((n, f) => n + f.rows, 0)).toBe(stored);
    const byBucket = new Map<number, number[]>();
    for (const f of table.files) byBucket.set(f.bucket, [...(byBucket.get(f.bucket) ?? []), f.run]);
    for (const runs of byBucket.values()) {
      expect(runs).toContain(0);
      expect(runs.length).toBeLessThanOrEqual(1 + MAX_DELTAS);
    }
    // DuckDB reads each stored version once from the files' union.
    const instance = await DuckDBInstance.create(':memory:');
    const duck = await instance.connect();
    try {
      const files = table.files.map((f) => `'${fileURLToPath(f.uri)}'`).join(', ');
      const res = await duck.runAndReadAll(
        `SELECT count(*)::int AS n, count(DISTINCT (entity_key, event_id, known_ts))::int AS d
           FROM read_parquet([${files}])`,
      );
      expect(res.getRowObjectsJS()[0]).toEqual({ n: stored, d: stored });
    } finally {
      duck.closeSync();
      instance.closeSync();
    }
  });

  it('joins as the never-compacted log does, value for value', async () => {
    const a = await join('compacted');
    const b = await join('logged');
    expect(a).toEqual(b);
    expect(a.some((row) => row[0] !== null)).toBe(true);
  });

  /** The spine built into a dataset on each engine: their content hashes. */
  async function hashes(name: string): Promise<[string | null, string | null]> {
    const build = async (engine: JoinEngine) => {
      const { buildDataset } = await gql.ok(BuildDatasetDocument, {
        input: {
          name: `${name}-${engine}`,
          featureRefs: ['compacted:*'],
          rows: spine.map((r) => ({
            entityKey: r.entityKey,
            timestamp: new Date(r.ts).toISOString(),
            label: null,
          })),
          engine,
        },
        wait: true,
      });
      expect(buildDataset).toMatchObject({ status: 'READY', engine });
      return buildDataset.contentHash ?? null;
    };
    return [await build(JoinEngine.EVALUATOR), await build(JoinEngine.DUCKDB)];
  }

  it('builds the same dataset on DuckDB as on the evaluator over base and deltas', async () => {
    // The moved event's new version lies in a delta, its old one in the base.
    const files = (await offlineTable('compacted')).files;
    expect(files.filter((f) => f.bucket === bucketOf('it54')).length).toBeGreaterThan(1);
    const [evaluator, duckdb] = await hashes('runs');
    expect(duckdb).toBe(evaluator);
  });

  it('reads base, deltas and rows not compacted yet together, on both engines', async () => {
    clock.set(T0 + 395 * MIN);
    const pending: IngestRecord[] = [
      ...records(20, 40, 380, 10),
      // A correction of a compacted event: its entity has versions in segments and the log.
      { ...last.records[0], fields: { f: 123.25, s: 'late' } },
      // An entity whose only history is in the log.
      { entityKey: 'it53', eventId: 'only-log', eventTs: T0 + 385 * MIN, fields: { f: 4, s: 'o' } },
    ];
    for (const v of [compacted, logged]) {
      const [report] = await app.services.ingestion.ingest([v], pending, 'test');
      expect(report).toMatchObject({ quarantined: 0, corrections: 1 });
    }
    expect(await join('compacted')).toEqual(await join('logged'));
    const [evaluator, duckdb] = await hashes('pending');
    expect(duckdb).toBe(evaluator);
  });

  it('folds a bucket’s deltas into its base when a backfill rewrites it, judging against them', async () => {
    // A row read from a delta file, sent again by a backfill file: judged against the delta,
    // it is a duplicate; and one new event beside it.
    const deltas = (await offlineTable('compacted')).files.filter((f) => f.run > 0);
    expect(deltas.length).toBeGreaterThan(0);
    const instance = await DuckDBInstance.create(':memory:');
    const duck = await instance.connect();
    let again: {
      entity_key: string;
      event_id: string;
      event_ts: number;
      known_ts: number;
      f: number;
      s: string;
    };
    try {
      const res = await duck.runAndReadAll(
        `SELECT entity_key, event_id, epoch_ms(event_ts)::double AS event_ts,
                epoch_ms(known_ts)::double AS known_ts, f, s
           FROM read_parquet([${deltas.map((f) => `'${fileURLToPath(f.uri)}'`).join(', ')}])
          WHERE f IS NOT NULL ORDER BY known_ts DESC, entity_key, event_id LIMIT 1`,
      );
      again = res.getRowObjectsJS()[0] as typeof again;
    } finally {
      duck.closeSync();
      instance.closeSync();
    }
    const iso = (t: number) => new Date(t).toISOString();
    const csv = [
      'entity_key,event_id,event_ts,known_at,f,s',
      `${again.entity_key},${again.event_id},${iso(again.event_ts)},${iso(again.known_ts)},${again.f},${again.s}`,
      `${again.entity_key},backfilled,${iso(T0 + 5 * MIN)},${iso(T0 + 6 * MIN)},1,b`,
    ].join('\n');
    await app.services.artifacts.put('uploads/fold.csv', Buffer.from(csv));
    const [report] = await app.services.backfill.file(
      'compacted',
      { artifactKey: 'uploads/fold.csv', format: null },
      'test',
    );
    expect(report).toMatchObject({ accepted: 2, duplicates: 1, quarantined: 0 });
    const after = await offlineTable('compacted');
    const bucket = bucketOf(again.entity_key);
    expect(after.files.filter((f) => f.bucket === bucket).map((f) => f.run)).toEqual([0]);
    expect(after.files.reduce((n, f) => n + f.rows, 0)).toBe(stored + 1);
    // And the join still equals the log's, with the new event in both.
    clock.set(last.at);
    const [logged] = await app.services.ingestion.ingest(
      [await app.services.featureRegistry.resolveRefs(['logged:f']).then((r) => r[0].version)],
      [
        {
          entityKey: again.entity_key,
          eventId: 'backfilled',
          eventTs: T0 + 5 * MIN,
          knownAt: T0 + 6 * MIN,
          fields: { f: 1, s: 'b' },
        },
      ],
      'test',
      IngestionMode.BACKFILL,
    );
    expect(logged.accepted).toBe(1);
    expect(await join('compacted')).toEqual(await join('logged'));
  });
});
