import { LineageDirection } from '../src/domain/lineage/lineage';
import { buildFloatDataset } from '../test/support/datasets';
import { registerKnownModel } from '../test/support/trained-model';
import {
  median,
  percentile,
  round,
  runLoad,
  scale,
  writeResult,
  type LoadResult,
} from './support/bench';
import { startBenchPlatform } from './support/platform';

/**
 * registry-lineage: a synthetic lineage graph of 100,000 nodes (sources → feature view
 * versions → snapshots → runs → model versions → deployments) queried through GraphQL from
 * a separate client process: an upstream walk of depth 6 from a model version and a
 * downstream impact walk from a widely used feature view version. Baseline in the same run:
 * the same walks through the repository alone (SQL, no GraphQL or HTTP). Also registrations
 * per second (files verified and stored, numbered under the model lock) against the bare
 * artifact puts they include.
 */
const QUERY = `query L($id: ID!, $d: LineageDirection!) { lineage(id: $id, direction: $d, depth: 6, limit: 1000) { nodes { id kind label depth } edges { from to relation } } }`;

export async function main(): Promise<void> {
  const k = scale();
  const n = {
    sources: Math.round(100 * k),
    views: Math.round(1_000 * k),
    snapshots: Math.round(20_000 * k),
    runs: Math.round(40_000 * k),
    versions: Math.round(30_000 * k),
    deployments: Math.round(8_900 * k),
  };
  const p = await startBenchPlatform('registry_lineage', { FEATURE_STREAM_CONSUMER: 'off' });
  try {
    const ds = p.app.db.dataSource;
    const s = p.app.services;
    // The graph, straight into the lineage tables (the triggers fill them the same way).
    await ds.query(
      `INSERT INTO lineage_node (id, kind, label)
       SELECT 'Source:src' || i, 'Source', 'src' || i FROM generate_series(1, $1) i
       UNION ALL SELECT 'FeatureViewVersion:v' || i, 'FeatureViewVersion', 'view' || i || '@1' FROM generate_series(1, $2) i
       UNION ALL SELECT 'DatasetSnapshot:d' || i, 'DatasetSnapshot', 'snap' || i FROM generate_series(1, $3) i
       UNION ALL SELECT 'Run:r' || i, 'Run', 'exp / mlp' FROM generate_series(1, $4) i
       UNION ALL SELECT 'ModelVersion:m' || i, 'ModelVersion', 'model@' || i FROM generate_series(1, $5) i
       UNION ALL SELECT 'Deployment:x' || i, 'Deployment', 'dep' || i FROM generate_series(1, $6) i`,
      [n.sources, n.views, n.snapshots, n.runs, n.versions, n.deployments],
    );
    // Each view from one source; each snapshot from three views (view 1 is in every 200th:
    // the widely used one); runs from snapshots; versions from runs; deployments from versions.
    await ds.query(
      `INSERT INTO lineage_edge (from_node, to_node, relation)
       SELECT 'Source:src' || (1 + i % $1), 'FeatureViewVersion:v' || i, 'materializes' FROM generate_series(1, $2) i
       UNION ALL SELECT DISTINCT 'FeatureViewVersion:v' || v, 'DatasetSnapshot:d' || i, 'builds'
         FROM generate_series(1, $3) i, LATERAL (VALUES (2 + i % ($2 - 1)), (2 + (i * 7) % ($2 - 1)),
           (CASE WHEN i % 200 = 0 THEN 1 ELSE 2 + (i * 13) % ($2 - 1) END)) AS x(v)
       UNION ALL SELECT 'DatasetSnapshot:d' || (1 + i % $3), 'Run:r' || i, 'trains' FROM generate_series(1, $4) i
       UNION ALL SELECT 'Run:r' || (1 + i % $4), 'ModelVersion:m' || i, 'produces' FROM generate_series(1, $5) i
       UNION ALL SELECT 'ModelVersion:m' || (1 + i % $5), 'Deployment:x' || i, 'deploys' FROM generate_series(1, $6) i`,
      [n.sources, n.views, n.snapshots, n.runs, n.versions, n.deployments],
    );
    await ds.query(`ANALYZE lineage_node; ANALYZE lineage_edge`);
    const [{ nodes }] = (await ds.query(`SELECT count(*)::int AS nodes FROM lineage_node`)) as {
      nodes: number;
    }[];

    const gid = (node: string) => Buffer.from(node).toString('base64url');
    const headers = { authorization: `Bearer ${p.adminToken}` };
    const upstreamStart = 'ModelVersion:m7';
    const impactStart = 'FeatureViewVersion:v1';
    const body = (start: string, d: string) =>
      JSON.stringify({ query: QUERY, variables: { id: gid(start), d } });
    // One checked answer each before timing.
    const sizes: Record<string, number> = {};
    for (const [name, start, d] of [
      ['upstream', upstreamStart, 'UPSTREAM'],
      ['impact', impactStart, 'DOWNSTREAM'],
    ] as const) {
      const r = (await (
        await fetch(p.app.url, {
          method: 'POST',
          headers: { ...headers, 'content-type': 'application/json' },
          body: body(start, d),
        })
      ).json()) as { data?: { lineage: { nodes: unknown[] } }; errors?: unknown };
      if (!r.data) throw new Error(`${name}: ${JSON.stringify(r.errors)}`);
      sizes[name] = r.data.lineage.nodes.length;
    }
    const load = (b: string) =>
      runLoad({
        mode: 'http',
        url: p.app.url,
        headers,
        body: b,
        concurrency: 1,
        seconds: Math.max(1, Math.round(3 * k)),
        warmupSeconds: 1,
      });
    const runs = async (b: string): Promise<LoadResult[]> => [
      await load(b),
      await load(b),
      await load(b),
    ];
    const up = await runs(body(upstreamStart, 'UPSTREAM'));
    const impact = await runs(body(impactStart, 'DOWNSTREAM'));

    // Baseline: the same walks through the lineage service alone.
    const sql = async (start: string, d: LineageDirection) => {
      const t: number[] = [];
      for (let i = 0; i < 200; i++) {
        const t0 = performance.now();
        await s.lineage.lineage(start, d, 6, 1000);
        t.push(performance.now() - t0);
      }
      return t.sort((a, b) => a - b);
    };
    const upSql = await sql(upstreamStart, LineageDirection.UPSTREAM);
    const impactSql = await sql(impactStart, LineageDirection.DOWNSTREAM);

    // Registrations: one real run with a model, registered again and again.
    const reg = await registrations(p.app.services, Math.max(20, Math.round(200 * k)));

    const m = (rs: LoadResult[], key: keyof LoadResult) => median(rs.map((r) => r[key]));
    writeResult('registry-lineage', {
      graph_nodes: nodes,
      upstream_nodes: sizes.upstream,
      impact_nodes: sizes.impact,
      upstream_p50_ms: round(m(up, 'p50')),
      upstream_p99_ms: round(m(up, 'p99')),
      impact_p50_ms: round(m(impact, 'p50')),
      impact_p99_ms: round(m(impact, 'p99')),
      upstream_service_p50_ms: round(percentile(upSql, 50)),
      impact_service_p50_ms: round(percentile(impactSql, 50)),
      impact_p50_ratio_vs_service: round(m(impact, 'p50') / percentile(impactSql, 50), 2),
      register_versions_per_second: round(reg.perSecond, 1),
      artifact_puts_per_second: round(reg.putsPerSecond, 1),
      register_ratio_vs_puts: round(reg.perSecond / reg.putsPerSecond, 3),
    });
  } finally {
    await p.close();
  }
}

async function registrations(
  s: Awaited<ReturnType<typeof startBenchPlatform>>['app']['services'],
  count: number,
): Promise<{ perSecond: number; putsPerSecond: number }> {
  const snapshot = await buildFloatDataset(s, {
    view: 'bv',
    features: ['x'],
    rows: [{ entityKey: 'a', at: Date.now() - 60_000, values: { x: 1 }, label: 1 }],
  });
  const v = await registerKnownModel(s, {
    model: 'bench',
    datasetId: snapshot.id,
    features: ['bv@1:x'],
    weights: [1],
    bias: 0,
  });
  const model = await s.registry.modelBytes(v);
  const t0 = performance.now();
  for (let i = 0; i < count; i++)
    await s.registry.registerFromRun(null, 'bench', v.runId as string);
  const perSecond = count / ((performance.now() - t0) / 1000);
  const t1 = performance.now();
  for (let i = 0; i < count; i++) await s.artifacts.put(`bench/put-${i}.onnx`, model);
  const putsPerSecond = count / ((performance.now() - t1) / 1000);
  return { perSecond, putsPerSecond };
}
