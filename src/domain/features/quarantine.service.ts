import { type Clock } from '../shared/clock';
import { InvalidInputError, NotFoundError } from '../shared/domain-error';
import { type Page, type PageRequest } from '../shared/pagination';
import { FeatureErrorCode } from './feature-errors';
import { type FeatureIngestionService, type IngestionReport } from './feature-ingestion.service';
import { type FeatureRegistryService } from './feature-registry.service';
import { type OfflineStore, type StoredQuarantine } from './feature-store.ports';

const MAX_REPLAY = 10_000;

/**
 * Quarantined records are kept with the rules they broke and their raw payload. Replay sends
 * them through ingestion again (against the version's definition as it is now, or the
 * newest live version when `toLatest`), once the definition or the data is fixed: those that
 * now pass are stored, those that still fail are quarantined anew with fresh reasons.
 */
export class QuarantineService {
  constructor(
    private readonly offline: OfflineStore,
    private readonly registry: FeatureRegistryService,
    private readonly ingestion: FeatureIngestionService,
    private readonly clock: Clock,
  ) {}

  async list(
    view: string | null,
    includeReplayed: boolean,
    page: PageRequest,
  ): Promise<Page<StoredQuarantine>> {
    const versionIds = view
      ? (await this.registry.versionsOf([(await this.registry.view(view)).id])).map((v) => v.id)
      : null;
    return this.offline.listQuarantine({ versionIds, includeReplayed }, page);
  }

  byIds(ids: readonly string[]): Promise<StoredQuarantine[]> {
    return this.offline.quarantineByIds(ids);
  }

  async replay(ids: readonly string[], toLatest: boolean): Promise<IngestionReport[]> {
    if (ids.length === 0 || ids.length > MAX_REPLAY) {
      throw new InvalidInputError(
        FeatureErrorCode.TOO_MANY_RECORDS,
        `Replay 1 to ${MAX_REPLAY} records at a time`,
        { max: MAX_REPLAY },
      );
    }
    const rows = (await this.offline.quarantineByIds(ids)).filter((r) => !r.replayedAt);
    if (rows.length !== new Set(ids).size) {
      const found = new Set(rows.map((r) => r.id));
      throw new NotFoundError(
        FeatureErrorCode.QUARANTINE_NOT_FOUND,
        'Some records do not exist or were already replayed',
        {
          missing: ids.filter((id) => !found.has(id)),
        },
      );
    }
    const versions = new Map(
      (await this.registry.versionsByIds([...new Set(rows.map((r) => r.versionId))])).map((v) => [
        v.id,
        v,
      ]),
    );
    const reports: IngestionReport[] = [];
    for (const [versionId, group] of groupBy(rows, (r) => r.versionId)) {
      let target = versions.get(versionId);
      if (!target) continue;
      if (toLatest) {
        const live = await this.registry.liveVersions(target.viewName);
        target = live[live.length - 1] ?? target;
      }
      // Mark first: a record that fails again is quarantined anew, not twice.
      await this.offline.markReplayed(
        group.map((r) => r.id),
        this.clock.now(),
      );
      reports.push(
        ...(await this.ingestion.ingest(
          [target],
          group.map((r) => r.record),
          group[0].source,
        )),
      );
    }
    return reports;
  }
}

function groupBy<T>(items: readonly T[], key: (t: T) => string): Map<string, T[]> {
  const m = new Map<string, T[]>();
  for (const i of items) {
    const k = key(i);
    const list = m.get(k) ?? [];
    list.push(i);
    m.set(k, list);
  }
  return m;
}
