import fc from 'fast-check';
import { BinClosure } from './feature-definition';
import { applyTransform, binIndex } from './transforms';

const EDGES = [0, 18, 35, 50, 100];

describe('binning with explicit closure', () => {
  it.each([
    // age, RIGHT (a,b], LEFT [a,b)
    [0, null, 0],
    [17, 0, 0],
    [18, 0, 1],
    [19, 1, 1],
    [35, 1, 2],
    [50, 2, 3],
    [99.5, 3, 3],
    [100, 3, null],
    [-1, null, null],
  ])('age %p → RIGHT %p, LEFT %p', (age, right, left) => {
    expect(binIndex(age, EDGES, BinClosure.RIGHT)).toBe(right);
    expect(binIndex(age, EDGES, BinClosure.LEFT)).toBe(left);
  });

  it('agrees with the textbook definition for every value and every edge set', () => {
    const edges = fc
      .uniqueArray(fc.integer({ min: -1000, max: 1000 }), { minLength: 2, maxLength: 12 })
      .map((a) => [...a].sort((x, y) => x - y));
    fc.assert(
      fc.property(
        edges,
        fc.integer({ min: -1100, max: 1100 }),
        fc.constantFrom(BinClosure.LEFT, BinClosure.RIGHT),
        (e, x, closed) => {
          let expected: number | null = null;
          for (let i = 0; i + 1 < e.length; i++) {
            const inside =
              closed === BinClosure.LEFT ? x >= e[i] && x < e[i + 1] : x > e[i] && x <= e[i + 1];
            if (inside) expected = i;
          }
          expect(binIndex(x, e, closed)).toBe(expected);
          // Values exactly on an edge are the case that bites: make sure they are exercised.
          for (const edge of e) {
            const atEdge = binIndex(edge, e, closed);
            const i = e.indexOf(edge);
            const want =
              closed === BinClosure.LEFT ? (i < e.length - 1 ? i : null) : i > 0 ? i - 1 : null;
            expect(atEdge).toBe(want);
          }
        },
      ),
    );
  });

  it('maps categories to indexes with one bucket for unknowns', () => {
    const t = { kind: 'CATEGORY_INDEX' as const, categories: ['ATL', 'ORD'] };
    expect(applyTransform(t, 'ORD')).toBe(1);
    expect(applyTransform(t, 'SFO')).toBe(2);
    expect(applyTransform(t, null)).toBeNull();
  });
});
