"""Optuna's TPESampler (its defaults) on Hartmann-6, for bench/hpo.ts.

Usage: optuna_hartmann6.py [--default-only] [--candidates K] TRIALS SEED [SEED ...]
Prints one JSON object: {"optuna": version, "best": [best value per seed], "seconds": [...],
"independent": [best value per seed with multivariate=False]} (empty with --default-only). Optuna 5's default TPE is
multivariate for one objective, as ours is; the independent one is compared with our
`multivariate: false` variant. --candidates K sets `n_ei_candidates` (Optuna's default 24;
ours is 128) for both.
"""
import json
import math
import sys
import time

import optuna

ALPHA = [1.0, 1.2, 3.0, 3.2]
A = [
    [10, 3, 17, 3.5, 1.7, 8],
    [0.05, 10, 17, 0.1, 8, 14],
    [3, 3.5, 1.7, 10, 17, 8],
    [17, 8, 0.05, 10, 0.1, 14],
]
P = [
    [0.1312, 0.1696, 0.5569, 0.0124, 0.8283, 0.5886],
    [0.2329, 0.4135, 0.8307, 0.3736, 0.1004, 0.9991],
    [0.2348, 0.1451, 0.3522, 0.2883, 0.3047, 0.6650],
    [0.4047, 0.8828, 0.8732, 0.5743, 0.1091, 0.0381],
]


def hartmann6(x):
    return -sum(
        ALPHA[i] * math.exp(-sum(A[i][j] * (x[j] - P[i][j]) ** 2 for j in range(6)))
        for i in range(4)
    )


def objective(trial):
    return hartmann6([trial.suggest_float(f"x{j}", 0.0, 1.0) for j in range(6)])


def main():
    args = sys.argv[1:]
    default_only = args[:1] == ["--default-only"]
    if default_only:
        args = args[1:]
    candidates = 24
    if args[:1] == ["--candidates"]:
        candidates = int(args[1])
        args = args[2:]
    trials = int(args[0])
    seeds = [int(s) for s in args[1:]]
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    best, seconds, independent = [], [], []
    for seed in seeds:
        t0 = time.perf_counter()
        study = optuna.create_study(
            sampler=optuna.samplers.TPESampler(seed=seed, n_ei_candidates=candidates)
        )
        study.optimize(objective, n_trials=trials)
        seconds.append(time.perf_counter() - t0)
        best.append(study.best_value)
        if default_only:
            continue
        study = optuna.create_study(
            sampler=optuna.samplers.TPESampler(
                seed=seed, multivariate=False, n_ei_candidates=candidates
            )
        )
        study.optimize(objective, n_trials=trials)
        independent.append(study.best_value)
    print(
        json.dumps(
            {
                "optuna": optuna.__version__,
                "best": best,
                "seconds": seconds,
                "independent": independent,
            }
        )
    )


if __name__ == "__main__":
    main()
