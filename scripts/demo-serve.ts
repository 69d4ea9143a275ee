import 'reflect-metadata';
import { startDemoApp } from './demo-app';
import { ModelState } from '../src/domain/registry/model';
import { fit } from '../src/domain/training/fit';
import { type GbdtState } from '../src/domain/training/learners/gbdt';
import { type DenseState } from '../src/domain/training/learners/linear';
import { builtinTrainer, validateHyperparameters } from '../src/domain/training/trainers';
import { readTrainingTable } from '../src/infra/datasets/training-table';
import { exportDense, exportGbdt } from '../src/infra/onnx/export';
import { registerKnownModel } from '../test/support/trained-model';
import { buildFlightsSets } from './flights-training-set';

/**
 * `npm run demo:serve`: the flights delay model behind an endpoint. Builds the training set
 * through the feature store, trains a logistic regression (v1) and a GBDT (v2), serves v1 in
 * PRODUCTION, sends traffic over GraphQL, then runs v2 as a canary stepped up to 100 % by the
 * controller and promoted, and prints latency and errors per version from the prediction log.
 */
const log = (s: string) => console.log(s);

async function main(): Promise<void> {
  const { app, dataDir, token } = await startDemoApp('demo-serve', {
    FEATURE_STREAM_CONSUMER: 'off',
    CANARY_INTERVAL_MS: '0',
  });
  const s = app.services;
  const admin = { keyId: 'demo', name: 'demo', role: 'ADMIN' as never };
  try {
    log(`Aether is up at ${app.url} (data in ${dataDir})`);
    const { train, heldOut } = await buildFlightsSets(s, {
      flights: 80_000,
      spine: 15_000,
      heldOut: 3_000,
      name: 'serve-train',
      log: (m) => log(`1. ${m}`),
    });
    const { table, ts } = readTrainingTable(await s.artifacts.getBytes(train.artifact!.key));
    const trainOne = async (trainer: string, given: Record<string, unknown>) =>
      fit({
        trainer,
        hyperparameters: validateHyperparameters(builtinTrainer(trainer)!, given),
        table,
        ts,
        onEpoch: async () => undefined,
      });
    const lr = await trainOne('logistic_regression', { epochs: 10 });
    const gb = await trainOne('gbdt', { trees: 60, maxDepth: 4 });
    const register = (bytes: Uint8Array) =>
      registerKnownModel(s, {
        model: 'flight-delay',
        datasetId: train.id,
        features: table.names,
        weights: [],
        bias: 0,
        bytes,
      });
    const v1 = await register(
      exportDense('lr', table.names, lr.standardizer, lr.state as DenseState),
    );
    const v2 = await register(
      exportGbdt('gbdt', table.names, gb.standardizer, gb.state as GbdtState),
    );
    const promote = async (id: string, to: ModelState) => {
      await s.registry.validate(admin, id, heldOut!.id);
      const path = [
        ModelState.STAGING,
        ModelState.SHADOW,
        ModelState.CANARY,
        ModelState.PRODUCTION,
      ];
      for (const st of path.slice(0, path.indexOf(to) + 1))
        await s.registry.transition(admin, id, st, 'demo');
    };
    await promote(v1.id, ModelState.PRODUCTION);
    log(
      `2. registered flight-delay@1 (logistic regression) and @2 (GBDT); @1 validated and in PRODUCTION`,
    );
    await s.deployments.create(admin, {
      endpoint: 'flight-delay',
      model: 'flight-delay',
      canaryShare: 0.25,
      canaryPolicy: {
        steps: [0.25, 0.5, 1],
        stepMs: 1_500,
        windowMs: 30_000,
        minSamples: 50,
        maxP99Ratio: 5,
      },
    });
    log('3. endpoint flight-delay deployed: every version loaded, verified and warmed up');

    const airports = ['ATL', 'ORD', 'DFW', 'LAX', 'DEN', 'PHX', 'IAH', 'LAS', 'DTW', 'SFO'];
    let sent = 0;
    const traffic = async (n: number) => {
      const one = async (i: number) => {
        const res = await fetch(app.url, {
          method: 'POST',
          headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` },
          body: JSON.stringify({
            query:
              'mutation($k: String!, $e: [String!]!) { predict(endpoint: "flight-delay", requestKey: $k, entityKeys: $e) { score version { version } } }',
            variables: { k: `traveller-${sent + i}`, e: [airports[(sent + i) % airports.length]] },
          }),
        });
        await res.json();
      };
      for (let i = 0; i < n; i += 8)
        await Promise.all(Array.from({ length: Math.min(8, n - i) }, (_, k) => one(i + k)));
      sent += n;
    };
    await traffic(400);
    log(`4. sent 400 predictions to @1`);
    await promote(v2.id, ModelState.CANARY);
    await new Promise((r) => setTimeout(r, 1_100));
    await s.deployments.prepare('flight-delay');
    log('5. @2 is the CANARY (25 % of travellers, by consistent hashing of the request key)');
    for (let round = 0; round < 12; round++) {
      await traffic(300);
      const [d] = await s.canary.review();
      log(`   after ${sent} requests: ${d.action} — ${d.reason}`);
      if (d.action === 'PROMOTE' || d.action === 'ROLLBACK') break;
      await new Promise((r) => setTimeout(r, 1_600));
    }
    await new Promise((r) => setTimeout(r, 1_100));
    await traffic(300);
    await s.predictionLog.flush();
    const rows = (await app.db.dataSource.query(
      `SELECT mv.version, p.role, count(*)::int AS n,
              percentile_cont(0.5) WITHIN GROUP (ORDER BY latency_us) / 1000 AS p50_ms,
              percentile_cont(0.99) WITHIN GROUP (ORDER BY latency_us) / 1000 AS p99_ms
       FROM prediction_log p JOIN model_version mv ON mv.id = p.model_version_id
       GROUP BY 1, 2 ORDER BY 1, 2`,
    )) as { version: number; role: string; n: number; p50_ms: number; p99_ms: number }[];
    const m = await s.registry.model('flight-delay');
    const prod = (await s.registry.versionsByIds([m.productionVersionId ?? ''])).at(0);
    log(
      `6. PRODUCTION is now flight-delay@${prod?.version}; per version, from the prediction log:`,
    );
    const outcomes = await s.deployments.traffic('flight-delay', 3_600_000);
    const errorsOf = (version: number) => {
      const v = [v1, v2].find((x) => x.version === version);
      return outcomes.find((o) => o.versionId === v?.id)?.errors ?? 0;
    };
    log(
      `   ${'version'.padEnd(9)}${'role'.padEnd(12)}${'requests'.padStart(9)}${'p50 ms'.padStart(9)}${'p99 ms'.padStart(9)}`,
    );
    for (const r of rows)
      log(
        `   ${`@${r.version}`.padEnd(9)}${r.role.padEnd(12)}${String(r.n).padStart(9)}${Number(r.p50_ms).toFixed(2).padStart(9)}${Number(r.p99_ms).toFixed(2).padStart(9)}`,
      );
    log(
      `   failed requests: @1 ${errorsOf(1)}, @2 ${errorsOf(2)} (the canary controller's outcome windows)`,
    );
    log(`   prediction log: ${JSON.stringify(s.predictionLog.stats())}`);
  } finally {
    await app.close();
  }
}

main().catch((e: unknown) => {
  console.error(e);
  process.exit(1);
});
