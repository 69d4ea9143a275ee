import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import {
  AggregationFn,
  BinClosure,
  FeatureType,
  type FeatureViewVersion,
} from '../src/domain/features/feature-definition';
import { type IngestRecord } from '../src/domain/features/validation';
import { ManualClock } from '../src/domain/shared/clock';
import { localIdOf } from '../src/schema/node.types';
import { bucketGroups } from '../src/infra/duckdb/point-in-time-engine';
import { BuildDatasetDocument, type JoinEngine } from './generated/graphql';
import { featureSpec, itemView } from './support/datasets';
import { GraphQLTestClient } from './support/graphql-client';
import { startTestApp, type TestApp } from './support/test-app';

/**
 * The DuckDB join engine against the evaluator (docs/adr/0034), through the graph: the same
 * spec built on each gives the same content hash, over history that is partly in the open
 * table's Parquet files and partly in the log not yet compacted, with corrections, windows of
 * sums and means over doubles whose order shows in their last bits, every value type, and
 * entities without history. A build that names no engine runs on DuckDB from
 * DATASET_DUCKDB_MIN_ROWS rows of history; one DuckDB cannot run says so with a code. The
 * engine joins every bucket on its own here (DATASET_DUCKDB_GROUP_MB=0).
 */
const T0 = Date.parse('2026-06-01T00:00:00Z');
const MIN = 60_000;
const clock = new ManualClock(T0);
let app: TestApp;
let gql: GraphQLTestClient;

const spec = featureSpec;
const window = (fn: AggregationFn, minutes: number) => ({
  aggregation: { fn, windowSeconds: minutes * 60 },
});
const FEATURES = [
  spec('f', FeatureType.FLOAT),
  spec('i', FeatureType.INT),
  spec('b', FeatureType.BOOL),
  spec('s', FeatureType.STRING),
  spec('l', FeatureType.FLOAT_LIST),
  spec('f_sum_2h', FeatureType.FLOAT, { source: 'f', ...window(AggregationFn.SUM, 120) }),
  spec('f_mean_3h', FeatureType.FLOAT, { source: 'f', ...window(AggregationFn.MEAN, 180) }),
  spec('f_min_1h', FeatureType.FLOAT, { source: 'f', ...window(AggregationFn.MIN, 60) }),
  spec('i_max_1h', FeatureType.INT, { source: 'i', ...window(AggregationFn.MAX, 60) }),
  spec('i_count_1h', FeatureType.INT, { source: 'i', ...window(AggregationFn.COUNT, 60) }),
  spec('s_last_2h', FeatureType.STRING, { source: 's', ...window(AggregationFn.LAST, 120) }),
  spec('f_bin', FeatureType.FLOAT, {
    source: 'f',
    transform: { kind: 'BIN', edges: [-1, 0, 250, 500, 1000], closed: BinClosure.LEFT },
  }),
  spec('s_idx', FeatureType.STRING, {
    source: 's',
    transform: { kind: 'CATEGORY_INDEX', categories: [`v1'"`, `v3'"`] },
  }),
];

beforeAll(async () => {
  app = await startTestApp(__filename, {
    env: {
      FEATURE_STREAM_CONSUMER: 'off',
      OFFLINE_COMPACTION_INTERVAL_MS: '0',
      DATASET_DUCKDB_MIN_ROWS: '600',
      // Every bucket joined in a statement of its own: what a history larger than the
      // memory limit gets (the other DuckDB tests join all buckets in one).
      DATASET_DUCKDB_GROUP_MB: '0',
    },
    overrides: { clock },
  });
  gql = new GraphQLTestClient(app.url, app.adminToken);
  await app.services.featureRegistry.createEntity({ name: 'item', joinKeys: ['item_id'] });
});

afterAll(() => app?.stop());

const view = (name: string, features = FEATURES) =>
  itemView(app.services, name, features, 2 * 3600);

