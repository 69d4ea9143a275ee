import { type Clock } from '../shared/clock';
import { TimeSlice } from '../shared/time-slice';
import { InvalidInputError } from '../shared/domain-error';
import { VersionVerdict } from './event-versions';
import {
  eventLayout,
  FeatureType,
  type FeatureValue,
  type FeatureViewVersion,
  numberOf,
} from './feature-definition';
import { FeatureErrorCode } from './feature-errors';
import {
  FeatureIngestionService,
  IngestionMode,
  type IngestionReport,
  MAX_BATCH,
} from './feature-ingestion.service';
import { type FeatureRegistryService } from './feature-registry.service';
import {
  backfillValue,
  type BackfillRows,
  type OfflineStore,
  type OnlineKey,
  type OnlineStore,
} from './feature-store.ports';
import { onlineRetention } from './online-state';
import { type FeatureEvent } from './point-in-time';
import {
  requireColumns,
  type TableColumn,
  type TableColumns,
  type TableFile,
  type TableFileReader,
  timeOf,
} from './table-file';
import {
  type IngestRecord,
  type QuarantinedRecord,
  validateColumns,
  ValidationRule,
} from './validation';

/** Rows one backfill file may hold: the rows are judged and merged in memory. */
export const MAX_BACKFILL_ROWS = 20_000_000;

/** Entities per pipelined round trip of online merges. */
const ONLINE_ENTITIES_PER_CALL = 1_000;

/**
 * Loading history. Records carry the time each value became known (`knownAt`), which is
 * kept as given (never later than now), and lateness does not apply: a backfill is how
 * events older than the allowed lateness get in. Validation, version judging and quarantine
 * are those of any ingestion. The online store takes a record only where it is newer than
 * what it holds (and still inside what its windows need).
 *
 * Records of a mutation go through ingestion's log path; a file (Parquet, CSV or Arrow in the
 * artifact store, columns `entity_key`, `event_id`, `event_ts`, `known_at` and the view's
 * source fields) is judged against the whole history in memory and written straight into the
 * columnar segments (docs/adr/0023): no row-at-a-time insert stands between a million-row
 * history and the point-in-time joins that read it.
 */
export class FeatureBackfillService {
  constructor(
    private readonly registry: FeatureRegistryService,
    private readonly ingestion: FeatureIngestionService,
    private readonly offline: OfflineStore,
    private readonly online: OnlineStore,
    private readonly files: TableFileReader,
    private readonly clock: Clock,
  ) {}

  async records(
    view: string,
    records: readonly IngestRecord[],
    source: string,
  ): Promise<IngestionReport[]> {
    const versions = await this.registry.liveVersions(view);
    return this.ingestion.ingest(versions, records, source, IngestionMode.BACKFILL);
  }

  async file(view: string, file: TableFile, source: string): Promise<IngestionReport[]> {
    const versions = await this.registry.liveVersions(view);
    const table = await this.files.read(file);
    if (table.length > MAX_BACKFILL_ROWS)
      throw new InvalidInputError(
        FeatureErrorCode.INVALID_BACKFILL,
        `A backfill file holds at most ${MAX_BACKFILL_ROWS} rows (${file.artifactKey} has ${table.length}): split it`,
        { max: MAX_BACKFILL_ROWS },
      );
    const [entity, id, ts, known] = requireColumns(table, file, [
      'entity_key',
      'event_id',
      'event_ts',
      'known_at',
    ]);
    const reports: IngestionReport[] = [];
    for (const v of versions)
      reports.push(await this.fileVersion(v, table, { entity, id, ts, known }, source));
    return reports;
  }

