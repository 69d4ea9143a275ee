import fc from 'fast-check';
import { InvalidInputError } from '../shared/domain-error';
import { builtinTrainer } from '../training/trainers';
import {
  type AshaTrial,
  ashaPlan,
  ashaRungs,
  median,
  medianVerdict,
  validatePruner,
} from './pruners';
import { Direction, type IntermediateValue, ParamKind, PrunerKind, TrialState } from './study';

const curve = (values: number[]): IntermediateValue[] =>
  values.map((value, i) => ({ epoch: i + 1, value }));
const value = fc.double({ min: -10, max: 10, noNaN: true });
const curveArb = fc.array(value, { minLength: 1, maxLength: 8 }).map(curve);

describe('MEDIAN', () => {
  const cfg = { startupTrials: 2, warmupEpochs: 1 };

  it('prunes at the first judged epoch whose best-so-far is worse than the completed median', () => {
    const completed = [curve([0.6, 0.5, 0.4, 0.3]), curve([0.7, 0.6, 0.5, 0.4])];
    // Epoch 1 is warm-up; at 2 the best so far (0.9 at 1) is above the median 0.55.
    expect(medianVerdict(cfg, Direction.MINIMIZE, curve([0.9, 1, 0.2]), 0, completed)).toEqual({
      epoch: 2,
      value: 1,
    });
    // Already judged up to 2: 0.2 at 3 beats the median 0.45.
    expect(medianVerdict(cfg, Direction.MINIMIZE, curve([0.9, 1, 0.2]), 2, completed)).toBeNull();
    // Fewer completed trials than startupTrials: never.
    expect(medianVerdict(cfg, Direction.MINIMIZE, curve([9, 9]), 0, completed.slice(1))).toBe(null);
    // No completed trial reported that epoch: not judged there.
    expect(medianVerdict(cfg, Direction.MINIMIZE, curve([9, 9, 9, 9, 9]), 4, completed)).toBe(null);
  });

  it('never prunes in the warm-up, before the startup trials, or a trial at least as good as every completed one', () => {
    fc.assert(
      fc.property(
        curveArb,
        fc.array(curveArb, { maxLength: 6 }),
        fc.nat({ max: 4 }),
        fc.nat({ max: 4 }),
        (trial, completed, startupTrials, warmupEpochs) => {
          const c = { startupTrials, warmupEpochs };
          const v = medianVerdict(c, Direction.MINIMIZE, trial, 0, completed);
          if (v === null) return;
          expect(v.epoch).toBeGreaterThan(warmupEpochs);
          expect(completed.length).toBeGreaterThanOrEqual(Math.max(1, startupTrials));
          // Its best by then is above the median, so above the best completed value there.
          const best = Math.min(...trial.filter((x) => x.epoch <= v.epoch).map((x) => x.value));
          const there = completed.flatMap((k) => k.filter((x) => x.epoch === v.epoch));
          expect(best).toBeGreaterThan(Math.min(...there.map((x) => x.value)));
          expect(best).toBeGreaterThan(median(there.map((x) => x.value)));
        },
      ),
    );
  });

  it('always prunes a trial worse than every completed one once judged, and MAXIMIZE mirrors MINIMIZE', () => {
    fc.assert(
      fc.property(curveArb, fc.array(curveArb, { minLength: 1, maxLength: 6 }), (trial, done) => {
        const c = { startupTrials: 0, warmupEpochs: 0 };
        const worst = Math.max(...done.flatMap((k) => k.map((x) => x.value)));
        const worse = trial.map((x) => ({ ...x, value: worst + 1 + Math.abs(x.value) }));
        // Some completed trial reported epoch 1: judged there, and worse than all of them.
        if (done.some((k) => k.some((x) => x.epoch === 1)))
          expect(medianVerdict(c, Direction.MINIMIZE, worse, 0, done)?.epoch).toBe(1);
        const neg = (k: IntermediateValue[]) => k.map((x) => ({ ...x, value: -x.value }));
        expect(medianVerdict(c, Direction.MAXIMIZE, neg(trial), 0, done.map(neg))?.epoch).toBe(
          medianVerdict(c, Direction.MINIMIZE, trial, 0, done)?.epoch,
        );
      }),
    );
  });
});

