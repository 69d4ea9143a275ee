import fs from 'node:fs';
import path from 'node:path';
import { isDeepStrictEqual } from 'node:util';
import { Role } from '../src/domain/auth/role';
import { type CreateStudyInput } from '../src/domain/hpo/study.service';
import {
  bestTrial,
  Direction,
  ParamKind,
  PrunerKind,
  SamplerKind,
  type Study,
  StudyStatus,
  type Trial,
  TrialState,
} from '../src/domain/hpo/study';
import { ashaRungs } from '../src/domain/hpo/pruners';
import { RunStatus, type MetricPoint, type TrainingRun } from '../src/domain/training/training-run';
import { flightsFile } from '../src/infra/datasets/flights';
import { buildFlightsTrainingSet } from '../scripts/flights-training-set';
import { startRunner } from '../test/support/runner-process';
import { round } from './support/bench';
import { type BenchPlatform, startBenchPlatform } from './support/platform';

/**
 * hpo, ASHA part: asha_epoch_fraction on the flights delay task (ADR 0030, Benchmark).
 *
 * Two studies of the MLP built-in trainer over the same search space, sampler (RANDOM) and
 * seed, so trial n has the same parameters in both (checked below: the random sampler draws
 * from (seed, n) only, and the bench refuses to report if the studies' parameters differ):
 *
 * - random search: pruner NONE, every trial trained to MAX_EPOCHS;
 * - ASHA: pruner ASHA (rungs of 1, 3 and 9 epochs, reduction factor 3); a promoted trial is a
 *   new run resuming from its previous run's checkpoint.
 *
 * Both run through the real platform: the api in this process, one real gpu-runner process
 * (one slot, CPU) pulling the runs from the queue, parallelism 1 (so runs never overlap and
 * "epochs trained up to a moment" is exact). The objective is validation AUC (`val_auc`, as
 * the built-in trainers report it), maximised.
 *
 * Epochs are counted from what the runs reported: for each run, the distinct epochs of its
 * `val_auc` points (a run resumed from a checkpoint reports only the epochs it trained after
 * it). The ASHA study's best-so-far is the study's own best: the best COMPLETE trial (one
 * that trained all MAX_EPOCHS) after each of its runs ends, in the order they ended.
 * asha_epoch_fraction = epochs the ASHA study had trained when its best-so-far first came
 * within TOLERANCE of the random search's final best, over the epochs the random search
 * trained. If it never does, the figure is missing and the reason printed.
 * asha_epoch_fraction_any_rung is the looser reading (the best value of any ended run,
 * whichever rung), beside it.
 *
 * Resuming is exact, so a trial's value at each rung must equal the random search's value of
 * the same trial at that epoch: asha_rung_value_max_abs_diff (0 expected).
 *
 * One study pair is a coin flip on noise (a config ahead by 0.001 AUC at epoch 3 can be
 * behind at 9), so the pair runs for HPO_ASHA_SEEDS study seeds (default 3: 0, 1, 2) and the
 * fractions are medians over them, a seed whose ASHA study never came within TOLERANCE
 * counting as worse than any (missing when half or more never did); each seed's bests, epoch
 * totals and epochs to reach are figures too (asha_seed<n>_…).
 *
 * HPO_ASHA_TRIALS (27), HPO_ASHA_SEEDS (3) and HPO_ASHA_SPINE (dataset rows, 30000; a fifth
 * of them, the latest, validate) shrink a quick run; HPO_ASHA_VERBOSE=1 prints every trial's
 * rung values beside its random-search curve.
 */
export const TOLERANCE = 0.002;
const MIN_EPOCHS = 1;
const REDUCTION_FACTOR = 3;
const MAX_EPOCHS = 9;
const METRIC = 'val_auc';

const SPACE: CreateStudyInput['space'] = [
  { name: 'learningRate', kind: ParamKind.FLOAT, low: 1e-4, high: 0.05, log: true },
  { name: 'hiddenUnits', kind: ParamKind.CATEGORICAL, choices: [[8], [32], [32, 16]] },
  { name: 'batchSize', kind: ParamKind.CATEGORICAL, choices: [64, 256, 1024] },
];

