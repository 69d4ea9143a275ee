import 'reflect-metadata';
import { startDemoApp } from './demo-app';
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { Role } from '../src/domain/auth/role';
import { toGlobalId } from '../src/schema/node.types';
import { buildFlightsTrainingSet, FLIGHTS_TRAINER_SETTINGS } from './flights-training-set';

/**
 * `npm run demo:train`: the three built-in trainers as runs of one experiment on a real
 * flights snapshot. Starts Aether on its embedded default (or DATABASE_URL / REDIS_URL when
 * set) and one gpu-runner process, builds the delay training set through the feature store,
 * submits the runs over GraphQL, follows them, and prints `compareRuns`.
 */
const FLIGHTS = Number(process.env.DEMO_FLIGHTS ?? 200_000);
const SPINE = Number(process.env.DEMO_SPINE ?? 50_000);
const log = (s: string) => console.log(s);

async function main(): Promise<void> {
  const { app, dataDir, gql } = await startDemoApp('demo-train', {
    FEATURE_STREAM_CONSUMER: 'off',
  });
  const runnerKey = await app.services.apiKeys.create(null, {
    name: 'demo-runner',
    role: Role.RUNNER,
  });
  const runner = spawn(process.execPath, [path.join(__dirname, '..', 'gpu-runner', 'main.js')], {
    env: {
      ...process.env,
      AETHER_API_URL: app.url,
      AETHER_RUNNER_KEY: runnerKey.token,
      RUNNER_NAME: 'demo-runner',
      RUNNER_SLOTS: '2',
      RUNNER_POLL_MS: '200',
    },
    stdio: ['ignore', 'ignore', 'inherit'],
  });
  try {
    log(`Aether is up at ${app.url} (data in ${dataDir}); one gpu-runner started`);
    const snap = await buildFlightsTrainingSet(app.services, {
      flights: FLIGHTS,
      spine: SPINE,
      name: 'flights-delay-train',
      log: (m) => log(`1. ${m}`),
    });

    const ids: string[] = [];
    for (const [trainer, hyperparameters] of Object.entries(FLIGHTS_TRAINER_SETTINGS)) {
      const r = await gql<{ submitTrainingJob: { id: string; queuePosition: number | null } }>(
        `mutation($input: SubmitTrainingJobInput!) { submitTrainingJob(input: $input) { id queuePosition } }`,
        {
          input: {
            experiment: 'flights-delay',
            builtinTrainer: trainer,
            datasetId: toGlobalId('DatasetSnapshot', snap.id),
            hyperparameters,
            gitCommit: gitCommit(),
          },
        },
      );
      ids.push(r.submitTrainingJob.id);
      log(`2. submitted ${trainer}: queue position ${r.submitTrainingJob.queuePosition ?? '-'}`);
    }

    // Follow the runs until all have finished.
    const seen = new Map<string, number>();
    for (;;) {
      const r = await gql<{
        runs: {
          edges: {
            node: {
              id: string;
              status: string;
              epochsDone: number;
              epochsTotal: number | null;
              trainer: { name: string };
              metrics: Record<string, number>;
            };
          }[];
        };
      }>(
        `{ runs(experiment: "flights-delay", first: 10) { edges { node { id status epochsDone epochsTotal trainer { name } metrics } } } }`,
      );
      const runs = r.runs.edges.map((e) => e.node);
      for (const x of runs) {
        if (seen.get(x.id) !== x.epochsDone && x.epochsDone > 0) {
          seen.set(x.id, x.epochsDone);
          if (x.epochsDone === x.epochsTotal || x.epochsDone % 5 === 0)
            log(
              `3. ${x.trainer.name.padEnd(20)} epoch ${String(x.epochsDone).padStart(3)}/${x.epochsTotal ?? '?'}  val_auc ${x.metrics.val_auc?.toFixed(4) ?? '-'}`,
            );
        }
      }
      if (runs.every((x) => ['SUCCEEDED', 'FAILED', 'CANCELLED'].includes(x.status))) {
        for (const x of runs.filter((y) => y.status !== 'SUCCEEDED'))
          log(`   ${x.trainer.name} ended ${x.status}`);
        break;
      }
      await new Promise((res) => setTimeout(res, 500));
    }

    const cmp = await gql<{
      compareRuns: {
        columns: string[];
        rows: {
          run: { trainer: { name: string }; model: { key: string } | null };
          values: (number | null)[];
        }[];
      };
    }>(
      `{ compareRuns(experiments: ["flights-delay"], sortBy: "val_auc") { columns rows { run { trainer { name } model { key } } values } } }`,
    );
    const col = (name: string) => cmp.compareRuns.columns.indexOf(name);
    const fmt = (v: number | null | undefined, digits: number) =>
      v == null ? '-' : v.toFixed(digits);
    log('4. compareRuns(experiments: ["flights-delay"], sortBy: "val_auc"):');
    log(
      `   ${'trainer'.padEnd(22)}${'val AUC'.padStart(9)}${'log loss'.padStart(10)}${'train s'.padStart(9)}${'rows/s/epoch'.padStart(14)}${'ONNX diff'.padStart(11)}`,
    );
    let constantLoss: number | null = null;
    const auc = new Map<string, number>();
    for (const row of cmp.compareRuns.rows) {
      const v = (n: string) => (col(n) >= 0 ? row.values[col(n)] : null);
      constantLoss = v('constant_val_loss');
      auc.set(row.run.trainer.name, v('val_auc') ?? 0);
      log(
        `   ${row.run.trainer.name.padEnd(22)}${fmt(v('val_auc'), 4).padStart(9)}${fmt(v('val_loss'), 4).padStart(10)}${fmt(v('duration_seconds'), 1).padStart(9)}${fmt(v('rows_per_second_per_epoch'), 0).padStart(14)}${(v('onnx_max_abs_diff')?.toExponential(1) ?? '-').padStart(11)}`,
      );
    }
    log(
      `   ${'constant (base rate)'.padEnd(22)}${'0.5000'.padStart(9)}${fmt(constantLoss, 4).padStart(10)}`,
    );
    const gbdt = auc.get('gbdt') ?? 0;
    const logreg = auc.get('logistic_regression') ?? 0;
    log(
      gbdt > logreg && logreg > 0.5
        ? `5. the tree model beats logistic regression (${gbdt.toFixed(4)} > ${logreg.toFixed(4)}), and both beat the constant predictor`
        : `5. unexpected ranking: gbdt ${gbdt.toFixed(4)}, logistic regression ${logreg.toFixed(4)}`,
    );
    log(
      `   each run's ONNX model is stored and linked (Run.model); lineage to ${snap.name} (${snap.contentHash})`,
    );
  } finally {
    runner.kill('SIGTERM');
    await new Promise((r) => runner.once('exit', r));
    await app.close();
  }
}

function gitCommit(): string | null {
  try {
    const head = fs.readFileSync(path.join(__dirname, '..', '..', '.git', 'HEAD'), 'utf8').trim();
    const ref = head.startsWith('ref: ') ? head.slice(5) : null;
    const sha = ref
      ? fs.readFileSync(path.join(__dirname, '..', '..', '.git', ref), 'utf8').trim()
      : head;
    return /^[0-9a-f]{40}$/.test(sha) ? sha : null;
  } catch {
    return null;
  }
}

main().catch((e: unknown) => {
  console.error(e);
  process.exit(1);
});
