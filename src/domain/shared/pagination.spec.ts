import fc from 'fast-check';
import { decodeCursor, encodeCursor, toPage, toPageRequest } from './pagination';

describe('pagination', () => {
  it('round-trips any cursor', () => {
    fc.assert(
      fc.property(
        fc.date({ min: new Date(0), max: new Date(4e12), noInvalidDate: true }),
        fc.uuid(),
        (d, id) => {
          expect(decodeCursor(encodeCursor({ createdAt: d, id }))).toEqual({ createdAt: d, id });
        },
      ),
    );
  });

  it('validates page arguments', () => {
    expect(toPageRequest({})).toMatchObject({ limit: 20, backward: false });
    expect(() => toPageRequest({ first: 0 })).toThrow('between 1 and 100');
    expect(() => toPageRequest({ first: 1, last: 1 })).toThrow('either `first` or `last`');
    expect(() => toPageRequest({ after: 'garbage' })).toThrow('Malformed cursor');
  });

  it('uses the extra row only to tell whether more exist', () => {
    const req = toPageRequest({ first: 2 });
    expect(toPage([1, 2, 3], req)).toEqual({
      items: [1, 2],
      hasNextPage: true,
      hasPreviousPage: false,
    });
    expect(toPage([1, 2], req)).toEqual({
      items: [1, 2],
      hasNextPage: false,
      hasPreviousPage: false,
    });
    const back = toPageRequest({ last: 2 });
    expect(toPage([3, 2, 1], back)).toEqual({
      items: [2, 3],
      hasNextPage: false,
      hasPreviousPage: true,
    });
  });
});
