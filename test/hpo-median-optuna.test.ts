import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { medianVerdict } from '../src/domain/hpo/pruners';
import { Direction, type IntermediateValue } from '../src/domain/hpo/study';
import { Rng } from '../src/domain/training/rng';

/**
 * Our MEDIAN pruner decides as Optuna's MedianPruner (ADR 0030): on 2,000 seeded random cases
 * (both directions, startup and warm-up settings, curves of different lengths, ties) the first
 * epoch at which a trial is pruned is the same. It needs a python with optuna: TEST_PYTHON,
 * else the venv `.ci/run` makes (/opt/aether-py), else python3; without one it is skipped and
 * says why.
 */
const CI_VENV_PYTHON = '/opt/aether-py/bin/python';
const python =
  process.env.TEST_PYTHON || (fs.existsSync(CI_VENV_PYTHON) ? CI_VENV_PYTHON : 'python3');
const probe = spawnSync(python, ['-c', 'import optuna'], { encoding: 'utf8', timeout: 60_000 });
const reason =
  probe.status === 0
    ? ''
    : `${python} cannot import optuna (${(probe.stderr || String(probe.error)).trim().split('\n').pop()}); set TEST_PYTHON`;

interface Case {
  direction: Direction;
  startupTrials: number;
  warmupEpochs: number;
  completed: IntermediateValue[][];
  trial: IntermediateValue[];
}

function cases(n: number): Case[] {
  const rng = new Rng(19);
  const int = (k: number) => Math.floor(rng.next() * k);
  // Values on a 0.1 grid, so that ties with the median happen.
  const curve = (): IntermediateValue[] =>
    Array.from({ length: 1 + int(6) }, (_, e) => ({
      epoch: e + 1,
      value: Math.round(rng.next() * 20) / 10,
    }));
  return Array.from({ length: n }, () => ({
    direction: rng.next() < 0.5 ? Direction.MINIMIZE : Direction.MAXIMIZE,
    startupTrials: int(4),
    warmupEpochs: int(3),
    completed: Array.from({ length: int(6) }, curve),
    trial: curve(),
  }));
}

if (reason) {
  console.warn(`hpo-median-optuna.test.ts is skipped: ${reason}`);
  it.skip(`decides as Optuna's MedianPruner (skipped: ${reason})`, () => undefined);
} else {
  it("decides as Optuna's MedianPruner on 2,000 random cases", () => {
    const all = cases(2_000);
    const r = spawnSync(python, [path.join(__dirname, 'fixtures/hpo/median_pruner.py')], {
      input: JSON.stringify(all),
      encoding: 'utf8',
      maxBuffer: 16 << 20,
      timeout: 120_000,
    });
    expect(r.stderr).toBe('');
    const optuna = JSON.parse(r.stdout) as (number | null)[];
    const ours = all.map(
      (c) => medianVerdict(c, c.direction, c.trial, 0, c.completed)?.epoch ?? null,
    );
    // Both prune and keep often enough for the comparison to mean something.
    expect(optuna.filter((x) => x !== null).length).toBeGreaterThan(300);
    expect(optuna.filter((x) => x === null).length).toBeGreaterThan(300);
    expect(ours).toEqual(optuna);
  });
}
