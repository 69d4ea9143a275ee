import { type Clock } from '../shared/clock';
import { InvalidInputError } from '../shared/domain-error';
import {
  type CandidateVersion,
  judgeVersions,
  type Judgement,
  samePayload,
  VersionVerdict,
} from './event-versions';
import { type FeatureViewVersion } from './feature-definition';
import { FeatureErrorCode } from './feature-errors';
import { type OfflineStore, type OnlineStore } from './feature-store.ports';
import { onlineRetention } from './online-state';
import { type FeatureEvent } from './point-in-time';
import {
  type IngestRecord,
  type QuarantinedRecord,
  validateBatch,
  ValidationRule,
} from './validation';

export const MAX_BATCH = 10_000;

export interface IngestionReport {
  viewVersionId: string;
  view: string;
  version: number;
  received: number;
  /** Passed validation; includes `duplicates`. accepted + quarantined = received. */
  accepted: number;
  quarantined: number;
  /**
   * Accepted records that changed nothing: a redelivery, a re-send of the value already
   * known, or a record replaced by a later one of the same event in its batch.
   */
  duplicates: number;
  /** Accepted records that are new versions of stored events. */
  corrections: number;
  byRule: Record<string, number>;
}

/**
 * How records are judged. STREAM (the batch mutation, the stream consumer, quarantine
 * replay): known times default to the ingestion time, and a record too far behind its
 * entity's newest event is LATE_EVENT. BACKFILL (loading history): every record carries its
 * known time and lateness does not apply.
 */
export enum IngestionMode {
  STREAM = 'STREAM',
  BACKFILL = 'BACKFILL',
}

/**
 * One ingestion path for the batch mutation, the stream consumer, quarantine replay and
 * backfills of records: validate, judge each record against its event's stored versions,
 * append the new versions to the offline store, merge them into the online state, and
 * quarantine the rest. The caller acknowledges its source only after this resolves.
 */
export class FeatureIngestionService {
  constructor(
    private readonly offline: OfflineStore,
    private readonly online: OnlineStore,
    private readonly clock: Clock,
  ) {}

  async ingest(
    versions: readonly FeatureViewVersion[],
    records: readonly IngestRecord[],
    source: string,
    mode: IngestionMode = IngestionMode.STREAM,
  ): Promise<IngestionReport[]> {
    if (records.length > MAX_BATCH) {
      throw new InvalidInputError(
        FeatureErrorCode.TOO_MANY_RECORDS,
        `At most ${MAX_BATCH} records per batch (got ${records.length})`,
        { max: MAX_BATCH },
      );
    }
    const reports: IngestionReport[] = [];
    for (const v of versions) reports.push(await this.ingestVersion(v, records, source, mode));
    return reports;
  }

