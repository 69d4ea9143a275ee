import { FeatureType } from '../src/domain/features/feature-definition';
import { startTestApp, type TestApp } from './support/test-app';

/**
 * Ingestion looks up each record's stored versions with one probe per row. A view version
 * loaded into a large table before the next ANALYZE looks empty to the planner; the probe
 * must still go through the primary key, not filter the whole version per row through
 * another index (issue 16: a 60 s statement timeout loading the second view of
 * `npm run bench -- features-pit`). The plan is read with EXPLAIN under exactly those
 * statistics. At this size PostgreSQL 15 chose the key for the old per-column form too; it
 * chose (version_id, seq) with the table at 5M rows (docs/adr/0022), too large for a test:
 * this pins the plan's shape, and the benchmark loading its second view is the full-size
 * check.
 */
let app: TestApp;

beforeAll(async () => {
  app = await startTestApp(__filename, { env: { FEATURE_STREAM_CONSUMER: 'off' } });
});
afterAll(() => app.stop());

interface PlanNode {
  'Node Type': string;
  'Relation Name'?: string;
  'Index Name'?: string;
  Plans?: PlanNode[];
}
const nodes = (n: PlanNode): PlanNode[] => [n, ...(n.Plans ?? []).flatMap(nodes)];

it('probes stored versions through the primary key when the statistics think the version is empty', async () => {
  const s = app.services;
  const ds = app.db.dataSource;
  await s.featureRegistry.createEntity({ name: 'airport', joinKeys: ['code'] });
  const view = (name: string) =>
    s.featureRegistry.createView({
      name,
      entity: 'airport',
      source: `${name}_src`,
      ttlSeconds: 86_400,
      allowedLatenessSeconds: 86_400,
      features: [
        {
          name: 'x',
          type: FeatureType.FLOAT,
          source: 'x',
          transform: { kind: 'IDENTITY' as const },
          aggregation: null,
          validation: {},
        },
      ],
    });
  const big = (await view('big')).version;
  const fresh = (await view('fresh')).version;
  const T0 = Date.parse('2026-05-01T00:00:00Z');
  const fill = (versionId: string, n: number, entities: number) =>
    ds.query(
      `INSERT INTO feature_event (version_id, entity_key, event_id, event_ts, created_ts, fields)
       SELECT $1, 'k' || (g % ${entities}), 'e' || g, t, t, jsonb_build_object('x', g)
         FROM generate_series(1, ${n}) g, LATERAL (SELECT to_timestamp(($2 + g * 1000.0) / 1000) AS t) x`,
      [versionId, T0],
    );
  await fill(big.id, 60_000, 20_000);
  await ds.query('ANALYZE feature_event');
  // Loaded after the statistics were taken: few entities, many events each.
  await fill(fresh.id, 30_000, 30);

  const spy = jest.spyOn(ds, 'query');
  const records = Array.from({ length: 200 }, (_, i) => ({
    entityKey: `k${(i + 1) % 30}`,
    eventId: `e${i + 1}`,
    eventTs: T0 + (i + 1) * 1000,
    knownAt: T0 + 3_600_000,
    fields: { x: -i },
  }));
  const [report] = await s.ingestion.ingest([fresh], records, 'test');
  const probe = spy.mock.calls.find(([sql]) => /FROM feature_event x/.test(String(sql)));
  spy.mockRestore();
  // Every record is a correction of an event the table already holds.
  expect(report.corrections).toBe(records.length);
  expect(probe).toBeDefined();

  const [{ 'QUERY PLAN': plan }] = (await ds.query(`EXPLAIN (FORMAT JSON) ${String(probe![0])}`, [
    ...(probe![1] as unknown[]),
  ])) as { 'QUERY PLAN': { Plan: PlanNode }[] }[];
  const all = nodes(plan[0].Plan);
  const scans = all.filter((n) => n['Relation Name'] === 'feature_event');
  expect(scans.map((n) => [n['Node Type'], n['Index Name']])).toEqual([
    ['Index Scan', 'feature_event_pkey'],
  ]);
  expect(all.some((n) => n['Node Type'] === 'Sort')).toBe(false);
});