describe('ASHA', () => {
  it('places rungs at r_min·η^k, the last at r_max', () => {
    expect(ashaRungs({ minResource: 1, reductionFactor: 3, maxResource: 9 })).toEqual([1, 3, 9]);
    expect(ashaRungs({ minResource: 2, reductionFactor: 3, maxResource: 10 })).toEqual([2, 6, 10]);
    expect(ashaRungs({ minResource: 2, reductionFactor: 2, maxResource: 4 })).toEqual([2, 4]);
  });

  const cfg = { minResource: 1, reductionFactor: 2, maxResource: 4 };
  const paused = (number: number, rungValues: number[]): AshaTrial => ({
    id: `t${number}`,
    number,
    state: TrialState.PAUSED,
    rung: rungValues.length - 1,
    rungValues,
  });
  const running = (number: number, rung: number, rungValues: number[] = []): AshaTrial => ({
    id: `t${number}`,
    number,
    state: TrialState.RUNNING,
    rung,
    rungValues,
  });

  it('promotes the top 1/η of a rung as it fills, and waits on the rest while trials may come', () => {
    // One trial at rung 0 of a 2-halving: ⌊1/2⌋ = 0, more may come: it waits.
    expect(ashaPlan(cfg, Direction.MINIMIZE, [paused(0, [0.5])], 8, true)).toEqual({
      promote: [],
      prune: [],
    });
    // Two: the better one goes on.
    expect(
      ashaPlan(cfg, Direction.MINIMIZE, [paused(0, [0.5]), paused(1, [0.3])], 8, true),
    ).toEqual({ promote: ['t1'], prune: [] });
    // A trial already promoted keeps its place in rung 0's population.
    expect(
      ashaPlan(
        cfg,
        Direction.MINIMIZE,
        [paused(0, [0.5]), running(1, 1, [0.3]), paused(2, [0.4]), paused(3, [0.2])],
        8,
        true,
      ),
    ).toEqual({ promote: ['t3'], prune: [] });
  });

  it('prunes what can never be promoted, and ends every waiting trial once nothing may come', () => {
    // Budget 4, η 2: at most 2 of rung 0 go on; the third-best can never.
    const three = [paused(0, [0.1]), paused(1, [0.2]), paused(2, [0.3])];
    expect(ashaPlan(cfg, Direction.MINIMIZE, three, 4, true)).toEqual({
      promote: ['t0'],
      prune: [{ id: 't2', rung: 0 }],
    });
    // Nothing may come: the best of a lone rung goes on, the rest stop.
    expect(
      ashaPlan(cfg, Direction.MINIMIZE, [paused(0, [0.3]), running(1, 1, [0.1])], 2, false),
    ).toEqual({ promote: [], prune: [{ id: 't0', rung: 0 }] });
    expect(ashaPlan(cfg, Direction.MINIMIZE, [paused(0, [0.3, 0.2])], 1, false)).toEqual({
      promote: ['t0'],
      prune: [],
    });
  });

  const trialArb = fc
    .record({
      state: fc.constantFrom(
        TrialState.RUNNING,
        TrialState.PAUSED,
        TrialState.COMPLETE,
        TrialState.PRUNED,
        TrialState.FAILED,
      ),
      values: fc.array(fc.integer({ min: 0, max: 5 }), { maxLength: 3 }),
    })
    .filter((t) => t.state !== TrialState.PAUSED || t.values.length > 0);
  const studyArb = fc.array(trialArb, { maxLength: 12 }).map((ts) =>
    ts.map((t, number): AshaTrial => ({
      id: `t${number}`,
      number,
      state: t.state,
      rung:
        t.state === TrialState.PAUSED
          ? Math.min(t.values.length - 1, 1)
          : Math.min(t.values.length, 2),
      rungValues: t.state === TrialState.PAUSED ? t.values.slice(0, 2) : t.values,
    })),
  );
  const cfg3 = { minResource: 1, reductionFactor: 2, maxResource: 4 }; // rungs 1, 2, 4

  it('promotes only waiting trials within their rung’s top, never prunes one it promotes, and leaves none waiting once nothing may come', () => {
    fc.assert(
      fc.property(studyArb, fc.boolean(), fc.integer({ min: 1, max: 20 }), (trials, more, b) => {
        const budget = Math.max(b, trials.length);
        const plan = ashaPlan(cfg3, Direction.MINIMIZE, trials, budget, more);
        const byId = new Map(trials.map((t) => [t.id, t]));
        const pruned = new Set(plan.prune.map((p) => p.id));
        for (const id of plan.promote) {
          const t = byId.get(id) as AshaTrial;
          expect(t.state).toBe(TrialState.PAUSED);
          expect(pruned.has(id)).toBe(false);
          const pop = trials
            .filter((x) => x.rungValues.length > t.rung)
            .sort((x, y) => x.rungValues[t.rung] - y.rungValues[t.rung] || x.number - y.number);
          const rank = pop.indexOf(t);
          expect(rank).toBeLessThan(Math.max(1, Math.floor(pop.length / 2)));
        }
        for (const p of plan.prune) expect(byId.get(p.id)?.state).toBe(TrialState.PAUSED);
        // Once nothing may come, nothing waits: no trial starts, none trains, and none is
        // promoted from below (one promoted from rung r arrives above it, where the waiting
        // may rightly go on for it).
        const below = Math.min(...plan.promote.map((id) => (byId.get(id) as AshaTrial).rung));
        if (!more && !trials.some((t) => t.state === TrialState.RUNNING))
          for (const t of trials)
            if (t.state === TrialState.PAUSED && t.rung <= below)
              expect(plan.promote.includes(t.id) || pruned.has(t.id)).toBe(true);
      }),
    );
  });

  it('never prunes a trial that later arrivals could still let through', () => {
    fc.assert(
      fc.property(
        fc.array(fc.integer({ min: 0, max: 9 }), { minLength: 1, maxLength: 6 }),
        fc.array(fc.integer({ min: 0, max: 9 }), { maxLength: 6 }),
        (now, later) => {
          const budget = now.length + later.length;
          const at0 = now.map((v, i) => paused(i, [v]));
          const first = ashaPlan(cfg3, Direction.MINIMIZE, at0, budget, later.length > 0);
          const all = [...at0, ...later.map((v, i) => paused(now.length + i, [v]))];
          const end = ashaPlan(cfg3, Direction.MINIMIZE, all, budget, false);
          for (const p of first.prune) expect(end.promote).not.toContain(p.id);
        },
      ),
    );
  });
});

