import { optunaDistribution, optunaJournal } from './optuna-journal';
import {
  Direction,
  ParamKind,
  PrunerKind,
  SamplerKind,
  type Study,
  StudyStatus,
  type Trial,
  TrialState,
} from './study';

const at = new Date('2026-11-29T10:00:00.123Z');
const study: Study = {
  id: 's1',
  name: 'widths',
  trainer: null,
  trainerVersion: null,
  datasetId: null,
  fixed: {},
  space: [
    { name: 'lr', kind: ParamKind.FLOAT, low: 1e-4, high: 1, log: true },
    { name: 'layers', kind: ParamKind.INT, low: 1, high: 4, log: false },
    { name: 'hidden', kind: ParamKind.CATEGORICAL, choices: [[64], [64, 32], 'none'] },
  ],
  objective: { metric: 'auc', direction: Direction.MAXIMIZE },
  sampler: SamplerKind.TPE,
  pruner: { kind: PrunerKind.NONE },
  budget: { trials: 10, gpuSeconds: null },
  parallelism: 1,
  seed: 0,
  gpuCount: 0,
  status: StudyStatus.RUNNING,
  trialsStarted: 4,
  trialsActive: 0,
  gpuSecondsUsed: 0,
  error: null,
  createdAt: at,
  finishedAt: null,
};
const trial = (number: number, state: TrialState, value: number | null): Trial => ({
  id: `t${number}`,
  studyId: 's1',
  number,
  params: { lr: 0.01, layers: 2, hidden: [64, 32] },
  runId: `r${number}`,
  pastRunIds: [],
  rung: null,
  rungValues: [],
  intermediate: [],
  epochsTrained: 0,
  prunedAtEpoch: null,
  asked: false,
  state,
  value,
  error: state === TrialState.CANCELLED ? 'the study was cancelled' : null,
  createdAt: at,
  finishedAt: state === TrialState.RUNNING ? null : new Date(at.getTime() + 1000),
});

type Line = Record<string, unknown> & { op_code: number; trial_id?: number };

describe('Optuna journal', () => {
  const text = optunaJournal(
    study,
    // Out of order on purpose: Optuna numbers trials by their CREATE_TRIAL lines.
    [
      trial(2, TrialState.CANCELLED, null),
      trial(0, TrialState.COMPLETE, 0.8),
      trial(1, TrialState.PRUNED, null),
      trial(3, TrialState.RUNNING, null),
      trial(4, TrialState.PAUSED, null),
    ],
    new Map([
      [
        't1',
        [
          { epoch: 1, value: 0.6 },
          { epoch: 2, value: 0.65 },
        ],
      ],
    ]),
  );
  const lines = text
    .trimEnd()
    .split('\n')
    .map((l) => JSON.parse(l) as Line);

  it('writes one JSON object a line, each ending in a newline, as JournalFileBackend reads', () => {
    expect(text.endsWith('\n')).toBe(true);
    expect(lines.every((l) => l.worker_id === 'aether-export')).toBe(true);
    expect(lines[0]).toEqual({
      op_code: 0,
      worker_id: 'aether-export',
      study_name: 'widths',
      directions: [2],
    });
  });

  it('creates the trials in number order, each with its parameters and, once ended, its state', () => {
    const creates = lines.filter((l) => l.op_code === 4);
    expect(creates).toHaveLength(5);
    expect(creates[0]).toMatchObject({
      study_id: 0,
      datetime_start: '2026-11-29T10:00:00.123000+00:00',
    });
    const states = lines.filter((l) => l.op_code === 6);
    // COMPLETE 1 with its value, PRUNED 2 with its last report, cancelled as FAIL 3; the
    // running trial and the paused one (ASHA, between rungs) have none.
    expect(states.map((l) => [l.trial_id, l.state, l.values])).toEqual([
      [0, 1, [0.8]],
      [1, 2, [0.65]],
      [2, 3, null],
    ]);
    const attrs = lines.filter((l) => l.op_code === 8 && l.trial_id === 2);
    expect(attrs.map((l) => l.user_attr)).toContainEqual({ aether_state: 'CANCELLED' });
  });

  it('gives parameters in Optuna’s internal form with its distributions', () => {
    const params = lines.filter((l) => l.op_code === 5 && l.trial_id === 0);
    expect(params.map((l) => [l.param_name, l.param_value_internal])).toEqual([
      ['lr', 0.01],
      ['layers', 2],
      ['hidden', 1],
    ]);
    expect(JSON.parse(optunaDistribution(study.space[0]))).toEqual({
      name: 'FloatDistribution',
      attributes: { low: 1e-4, high: 1, step: null, log: true },
    });
    expect(JSON.parse(optunaDistribution(study.space[1]))).toEqual({
      name: 'IntDistribution',
      attributes: { low: 1, high: 4, log: false, step: 1 },
    });
    // Optuna keeps only scalars as choices: a list goes as its JSON text.
    expect(JSON.parse(optunaDistribution(study.space[2]))).toEqual({
      name: 'CategoricalDistribution',
      attributes: { choices: ['[64]', '[64,32]', 'none'] },
    });
    expect(lines.filter((l) => l.op_code === 7).map((l) => [l.step, l.intermediate_value])).toEqual(
      [
        [1, 0.6],
        [2, 0.65],
      ],
    );
  });
});