interface Ended {
  study: Study;
  trials: Trial[];
  /** Every run of the study, in the order they ended. */
  runs: TrainingRun[];
  /** The epochs each run reported (distinct epochs of its objective points). */
  epochsOf: Map<string, number[]>;
  /** Each run's objective per epoch. */
  valuesOf: Map<string, Map<number, number>>;
  seconds: number;
}

/** Why the ASHA part cannot run here, or null. */
function missingPrerequisite(): string | null {
  try {
    if (!fs.existsSync(flightsFile())) return `the flights data is missing (${flightsFile()})`;
  } catch (e) {
    return `vega-datasets is not installed: ${e instanceof Error ? e.message : String(e)}`;
  }
  const runnerMain = path.resolve(__dirname, '..', 'gpu-runner', 'main.js');
  if (!fs.existsSync(runnerMain)) return `the built gpu-runner is missing (${runnerMain})`;
  return null;
}

export async function ashaBench(): Promise<Record<string, number>> {
  const missing = missingPrerequisite();
  if (missing) {
    console.log(`asha_epoch_fraction is skipped: ${missing}`);
    return {};
  }
  const trials = Number(process.env.HPO_ASHA_TRIALS ?? 27);
  const spine = Number(process.env.HPO_ASHA_SPINE ?? 30_000);
  const nSeeds = Number(process.env.HPO_ASHA_SEEDS ?? 3);
  const p = await startBenchPlatform('hpo_asha', {
    FEATURE_STREAM_CONSUMER: 'off',
    HPO_INTERVAL_MS: '100',
  });
  let runner: ReturnType<typeof startRunner> | null = null;
  try {
    const s = p.app.services;
    const snap = await buildFlightsTrainingSet(s, {
      flights: 200_000,
      spine,
      name: 'flights-asha',
      log: (m) => console.log(m),
    });
    const key = (await s.apiKeys.create(null, { name: 'bench-runner', role: Role.RUNNER })).token;
    runner = startRunner(p.app.url, key, {
      RUNNER_NAME: 'bench-cpu',
      RUNNER_SLOTS: '1',
      RUNNER_POLL_MS: '50',
      RUNNER_LEASE_RENEW_MS: '1000',
      RUNNER_REPORT_MS: '100',
      RUNNER_HARDWARE_MS: '5000',
      RUNNER_HEARTBEAT_MS: '1000',
    });
    const results: SeedResult[] = [];
    for (let seed = 0; seed < nSeeds; seed++) {
      const common = {
        builtinTrainer: 'mlp',
        datasetId: snap.id,
        hyperparameters: { epochs: MAX_EPOCHS, seed: 42 },
        space: SPACE,
        objective: { metric: METRIC, direction: Direction.MAXIMIZE },
        sampler: SamplerKind.RANDOM,
        budget: { trials },
        parallelism: 1,
        seed,
      };
      const random = await runStudy(p, runner, {
        ...common,
        name: `flights-random-${seed}`,
        pruner: { kind: PrunerKind.NONE },
      });
      const asha = await runStudy(p, runner, {
        ...common,
        name: `flights-asha-${seed}`,
        pruner: {
          kind: PrunerKind.ASHA,
          minResource: MIN_EPOCHS,
          reductionFactor: REDUCTION_FACTOR,
          maxResource: MAX_EPOCHS,
        },
      });
      results.push(compare(seed, random, asha));
    }
    return figuresOf(results, trials, snap.rowCount);
  } finally {
    if (runner) {
      runner.child.kill('SIGTERM');
      await runner.exited;
    }
    await p.close();
  }
}

