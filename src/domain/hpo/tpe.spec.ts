import fc from 'fast-check';
import {
  gridAxes,
  gridSampler,
  randomSampler,
  type Sampler,
  type SamplingContext,
} from './samplers';
import { Direction, ParamKind, type SearchSpace, TrialState } from './study';
import { parzen, logDensity, TPE_DEFAULTS, tpeSample } from './tpe';

const space: SearchSpace = [
  { name: 'lr', kind: ParamKind.FLOAT, low: 1e-5, high: 1, log: true },
  { name: 'depth', kind: ParamKind.INT, low: 1, high: 12, log: false },
  { name: 'width', kind: ParamKind.INT, low: 8, high: 1024, log: true },
  { name: 'act', kind: ParamKind.CATEGORICAL, choices: ['relu', 'tanh', 'gelu', [1, 2]] },
];

/** A bowl with its minimum 0 at lr 1e-3, depth 7, width 128 (act does not matter). */
function objective(p: Record<string, unknown>): number {
  const lr = Math.log10(p.lr as number) + 3;
  const d = ((p.depth as number) - 7) / 3;
  const w = Math.log2(p.width as number) - 7;
  return lr * lr + d * d + 0.5 * w * w;
}

/** Sequential optimisation: the best value after `trials` trials. */
function optimise(sampler: Sampler, seed: number, trials: number): number {
  const history: SamplingContext['history'][number][] = [];
  let best = Infinity;
  for (let number = 0; number < trials; number++) {
    const params = sampler({ space, direction: Direction.MINIMIZE, seed, number, history });
    const value = objective(params);
    history.push({ params, state: TrialState.COMPLETE, value });
    best = Math.min(best, value);
  }
  return best;
}

function inSpace(p: Record<string, unknown>): boolean {
  return space.every((d) => {
    const v = p[d.name];
    if (d.kind === ParamKind.CATEGORICAL)
      return d.choices.some((c) => JSON.stringify(c) === JSON.stringify(v));
    if (typeof v !== 'number' || v < d.low || v > d.high) return false;
    return d.kind === ParamKind.FLOAT || Number.isInteger(v);
  });
}

const history = fc.array(
  fc.record({
    params: fc.record({
      lr: fc.double({ min: 1e-5, max: 1, noNaN: true }),
      depth: fc.integer({ min: 1, max: 12 }),
      width: fc.integer({ min: 8, max: 1024 }),
      act: fc.constantFrom('relu', 'tanh', 'gelu'),
    }),
    state: fc.constantFrom(TrialState.COMPLETE, TrialState.COMPLETE, TrialState.FAILED),
    value: fc.double({ min: -100, max: 100, noNaN: true }),
  }),
  { maxLength: 40 },
);

