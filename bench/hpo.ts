import { execFile } from 'node:child_process';
import path from 'node:path';
import { promisify } from 'node:util';
import { Role } from '../src/domain/auth/role';
import { randomSampler, type SamplingContext } from '../src/domain/hpo/samplers';
import { Direction, ParamKind, type SearchSpace, TrialState } from '../src/domain/hpo/study';
import { TPE_DEFAULTS, tpeSample } from '../src/domain/hpo/tpe';
import { ashaBench } from './hpo-asha';
import { median, round, scale, writeResult } from './support/bench';
import { startBenchPlatform } from './support/platform';

/**
 * hpo: the search quality and the overhead of hyperparameter studies (ADR 0030).
 *
 * - tpe_vs_random_regret_ratio: the median over seeds of the final regret (best value found
 *   minus the global minimum -3.32237) of our TPE over that of random search, on Hartmann-6
 *   (6 dimensions in [0, 1]), 100 trials, 20 seeds. The samplers are driven directly (ask and
 *   tell on the domain code, no server). Target <= 0.5.
 * - tpe_vs_optuna_regret_ratio: ours over Optuna's TPESampler (its defaults, seeded) on the
 *   same function, trials and seeds, run by bench/python/optuna_hartmann6.py in the
 *   aether-py venv (AETHER_PYTHON overrides the interpreter). Target <= 1.1. Missing (with the
 *   reason printed) when Optuna cannot be run. Optuna 5's default TPE is multivariate for one
 *   objective (one joint kernel per observation), and so is ours (the TPE sampler's default);
 *   tpe_vs_optuna_independent_regret_ratio compares our independent variant
 *   (`multivariate: false`) with Optuna's `multivariate=False` on the same seeds. The median
 *   of 20 seeds moves a lot with the seeds, so tpe_vs_optuna_regret_ratio_wide is the same
 *   ratio over HPO_WIDE_SEEDS seeds (default 100: the same 20 and 80 more), beside it. Ours
 *   draws 128 candidates from l(x), Optuna 24; tpe_vs_optuna_same_candidates_regret_ratio is
 *   ours over Optuna given `n_ei_candidates=128`, on the 20 seeds.
 * - trials_per_second: the scheduling overhead for a trainer that returns at once, measured
 *   as ask and tell through StudyService with a real database (PostgreSQL, one ask-and-tell
 *   study of 100 TPE trials, each told its Hartmann-6 value at once; median of 3 studies).
 *   Queue trials are not timed here: their pace is the queue's and the runner's (see
 *   training-scheduler), not the study's.
 *
 * - asha_epoch_fraction (bench/hpo-asha.ts): the epochs an ASHA study of the MLP on the flights
 *   delay task spent to come within 0.002 AUC of the best a full random search of the same
 *   trials found, over the epochs that search spent, both through the real queue and a real
 *   gpu-runner process. Target <= 0.35.
 *
 * HPO_SEEDS and HPO_TRIALS shrink a quick run; BENCH_SCALE scales the number of seeds.
 * HPO_ONLY=asha runs the ASHA part alone and writes no results file.
 */
const GLOBAL_MIN = -3.32237;
const ALPHA = [1.0, 1.2, 3.0, 3.2];
const A = [
  [10, 3, 17, 3.5, 1.7, 8],
  [0.05, 10, 17, 0.1, 8, 14],
  [3, 3.5, 1.7, 10, 17, 8],
  [17, 8, 0.05, 10, 0.1, 14],
];
const P = [
  [0.1312, 0.1696, 0.5569, 0.0124, 0.8283, 0.5886],
  [0.2329, 0.4135, 0.8307, 0.3736, 0.1004, 0.9991],
  [0.2348, 0.1451, 0.3522, 0.2883, 0.3047, 0.665],
  [0.4047, 0.8828, 0.8732, 0.5743, 0.1091, 0.0381],
];

