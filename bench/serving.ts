import * as ort from 'onnxruntime-node';
import { ModelState } from '../src/domain/registry/model';
import { fit } from '../src/domain/training/fit';
import { type GbdtState } from '../src/domain/training/learners/gbdt';
import { builtinTrainer, validateHyperparameters } from '../src/domain/training/trainers';
import { readTrainingTable } from '../src/infra/datasets/training-table';
import { exportGbdt } from '../src/infra/onnx/export';
import { buildFlightsSets } from '../scripts/flights-training-set';
import { registerKnownModel } from '../test/support/trained-model';
import { median, round, runLoad, scale, writeResult, type LoadResult } from './support/bench';
import { startBenchPlatform } from './support/platform';

/**
 * serving: the flights delay model (GBDT, 100 trees) end to end — online features from
 * Redis, ONNX inference on a replica thread, prediction log — over GraphQL from a separate
 * client process at concurrency 1, 32 and 128, with micro-batching (up to 64 rows, 500 µs)
 * and without (one row per call); then the same over the lean JSON path. Baselines in the
 * same run: the model's onnxruntime session called in this process with the same features,
 * one row per call; and the floors of this machine at concurrency 32 — the same server
 * answering a GraphQL `{ __typename }` and a bare `/healthz` — which no prediction can beat.
 */
const QUERY = (endpoint: string) =>
  JSON.stringify({
    query: `mutation { predict(endpoint: "${endpoint}", requestKey: "bench", entityKeys: ["ORD"]) { id score version { version } } }`,
  });
const JSON_BODY = JSON.stringify({ requestKey: 'bench', entityKeys: ['ORD'] });