  private async ingestVersion(
    v: FeatureViewVersion,
    records: readonly IngestRecord[],
    source: string,
    mode: IngestionMode,
  ): Promise<IngestionReport> {
    const marks =
      mode === IngestionMode.STREAM ? await this.watermarks(v, records) : new Map<string, number>();
    const now = this.clock.now().getTime();
    const outcome = validateBatch(v.schema, records, marks, {
      lateness: mode === IngestionMode.STREAM,
      requireKnownAt: mode === IngestionMode.BACKFILL,
      now,
    });
    const candidates: CandidateVersion[] = outcome.accepted.map((a) => ({
      entityKey: a.entityKey,
      event: { ...a.event, createdTs: Math.min(a.knownAt ?? now, now) } as FeatureEvent,
      explicitKnownAt: a.knownAt !== undefined,
    }));
    const judged = judgeVersions(
      candidates,
      candidates.length
        ? await this.offline.previousVersions(
            v,
            candidates.map((c) => ({
              entityKey: c.entityKey,
              eventId: c.event.eventId,
              createdTs: c.event.createdTs,
            })),
          )
        : [],
    );
    await this.appendNew(v, candidates, judged);

    // The online state learns only what the offline store holds: new versions, and the stored
    // versions duplicates repeat, which repairs an online write lost after the offline write
    // of the same batch landed (its redelivery is all duplicates).
    const byEntity = new Map<string, FeatureEvent[]>();
    candidates.forEach((c, i) => {
      if (!judged[i].online) return;
      const list = byEntity.get(c.entityKey) ?? [];
      list.push({ ...c.event, createdTs: judged[i].createdTs });
      byEntity.set(c.entityKey, list);
    });
    await this.online.merge(
      onlineRetention(v.schema),
      [...byEntity].map(([entityKey, events]) => ({ versionId: v.id, entityKey, events })),
    );

    const conflicts: QuarantinedRecord[] = [];
    candidates.forEach((c, i) => {
      if (judged[i].verdict !== VersionVerdict.CONFLICT) return;
      conflicts.push({
        record: outcome.accepted[i].record,
        violations: [
          {
            rule: ValidationRule.CONFLICTING_DUPLICATE,
            feature: null,
            message: `event ${c.event.eventId} of ${c.entityKey} already has another value known at ${new Date(c.event.createdTs).toISOString()}`,
          },
        ],
      });
    });
    const quarantined = [...outcome.quarantined, ...conflicts];
    if (quarantined.length) {
      await this.offline.quarantine(
        quarantined.map((q) => ({
          versionId: v.id,
          source,
          record: q.record,
          violations: q.violations,
        })),
      );
    }

    const byRule: Record<string, number> = {};
    for (const q of quarantined) {
      for (const rule of new Set(q.violations.map((x) => x.rule)))
        byRule[rule] = (byRule[rule] ?? 0) + 1;
    }
    const count = (...kinds: VersionVerdict[]) =>
      judged.filter((j) => kinds.includes(j.verdict)).length;
    return {
      viewVersionId: v.id,
      view: v.viewName,
      version: v.version,
      received: records.length,
      accepted: candidates.length - conflicts.length,
      quarantined: quarantined.length,
      duplicates: count(VersionVerdict.DUPLICATE, VersionVerdict.SUPERSEDED),
      corrections: count(VersionVerdict.CORRECTION),
      byRule,
    };
  }

  /**
   * Each entity's newest stored event time not in this batch: lateness is judged against it,
   * so a redelivered batch whose events already reached the online store gets the same
   * verdicts as its first delivery.
   */
  private async watermarks(
    v: FeatureViewVersion,
    records: readonly IngestRecord[],
  ): Promise<Map<string, number>> {
    const ids = new Map<string, Set<string>>();
    for (const r of records) {
      if (typeof r.entityKey !== 'string' || r.entityKey.length === 0) continue;
      const set = ids.get(r.entityKey) ?? new Set<string>();
      set.add(String(r.eventId));
      ids.set(r.entityKey, set);
    }
    const keys = [...ids.keys()];
    const newest = await this.online.newestEventTimes(
      keys.map((entityKey) => ({
        versionId: v.id,
        entityKey,
        excluding: ids.get(entityKey) as Set<string>,
      })),
    );
    const marks = new Map<string, number>();
    keys.forEach((k, i) => {
      const w = newest[i];
      if (w !== undefined) marks.set(k, w);
    });
    return marks;
  }

  /**
   * Appends the new versions. A concurrent writer may have stored a version at the same known
   * time since they were judged: that record is then a duplicate or a conflict after all.
   */
  private async appendNew(
    v: FeatureViewVersion,
    candidates: readonly CandidateVersion[],
    judged: Judgement[],
  ): Promise<void> {
    const fresh = judged.flatMap((j, i) =>
      j.verdict === VersionVerdict.NEW || j.verdict === VersionVerdict.CORRECTION ? [i] : [],
    );
    if (!fresh.length) return;
    const taken = await this.offline.append(
      v,
      fresh.map((i) => ({ entityKey: candidates[i].entityKey, event: candidates[i].event })),
    );
    fresh.forEach((i, k) => {
      const stored = taken[k];
      if (!stored) return;
      judged[i] = samePayload(stored, candidates[i].event)
        ? { verdict: VersionVerdict.DUPLICATE, createdTs: stored.createdTs, online: true }
        : { verdict: VersionVerdict.CONFLICT, createdTs: stored.createdTs, online: false };
    });
  }
}