export function hartmann6(x: readonly number[]): number {
  let f = 0;
  for (let i = 0; i < 4; i++) {
    let s = 0;
    for (let j = 0; j < 6; j++) s += A[i][j] * (x[j] - P[i][j]) ** 2;
    f -= ALPHA[i] * Math.exp(-s);
  }
  return f;
}

const SPACE: SearchSpace = Array.from({ length: 6 }, (_, j) => ({
  name: `x${j}`,
  kind: ParamKind.FLOAT,
  low: 0,
  high: 1,
  log: false,
}));
const point = (params: Record<string, unknown>) => SPACE.map((p) => params[p.name] as number);

/** The best value a sampler finds in `trials` trials of a study seeded `seed`. */
function search(
  sampler: (ctx: SamplingContext) => Record<string, unknown>,
  seed: number,
  trials: number,
): number {
  const history: SamplingContext['history'][number][] = [];
  let best = Infinity;
  for (let number = 0; number < trials; number++) {
    const params = sampler({ space: SPACE, direction: Direction.MINIMIZE, seed, number, history });
    const value = hartmann6(point(params));
    history.push({ params, state: TrialState.COMPLETE, value });
    best = Math.min(best, value);
  }
  return best;
}

async function optunaBest(
  trials: number,
  seeds: number[],
  defaultOnly = false,
  candidates?: number,
): Promise<
  | { best: number[]; independent: number[]; version: string; seconds: number[] }
  | { missing: string }
> {
  const python = process.env.AETHER_PYTHON ?? '/opt/aether-py/bin/python';
  const script = path.resolve(__dirname, '..', '..', 'bench', 'python', 'optuna_hartmann6.py');
  try {
    const { stdout } = await promisify(execFile)(
      python,
      [
        script,
        ...(defaultOnly ? ['--default-only'] : []),
        ...(candidates ? ['--candidates', String(candidates)] : []),
        String(trials),
        ...seeds.map(String),
      ],
      { timeout: 600_000, maxBuffer: 1 << 20 },
    );
    const r = JSON.parse(stdout) as {
      best: number[];
      independent: number[];
      optuna: string;
      seconds: number[];
    };
    return { best: r.best, independent: r.independent, version: r.optuna, seconds: r.seconds };
  } catch (e) {
    const msg = e instanceof Error ? e.message : String(e);
    return { missing: `${python} ${script} failed: ${msg.split('\n').slice(-3).join(' ')}` };
  }
}