/** Deterministic records of every type, with nulls, over 40 entities, events in [from, from + span) minutes. */
function records(n: number, seed: number, from: number, span: number): IngestRecord[] {
  let x = seed;
  const rnd = () => (x = (Math.imul(x, 1103515245) + 12345) >>> 0) / 2 ** 32;
  return Array.from({ length: n }, (_, k) => {
    const maybe = <T>(v: T): T | null => (rnd() < 0.15 ? null : v);
    return {
      entityKey: `it${k % 40}`,
      eventId: `r${seed}-${k}`,
      eventTs: T0 + (from + Math.floor(rnd() * span)) * MIN,
      fields: {
        // Thousandths: not exact in binary, so a sum's order shows in its last bits.
        f: maybe(Math.round(rnd() * 1e6) / 1e3),
        i: maybe(Math.floor(rnd() * 100) - 50),
        b: maybe(rnd() < 0.5),
        s: maybe(`v${Math.floor(rnd() * 5)}'"`),
        l: maybe([rnd(), -rnd()]),
      },
    };
  });
}

async function ingestAt(v: FeatureViewVersion, batch: IngestRecord[], at: number) {
  clock.set(at);
  const [report] = await app.services.ingestion.ingest([v], batch, 'test');
  expect(report.quarantined).toBe(0);
}

/**
 * Labels from before anything was known (minute 250) to after the log's rows were learned
 * (400 and 410), on 45 entities (five without history).
 */
const spine = Array.from({ length: 400 }, (_, k) => ({
  entityKey: `it${k % 45}`,
  timestamp: new Date(T0 + (250 + ((k * 7919) % 230)) * MIN).toISOString(),
  label: k % 3 === 0 ? null : k % 2,
}));

async function build(name: string, refs: string[], engine: JoinEngine | null) {
  return gql.request(BuildDatasetDocument, {
    input: { name, featureRefs: refs, rows: spine, engine },
    wait: true,
  });
}

// First in the file: the engine sweeps at its first join.
it('removes the join folders dead processes on this host left behind, at its first join', async () => {
  const dir = path.join(app.dataDir, 'tmp', 'duckdb');
  fs.mkdirSync(dir, { recursive: true });
  const host = os.hostname().replace(/[^A-Za-z0-9.-]/g, '_');
  const dead = spawnSync(process.execPath, ['-e', ''], { timeout: 30_000 }).pid;
  const folder = (name: string) => {
    fs.mkdirSync(path.join(dir, name, 'spill'), { recursive: true });
    fs.writeFileSync(path.join(dir, name, 'v0-x.parquet'), 'copied');
    return path.join(dir, name);
  };
  const abandoned = folder(`join-${host}-${dead}-a1b2c3`);
  // A live process's (the test runner's parent), another host's, and what is not a join's.
  const kept = [
    folder(`join-${host}-${process.ppid}-d4e5f6`),
    folder(`join-elsewhere-${dead}-g7h8i9`),
    folder('spill'),
  ];
  const v = await view('sweep');
  await ingestAt(v, records(60, 5, 0, 300), T0 + 300 * MIN);
  const res = await build('sweep-duckdb', ['sweep:f'], 'DUCKDB');
  expect(res.data!.buildDataset).toMatchObject({ status: 'READY', engine: 'DUCKDB' });
  expect(fs.existsSync(abandoned)).toBe(false);
  for (const k of kept) expect(fs.existsSync(k)).toBe(true);
  // The join's own folder is gone with it.
  expect(fs.readdirSync(dir).filter((n) => n.includes(`-${process.pid}-`))).toEqual([]);
});