  private async fileVersion(
    v: FeatureViewVersion,
    table: TableColumns,
    cols: { entity: TableColumn; id: TableColumn; ts: TableColumn; known: TableColumn },
    source: string,
  ): Promise<IngestionReport> {
    const { sources, types, numeric } = eventLayout(v.schema);
    const sourceCols = sources.map((s) => table.column(s));
    const valueOf = (i: number, p: number): FeatureValue =>
      cellValue(types[p], sourceCols[p]?.get(i));
    const knownOf = (i: number): number | undefined => {
      const raw = cols.known.get(i);
      return raw === null || raw === undefined ? undefined : timeOf(raw);
    };
    /** A row as the record it stands for: what the quarantine keeps of a failing row. */
    const recordOf = (i: number): IngestRecord => {
      const knownAt = knownOf(i);
      return {
        entityKey: text(cols.entity.get(i)),
        eventId: text(cols.id.get(i)),
        eventTs: timeOf(cols.ts.get(i)),
        ...(knownAt === undefined ? {} : { knownAt }),
        fields: Object.fromEntries(sources.map((s, p) => [s, valueOf(i, p)])),
      };
    };

    // Validated column by column in batches of the ingestion's size, so a per-batch rule (the
    // null fraction) means what it means for any ingestion; only failing rows become records.
    // Between batches the event loop gets its turns: a file of millions of rows is seconds of
    // work on the api's thread.
    const slice = new TimeSlice();
    const accepted = new Int32Array(table.length);
    let n = 0;
    const quarantined: QuarantinedRecord[] = [];
    for (let start = 0; start < table.length; start += MAX_BATCH) {
      const end = Math.min(start + MAX_BATCH, table.length);
      const failed = validateColumns(
        v.schema,
        {
          length: end - start,
          entityKey: (i) => text(cols.entity.get(start + i)),
          eventId: (i) => text(cols.id.get(start + i)),
          eventTs: (i) => timeOf(cols.ts.get(start + i)),
          knownAt: (i) => knownOf(start + i),
          field: (i, p) => valueOf(start + i, p),
        },
        new Map(),
        { lateness: false, requireKnownAt: true, now: this.clock.now().getTime() },
      );
      for (let i = start; i < end; i++) {
        const violations = failed.get(i - start);
        if (violations) quarantined.push({ record: recordOf(i), violations });
        else accepted[n++] = i;
      }
      if (slice.due()) await slice.pause();
    }

    const rows = await this.columns(
      { length: n, row: (k) => accepted[k] },
      cols,
      { numeric, valueOf, knownOf },
      slice,
    );
    const verdicts = await this.offline.backfill(v, rows);
    await this.mergeOnline(v, rows, verdicts, slice);

    for (let k = 0; k < rows.length; k++) {
      if (verdicts[k] !== VersionVerdict.CONFLICT) continue;
      quarantined.push({
        record: recordOf(accepted[k]),
        violations: [
          {
            rule: ValidationRule.CONFLICTING_DUPLICATE,
            feature: null,
            message: `event ${rows.eventId(k)} of ${rows.entityKeys[rows.entity[k]]} already has another value known at ${new Date(rows.createdTs[k]).toISOString()}`,
          },
        ],
      });
    }
    for (let i = 0; i < quarantined.length; i += MAX_BATCH)
      await this.offline.quarantine(
        quarantined.slice(i, i + MAX_BATCH).map((q) => ({
          versionId: v.id,
          source,
          record: q.record,
          violations: q.violations,
        })),
      );

    const byRule: Record<string, number> = {};
    for (const q of quarantined)
      for (const rule of new Set(q.violations.map((x) => x.rule)))
        byRule[rule] = (byRule[rule] ?? 0) + 1;
    const count = (...kinds: VersionVerdict[]) => verdicts.filter((x) => kinds.includes(x)).length;
    return {
      viewVersionId: v.id,
      view: v.viewName,
      version: v.version,
      received: table.length,
      accepted: rows.length - count(VersionVerdict.CONFLICT),
      quarantined: quarantined.length,
      duplicates: count(VersionVerdict.DUPLICATE, VersionVerdict.SUPERSEDED),
      corrections: count(VersionVerdict.CORRECTION),
      byRule,
    };
  }