describe('validatePruner', () => {
  const mlp = builtinTrainer('mlp') ?? null;
  const study = { hasTrainer: true, builtin: mlp, fixed: { epochs: 8 }, space: [] };
  const field = (f: () => unknown): unknown => {
    try {
      f();
    } catch (e) {
      expect(e).toBeInstanceOf(InvalidInputError);
      return (e as InvalidInputError).details?.field;
    }
    return null;
  };

  it('fills defaults and takes maxResource from the trainer’s epochs', () => {
    expect(validatePruner(null, study)).toEqual({ kind: PrunerKind.NONE });
    expect(validatePruner({ kind: PrunerKind.MEDIAN }, study)).toEqual({
      kind: PrunerKind.MEDIAN,
      startupTrials: 5,
      warmupEpochs: 0,
    });
    expect(validatePruner({ kind: PrunerKind.ASHA }, study)).toEqual({
      kind: PrunerKind.ASHA,
      minResource: 1,
      reductionFactor: 3,
      maxResource: 8,
      resourceParam: 'epochs',
    });
    expect(
      validatePruner(
        { kind: PrunerKind.ASHA, maxResource: 50 },
        { ...study, builtin: builtinTrainer('gbdt') ?? null, fixed: {} },
      ),
    ).toMatchObject({ maxResource: 50, resourceParam: 'trees' });
  });

  it('names the field of every refusal', () => {
    expect(field(() => validatePruner({ kind: PrunerKind.MEDIAN, minResource: 2 }, study))).toBe(
      'pruner.minResource',
    );
    expect(field(() => validatePruner({ kind: PrunerKind.MEDIAN, warmupEpochs: -1 }, study))).toBe(
      'pruner.warmupEpochs',
    );
    expect(field(() => validatePruner({ kind: PrunerKind.ASHA, reductionFactor: 1 }, study))).toBe(
      'pruner.reductionFactor',
    );
    expect(field(() => validatePruner({ kind: PrunerKind.ASHA, minResource: 8 }, study))).toBe(
      'pruner.minResource',
    );
    expect(field(() => validatePruner({ kind: PrunerKind.ASHA, maxResource: 20_000 }, study))).toBe(
      'pruner.maxResource',
    );
    expect(
      field(() =>
        validatePruner(
          { kind: PrunerKind.ASHA },
          {
            ...study,
            space: [{ name: 'epochs', kind: ParamKind.INT, low: 1, high: 9, log: false }],
          },
        ),
      ),
    ).toBe('space');
    expect(
      field(() => validatePruner({ kind: PrunerKind.MEDIAN }, { ...study, hasTrainer: false })),
    ).toBe('pruner.kind');
    expect(
      field(() =>
        validatePruner({ kind: PrunerKind.ASHA }, { ...study, builtin: null, fixed: {} }),
      ),
    ).toBe('pruner.maxResource');
  });
});
