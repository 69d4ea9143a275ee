import { type DataSource } from 'typeorm';
import { type FeatureValue } from '../../../domain/features/feature-definition';
import {
  type AppendRow,
  type OfflineStore,
  type StoredQuarantine,
} from '../../../domain/features/feature-store.ports';
import { type FeatureEvent } from '../../../domain/features/point-in-time';
import { type IngestRecord, type Violation } from '../../../domain/features/validation';
import { type Page, type PageRequest } from '../../../domain/shared/pagination';
import { sqlKeysetPage } from './sql-keyset';

/** Entities fetched per history query when building a point-in-time join. */
const ENTITY_CHUNK = 2_000;

/**
 * PostgreSQL offline store. Appends are one `INSERT … SELECT FROM unnest(…)` per batch with
 * `ON CONFLICT DO NOTHING` on (version, entity, event id), which is what makes redelivery
 * idempotent; history reads are index range scans in (entity, event_ts, created_ts) order.
 */
export class PostgresOfflineStore implements OfflineStore {
  constructor(private readonly ds: DataSource) {}

  async append(versionId: string, rows: readonly AppendRow[]): Promise<Set<string>> {
    if (!rows.length) return new Set();
    const inserted: { entity_key: string; event_id: string }[] = await this.ds.query(
      `INSERT INTO feature_event (version_id, entity_key, event_id, event_ts, created_ts, fields)
       SELECT $1, k, e, to_timestamp(ts / 1000.0), to_timestamp(cts / 1000.0), f
         FROM unnest($2::text[], $3::text[], $4::float8[], $5::float8[], $6::jsonb[]) AS u(k, e, ts, cts, f)
       ON CONFLICT DO NOTHING
       RETURNING entity_key, event_id`,
      [
        versionId,
        rows.map((r) => r.entityKey),
        rows.map((r) => r.event.eventId),
        rows.map((r) => r.event.eventTs),
        rows.map((r) => r.event.createdTs),
        rows.map((r) => JSON.stringify(r.event.fields)),
      ],
    );
    return new Set(inserted.map((r) => `${r.entity_key}\u0000${r.event_id}`));
  }

  async *eventsByEntity(
    versionId: string,
    entityKeys: readonly string[],
  ): AsyncIterable<{ entityKey: string; events: FeatureEvent[] }> {
    for (let i = 0; i < entityKeys.length; i += ENTITY_CHUNK) {
      const chunk = entityKeys.slice(i, i + ENTITY_CHUNK);
      const rows: {
        k: string;
        e: string;
        ts: number;
        cts: number;
        f: Record<string, FeatureValue>;
      }[] = await this.ds.query(
        `SELECT entity_key AS k, event_id AS e,
                (extract(epoch FROM event_ts) * 1000)::float8 AS ts,
                (extract(epoch FROM created_ts) * 1000)::float8 AS cts,
                fields AS f
           FROM feature_event
          WHERE version_id = $1 AND entity_key = ANY($2::text[])
          ORDER BY entity_key, event_ts, created_ts, event_id`,
        [versionId, chunk],
      );
      let current: string | null = null;
      let events: FeatureEvent[] = [];
      for (const r of rows) {
        if (r.k !== current) {
          if (current !== null) yield { entityKey: current, events };
          current = r.k;
          events = [];
        }
        events.push({
          eventId: r.e,
          eventTs: Math.round(r.ts),
          createdTs: Math.round(r.cts),
          fields: r.f,
        });
      }
      if (current !== null) yield { entityKey: current, events };
    }
  }

  async quarantine(
    rows: readonly {
      versionId: string;
      source: string;
      record: IngestRecord;
      violations: Violation[];
    }[],
  ): Promise<void> {
    if (!rows.length) return;
    await this.ds.query(
      `INSERT INTO feature_quarantine (version_id, source, entity_key, event_id, record, violations)
       SELECT * FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[], $5::jsonb[], $6::jsonb[])`,
      [
        rows.map((r) => r.versionId),
        rows.map((r) => r.source),
        rows.map((r) => (typeof r.record.entityKey === 'string' ? r.record.entityKey : null)),
        rows.map((r) => (typeof r.record.eventId === 'string' ? r.record.eventId : null)),
        rows.map((r) => JSON.stringify(r.record)),
        rows.map((r) => JSON.stringify(r.violations)),
      ],
    );
  }

  async listQuarantine(
    filter: { versionIds: string[] | null; includeReplayed: boolean },
    req: PageRequest,
  ): Promise<Page<StoredQuarantine>> {
    const conds: string[] = [];
    const params: unknown[] = [];
    if (filter.versionIds) {
      params.push(filter.versionIds);
      conds.push(`version_id = ANY($${params.length}::uuid[])`);
    }
    if (!filter.includeReplayed) conds.push('replayed_at IS NULL');
    const page = await sqlKeysetPage<QuarantineRow>(
      this.ds,
      'feature_quarantine',
      conds,
      params,
      req,
    );
    return { ...page, items: page.items.map(toQuarantine) };
  }

  async quarantineByIds(ids: readonly string[]): Promise<StoredQuarantine[]> {
    if (!ids.length) return [];
    const rows: QuarantineRow[] = await this.ds.query(
      `SELECT * FROM feature_quarantine WHERE id = ANY($1::uuid[]) ORDER BY created_at, id`,
      [ids],
    );
    return rows.map(toQuarantine);
  }

  async markReplayed(ids: readonly string[], at: Date): Promise<void> {
    if (ids.length)
      await this.ds.query(
        `UPDATE feature_quarantine SET replayed_at = $2 WHERE id = ANY($1::uuid[])`,
        [ids, at],
      );
  }
}

interface QuarantineRow {
  id: string;
  version_id: string;
  source: string;
  record: IngestRecord;
  violations: Violation[];
  created_at: Date;
  replayed_at: Date | null;
}

function toQuarantine(r: QuarantineRow): StoredQuarantine {
  return {
    id: r.id,
    versionId: r.version_id,
    source: r.source,
    record: r.record,
    violations: r.violations,
    createdAt: r.created_at,
    replayedAt: r.replayed_at,
  };
}
