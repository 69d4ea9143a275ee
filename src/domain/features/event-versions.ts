import { type FeatureValue } from './feature-definition';
import { type FeatureEvent } from './point-in-time';

/** A stored version of an event, as the offline store returns it to judge a record against. */
export interface StoredVersion {
  eventTs: number;
  createdTs: number;
  values: FeatureValue[];
}

export enum VersionVerdict {
  /** The first version of an event. */
  NEW = 'NEW',
  /** A later version of a stored event: a correction. */
  CORRECTION = 'CORRECTION',
  /** Repeats the version known at its known time: changes nothing (a redelivery, a re-send). */
  DUPLICATE = 'DUPLICATE',
  /** Replaced by a later record of the same event learned at the same instant in its batch. */
  SUPERSEDED = 'SUPERSEDED',
  /** Claims the known time of a stored version but carries another payload: quarantined. */
  CONFLICT = 'CONFLICT',
}

export interface CandidateVersion {
  entityKey: string;
  event: FeatureEvent;
  /** Whether the source gave knownAt (else the known time is the ingestion time). */
  explicitKnownAt: boolean;
}

export interface Judgement {
  verdict: VersionVerdict;
  /**
   * The known time of the version this record amounts to: its own for NEW and CORRECTION, the
   * repeated version's for DUPLICATE (what an online store that missed it must hold), the
   * stored version's for CONFLICT.
   */
  createdTs: number;
  /**
   * Whether the online state must merge the record (at `createdTs`): new versions, and
   * duplicates of stored versions, which repair an online state that missed them.
   */
  online: boolean;
}

/** Event time and values equal: the same version content. */
export function samePayload(
  a: Pick<StoredVersion, 'eventTs' | 'values'>,
  b: Pick<StoredVersion, 'eventTs' | 'values'>,
): boolean {
  if (a.eventTs !== b.eventTs || a.values.length !== b.values.length) return false;
  for (let i = 0; i < a.values.length; i++) if (!sameValue(a.values[i], b.values[i])) return false;
  return true;
}

function sameValue(x: FeatureValue | undefined, y: FeatureValue | undefined): boolean {
  if (Array.isArray(x) && Array.isArray(y))
    return x.length === y.length && x.every((v, i) => v === y[i]);
  return (x ?? null) === (y ?? null);
}

/**
 * Decides what each record of a batch is to its event's history (the rules of README
 * "Corrections", docs/adr/0022). `previous[i]` is the newest stored version of row i's event
 * known at or before row i's known time, or null.
 *
 * - Same known time as a stored version: the same payload is a DUPLICATE, another a CONFLICT.
 * - The same payload as the newest version known before it (stored, or earlier in this batch)
 *   is a DUPLICATE: a re-send changes nothing.
 * - Anything else is a new version: NEW for an event's first, else a CORRECTION.
 * - Records of one event with one known time in one batch: the same payload is a DUPLICATE;
 *   another payload with an explicit knownAt is a CONFLICT, and without one (both known at
 *   this ingestion) the later record replaces the earlier, which becomes SUPERSEDED.
 */
export function judgeVersions(
  rows: readonly CandidateVersion[],
  previous: readonly (StoredVersion | null)[],
): Judgement[] {
  const out: Judgement[] = rows.map((r) => ({
    verdict: VersionVerdict.NEW,
    createdTs: r.event.createdTs,
    online: true,
  }));
  // Most events appear once in a batch: only those that repeat are grouped.
  const first = new Map<string, number>();
  let repeated: Map<string, number[]> | null = null;
  for (let i = 0; i < rows.length; i++) {
    const key = `${rows[i].entityKey}\u0000${rows[i].event.eventId}`;
    const at = first.get(key);
    if (at === undefined) first.set(key, i);
    else {
      repeated ??= new Map();
      const list = repeated.get(key) ?? [at];
      list.push(i);
      repeated.set(key, list);
    }
  }
  const groups: number[][] = [];
  for (const [key, i] of first) {
    const list = repeated?.get(key);
    if (list) groups.push(list);
    else if (!previous[i]) out[i].verdict = VersionVerdict.NEW;
    else groups.push([i]);
  }
  for (const members of groups) {
    // In known-time order, batch order within one instant (a stable sort keeps it).
    members.sort((a, b) => rows[a].event.createdTs - rows[b].event.createdTs);
    /** The versions this event has had so far in the batch (a duplicate: what it repeats). */
    const accepted: { row: number; content: StoredVersion; stored: boolean }[] = [];
    for (const i of members) {
      const r = rows[i];
      const cts = r.event.createdTs;
      let top = accepted[accepted.length - 1];
      if (top && top.content.createdTs === cts && !isDuplicate(out[top.row])) {
        if (samePayload(top.content, r.event)) {
          out[i] = { verdict: VersionVerdict.DUPLICATE, createdTs: cts, online: false };
          continue;
        }
        if (r.explicitKnownAt) {
          out[i] = { verdict: VersionVerdict.CONFLICT, createdTs: cts, online: false };
          continue;
        }
        out[top.row] = { verdict: VersionVerdict.SUPERSEDED, createdTs: cts, online: false };
        accepted.pop();
        top = accepted[accepted.length - 1];
      }
      const stored = previous[i];
      if (stored && stored.createdTs === cts) {
        if (!samePayload(stored, r.event)) {
          out[i] = { verdict: VersionVerdict.CONFLICT, createdTs: cts, online: false };
          continue;
        }
        out[i] = { verdict: VersionVerdict.DUPLICATE, createdTs: cts, online: true };
        accepted.push({ row: i, content: stored, stored: true });
        continue;
      }
      const fromBatch = top !== undefined && (!stored || top.content.createdTs > stored.createdTs);
      const before = fromBatch ? top : stored ? { content: stored, stored: true } : null;
      if (before && samePayload(before.content, r.event)) {
        out[i] = {
          verdict: VersionVerdict.DUPLICATE,
          createdTs: before.content.createdTs,
          online: before.stored,
        };
        accepted.push({ row: i, content: before.content, stored: before.stored });
        continue;
      }
      out[i] = {
        verdict: before ? VersionVerdict.CORRECTION : VersionVerdict.NEW,
        createdTs: cts,
        online: true,
      };
      accepted.push({
        row: i,
        content: { eventTs: r.event.eventTs, createdTs: cts, values: r.event.values },
        stored: false,
      });
    }
  }
  return out;
}

function isDuplicate(j: Judgement): boolean {
  return j.verdict === VersionVerdict.DUPLICATE;
}