export async function main(): Promise<void> {
  const seconds = Math.max(1, Math.round(4 * scale()));
  const p = await startBenchPlatform('serving', {
    FEATURE_STREAM_CONSUMER: 'off',
    CANARY_INTERVAL_MS: '0',
  });
  try {
    const s = p.app.services;
    const { train } = await buildFlightsSets(s, {
      flights: Math.round(60_000 * scale()),
      spine: Math.round(15_000 * scale()),
      heldOut: 0,
      name: 'serve',
    });
    const { table, ts } = readTrainingTable(await s.artifacts.getBytes(train.artifact!.key));
    const trained = await fit({
      trainer: 'gbdt',
      hyperparameters: validateHyperparameters(builtinTrainer('gbdt')!, {
        trees: 100,
        maxDepth: 5,
      }),
      table,
      ts,
      onEpoch: async () => undefined,
    });
    const bytes = exportGbdt('gbdt', table.names, trained.standardizer, trained.state as GbdtState);
    const v = await registerKnownModel(s, {
      model: 'flight-delay',
      datasetId: train.id,
      features: table.names,
      weights: [],
      bias: 0,
      bytes,
    });
    const admin = { keyId: 'bench', name: 'bench', role: 'ADMIN' as never };
    await s.registry.validate(admin, v.id, train.id);
    for (const to of [
      ModelState.STAGING,
      ModelState.SHADOW,
      ModelState.CANARY,
      ModelState.PRODUCTION,
    ])
      await s.registry.transition(admin, v.id, to, 'bench');
    await s.deployments.create(admin, {
      endpoint: 'batched',
      model: 'flight-delay',
      maxBatch: 64,
      maxWaitUs: 500,
    });
    await s.deployments.create(admin, {
      endpoint: 'unbatched',
      model: 'flight-delay',
      maxBatch: 1,
      maxWaitUs: 0,
    });

    const headers = { authorization: `Bearer ${p.adminToken}` };
    const check = (await (
      await fetch(p.app.url, {
        method: 'POST',
        headers: { ...headers, 'content-type': 'application/json' },
        body: QUERY('batched'),
      })
    ).json()) as { data?: { predict: { score: number }[] }; errors?: unknown };
    if (!check.data) throw new Error(JSON.stringify(check.errors));
    const base = p.app.url.replace('/graphql', '');
    const post = (url: string, body: string, concurrency: number) =>
      runLoad({ mode: 'http', url, headers, body, concurrency, seconds, warmupSeconds: 1 });
    const graph = (endpoint: string, c: number) => post(p.app.url, QUERY(endpoint), c);
    const lean = (endpoint: string, c: number) =>
      post(`${base}/v1/predict/${endpoint}`, JSON_BODY, c);
    const thrice = async (f: () => Promise<LoadResult>): Promise<LoadResult[]> => [
      await f(),
      await f(),
      await f(),
    ];
    const c1 = await thrice(() => graph('batched', 1));
    const c32 = await thrice(() => graph('batched', 32));
    const c128b: LoadResult[] = [];
    const c128u: LoadResult[] = [];
    for (let i = 0; i < 3; i++) {
      c128b.push(await graph('batched', 128));
      c128u.push(await graph('unbatched', 128));
    }
    const json1 = await thrice(() => lean('batched', 1));
    const json32 = await thrice(() => lean('batched', 32));
    const json128b: LoadResult[] = [];
    const json128u: LoadResult[] = [];
    for (let i = 0; i < 3; i++) {
      json128b.push(await lean('batched', 128));
      json128u.push(await lean('unbatched', 128));
    }
    const floorGraph = await thrice(() =>
      post(p.app.url, JSON.stringify({ query: '{ __typename }' }), 32),
    );
    const floorHttp = await thrice(() =>
      runLoad({
        mode: 'http',
        method: 'GET',
        url: `${base}/healthz`,
        headers: {},
        body: '',
        concurrency: 32,
        seconds,
        warmupSeconds: 1,
      }),
    );

    // Baseline: the same session kind, in process, one row of the same features per call.
    const [row] = await s.onlineFeatures.readResolved(
      ['ORD'],
      await s.featureRegistry.resolveRefs(table.names),
    );
    const x = Float32Array.from(row.vector, (f) => (typeof f === 'number' ? f : NaN));
    const session = await ort.InferenceSession.create(bytes, {
      intraOpNumThreads: 1,
      interOpNumThreads: 1,
    });
    const input = session.inputNames[0];
    for (let i = 0; i < 200; i++)
      await session.run({ [input]: new ort.Tensor('float32', x, [1, x.length]) });
    const t0 = performance.now();
    const calls = 2_000;
    for (let i = 0; i < calls; i++)
      await session.run({ [input]: new ort.Tensor('float32', x, [1, x.length]) });
    const ortUs = ((performance.now() - t0) * 1_000) / calls;
    await session.release();

    await s.predictionLog.flush();
    const stats = s.predictionLog.stats();
    const m = (rs: LoadResult[], k: keyof LoadResult) => median(rs.map((r) => r[k]));
    writeResult('serving', {
      p50_ms_c1: round(m(c1, 'p50')),
      p99_ms_c1: round(m(c1, 'p99')),
      rps_c1: round(m(c1, 'rps'), 0),
      p99_ms_c32: round(m(c32, 'p99')),
      rps_c32: round(m(c32, 'rps'), 0),
      rps_c128_batched: round(m(c128b, 'rps'), 0),
      rps_c128_unbatched: round(m(c128u, 'rps'), 0),
      p99_ms_c128_batched: round(m(c128b, 'p99')),
      p99_ms_c128_unbatched: round(m(c128u, 'p99')),
      batching_speedup_c128: round(m(c128b, 'rps') / m(c128u, 'rps'), 2),
      json_p50_ms_c1: round(m(json1, 'p50')),
      json_p99_ms_c32: round(m(json32, 'p99')),
      json_rps_c32: round(m(json32, 'rps'), 0),
      json_rps_c128_batched: round(m(json128b, 'rps'), 0),
      json_rps_c128_unbatched: round(m(json128u, 'rps'), 0),
      json_batching_speedup_c128: round(m(json128b, 'rps') / m(json128u, 'rps'), 2),
      floor_graphql_typename_p99_ms_c32: round(m(floorGraph, 'p99')),
      floor_graphql_typename_rps_c32: round(m(floorGraph, 'rps'), 0),
      floor_healthz_p99_ms_c32: round(m(floorHttp, 'p99')),
      floor_healthz_rps_c32: round(m(floorHttp, 'rps'), 0),
      ort_inprocess_us: round(ortUs, 1),
      log_rows_written: stats.written,
      log_rows_lost: stats.lost,
      features: table.names.length,
    });
  } finally {
    await p.close();
  }
}