describe('history in the open table and in the log', () => {
  beforeAll(async () => {
    const v = await view('engines');
    // Events of minutes 0-300 learned at 300, corrections of some at 320: compacted.
    const first = records(500, 1, 0, 300);
    await ingestAt(v, first, T0 + 300 * MIN);
    const corrected = (n: number, seed: number) =>
      records(n, seed, 0, 1).map((r, k) => ({ ...first[k], fields: r.fields }));
    await ingestAt(v, corrected(120, 2), T0 + 320 * MIN);
    expect(await app.services.compaction.compact('engines', null)).toMatchObject({ rows: 620 });
    // After the compaction, in the log only: events of minutes 300-400 learned at 400, and
    // corrections of compacted events learned at 410.
    await ingestAt(v, records(150, 3, 300, 100), T0 + 400 * MIN);
    await ingestAt(v, corrected(40, 4), T0 + 410 * MIN);
  });

  it('builds the same dataset, to the byte, on either engine', async () => {
    const refs = ['engines:*'];
    const evaluator = await build('on-evaluator', refs, 'EVALUATOR');
    const duck = await build('on-duckdb', refs, 'DUCKDB');
    expect(evaluator.errors).toBeUndefined();
    expect(duck.errors).toBeUndefined();
    const a = evaluator.data!.buildDataset;
    const b = duck.data!.buildDataset;
    expect(a).toMatchObject({ status: 'READY', engine: 'EVALUATOR', rowCount: 400 });
    expect(b).toMatchObject({ status: 'READY', engine: 'DUCKDB', rowCount: 400, error: null });
    expect(b.contentHash).toBe(a.contentHash);
    expect(b.columns).toEqual(a.columns);
  });

  it('gives the same hash for a subset of features named out of order', async () => {
    const refs = ['engines:s_last_2h', 'engines:f_mean_3h', 'engines:l', 'engines:f_sum_2h'];
    const a = (await build('subset-evaluator', refs, 'EVALUATOR')).data!.buildDataset;
    const b = (await build('subset-duckdb', refs, 'DUCKDB')).data!.buildDataset;
    expect(b).toMatchObject({ status: 'READY', engine: 'DUCKDB' });
    expect(b.contentHash).toBe(a.contentHash);
  });

  it("publishes a DuckDB build's progress, in order, before READY", async () => {
    const spy = jest.spyOn(app.services.events, 'publish');
    let id: string;
    let calls: typeof spy.mock.calls;
    try {
      const res = await build('progress-duckdb', ['engines:f', 'engines:f_sum_2h'], 'DUCKDB');
      expect(res.data!.buildDataset).toMatchObject({ status: 'READY', engine: 'DUCKDB' });
      id = localIdOf(res.data!.buildDataset.id, 'DatasetSnapshot');
    } finally {
      calls = [...spy.mock.calls];
      spy.mockRestore();
    }
    const building = calls
      .filter(([topic]) => topic === `dataset:${id}`)
      .map(([, e]) => e as { status: string; progress: number })
      .filter((e) => e.status === 'BUILDING')
      .map((e) => e.progress);
    // One at the end of each phase before the statement (copy, spine, precondition; the tail,
    // 2 % after the copy, falls under the 5 % step between events); then the rows placed,
    // group after group (here a bucket each), at least 5 % apart; then READY.
    expect(building.length).toBeGreaterThanOrEqual(3);
    expect([...building].sort((x, y) => x - y)).toEqual(building);
    expect(building.every((f) => f > 0 && f < 1)).toBe(true);
  });

  it('runs a build that names no engine on DuckDB from DATASET_DUCKDB_MIN_ROWS rows', async () => {
    const res = await build('auto-large', ['engines:f', 'engines:f_sum_2h'], null);
    expect(res.data!.buildDataset).toMatchObject({ status: 'READY', engine: 'DUCKDB' });
  });
});

