import { type Clock } from '../shared/clock';
import { InvalidInputError } from '../shared/domain-error';
import { type FeatureViewVersion } from './feature-definition';
import { FeatureErrorCode } from './feature-errors';
import { type OfflineStore, type OnlineStore } from './feature-store.ports';
import { onlineRetention, shouldTrim } from './online-state';
import { type FeatureEvent } from './point-in-time';
import { type IngestRecord, validateBatch } from './validation';

export const MAX_BATCH = 10_000;

export interface IngestionReport {
  viewVersionId: string;
  view: string;
  version: number;
  received: number;
  /** Passed validation; includes `duplicates`. accepted + quarantined = received. */
  accepted: number;
  quarantined: number;
  /** Accepted records already stored (a redelivery); they changed nothing. */
  duplicates: number;
  byRule: Record<string, number>;
}

/**
 * One ingestion path for the batch mutation, the stream consumer and quarantine replay:
 * validate, append new events to the offline store, merge them into the online state, and
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
  ): Promise<IngestionReport[]> {
    if (records.length > MAX_BATCH) {
      throw new InvalidInputError(
        FeatureErrorCode.TOO_MANY_RECORDS,
        `At most ${MAX_BATCH} records per batch (got ${records.length})`,
        { max: MAX_BATCH },
      );
    }
    const reports: IngestionReport[] = [];
    for (const v of versions) reports.push(await this.ingestVersion(v, records, source));
    return reports;
  }

  private async ingestVersion(
    v: FeatureViewVersion,
    records: readonly IngestRecord[],
    source: string,
  ): Promise<IngestionReport> {
    const entityKeys = [
      ...new Set(
        records.map((r) => r.entityKey).filter((k) => typeof k === 'string' && k.length > 0),
      ),
    ];
    // Lateness is judged against each entity's newest stored event that is not in this
    // batch, so a redelivered batch whose events already reached the online store gets the
    // same verdicts as its first delivery.
    const ids = new Map<string, Set<string>>(entityKeys.map((k) => [k, new Set<string>()]));
    for (const r of records) ids.get(r.entityKey)?.add(String(r.eventId));
    const newest = await this.online.newestEventTimes(
      entityKeys.map((entityKey) => ({
        versionId: v.id,
        entityKey,
        excluding: ids.get(entityKey) as Set<string>,
      })),
    );
    const marks = new Map<string, number>();
    entityKeys.forEach((k, i) => {
      const w = newest[i];
      if (w !== undefined) marks.set(k, w);
    });

    const outcome = validateBatch(v.schema, records, marks);
    const now = this.clock.now().getTime();
    const rows = outcome.accepted.map((a) => ({
      entityKey: a.entityKey,
      event: { ...a.event, createdTs: Math.min(a.knownAt ?? now, now) } as FeatureEvent,
    }));

    // Every accepted event goes online, new or not: a batch whose offline write landed but
    // whose online write was lost is repaired by its redelivery (reads dedupe by id).
    const byEntity = new Map<string, FeatureEvent[]>();
    for (const r of rows) {
      const list = byEntity.get(r.entityKey) ?? [];
      list.push(r.event);
      byEntity.set(r.entityKey, list);
    }
    const online = [...byEntity].map(([entityKey, events]) => {
      const previous = marks.get(entityKey);
      let top = previous ?? -Infinity;
      for (const e of events) if (e.eventTs > top) top = e.eventTs;
      // Trimmed relative to the previous newest event, never past it: a redelivery of this
      // batch must still find it (see above).
      const retention = shouldTrim(v.schema, previous, top)
        ? onlineRetention(v.schema, previous ?? top)
        : null;
      return { versionId: v.id, entityKey, events, retention };
    });
    // Both stores are written at once; the source is acknowledged only when both are. A
    // failure is reported only after the other write has settled too, so a redelivery never
    // races a write of the same batch that is still in flight.
    const [offlineWrite, onlineWrite] = await Promise.allSettled([
      rows.length ? this.offline.append(v, rows) : Promise.resolve(new Set<string>()),
      this.online.append(online),
    ]);
    if (offlineWrite.status === 'rejected') throw offlineWrite.reason;
    if (onlineWrite.status === 'rejected') throw onlineWrite.reason;
    const inserted = offlineWrite.value;
    if (outcome.quarantined.length) {
      await this.offline.quarantine(
        outcome.quarantined.map((q) => ({
          versionId: v.id,
          source,
          record: q.record,
          violations: q.violations,
        })),
      );
    }

    const byRule: Record<string, number> = {};
    for (const q of outcome.quarantined) {
      for (const rule of new Set(q.violations.map((x) => x.rule)))
        byRule[rule] = (byRule[rule] ?? 0) + 1;
    }
    return {
      viewVersionId: v.id,
      view: v.viewName,
      version: v.version,
      received: records.length,
      accepted: rows.length,
      quarantined: outcome.quarantined.length,
      duplicates: rows.length - inserted.size,
      byRule,
    };
  }
}
