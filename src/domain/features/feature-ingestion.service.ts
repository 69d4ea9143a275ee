import { type Clock } from '../shared/clock';
import { InvalidInputError } from '../shared/domain-error';
import { type FeatureViewVersion } from './feature-definition';
import { FeatureErrorCode } from './feature-errors';
import { type OfflineStore, type OnlineStore } from './feature-store.ports';
import { mergeOnlineState, watermark } from './online-state';
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
    const states = await this.online.readMany(
      entityKeys.map((entityKey) => ({ versionId: v.id, entityKey })),
    );
    const stateOf = new Map(entityKeys.map((k, i) => [k, states[i]]));
    const marks = new Map<string, number>();
    for (const [k, s] of stateOf) {
      const w = watermark(s);
      if (w !== undefined) marks.set(k, w);
    }

    const outcome = validateBatch(v.schema, records, marks);
    const now = this.clock.now().getTime();
    const rows = outcome.accepted.map((a) => ({
      entityKey: a.entityKey,
      event: { ...a.event, createdTs: Math.min(a.knownAt ?? now, now) } as FeatureEvent,
    }));
    const inserted = rows.length ? await this.offline.append(v.id, rows) : new Set<string>();

    const byEntity = new Map<string, FeatureEvent[]>();
    for (const r of rows) {
      const list = byEntity.get(r.entityKey) ?? [];
      list.push(r.event);
      byEntity.set(r.entityKey, list);
    }
    await this.online.writeMany(
      [...byEntity].map(([entityKey, events]) => ({
        versionId: v.id,
        entityKey,
        state: mergeOnlineState(v.schema, stateOf.get(entityKey) ?? null, events),
      })),
    );
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
