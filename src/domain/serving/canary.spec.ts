import { judgeCanary, type CanaryPolicy } from './canary';

const policy: CanaryPolicy = {
  steps: [0.1, 0.5, 1],
  stepMs: 1_000,
  windowMs: 10_000,
  maxErrorRateDelta: 0.02,
  maxP99Ratio: 2,
  minSamples: 20,
};
const stats = (n: number, errors: number, p99: number) => ({
  firstAt: 0,
  n,
  errors,
  errorRate: errors / n,
  p99Ms: p99,
});

describe('judgeCanary', () => {
  it('rolls back a slow or failing canary, naming why', () => {
    expect(judgeCanary(stats(150, 0, 9), stats(500, 0, 1), policy, 0.1, 5_000)).toMatchObject({
      action: 'ROLLBACK',
      reason: 'p99 9.00 ms vs baseline 1.00 ms (allowed ×2)',
    });
    expect(judgeCanary(stats(10, 10, 1), stats(500, 0, 1), policy, 0.1, 0).action).toBe('ROLLBACK');
    // Too few samples for a p99 to mean anything: latency is not judged yet.
    expect(judgeCanary(stats(50, 0, 9), stats(500, 0, 1), policy, 0.1, 5_000).action).toBe('STEP');
  });

  it('holds without enough samples, steps up when healthy, promotes at the last step', () => {
    expect(judgeCanary(stats(5, 0, 1), stats(50, 0, 1), policy, 0.1, 5_000).action).toBe('HOLD');
    expect(judgeCanary(stats(50, 0, 1.2), stats(500, 0, 1), policy, 0.1, 5_000)).toMatchObject({
      action: 'STEP',
      share: 0.5,
    });
    expect(judgeCanary(stats(50, 0, 1.2), stats(500, 0, 1), policy, 0.5, 500).action).toBe('HOLD');
    expect(judgeCanary(stats(50, 0, 1.2), stats(500, 0, 1), policy, 1, 5_000).action).toBe(
      'PROMOTE',
    );
  });
});