// Where the history lies decides how the engine finds the moved events (movedEventsSql): in the
// files by their superseded_ts, in the log's tail by every row.
// With one entity's event moved, only its bucket's group takes the general form: the others
// keep the ASOF form (the precondition is checked per group; this file runs a group per bucket).
it.each([
  ['in the log', 'log', 'log', 'many'],
  ['compacted into the files', 'files', 'files', 'many'],
  ['in the files, its correction in the log', 'files', 'log', 'many'],
  ['one entity only, in the files', 'files', 'files', 'one'],
] as const)(
  'gives the same hash when a correction moves an event in time, %s (the general form)',
  async (_, firstIn, correctionIn, which) => {
    const name = `moved_${firstIn}_${correctionIn}_${which}`;
    const v = await view(name);
    // it0's latest event (minute 299), moved back to minute 10 by its correction: the ASOF
    // form would still see minute 299 as it0's latest, and serve the superseded version.
    const last = {
      entityKey: 'it0',
      eventId: 'it0-last',
      eventTs: T0 + 299 * MIN,
      fields: { f: 0.5, i: 5, b: true, s: 'last', l: [5] },
    };
    const first = [...records(300, 11, 0, 300), last];
    await ingestAt(v, first, T0 + 300 * MIN);
    if (firstIn === 'files') await app.services.compaction.compact(name, null);
    // A correction that re-times some events, learned later: DuckDB cannot use its ASOF form.
    const moved = [
      ...first.slice(0, which === 'many' ? 30 : 0).map((r, k) => ({
        ...r,
        eventTs: r.eventTs + (k % 2 ? 45 : -45) * MIN,
        fields: { ...r.fields, f: k / 10 },
      })),
      { ...last, eventTs: T0 + 10 * MIN, fields: { ...last.fields, f: 7.5 } },
    ];
    await ingestAt(v, moved, T0 + 330 * MIN);
    if (correctionIn === 'files')
      expect(await app.services.compaction.compact(name, null)).toMatchObject({
        rows: moved.length,
      });
    const a = (await build(`${name}-evaluator`, [`${name}:*`], 'EVALUATOR')).data!.buildDataset;
    const b = (await build(`${name}-duckdb`, [`${name}:*`], 'DUCKDB')).data!.buildDataset;
    expect(b).toMatchObject({ status: 'READY', engine: 'DUCKDB' });
    expect(b.contentHash).toBe(a.contentHash);
  },
);

it('groups the buckets in order, each group within the budget unless one bucket exceeds it', () => {
  const files = (bytes: Record<number, number>) => ({
    files: Object.entries(bytes).map(([b, n]) => ({ bucket: Number(b), bytes: n })),
  });
  // Bytes add up over the versions; a bucket without files joins the group it falls in.
  const histories = [files({ 0: 30, 1: 50, 3: 90, 4: 10 }), files({ 0: 30, 4: 10 })];
  expect(bucketGroups([0, 1, 2, 3, 4], histories, 100)).toEqual([[0], [1, 2], [3], [4]]);
  expect(bucketGroups([0, 1, 2, 3, 4], histories, 120)).toEqual([
    [0, 1, 2],
    [3, 4],
  ]);
  expect(bucketGroups([1, 2, 3], histories, 0)).toEqual([[1], [2], [3]]);
  expect(bucketGroups([0, 1, 3, 4], histories, 1e9)).toEqual([[0, 1, 3, 4]]);
});

describe('choosing the engine', () => {
  it('runs a small history on the evaluator when no engine is named', async () => {
    const v = await view('small');
    await ingestAt(v, records(50, 7, 0, 300), T0 + 300 * MIN);
    const res = await build('auto-small', ['small:f'], null);
    expect(res.data!.buildDataset).toMatchObject({ status: 'READY', engine: 'EVALUATOR' });
  });

  it('refuses DuckDB, with a code, for a feature its SQL cannot express', async () => {
    // A source field named like a key column of the history relation.
    const v = await view('clash', [spec('known', FeatureType.FLOAT, { source: 'known_ts' })]);
    await ingestAt(
      v,
      Array.from({ length: 700 }, (_, k) => ({
        entityKey: `it${k % 40}`,
        eventId: `c${k}`,
        eventTs: T0 + k * MIN,
        fields: { known_ts: k / 10 },
      })),
      T0 + 720 * MIN,
    );
    const refused = await build('clash-duckdb', ['clash:known'], 'DUCKDB');
    expect(refused.errors?.[0].extensions).toMatchObject({
      code: 'BAD_USER_INPUT',
      reason: 'ENGINE_UNAVAILABLE',
    });
    expect(refused.errors?.[0].message).toMatch(/known_ts/);
    // Named by nobody, the same build runs on the evaluator, though the history is large.
    const auto = await build('clash-auto', ['clash:known'], null);
    expect(auto.data!.buildDataset).toMatchObject({ status: 'READY', engine: 'EVALUATOR' });
  });
});