  /**
   * The accepted rows in columns: entity keys once each (through the file column's distinct
   * values where the reader found them), times and numeric sources as typed arrays.
   */
  private async columns(
    accepted: { length: number; row(k: number): number },
    cols: { entity: TableColumn; id: TableColumn; ts: TableColumn },
    layout: {
      numeric: readonly boolean[];
      valueOf(i: number, p: number): FeatureValue;
      knownOf(i: number): number | undefined;
    },
    slice: TimeSlice,
  ): Promise<BackfillRows> {
    const n = accepted.length;
    const now = this.clock.now().getTime();
    const entityKeys: string[] = [];
    const entity = new Int32Array(n);
    const index = new Map<string, number>();
    const entityOf = (key: string): number => {
      let e = index.get(key);
      if (e === undefined) {
        index.set(key, (e = entityKeys.length));
        entityKeys.push(key);
      }
      return e;
    };
    const distinct = cols.entity.distinct;
    if (distinct) {
      const local = new Int32Array(distinct.values.length).fill(-1);
      for (let k = 0; k < n; k++) {
        const c = distinct.codes[accepted.row(k)];
        if (local[c] < 0) local[c] = entityOf(text(distinct.values[c]));
        entity[k] = local[c];
      }
    } else for (let k = 0; k < n; k++) entity[k] = entityOf(text(cols.entity.get(accepted.row(k))));
    if (slice.due()) await slice.pause();
    const eventTs = new Float64Array(n);
    const createdTs = new Float64Array(n);
    for (let k = 0; k < n; k++) {
      const i = accepted.row(k);
      eventTs[k] = timeOf(cols.ts.get(i));
      createdTs[k] = Math.min(layout.knownOf(i) as number, now);
    }
    const values: (Float64Array | FeatureValue[])[] = [];
    for (let p = 0; p < layout.numeric.length; p++) {
      if (slice.due()) await slice.pause();
      if (layout.numeric[p]) {
        const col = new Float64Array(n);
        for (let k = 0; k < n; k++) col[k] = numberOf(layout.valueOf(accepted.row(k), p));
        values.push(col);
      } else {
        const col = new Array<FeatureValue>(n);
        for (let k = 0; k < n; k++) col[k] = layout.valueOf(accepted.row(k), p);
        values.push(col);
      }
    }
    return {
      length: n,
      entityKeys,
      entity,
      eventId: (k) => text(cols.id.get(accepted.row(k))),
      eventTs,
      createdTs,
      values,
    };
  }

  /**
   * Offers the online store the new versions its windows can still need: per entity, those
   * within the widest window of the entity's newest backfilled event (the store's own merge
   * decides against what it holds, atomically).
   */
  private async mergeOnline(
    v: FeatureViewVersion,
    rows: BackfillRows,
    verdicts: readonly VersionVerdict[],
    slice: TimeSlice,
  ): Promise<void> {
    const retention = onlineRetention(v.schema);
    const { types } = eventLayout(v.schema);
    const fresh = (k: number) =>
      verdicts[k] === VersionVerdict.NEW || verdicts[k] === VersionVerdict.CORRECTION;
    const newest = new Float64Array(rows.entityKeys.length).fill(-Infinity);
    for (let k = 0; k < rows.length; k++)
      if (fresh(k) && rows.eventTs[k] > newest[rows.entity[k]])
        newest[rows.entity[k]] = rows.eventTs[k];
    // Per entity (in order of first fresh row), its events in row order.
    const byEntity = new Map<number, FeatureEvent[]>();
    for (let k = 0; k < rows.length; k++) {
      if (!fresh(k)) continue;
      const e = rows.entity[k];
      const top = newest[e];
      const ts = rows.eventTs[k];
      if (retention.windowMs > 0 ? ts <= top - retention.windowMs : ts < top) continue;
      const list = byEntity.get(e) ?? [];
      list.push({
        eventId: rows.eventId(k),
        eventTs: ts,
        createdTs: rows.createdTs[k],
        values: rows.values.map((_, p) => backfillValue(rows, types, k, p)),
      });
      byEntity.set(e, list);
      if ((k & 0xffff) === 0 && slice.due()) await slice.pause();
    }
    const entries: (OnlineKey & { events: FeatureEvent[] })[] = [...byEntity].map(
      ([e, events]) => ({ versionId: v.id, entityKey: rows.entityKeys[e], events }),
    );
    for (let i = 0; i < entries.length; i += ONLINE_ENTITIES_PER_CALL)
      await this.online.merge(retention, entries.slice(i, i + ONLINE_ENTITIES_PER_CALL));
  }
}

function text(raw: unknown): string {
  return typeof raw === 'string' ? raw : raw === null || raw === undefined ? '' : String(raw);
}

/**
 * A cell as the value of a source field: CSV cells are strings, converted where the field's
 * type wants a number, boolean or list (a cell that does not convert stays a string, and
 * validation says WRONG_TYPE); timestamps and 64-bit integers arrive as numbers already.
 */
function cellValue(type: FeatureType, raw: unknown): FeatureValue {
  if (raw === null || raw === undefined) return null;
  if (typeof raw !== 'string') return raw as FeatureValue;
  switch (type) {
    case FeatureType.INT:
    case FeatureType.FLOAT: {
      const n = Number(raw);
      return raw.trim() !== '' && Number.isFinite(n) ? n : raw;
    }
    case FeatureType.BOOL:
      return raw === 'true' ? true : raw === 'false' ? false : raw;
    case FeatureType.FLOAT_LIST:
      try {
        return JSON.parse(raw) as FeatureValue;
      } catch {
        return raw;
      }
    case FeatureType.STRING:
      return raw;
  }
}
