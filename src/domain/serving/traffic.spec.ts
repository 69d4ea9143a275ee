import fc from 'fast-check';
import { bucketOf, inCanary, pickArm } from './traffic';

const keys = Array.from({ length: 20_000 }, (_, i) => `user-${i}`);

describe('canary assignment', () => {
  it('sends about the configured share, and a key keeps its side', () => {
    const share = keys.filter((k) => inCanary(k, 'delay', 0.1)).length / keys.length;
    expect(share).toBeGreaterThan(0.09);
    expect(share).toBeLessThan(0.11);
    expect(keys.map((k) => inCanary(k, 'delay', 0.1))).toEqual(
      keys.map((k) => inCanary(k, 'delay', 0.1)),
    );
  });

  it('stepping the share up only moves keys into the canary', () => {
    fc.assert(
      fc.property(
        fc.double({ min: 0, max: 1, noNaN: true }),
        fc.double({ min: 0, max: 1, noNaN: true }),
        fc.string(),
        (a, b, key) => {
          const [lo, hi] = a < b ? [a, b] : [b, a];
          return !inCanary(key, 'e', lo) || inCanary(key, 'e', hi);
        },
      ),
    );
  });

  it('buckets are uniform enough', () => {
    const counts = new Array(10).fill(0);
    for (const k of keys) counts[Math.floor(bucketOf(k, 's') * 10)]++;
    for (const c of counts) expect(Math.abs(c - 2_000)).toBeLessThan(200);
  });
});

describe('A/B arms (weighted rendezvous)', () => {
  const arms = [
    { id: 'v1', weight: 1 },
    { id: 'v2', weight: 1 },
    { id: 'v3', weight: 2 },
  ];

  it('splits by weight', () => {
    const got = keys.map((k) => pickArm(k, arms).id);
    const share = (id: string) => got.filter((x) => x === id).length / got.length;
    expect(share('v3')).toBeGreaterThan(0.47);
    expect(share('v3')).toBeLessThan(0.53);
    expect(share('v1')).toBeGreaterThan(0.22);
  });

  it('adding an arm moves only the keys the new arm takes; removing it moves them back', () => {
    const before = keys.map((k) => pickArm(k, arms).id);
    const withV4 = [...arms, { id: 'v4', weight: 1 }];
    const after = keys.map((k) => pickArm(k, withV4).id);
    keys.forEach((_, i) => {
      if (after[i] !== before[i]) expect(after[i]).toBe('v4');
    });
    const moved = after.filter((x) => x === 'v4').length / keys.length;
    expect(moved).toBeGreaterThan(0.17);
    expect(moved).toBeLessThan(0.23);
    expect(keys.map((k) => pickArm(k, arms).id)).toEqual(before);
  });
});
