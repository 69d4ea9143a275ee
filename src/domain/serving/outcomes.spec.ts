import fc from 'fast-check';
import { LATENCY_BOUNDS_MS, latencyBucket, type OutcomeCounts, statsOf } from './outcomes';

describe('fleet outcome counts', () => {
  it('puts every latency in the first bucket whose bound holds it', () => {
    fc.assert(
      fc.property(fc.double({ min: 0, max: 100_000, noNaN: true }), (ms) => {
        const b = latencyBucket(ms);
        expect(LATENCY_BOUNDS_MS[b]).toBeGreaterThanOrEqual(ms);
        if (b > 0) expect(LATENCY_BOUNDS_MS[b - 1]).toBeLessThan(ms);
      }),
    );
  });

  it('reports a p99 at most 25 % above the exact one, never below it', () => {
    fc.assert(
      fc.property(
        fc.array(fc.double({ min: 0.05, max: 5_000, noNaN: true }), {
          minLength: 1,
          maxLength: 500,
        }),
        (latencies) => {
          const c: OutcomeCounts = {
            n: latencies.length,
            errors: 0,
            latency: new Map(),
            firstAt: 0,
            queueSum: 0,
            queueArrivals: 0,
          };
          for (const ms of latencies) {
            const b = latencyBucket(ms);
            c.latency.set(b, (c.latency.get(b) ?? 0) + 1);
          }
          const sorted = [...latencies].sort((a, b) => a - b);
          const exact = sorted[Math.min(sorted.length - 1, Math.floor(sorted.length * 0.99))];
          const p99 = statsOf(c).p99Ms as number;
          expect(p99).toBeGreaterThanOrEqual(exact);
          expect(p99).toBeLessThanOrEqual(Math.max(exact * 1.25, LATENCY_BOUNDS_MS[0]));
        },
      ),
    );
  });

  it('sums errors and queues over processes', () => {
    const s = statsOf({
      n: 100,
      errors: 5,
      latency: new Map([[latencyBucket(2), 95]]),
      firstAt: 1_000,
      queueSum: 30,
      queueArrivals: 60,
    });
    expect(s).toMatchObject({
      n: 100,
      errors: 5,
      errorRate: 0.05,
      firstAt: 1_000,
      queueDepth: 0.5,
    });
  });
});