export async function main(): Promise<void> {
  if (process.env.HPO_ONLY === 'asha') {
    // While iterating on the ASHA part: its figures printed, no results file written.
    console.table(await ashaBench());
    console.log('HPO_ONLY=asha: bench/results/hpo.json is not written');
    return;
  }
  const trials = Number(process.env.HPO_TRIALS ?? 100);
  const nSeeds = Number(process.env.HPO_SEEDS ?? Math.max(2, Math.round(20 * scale())));
  const seeds = Array.from({ length: nSeeds }, (_, i) => i);
  const figures: Record<string, number> = { trials, seeds: nSeeds };

  const regret = (best: number) => best - GLOBAL_MIN;
  let t0 = performance.now();
  const tpe = seeds.map((s) => regret(search((c) => tpeSample(c), s, trials)));
  const tpeSeconds = (performance.now() - t0) / 1000 / nSeeds;
  const independent = seeds.map((s) =>
    regret(search((c) => tpeSample(c, { ...TPE_DEFAULTS, multivariate: false }), s, trials)),
  );
  const random = seeds.map((s) => regret(search(randomSampler, s, trials)));
  figures.tpe_median_regret = round(median(tpe), 4);
  figures.tpe_independent_median_regret = round(median(independent), 4);
  figures.random_median_regret = round(median(random), 4);
  figures.tpe_vs_random_regret_ratio = round(median(tpe) / median(random), 3);
  figures.tpe_seconds_per_study = round(tpeSeconds, 3);
  console.log(`TPE regrets: ${tpe.map((r) => r.toFixed(3)).join(' ')}`);
  console.log(`independent TPE regrets: ${independent.map((r) => r.toFixed(3)).join(' ')}`);
  console.log(`random regrets: ${random.map((r) => r.toFixed(3)).join(' ')}`);

  const optuna = await optunaBest(trials, seeds);
  if ('missing' in optuna) {
    console.log(`tpe_vs_optuna_regret_ratio is missing: ${optuna.missing}`);
  } else {
    const o = optuna.best.map(regret);
    console.log(`Optuna ${optuna.version} TPE regrets: ${o.map((r) => r.toFixed(3)).join(' ')}`);
    figures.optuna_median_regret = round(median(o), 4);
    figures.tpe_vs_optuna_regret_ratio = round(median(tpe) / median(o), 3);
    figures.optuna_seconds_per_study = round(median(optuna.seconds), 3);
    const oi = optuna.independent.map(regret);
    console.log(`Optuna independent TPE regrets: ${oi.map((r) => r.toFixed(3)).join(' ')}`);
    figures.optuna_independent_median_regret = round(median(oi), 4);
    figures.tpe_vs_optuna_independent_regret_ratio = round(median(independent) / median(oi), 3);
    const wide = Number(process.env.HPO_WIDE_SEEDS ?? 100);
    if (wide > nSeeds) {
      const more = Array.from({ length: wide - nSeeds }, (_, i) => nSeeds + i);
      const moreOptuna = await optunaBest(trials, more, true);
      if ('missing' in moreOptuna) {
        console.log(`tpe_vs_optuna_regret_ratio_wide is missing: ${moreOptuna.missing}`);
      } else {
        const ours = [...tpe, ...more.map((s) => regret(search((c) => tpeSample(c), s, trials)))];
        const theirs = [...o, ...moreOptuna.best.map(regret)];
        figures.wide_seeds = wide;
        figures.tpe_wide_median_regret = round(median(ours), 4);
        figures.optuna_wide_median_regret = round(median(theirs), 4);
        figures.tpe_vs_optuna_regret_ratio_wide = round(median(ours) / median(theirs), 3);
      }
    }
    // Ours draws 128 candidates where Optuna's default draws 24 (ADR 0030, decision 22): the
    // same ratio against Optuna given our count shows what the rest of the model is worth.
    const same = await optunaBest(trials, seeds, true, TPE_DEFAULTS.candidates);
    if ('missing' in same) {
      console.log(`tpe_vs_optuna_same_candidates_regret_ratio is missing: ${same.missing}`);
    } else {
      const s = same.best.map(regret);
      figures.optuna_same_candidates_median_regret = round(median(s), 4);
      figures.tpe_vs_optuna_same_candidates_regret_ratio = round(median(tpe) / median(s), 3);
    }
  }

  const p = await startBenchPlatform('hpo', { FEATURE_STREAM_CONSUMER: 'off' });
  try {
    const studies = p.app.services.studies;
    const actor = { keyId: 'bench', name: 'bench', role: Role.ADMIN };
    const rates: number[] = [];
    for (let r = 0; r < 3; r++) {
      const study = await studies.create(
        {
          name: `hartmann6-${r}`,
          space: SPACE.map((d) => ({ ...d })),
          objective: { metric: 'value', direction: Direction.MINIMIZE },
          budget: { trials },
          seed: r,
        },
        actor,
      );
      t0 = performance.now();
      for (let i = 0; i < trials; i++) {
        const t = await studies.ask(study.id);
        await studies.tell(t.id, { value: hartmann6(point(t.params)) });
      }
      rates.push(trials / ((performance.now() - t0) / 1000));
    }
    figures.trials_per_second = round(median(rates), 1);
  } finally {
    await p.close();
  }
  Object.assign(figures, await ashaBench());
  writeResult('hpo', figures);
}
