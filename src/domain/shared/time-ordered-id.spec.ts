import fc from 'fast-check';
import { timeOrderedId } from './time-ordered-id';

const V7 = /^[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;

it('is a UUID version 7 whose first 48 bits are the time, ordered by time as text', () => {
  fc.assert(
    fc.property(
      fc.integer({ min: 0, max: 2 ** 48 - 2 }),
      fc.integer({ min: 1, max: 1e6 }),
      (ms, d) => {
        const a = timeOrderedId(ms);
        const b = timeOrderedId(Math.min(ms + d, 2 ** 48 - 1));
        expect(a).toMatch(V7);
        expect(parseInt(a.replace(/-/g, '').slice(0, 12), 16)).toBe(ms);
        expect(a < b).toBe(true);
      },
    ),
  );
});

it('differs in its random bits between calls in the same ms, across pool refills', () => {
  const ids = new Set(Array.from({ length: 2_000 }, () => timeOrderedId(1_764_547_200_123)));
  expect(ids.size).toBe(2_000);
  const rand = [...ids].map((id) => id.replace(/-/g, '').slice(13));
  // Every hex digit after the version takes several values (the variant's four): none is stuck.
  for (let i = 0; i < rand[0].length; i++)
    expect(new Set(rand.map((r) => r[i])).size).toBeGreaterThan(3);
});

it('clamps a time 48 bits cannot hold instead of throwing', () => {
  const time = (id: string) => parseInt(id.replace(/-/g, '').slice(0, 12), 16);
  expect(time(timeOrderedId(-1))).toBe(0);
  expect(time(timeOrderedId(Number.NaN))).toBe(0);
  expect(time(timeOrderedId(2 ** 48))).toBe(2 ** 48 - 1);
  expect(time(timeOrderedId(1.5))).toBe(1);
  for (const at of [-1, Number.NaN, Infinity, 2 ** 60]) expect(timeOrderedId(at)).toMatch(V7);
});
