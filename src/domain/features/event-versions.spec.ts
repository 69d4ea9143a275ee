import {
  type CandidateVersion,
  judgeVersions,
  type StoredVersion,
  VersionVerdict,
} from './event-versions';

const row = (
  eventId: string,
  createdTs: number,
  v: number,
  explicitKnownAt = true,
  eventTs = 100,
): CandidateVersion => ({
  entityKey: 'e',
  event: { eventId, eventTs, createdTs, values: [v] },
  explicitKnownAt,
});
const stored = (createdTs: number, v: number, eventTs = 100) => ({
  eventTs,
  createdTs,
  values: [v],
});
const verdicts = (
  rows: CandidateVersion[],
  previous: (StoredVersion | null)[] = rows.map(() => null),
) => judgeVersions(rows, previous).map((j) => [j.verdict, j.createdTs, j.online]);

describe('judgeVersions', () => {
  it('against stored versions: new, correction, duplicate of the version known before, conflict', () => {
    expect(
      verdicts(
        [row('a', 10, 1), row('b', 20, 2), row('c', 30, 3), row('d', 40, 4), row('f', 50, 5)],
        [null, stored(10, 1), stored(10, 3), stored(40, 4), stored(50, 9)],
      ),
    ).toEqual([
      [VersionVerdict.NEW, 10, true],
      [VersionVerdict.CORRECTION, 20, true],
      // A re-send of the value known before: the stored version's known time, for repair.
      [VersionVerdict.DUPLICATE, 10, true],
      [VersionVerdict.DUPLICATE, 40, true],
      [VersionVerdict.CONFLICT, 50, false],
    ]);
  });

  it('an event moved in time is a correction, not a duplicate', () => {
    expect(verdicts([row('a', 20, 1, true, 90)], [stored(10, 1)])).toEqual([
      [VersionVerdict.CORRECTION, 20, true],
    ]);
  });

  it('within a batch: versions in known-time order, same instant by batch order', () => {
    expect(
      verdicts([
        row('a', 30, 3),
        row('a', 10, 1),
        row('a', 20, 1),
        // Known at the same instant as the first, without knownAt: it replaces it.
        row('b', 50, 1, false),
        row('b', 50, 1, false),
        row('b', 50, 2, false),
        // With an explicit knownAt, the same instant and another value is a conflict.
        row('c', 60, 1),
        row('c', 60, 2),
      ]),
    ).toEqual([
      [VersionVerdict.CORRECTION, 30, true],
      [VersionVerdict.NEW, 10, true],
      [VersionVerdict.DUPLICATE, 10, false],
      [VersionVerdict.SUPERSEDED, 50, false],
      [VersionVerdict.DUPLICATE, 50, false],
      [VersionVerdict.NEW, 50, true],
      [VersionVerdict.NEW, 60, true],
      [VersionVerdict.CONFLICT, 60, false],
    ]);
  });
});
