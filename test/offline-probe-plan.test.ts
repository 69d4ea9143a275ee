import { FeatureType } from '../src/domain/features/feature-definition';
import { startTestApp, type TestApp } from './support/test-app';

/**
 * Ingestion looks up each record's stored versions with one probe per row. A view version
 * loaded into a large table before the next ANALYZE looks empty to the planner, which on a
 * 5M-row table then answered each probe through (version_id, seq), scanning the whole version
 * per record (issue 16: a 60 s statement timeout loading the second view of
 * `npm run bench -- features-pit`, also with the probe written as one row comparison). The
 * probe is a function whose settings allow no sort, so its ORDER BY … LIMIT 1 can only be the
 * primary key's seek: its body is planned here, under its own settings and exactly those
 * statistics, and must be that seek. (A test-sized table does not make PostgreSQL pick the
 * bad plan for the plain statement; docs/adr/0022 records the 5M-row case.)
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

  const records = Array.from({ length: 200 }, (_, i) => ({
    entityKey: `k${(i + 1) % 30}`,
    eventId: `e${i + 1}`,
    eventTs: T0 + (i + 1) * 1000,
    knownAt: T0 + 3_600_000,
    fields: { x: -i },
  }));
  const [report] = await s.ingestion.ingest([fresh], records, 'test');
  // Every record is a correction of an event the table already holds.
  expect(report.corrections).toBe(records.length);

  const [fn] = (await ds.query(
    `SELECT prosrc AS body, proconfig AS config FROM pg_proc WHERE proname = 'feature_previous_versions'`,
  )) as { body: string; config: string[] }[];
  expect(fn.config).toEqual(['enable_sort=off', 'enable_incremental_sort=off']);
  const body = fn.body
    .replace(/p_version/g, '$1::uuid')
    .replace(/p_keys/g, '$2::text[]')
    .replace(/p_events/g, '$3::text[]')
    .replace(/p_known/g, '$4::float8[]');
  const plan = await ds.transaction(async (m) => {
    for (const c of fn.config) {
      const [name, value] = c.split('=');
      await m.query(`SELECT set_config($1, $2, true)`, [name, value]);
    }
    const [{ 'QUERY PLAN': p }] = (await m.query(`EXPLAIN (FORMAT JSON) ${body}`, [
      fresh.id,
      records.map((r) => r.entityKey),
      records.map((r) => r.eventId),
      records.map((r) => r.knownAt),
    ])) as { 'QUERY PLAN': { Plan: PlanNode }[] }[];
    return p;
  });
  const all = nodes(plan[0].Plan);
  const scans = all.filter((n) => n['Relation Name'] === 'feature_event');
  expect(scans.map((n) => [n['Node Type'], n['Index Name']])).toEqual([
    ['Index Scan', 'feature_event_pkey'],
  ]);
  expect(all.some((n) => n['Node Type'] === 'Sort')).toBe(false);
});