describe('TPE', () => {
  it('is deterministic: the same seed, trial number and history give the same parameters, inside the space', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 0, max: 2 ** 31 - 1 }),
        fc.integer({ min: 0, max: 10_000 }),
        history,
        fc.constantFrom(Direction.MINIMIZE, Direction.MAXIMIZE),
        (seed, number, h, direction) => {
          const ctx = { space, direction, seed, number, history: h };
          const a = tpeSample(ctx);
          expect(tpeSample(structuredClone(ctx))).toEqual(a);
          expect(inSpace(a)).toBe(true);
        },
      ),
      { numRuns: 200 },
    );
  });

  it('samples at random for its startup trials, then from the model', () => {
    const ctx = (n: number): SamplingContext => ({
      space,
      direction: Direction.MINIMIZE,
      seed: 1,
      number: n,
      history: Array.from({ length: n }, (_, i) => ({
        params: { lr: 1e-3, depth: 7, width: 128, act: 'gelu' },
        state: TrialState.COMPLETE,
        value: i,
      })),
    });
    const startup = TPE_DEFAULTS.startupTrials;
    expect(tpeSample(ctx(startup - 1))).toEqual(randomSampler(ctx(startup - 1)));
    expect(tpeSample(ctx(startup))).not.toEqual(randomSampler(ctx(startup)));
  });

  it('beats random search on a simple function', () => {
    const seeds = Array.from({ length: 10 }, (_, i) => i + 1);
    const tpe = seeds.map((s) => optimise(tpeSample, s, 80));
    const random = seeds.map((s) => optimise(randomSampler, s, 80));
    const wins = seeds.filter((_, i) => tpe[i] < random[i]).length;
    const mean = (xs: number[]) => xs.reduce((a, b) => a + b, 0) / xs.length;
    expect(wins).toBeGreaterThanOrEqual(9);
    expect(mean(tpe)).toBeLessThan(mean(random) / 3);
  });

  it('maximises as well as it minimises', () => {
    const seeds = [1, 2, 3, 4, 5];
    const run = (sampler: Sampler, seed: number) => {
      const h: SamplingContext['history'][number][] = [];
      let best = -Infinity;
      for (let number = 0; number < 80; number++) {
        const params = sampler({ space, direction: Direction.MAXIMIZE, seed, number, history: h });
        const value = -objective(params);
        h.push({ params, state: TrialState.COMPLETE, value });
        best = Math.max(best, value);
      }
      return best;
    };
    const wins = seeds.filter((s) => run(tpeSample, s) > run(randomSampler, s)).length;
    expect(wins).toBeGreaterThanOrEqual(4);
  });

  it('learns which choice of a categorical is best', () => {
    const cat: SearchSpace = [
      { name: 'act', kind: ParamKind.CATEGORICAL, choices: ['relu', 'tanh', 'gelu', 'silu'] },
      { name: 'x', kind: ParamKind.FLOAT, low: 0, high: 1, log: false },
    ];
    const cost: Record<string, number> = { relu: 1, tanh: 2, gelu: 0, silu: 1.5 };
    for (const seed of [1, 2, 3, 4, 5]) {
      const h: SamplingContext['history'][number][] = [];
      let best = 0;
      for (let number = 0; number < 50; number++) {
        const params = tpeSample({
          space: cat,
          direction: Direction.MINIMIZE,
          seed,
          number,
          history: h,
        });
        h.push({
          params,
          state: TrialState.COMPLETE,
          value: cost[params.act as string] + (params.x as number) / 2,
        });
        if (number >= TPE_DEFAULTS.startupTrials && params.act === 'gelu') best++;
      }
      // Random search picks it a quarter of the time.
      expect(best / (50 - TPE_DEFAULTS.startupTrials)).toBeGreaterThan(0.8);
    }
  });

  it('puts more density near the good observations', () => {
    const m = parzen([0.1, 0.12, 0.15], 0, 1, 1);
    expect(logDensity(m, 0.12, 0, 1)).toBeGreaterThan(logDensity(m, 0.9, 0, 1));
  });
});

describe('RANDOM', () => {
  it('is deterministic and inside the space', () => {
    fc.assert(
      fc.property(fc.integer({ min: 0, max: 2 ** 31 - 1 }), fc.nat(100_000), (seed, number) => {
        const ctx = { space, direction: Direction.MINIMIZE, seed, number, history: [] };
        const a = randomSampler(ctx);
        expect(randomSampler(ctx)).toEqual(a);
        expect(inSpace(a)).toBe(true);
      }),
    );
  });

  it('samples a log scale log-uniformly', () => {
    const lrs = Array.from({ length: 2_000 }, (_, number) =>
      Math.log10(
        randomSampler({ space, direction: Direction.MINIMIZE, seed: 9, number, history: [] })
          .lr as number,
      ),
    ).sort((a, b) => a - b);
    // Uniform on [-5, 0]: the median near -2.5, each fifth of the range about a fifth of draws.
    expect(Math.abs(lrs[1_000] + 2.5)).toBeLessThan(0.2);
    expect(lrs.filter((x) => x < -4).length).toBeGreaterThan(330);
    expect(lrs.filter((x) => x < -4).length).toBeLessThan(470);
  });
});

describe('GRID', () => {
  const grid: SearchSpace = [
    { name: 'lr', kind: ParamKind.FLOAT, low: 1e-4, high: 1, log: true },
    { name: 'depth', kind: ParamKind.INT, low: 2, high: 4, log: false },
    { name: 'act', kind: ParamKind.CATEGORICAL, choices: ['relu', 'gelu'] },
  ];

  it('visits every point exactly once, in an order the seed fixes', () => {
    const points = (seed: number) =>
      Array.from({ length: 30 }, (_, number) =>
        JSON.stringify(
          gridSampler({ space: grid, direction: Direction.MINIMIZE, seed, number, history: [] }),
        ),
      );
    const a = points(1);
    expect(new Set(a).size).toBe(30);
    expect(points(1)).toEqual(a);
    expect(points(2)).not.toEqual(a);
    const lrs = new Set(a.map((p) => (JSON.parse(p) as { lr: number }).lr.toPrecision(6)));
    expect([...lrs].sort()).toEqual([
      '0.000100000',
      '0.00100000',
      '0.0100000',
      '0.100000',
      '1.00000',
    ]);
  });

  it('refuses a space with no reasonable grid', () => {
    const g = gridAxes([{ name: 'n', kind: ParamKind.INT, low: 0, high: 1000, log: false }]);
    expect('problem' in g && g.problem).toMatch(/more than 64 integers/);
  });
});
