import { NotFoundError } from '../shared/domain-error';
import { type FeatureViewVersion } from './feature-definition';
import { FeatureErrorCode } from './feature-errors';
import { type OpenTableFiles } from './open-table';
import { type FeatureRegistryService } from './feature-registry.service';
import {
  type CompactionReport,
  type CompactionStatus,
  type OfflineStore,
} from './feature-store.ports';

/** Pending rows below this are left to point-in-time reads of the append log. */
export const MIN_PENDING_ROWS = 10_000;
/** ... and so is a tail smaller than this share of what is already compacted. */
export const PENDING_SHARE = 0.1;

/**
 * Keeps point-in-time reads fast: history appended since the last compaction is read row by
 * row, so it is moved into columnar segments once it is large enough to matter. The
 * threshold grows with the compacted size, so each row is rewritten a bounded number of
 * times however long a version lives (segments are rewritten whole).
 */
export class OfflineCompactionService {
  constructor(
    private readonly registry: FeatureRegistryService,
    private readonly offline: OfflineStore,
  ) {}

  /** Per version id, in order: one query however many. */
  statuses(versionIds: readonly string[]): Promise<CompactionStatus[]> {
    return this.offline.compactionStatus(versionIds);
  }

  /** Per version id, in order: its open table's Parquet files (docs/adr/0033). */
  openTables(versionIds: readonly string[]): Promise<OpenTableFiles[]> {
    return this.offline.openTables(versionIds);
  }

  /** Compacts everything pending for one version now (the latest live one by default). */
  async compact(view: string, version: number | null): Promise<CompactionReport> {
    const live = await this.registry.liveVersions(view);
    const v = version === null ? live[live.length - 1] : live.find((x) => x.version === version);
    if (!v) {
      throw new NotFoundError(
        FeatureErrorCode.VERSION_NOT_FOUND,
        `No live version ${version ?? ''} of view "${view}"`,
        { view, version },
      );
    }
    return this.compactVersion(v);
  }

  async compactVersion(v: FeatureViewVersion): Promise<CompactionReport> {
    const total: CompactionReport = { rows: 0, segments: 0, compactedRows: 0 };
    for (;;) {
      const r = await this.offline.compact(v);
      total.rows += r.rows;
      total.segments += r.segments;
      total.compactedRows = r.compactedRows;
      if (r.rows === 0) return total;
    }
  }

  /** One pass over every live version; compacts those whose tail has grown enough. */
  async compactDue(): Promise<{ version: string; report: CompactionReport }[]> {
    const out: { version: string; report: CompactionReport }[] = [];
    for (const source of await this.registry.allSources()) {
      const versions = await this.registry.liveVersionsBySource(source);
      const statuses = await this.offline.compactionStatus(versions.map((v) => v.id));
      for (const [i, v] of versions.entries()) {
        const s = statuses[i];
        if (s.pendingRows < Math.max(MIN_PENDING_ROWS, PENDING_SHARE * s.compactedRows)) continue;
        out.push({ version: `${v.viewName}@${v.version}`, report: await this.compactVersion(v) });
      }
    }
    return out;
  }
}
