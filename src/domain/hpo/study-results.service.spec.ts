import { Role } from '../auth/role';
import { ConflictError } from '../shared/domain-error';
import { type TrainingRun } from '../training/training-run';
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
import { StudyResultErrorCode, StudyResultsService } from './study-results.service';

// The paths the integration test cannot reach with a built-in trainer (they all upload a
// model): a best trial whose run has none. Everything else runs for real in
// test/hpo-results.test.ts.
const actor = { keyId: 'k', name: 'editor', role: Role.EDITOR };
const study = {
  id: 's',
  name: 'cmd',
  objective: { metric: 'loss', direction: Direction.MINIMIZE },
};

function service(trials: Partial<Trial>[], run: Partial<TrainingRun> | null) {
  const registered: string[] = [];
  const s = new StudyResultsService({
    studies: {
      get: async () =>
        ({
          ...study,
          space: [{ name: 'x', kind: ParamKind.FLOAT, low: 0, high: 1, log: false }],
          sampler: SamplerKind.RANDOM,
          pruner: PrunerKind.NONE,
          status: StudyStatus.COMPLETED,
        }) as unknown as Study,
      trials: async () => trials as Trial[],
    },
    runs: {
      byIds: async () => (run ? [run as TrainingRun] : []),
      metricsOf: async () => new Map(),
    },
    registry: {
      registerFromRun: async (_a, _m, runId) => {
        registered.push(runId);
        return { id: 'v1' } as never;
      },
    },
    registrations: { record: async () => undefined },
  });
  return { s, registered };
}

const complete = (number: number, value: number, runId: string | null): Partial<Trial> => ({
  id: `t${number}`,
  number,
  state: TrialState.COMPLETE,
  value,
  runId,
  params: { x: 0.5 },
});

it('refuses a best trial whose run uploaded no model, naming the trial', async () => {
  const { s, registered } = service([complete(0, 2, 'r0'), complete(1, 1, 'r1')], {
    id: 'r1',
    model: null,
  });
  const e = await s.registerBest(actor, 's', 'm').catch((x: unknown) => x);
  expect(e).toBeInstanceOf(ConflictError);
  expect(e).toMatchObject({
    reason: StudyResultErrorCode.BEST_TRIAL_HAS_NO_MODEL,
    details: { trial: 't1', number: 1, run: 'r1' },
  });
  expect(registered).toEqual([]);
});

it('registers from the best trial’s run, not the latest', async () => {
  const { s, registered } = service(
    [
      complete(0, 1, 'r0'),
      complete(1, 2, 'r1'),
      { ...complete(2, 0, 'r2'), state: TrialState.FAILED },
    ],
    { id: 'r0', model: { key: 'k', sha256: 'x', size: 1 } as never },
  );
  const r = await s.registerBest(actor, 's', 'm');
  expect(r.trial.id).toBe('t0');
  expect(registered).toEqual(['r0']);
});