async function runStudy(
  p: BenchPlatform,
  runner: ReturnType<typeof startRunner>,
  input: CreateStudyInput,
): Promise<Ended> {
  const s = p.app.services;
  const actor = { keyId: 'bench', name: 'bench', role: Role.ADMIN };
  const t0 = performance.now();
  const created = await s.studies.create(input, actor);
  let study = created;
  let shown = -1;
  const deadline = Date.now() + 30 * 60_000;
  while (study.status === StudyStatus.RUNNING) {
    if (Date.now() > deadline || runner.child.exitCode !== null)
      throw new Error(
        `study ${input.name} did not end (runner ${runner.child.exitCode === null ? 'alive' : `exited ${runner.child.exitCode}`}): ${runner.log().slice(-3000)}`,
      );
    await new Promise((r) => setTimeout(r, 250));
    study = await s.studies.get(created.id);
    const done = (await s.studies.trials(study.id)).filter(
      (t) => t.state !== TrialState.RUNNING && t.state !== TrialState.PAUSED,
    ).length;
    if (done !== shown && done % 5 === 0) console.log(`${input.name}: ${done} trials ended`);
    shown = done;
  }
  const seconds = (performance.now() - t0) / 1000;
  if (study.status !== StudyStatus.COMPLETED)
    throw new Error(`study ${input.name} ended ${study.status}`);
  const trials = await s.studies.trials(study.id);
  const ids = trials.flatMap((t) => [...t.pastRunIds, ...(t.runId ? [t.runId] : [])]);
  const runs = (await s.training.byIds(ids)).sort(
    (a, b) => (a.finishedAt as Date).getTime() - (b.finishedAt as Date).getTime(),
  );
  const points = await s.training.metricsOf(ids);
  const epochsOf = new Map<string, number[]>();
  const valuesOf = new Map<string, Map<number, number>>();
  for (const r of runs) {
    const mine = (points.get(r.id) ?? []).filter(
      (x: MetricPoint) => x.name === METRIC && x.step === null,
    );
    valuesOf.set(r.id, new Map(mine.map((x) => [x.epoch, x.value])));
    epochsOf.set(
      r.id,
      [...new Set(mine.map((x) => x.epoch))].sort((a, b) => a - b),
    );
  }
  console.log(
    `${input.name}: ${trials.length} trials, ${runs.length} runs, ${seconds.toFixed(0)} s`,
  );
  return { study, trials, runs, epochsOf, valuesOf, seconds };
}

interface SeedResult {
  seed: number;
  randomBest: number;
  ashaBest: number;
  randomEpochs: number;
  ashaEpochs: number;
  /** Epochs the ASHA study had trained when its best came within TOLERANCE; null: never. */
  reached: number | null;
  reachedAnyRung: number | null;
  runs: number;
  promotions: number;
  complete: number;
  rungDiff: number;
  randomSeconds: number;
  ashaSeconds: number;
}

const sum = (xs: number[]) => xs.reduce((a, b) => a + b, 0);
const epochsOf = (e: Ended) => sum(e.runs.map((r) => (e.epochsOf.get(r.id) ?? []).length));

