import { evaluateGates, gateProblem } from './gates';
import {
  canTransition,
  type Evaluation,
  ModelState,
  signatureMismatch,
  TRANSITIONS,
} from './model';

const evaluation = (auc: number, p99 = 1): Evaluation => ({
  datasetId: 'd',
  metrics: { auc, log_loss: 0.5, p99_latency_ms: p99, rows: 100 },
  at: new Date(0),
});

describe('promotion gates', () => {
  const gates = [
    { kind: 'AUC_VS_PRODUCTION' as const, into: ModelState.PRODUCTION, threshold: -0.005 },
    { kind: 'MAX_P99_LATENCY_MS' as const, into: ModelState.PRODUCTION, threshold: 5 },
  ];

  it('passes a candidate within 0.005 AUC of production and within the latency budget', () => {
    const r = evaluateGates(gates, ModelState.PRODUCTION, evaluation(0.796, 4), evaluation(0.8));
    expect(r.map((x) => x.passed)).toEqual([true, true]);
  });

  it('says which gate failed and by how much', () => {
    const [aucGate, latency] = evaluateGates(
      gates,
      ModelState.PRODUCTION,
      evaluation(0.79, 7.5),
      evaluation(0.8),
    );
    expect(aucGate).toMatchObject({ passed: false, actual: 0.79 });
    expect(aucGate.required).toBeCloseTo(0.795, 10);
    expect(aucGate.detail).toBe('AUC 0.79 is 0.005 short of 0.795 (production 0.8 - 0.005)');
    expect(latency.detail).toBe('p99 7.5 ms is 2.5 ms over the 5 ms budget');
  });

  it('only applies the gates of the target state, and passes a relative gate with no production', () => {
    expect(evaluateGates(gates, ModelState.STAGING, evaluation(0.1), evaluation(0.9))).toEqual([]);
    expect(
      evaluateGates(gates.slice(0, 1), ModelState.PRODUCTION, evaluation(0.1), null)[0].passed,
    ).toBe(true);
  });

  it('refuses malformed gates', () => {
    expect(gateProblem({ kind: 'MIN_METRIC', into: ModelState.STAGING, threshold: 1 })).toMatch(
      /metric/,
    );
    expect(
      gateProblem({ kind: 'MAX_P99_LATENCY_MS', into: ModelState.VALIDATED, threshold: 1 }),
    ).toMatch(/guard/);
  });
});

describe('the state machine', () => {
  it('allows the promotion path and refuses jumps', () => {
    const path = [
      ModelState.REGISTERED,
      ModelState.VALIDATED,
      ModelState.STAGING,
      ModelState.SHADOW,
      ModelState.CANARY,
      ModelState.PRODUCTION,
    ];
    for (let i = 1; i < path.length; i++) expect(canTransition(path[i - 1], path[i])).toBe(true);
    expect(canTransition(ModelState.STAGING, ModelState.PRODUCTION)).toBe(false);
    expect(canTransition(ModelState.REGISTERED, ModelState.STAGING)).toBe(false);
    expect(TRANSITIONS[ModelState.ARCHIVED]).toEqual([]);
  });

  it('checks a signature against feature refs, naming what differs', () => {
    const sig = (features: string[] | null, width: number) => ({
      inputs: [{ name: 'features', type: 'FLOAT', shape: [null, width] }],
      outputs: [],
      features,
    });
    expect(signatureMismatch(sig(['a', 'b'], 2), ['a', 'b'])).toBeNull();
    expect(signatureMismatch(sig(['a', 'c'], 2), ['a', 'b'])).toMatchObject({
      missing: ['b'],
      unexpected: ['c'],
    });
    expect(signatureMismatch(sig(null, 3), ['a', 'b'])).toMatchObject({
      widthFound: 3,
      widthExpected: 2,
    });
  });
});
