import fc from 'fast-check';
import {
  type AutoscalePolicy,
  decideScale,
  DEFAULT_AUTOSCALE_POLICY,
  FRESH_SCALE_MEMORY,
  type ScaleMemory,
  type ScaleSignal,
} from './autoscaler';

const policy: AutoscalePolicy = { ...DEFAULT_AUTOSCALE_POLICY, cooldownMs: 60_000 };
const HOT: Omit<ScaleSignal, 'replicas'> = { queueDepth: 100, p99Ms: 200, requests: 500 };
const COLD: Omit<ScaleSignal, 'replicas'> = { queueDepth: 0, p99Ms: 2, requests: 500 };
const MIDDLE: Omit<ScaleSignal, 'replicas'> = { queueDepth: 1, p99Ms: 40, requests: 500 };

/** Runs decisions 30 s apart from one replica; returns the replica count after each. */
function play(signals: Omit<ScaleSignal, 'replicas'>[], p = policy): number[] {
  let replicas = 1;
  let memory: ScaleMemory = FRESH_SCALE_MEMORY;
  return signals.map((s, i) => {
    const d = decideScale(p, { ...s, replicas }, memory, i * 30_000);
    replicas = d.replicas;
    memory = d.memory;
    return replicas;
  });
}

describe('autoscaler', () => {
  it('adds a replica after two hot intervals, not one, and says why', () => {
    expect(play([HOT])).toEqual([1]);
    expect(play([HOT, HOT])).toEqual([1, 2]);
    const d = decideScale(policy, { ...HOT, replicas: 1 }, { ...FRESH_SCALE_MEMORY, hot: 1 }, 0);
    expect(d.reason).toMatch(/^hot for 2 intervals: queue 100\.0\/replica, p99 200\.0 ms/);
  });

  it('a slow p99 alone is hot; an idle version (no p99) is cold', () => {
    const slow = { queueDepth: 0, p99Ms: 80, requests: 100 };
    expect(play([slow, slow])).toEqual([1, 2]);
    const idle = { queueDepth: 0, p99Ms: null, requests: 0 };
    // Up at 30 s; the third idle interval in a row (120 s) takes it back down.
    expect(play([HOT, HOT, idle, idle, idle, idle])).toEqual([1, 2, 2, 2, 1, 1]);
  });

  it('holds within the cool-down after a change, then acts', () => {
    // Up at t=30 s; hot again at 60 s and 90 s (cooling until 90 s), up at 90 s.
    expect(play([HOT, HOT, HOT, HOT])).toEqual([1, 2, 2, 3]);
  });

  it('flapping load (hot, cold, in between) never moves it', () => {
    expect(play([HOT, COLD, HOT, MIDDLE, HOT, COLD, HOT, COLD])).toEqual([1, 1, 1, 1, 1, 1, 1, 1]);
  });

  it('steps by one within [min, max], and changes at most once per cool-down, for any load', () => {
    fc.assert(
      fc.property(
        fc.integer({ min: 1, max: 4 }),
        fc.integer({ min: 0, max: 4 }),
        fc.array(fc.constantFrom(HOT, COLD, MIDDLE), { maxLength: 60 }),
        (min, extra, signals) => {
          const p = { ...policy, minReplicas: min, maxReplicas: min + extra };
          let replicas = min;
          let memory: ScaleMemory = FRESH_SCALE_MEMORY;
          let lastChange = -Infinity;
          signals.forEach((s, i) => {
            const now = i * 30_000;
            const d = decideScale(p, { ...s, replicas }, memory, now);
            expect(d.replicas).toBeGreaterThanOrEqual(p.minReplicas);
            expect(d.replicas).toBeLessThanOrEqual(p.maxReplicas);
            expect(Math.abs(d.replicas - replicas)).toBeLessThanOrEqual(1);
            if (d.replicas !== replicas) {
              expect(now - lastChange).toBeGreaterThanOrEqual(p.cooldownMs);
              lastChange = now;
            }
            replicas = d.replicas;
            memory = d.memory;
          });
        },
      ),
    );
  });

  it('brings a count outside the bounds back within them at once', () => {
    const d = decideScale(policy, { ...MIDDLE, replicas: 9 }, FRESH_SCALE_MEMORY, 0);
    expect(d.replicas).toBe(policy.maxReplicas);
    expect(d.reason).toMatch(/^bounds/);
  });
});