/** One seed: the two studies checked against each other and measured. */
function compare(seed: number, random: Ended, asha: Ended): SeedResult {
  // The premise: trial n has the same parameters in both studies.
  const byNumber = new Map(random.trials.map((t) => [t.number, t]));
  if (asha.trials.length !== random.trials.length)
    throw new Error(`${asha.trials.length} ASHA trials, ${random.trials.length} random ones`);
  for (const t of asha.trials) {
    const other = byNumber.get(t.number);
    if (!other || !isDeepStrictEqual(other.params, t.params))
      throw new Error(
        `trial ${t.number} differs: ${JSON.stringify(t.params)} (ASHA) vs ${JSON.stringify(other?.params)} (random)`,
      );
  }
  for (const e of [random, asha]) {
    // Parallelism 1: one run at a time, so the epochs trained by a run's end are those of the
    // runs that ended before it, and its own.
    for (let i = 1; i < e.runs.length; i++)
      if ((e.runs[i].startedAt as Date) < (e.runs[i - 1].finishedAt as Date))
        throw new Error(`${e.study.name}: runs ${e.runs[i - 1].id} and ${e.runs[i].id} overlap`);
    const failed = e.runs.filter((r) => r.status !== RunStatus.SUCCEEDED);
    if (failed.length)
      throw new Error(
        `${e.study.name}: runs did not succeed: ${failed.map((r) => `${r.status} ${r.error}`).join('; ')}`,
      );
    // The platform's own count (trial.epochsTrained) against the runs' reports.
    const platform = sum(e.trials.map((t) => t.epochsTrained));
    if (platform !== epochsOf(e))
      console.log(
        `${e.study.name}: the trials' epochsTrained add up to ${platform}, the runs reported ${epochsOf(e)}`,
      );
  }
  for (const t of random.trials)
    if (t.state !== TrialState.COMPLETE || t.epochsTrained !== MAX_EPOCHS)
      throw new Error(`random search trial ${t.number} ended ${t.state} after ${t.epochsTrained}`);

  const randomBest = bestTrial(random.trials, Direction.MAXIMIZE);
  if (!randomBest || randomBest.value === null) throw new Error('random search has no best');
  const target = randomBest.value - TOLERANCE;

  // The ASHA study's runs in the order they ended; after each, its best so far.
  const trialOfRun = new Map<string, Trial>();
  for (const t of asha.trials)
    for (const id of [...t.pastRunIds, ...(t.runId ? [t.runId] : [])]) trialOfRun.set(id, t);
  const rungs = ashaRungs({
    minResource: MIN_EPOCHS,
    reductionFactor: REDUCTION_FACTOR,
    maxResource: MAX_EPOCHS,
  });
  let spent = 0;
  let bestComplete = -Infinity;
  let bestAny = -Infinity;
  let reached: number | null = null;
  let reachedAnyRung: number | null = null;
  let promotions = 0;
  let rungDiff = 0;
  for (const r of asha.runs) {
    const reported = asha.epochsOf.get(r.id) ?? [];
    spent += reported.length;
    const to = r.hyperparameters.epochs as number;
    const t = trialOfRun.get(r.id) as Trial;
    // A promoted run continues the previous rung's checkpoint: it should report only the
    // epochs after it. Said, not hidden, if not (its epochs count as reported either way).
    const from = r.resumeFromRunId ? rungs[rungs.indexOf(to) - 1] : 0;
    if (r.resumeFromRunId) promotions++;
    const expected = Array.from({ length: to - from }, (_, i) => from + i + 1);
    if (!isDeepStrictEqual(reported, expected))
      console.log(
        `ASHA trial ${t.number}: a run to ${to} epochs reported epochs ${reported.join(',')}, expected ${expected.join(',')}`,
      );
    const value = r.summary[METRIC];
    // Resuming is exact: the same value as the random search's trial at that epoch.
    const twin = byNumber.get(t.number)?.runId;
    const twinValue = twin ? random.valuesOf.get(twin)?.get(to) : undefined;
    if (twinValue === undefined) throw new Error(`no random-search value for trial ${t.number}`);
    rungDiff = Math.max(rungDiff, Math.abs(value - twinValue));
    bestAny = Math.max(bestAny, value);
    if (to === MAX_EPOCHS) bestComplete = Math.max(bestComplete, value);
    if (reached === null && bestComplete >= target) reached = spent;
    if (reachedAnyRung === null && bestAny >= target) reachedAnyRung = spent;
  }
  const ashaBest = bestTrial(asha.trials, Direction.MAXIMIZE);
  if (ashaBest?.value !== bestComplete)
    throw new Error(
      `ASHA's best trial is ${ashaBest?.value}, its best top-rung run ${bestComplete}`,
    );

  if (process.env.HPO_ASHA_VERBOSE)
    for (const t of asha.trials) {
      const twin = byNumber.get(t.number)?.runId as string;
      const curve = [...(random.valuesOf.get(twin) ?? new Map<number, number>())]
        .sort((a, b) => a[0] - b[0])
        .map(([, v]) => v.toFixed(4));
      console.log(
        `#${t.number} ${t.state} rung ${t.rung} [${t.rungValues.map((v) => v.toFixed(4)).join(' ')}] random: ${curve.join(' ')} ${JSON.stringify(t.params)}`,
      );
    }
  const result: SeedResult = {
    seed,
    randomBest: randomBest.value,
    ashaBest: bestComplete,
    randomEpochs: epochsOf(random),
    ashaEpochs: epochsOf(asha),
    reached,
    reachedAnyRung,
    runs: asha.runs.length,
    promotions,
    complete: asha.trials.filter((t) => t.state === TrialState.COMPLETE).length,
    rungDiff,
    randomSeconds: random.seconds,
    ashaSeconds: asha.seconds,
  };
  console.log(
    `seed ${seed}: random search best ${METRIC} ${randomBest.value.toFixed(4)} (trial ${randomBest.number}) in ${result.randomEpochs} epochs; ` +
      `ASHA best ${bestComplete.toFixed(4)} (trial ${ashaBest.number}) in ${result.ashaEpochs} epochs, ` +
      (reached === null
        ? `never within ${TOLERANCE} of the random search's best`
        : `within ${TOLERANCE} after ${reached} epochs`),
  );
  return result;
}

/**
 * Medians over the seeds. A seed whose ASHA study never came within the tolerance counts as
 * worse than any that did (an infinite fraction): the median is missing when half or more
 * never did.
 */
function figuresOf(results: SeedResult[], trials: number, rows: number): Record<string, number> {
  const med = (xs: number[]) => {
    const sorted = [...xs].sort((a, b) => a - b);
    const m = sorted.length >> 1;
    return sorted.length % 2 ? sorted[m] : (sorted[m - 1] + sorted[m]) / 2;
  };
  const fraction = (r: SeedResult, epochs: number | null) =>
    epochs === null ? Infinity : epochs / r.randomEpochs;
  const figures: Record<string, number> = {
    asha_trials: trials,
    asha_seeds: results.length,
    asha_dataset_rows: rows,
    asha_seeds_reached: results.filter((r) => r.reached !== null).length,
  };
  const f = med(results.map((r) => fraction(r, r.reached)));
  if (Number.isFinite(f)) figures.asha_epoch_fraction = round(f, 3);
  else
    console.log(
      `asha_epoch_fraction is missing: in ${results.length - figures.asha_seeds_reached} of ${results.length} seeds the ASHA study never came within ${TOLERANCE} AUC of the random search's best`,
    );
  const fAny = med(results.map((r) => fraction(r, r.reachedAnyRung)));
  if (Number.isFinite(fAny)) figures.asha_epoch_fraction_any_rung = round(fAny, 3);
  figures.asha_total_epoch_fraction = round(
    med(results.map((r) => r.ashaEpochs / r.randomEpochs)),
    3,
  );
  figures.asha_random_search_epochs = med(results.map((r) => r.randomEpochs));
  figures.asha_epochs = med(results.map((r) => r.ashaEpochs));
  figures.asha_rung_value_max_abs_diff = Math.max(...results.map((r) => r.rungDiff));
  for (const r of results) {
    const k = `asha_seed${r.seed}`;
    figures[`${k}_random_best_val_auc`] = round(r.randomBest, 4);
    figures[`${k}_best_val_auc`] = round(r.ashaBest, 4);
    figures[`${k}_random_epochs`] = r.randomEpochs;
    figures[`${k}_epochs`] = r.ashaEpochs;
    if (r.reached !== null) {
      figures[`${k}_epochs_to_reach`] = r.reached;
      figures[`${k}_epoch_fraction`] = round(r.reached / r.randomEpochs, 3);
    }
    figures[`${k}_runs`] = r.runs;
    figures[`${k}_trials_complete`] = r.complete;
  }
  figures.asha_random_seconds = round(sum(results.map((r) => r.randomSeconds)), 0);
  figures.asha_asha_seconds = round(sum(results.map((r) => r.ashaSeconds)), 0);
  return figures;
}
