import { failpoint } from '../../../domain/shared/failpoints';
import { randomUUID } from 'node:crypto';
import { storableJson, storableText } from '../storable-text';
import { type DataSource } from 'typeorm';
import {
  eventLayout,
  type FeatureValue,
  type FeatureViewVersion,
} from '../../../domain/features/feature-definition';
import { ArtifactNotFoundError } from '../../../domain/artifacts/artifact-errors';
import { type ArtifactRef, type ArtifactStore } from '../../../domain/artifacts/artifact-store';
import {
  type AppendRow,
  type BackfillRows,
  type CompactionReport,
  type CompactionStatus,
  type OfflineStore,
  type StoredQuarantine,
} from '../../../domain/features/feature-store.ports';
import { type StoredVersion, type VersionVerdict } from '../../../domain/features/event-versions';
import {
  compareEvents,
  type EventSeries,
  type FeatureEvent,
  seriesOf,
} from '../../../domain/features/point-in-time';
import { type Database } from '../data-source';
import { openTableKey, type OpenTableFiles } from '../../../domain/features/open-table';
import {
  bucketOf,
  decodeSegment,
  entityRanges,
  planRuns,
  SEGMENT_BUCKETS,
  type SegmentRows,
  SegmentSeries,
  utf8Strings,
} from './segments';
import { type IngestRecord, type Violation } from '../../../domain/features/validation';
import { type Page, type PageRequest } from '../../../domain/shared/pagination';
import { sqlKeysetPage } from './sql-keyset';
import {
  type BackfillBucket,
  type BackfilledBucket,
  type LogRow,
  logRowEvent,
  SegmentBuilder,
  VERDICTS,
} from './segment-builder';
import { TimeSlice, yieldToEventLoop } from '../../../domain/shared/time-slice';

/** Appends are split into statements of about this many rows, at most this many at once. */
const APPEND_ROWS_PER_STATEMENT = 1_000;
const APPEND_STATEMENTS = 4;

/** Advisory lock (class, object) between appends (shared) and compaction watermarks. */
const COMPACTION_LOCK = [0x41657468, 1];

/** How often a backfill judges and writes again after losing a swap to a compaction. */
const BACKFILL_ATTEMPTS = 3;

/** Rows one compaction run moves at most. */
const MAX_COMPACTION_ROWS = 2_000_000;

/**
 * Rows one statement of background work reads at most. On PGlite a statement runs in the
 * api's own event loop on its only connection, so its length is how long every request
 * waits (docs/adr/0020): a few thousand rows take milliseconds.
 */
export const BACKGROUND_ROWS_PER_STATEMENT = 2_000;

/** Entities fetched per history query when building a point-in-time join: the first guess... */
const ENTITY_CHUNK = 250;
/** ... then sized from the rows per entity seen, to about this many rows per statement. */
const ENTITY_CHUNK_MIN = 16;
const ENTITY_CHUNK_MAX = 2_000;

/**
 * PostgreSQL offline store. Appends are one `INSERT … SELECT FROM unnest(…)` per batch with
 * `ON CONFLICT DO NOTHING` on (version, entity, event id), which is what makes redelivery
 * idempotent; history reads are index range scans in (entity, event_ts, created_ts) order.
 */
export class PostgresOfflineStore implements OfflineStore {
  private readonly ds: DataSource;
  /** PGlite runs one statement at a time on one connection: appends are not split. */
  private readonly concurrent: boolean;

  constructor(
    db: Pick<Database, 'dataSource' | 'kind'>,
    private readonly artifacts: ArtifactStore,
  ) {
    this.ds = db.dataSource;
    this.concurrent = db.kind === 'postgres';
  }

  async previousVersions(
    version: FeatureViewVersion,
    rows: readonly { entityKey: string; eventId: string; createdTs: number }[],
  ): Promise<(StoredVersion | null)[]> {
    const out: (StoredVersion | null)[] = rows.map(() => null);
    if (!rows.length) return out;
    const { sources } = eventLayout(version.schema);
    // One seek on the primary key per row, in a function whose planner settings leave the key
    // as the only way to answer it (migrations/1765060000000-previous-versions.ts).
    const found = (await this.ds.query(
      `SELECT n, ts, cts, f FROM feature_previous_versions($1::uuid, $2::text[], $3::text[], $4::float8[])`,
      [
        version.id,
        rows.map((r) => r.entityKey),
        rows.map((r) => r.eventId),
        rows.map((r) => r.createdTs),
      ],
    )) as { n: number; ts: number; cts: number; f: Record<string, FeatureValue> }[];
    for (const r of found)
      out[r.n - 1] = {
        eventTs: Math.round(r.ts),
        createdTs: Math.round(r.cts),
        values: sources.map((s) => r.f[s] ?? null),
      };
    return out;
  }

  async append(
    version: FeatureViewVersion,
    rows: readonly AppendRow[],
  ): Promise<(StoredVersion | null)[]> {
    // Large batches go in as concurrent statements on separate connections, so PostgreSQL
    // uses more than one core; each is idempotent, so a partial failure is simply retried.
    const parts = this.concurrent
      ? Math.min(APPEND_STATEMENTS, Math.ceil(rows.length / APPEND_ROWS_PER_STATEMENT))
      : 1;
    const size = Math.ceil(rows.length / Math.max(parts, 1));
    const chunks = Array.from({ length: Math.max(parts, 1) }, (_, i) =>
      rows.slice(i * size, (i + 1) * size),
    );
    const inserted = new Set<string>();
    for (const keys of await Promise.all(chunks.map((c) => this.appendChunk(version, c))))
      for (const k of keys) inserted.add(k);
    const out: (StoredVersion | null)[] = rows.map(() => null);
    const taken = rows.flatMap((r, i) => (inserted.has(versionKey(r)) ? [] : [i]));
    if (!taken.length) return out;
    // Another writer stored these (entity, event, known time) first: what it stored.
    const stored = await this.previousVersions(
      version,
      taken.map((i) => ({
        entityKey: rows[i].entityKey,
        eventId: rows[i].event.eventId,
        createdTs: rows[i].event.createdTs,
      })),
    );
    taken.forEach((i, k) => (out[i] = stored[k]));
    return out;
  }

  /** Inserts the rows not stored yet; returns the `versionKey`s of those it inserted. */
  private async appendChunk(
    version: FeatureViewVersion,
    rows: readonly AppendRow[],
  ): Promise<string[]> {
    if (!rows.length) return [];
    const { sources } = eventLayout(version.schema);
    // The statement first takes the shared side of the compaction lock (ADR 0010) and holds
    // it until it commits: the rows come LATERAL to the lock, so no sequence number is drawn
    // before it is held, and a compaction reading its watermark under the exclusive side
    // never sees past a row that is still uncommitted.
    const inserted = (await this.ds.query(
      `WITH compaction_lock AS MATERIALIZED (
         SELECT pg_advisory_xact_lock_shared(${COMPACTION_LOCK[0]}, ${COMPACTION_LOCK[1]}) AS held
       )
       INSERT INTO feature_event (version_id, entity_key, event_id, event_ts, created_ts, fields)
       SELECT $1, u.k, u.e, ${msTime('u.ts')}, ${msTime('u.cts')}, u.f
         FROM compaction_lock,
              LATERAL unnest($2::text[], $3::text[], $4::float8[], $5::float8[], $6::jsonb[])
                AS u(k, e, ts, cts, f)
       ON CONFLICT DO NOTHING
       RETURNING entity_key, event_id, (extract(epoch FROM created_ts) * 1000)::float8 AS cts`,
      [
        version.id,
        rows.map((r) => r.entityKey),
        rows.map((r) => r.event.eventId),
        rows.map((r) => r.event.eventTs),
        rows.map((r) => r.event.createdTs),
        // Stored by field name, so the history reads on its own in SQL.
        rows.map((r) =>
          JSON.stringify(Object.fromEntries(sources.map((s, i) => [s, r.event.values[i]]))),
        ),
      ],
    )) as { entity_key: string; event_id: string; cts: number }[];
    return inserted.map((r) =>
      versionKey({
        entityKey: r.entity_key,
        event: { eventId: r.event_id, createdTs: Math.round(r.cts) },
      }),
    );
  }

  /**
   * Bucket by bucket: the bucket's segments (its base and deltas) and the rows appended since
   * the last compaction, so memory holds one bucket at a time. An entity in one segment only
   * is evaluated in place; one with versions in several, or in the log, is merged in objects.
   */
  async *historyByEntity(
    version: FeatureViewVersion,
    entityKeys: readonly string[],
  ): AsyncIterable<{ entityKey: string; events: EventSeries }[]> {
    const schema = version.schema;
    const positions = eventLayout(schema).sources.length;
    let state = await this.compactionState(version.id);
    const byBucket = new Map<number, string[]>();
    for (const k of entityKeys) {
      const b = bucketOf(k);
      const list = byBucket.get(b) ?? [];
      list.push(k);
      byBucket.set(b, list);
    }
    type State = typeof state;
    // Starts reading a bucket's segments (its base and deltas); the state they were chosen
    // from goes with them.
    const fetch = (bucket: number, st: State) => {
      const bytes = Promise.all(
        st.segments
          .filter((x) => x.bucket === bucket)
          .map((x) => this.artifacts.getBytes(x.artifactKey, x.sha256)),
      );
      bytes.catch(() => undefined); // awaited below; never an unhandled rejection meanwhile
      return { st, bytes };
    };
    const order = [...byBucket].sort((x, y) => x[0] - y[0]);
    // Whether any row follows a watermark: when none does, no bucket asks for log rows.
    const pendingAfter = new Map<number, Promise<boolean>>();
    let next = order.length ? fetch(order[0][0], state) : null;
    let entityChunk = ENTITY_CHUNK;
    let tailRows = 0;
    let tailEntities = 0;
    for (let b = 0; b < order.length; b++) {
      const [bucket, wanted] = order[b];
      let current = next as ReturnType<typeof fetch>;
      // The next bucket's file is read while this one is evaluated.
      next = b + 1 < order.length ? fetch(order[b + 1][0], state) : null;
      // A compaction may swap this bucket's segments and delete the old files between our
      // reading the state and the files: then read the new state. Each bucket is read as one
      // consistent pair: its segments and the log rows after their watermark.
      let bytes: Uint8Array[];
      for (let attempt = 0; ; attempt++) {
        try {
          bytes = await current.bytes;
          break;
        } catch (e) {
          if (!(e instanceof ArtifactNotFoundError) || attempt >= 3) throw e;
          state = await this.compactionState(version.id);
          current = fetch(bucket, state);
        }
      }
      const st = current.st;
      const runs: SegmentRows[] = bytes.map((b) => decodeSegment(schema, b));
      const tail = new Map<string, FeatureEvent[]>();
      if (!pendingAfter.has(st.throughSeq))
        pendingAfter.set(st.throughSeq, this.hasRowsAfter(version.id, st.throughSeq));
      const pending = await pendingAfter.get(st.throughSeq);
      // Entities per statement follow the rows per entity seen so far, so a long tail
      // (a backlog not compacted yet) is read in short statements too.
      for (let i = 0; pending && i < wanted.length;) {
        const chunk = wanted.slice(i, i + entityChunk);
        i += chunk.length;
        const got = await this.rowsAfter(version, st.throughSeq, chunk);
        for (const r of got) {
          const list = tail.get(r.entityKey);
          if (list) list.push(r.event);
          else tail.set(r.entityKey, [r.event]);
        }
        tailRows += got.length;
        tailEntities += chunk.length;
        entityChunk = Math.max(
          ENTITY_CHUNK_MIN,
          Math.min(
            ENTITY_CHUNK_MAX,
            Math.floor(BACKGROUND_ROWS_PER_STATEMENT / Math.max(tailRows / tailEntities, 1e-9)),
          ),
        );
      }
      const batch: { entityKey: string; events: EventSeries }[] = [];
      const ranges = runs.map(entityRanges);
      const slice = new TimeSlice();
      for (const entityKey of wanted) {
        if (slice.due()) await slice.pause();
        const parts: SegmentSeries[] = [];
        runs.forEach((rows, r) => {
          const range = ranges[r].get(entityKey);
          if (range) parts.push(new SegmentSeries(rows, range[0], range[1]));
        });
        const newer = tail.get(entityKey);
        if (parts.length === 1 && !newer) {
          // One segment holds every version of the entity's events: read in place.
          batch.push({ entityKey, events: parts[0] });
          continue;
        }
        if (!parts.length && !newer) continue;
        // Versions in several segments, or in the log too: merged, supersession found anew.
        batch.push({
          entityKey,
          events: seriesOf(
            [...parts.flatMap((p) => p.events(positions)), ...(newer ?? [])].sort(compareEvents),
          ),
        });
      }
      yield batch;
    }
  }

  async compact(version: FeatureViewVersion): Promise<CompactionReport> {
    const state = await this.compactionState(version.id);
    const safe = await this.watermark(version.id);
    if (safe <= state.throughSeq)
      return { rows: 0, segments: 0, compactedRows: state.compactedRows };
    // At most MAX_COMPACTION_ROWS per run, read in short statements by sequence number, so
    // requests get the database between them. The rows go to a thread of its own as they
    // come (`SegmentBuilder`), which holds them, merges each bucket with its old segment,
    // sorts and encodes it: none of that, nor its garbage, stalls the api's event loop.
    const builder = new SegmentBuilder(version.schema);
    try {
      let moved = 0;
      let after = state.throughSeq;
      while (moved < MAX_COMPACTION_ROWS) {
        const want = Math.min(BACKGROUND_ROWS_PER_STATEMENT, MAX_COMPACTION_ROWS - moved);
        const page = await this.logRows(version, after, null, safe, want, 'text');
        if (!page.length) break;
        builder.add(page);
        moved += page.length;
        after = page[page.length - 1].s;
      }
      const upto = moved === MAX_COMPACTION_ROWS ? after : safe;
      const written: WrittenSegment[] = [];
      try {
        for (const [bucket, added] of builder.buckets()) {
          // A new delta of the bucket, merged with the segments planRuns picks (ADR 0035).
          const runs = state.segments.filter((s) => s.bucket === bucket);
          const plan = planRuns(runs, added);
          const replaces = runs.filter((r) => plan.replaces.includes(r.run));
          const old = await Promise.all(
            replaces.map((r) => this.artifacts.getBytes(r.artifactKey, r.sha256)),
          );
          const { bytes, parquet, rows } = await builder.encode(bucket, old);
          written.push(
            await this.putSegment(version.id, { bucket, run: plan.run, replaces }, upto, {
              bytes,
              parquet,
              rows,
            }),
          );
        }
      } catch (e) {
        await this.deleteWritten(written);
        throw e;
      }
      const compactedRows = state.compactedRows + moved;
      failpoint('compaction:written');
      if (!(await this.swapSegments(version.id, state, upto, compactedRows, written)))
        return { rows: 0, segments: 0, compactedRows: state.compactedRows };
      return { rows: moved, segments: written.length, compactedRows };
    } finally {
      await builder.close();
    }
  }

  /**
   * Judges the rows against every stored version of their events (the segments and the log
   * rows after the watermark), then rewrites the buckets they touch with their new versions
   * and swaps them in at once. Log rows appended while it runs are not judged against: two
   * versions of one event known at the same instant can then both be stored, and the reads'
   * tie rule (compareEvents) makes one of them the value, the same everywhere.
   */
  async backfill(version: FeatureViewVersion, rows: BackfillRows): Promise<VersionVerdict[]> {
    // Each bucket's rows in row order (a counting sort by the bucket of each entity).
    const entityBucket = rows.entityKeys.map(bucketOf);
    const start = new Int32Array(SEGMENT_BUCKETS + 1);
    for (let i = 0; i < rows.length; i++) start[entityBucket[rows.entity[i]] + 1]++;
    for (let b = 0; b < SEGMENT_BUCKETS; b++) start[b + 1] += start[b];
    const byBucket = new Int32Array(rows.length);
    const local = new Int32Array(rows.entityKeys.length);
    const cursor = start.slice(0, SEGMENT_BUCKETS);
    for (let i = 0; i < rows.length; i++) byBucket[cursor[entityBucket[rows.entity[i]]]++] = i;
    for (let attempt = 1; ; attempt++) {
      const verdicts = new Array<VersionVerdict>(rows.length);
      const state = await this.compactionState(version.id);
      const pending = new Map<number, { entityKey: string; event: FeatureEvent }[]>();
      for (const r of await this.allRowsAfter(version, state.throughSeq)) {
        const list = pending.get(bucketOf(r.entityKey)) ?? [];
        list.push({ entityKey: r.entityKey, event: r.event });
        pending.set(bucketOf(r.entityKey), list);
      }
      // The buckets are judged, merged and encoded on a thread of their own (SegmentBuilder),
      // each as soon as its rows are handed over: this thread gathers the next bucket's rows,
      // stores the segments that come back and answers requests meanwhile.
      const builder = new SegmentBuilder(version.schema);
      const written: WrittenSegment[] = [];
      let added = 0;
      try {
        const jobs: { bucket: number; rows: Int32Array; done: Promise<BackfilledBucket> }[] = [];
        for (let bucket = 0; bucket < SEGMENT_BUCKETS; bucket++) {
          const wanted = byBucket.subarray(start[bucket], start[bucket + 1]);
          if (!wanted.length) continue;
          // Every segment of the bucket: a backfill writes the bucket's new base.
          const old = await Promise.all(
            state.segments
              .filter((x) => x.bucket === bucket)
              .map((x) => this.artifacts.getBytes(x.artifactKey, x.sha256)),
          );
          const done = builder.backfill(
            await bucketRows(rows, wanted, local.fill(-1)),
            old,
            pending.get(bucket) ?? [],
          );
          done.catch(() => undefined); // awaited below; never an unhandled rejection meanwhile
          jobs.push({ bucket, rows: wanted, done });
        }
        for (const job of jobs) {
          const got = await job.done;
          for (let k = 0; k < job.rows.length; k++)
            verdicts[job.rows[k]] = VERDICTS[got.verdicts[k]];
          if (!got.bytes || !got.parquet) continue;
          written.push(
            await this.putSegment(
              version.id,
              {
                bucket: job.bucket,
                run: 0,
                replaces: state.segments.filter((x) => x.bucket === job.bucket),
              },
              state.throughSeq,
              { bytes: got.bytes, parquet: got.parquet, rows: got.rows },
            ),
          );
          added += got.added;
        }
      } catch (e) {
        await this.deleteWritten(written);
        throw e;
      } finally {
        await builder.close();
      }
      if (
        !written.length ||
        (await this.swapSegments(
          version.id,
          state,
          state.throughSeq,
          state.compactedRows + added,
          written,
        ))
      )
        return verdicts;
      // A compaction or another backfill swapped segments meanwhile: judge again on top.
      if (attempt >= BACKFILL_ATTEMPTS)
        throw new Error(`backfill of ${version.viewName}@${version.version} lost ${attempt} races`);
    }
  }

  /**
   * Stores a bucket's new segment and its open-table Parquet file (docs/adr/0033), to be
   * swapped in as run `at.run` for the runs it replaces.
   */
  private async putSegment(
    versionId: string,
    at: Pick<WrittenSegment, 'bucket' | 'run' | 'replaces'>,
    throughSeq: number,
    { bytes, parquet, rows }: { bytes: Uint8Array; parquet: Uint8Array; rows: number },
  ): Promise<WrittenSegment> {
    const { bucket } = at;
    const unique = randomUUID();
    const ref = await this.artifacts.put(
      `offline/${versionId}/${bucket}-${throughSeq}-${unique}.arrow`,
      bytes,
    );
    try {
      const table = await this.artifacts.put(
        openTableKey(versionId, bucket, throughSeq, unique),
        parquet,
      );
      return { ...at, ref, table, rows };
    } catch (e) {
      await this.artifacts.delete(ref.key).catch(() => undefined);
      throw e;
    }
  }

  /** Deletes files written for a swap that will not happen. */
  private async deleteWritten(written: readonly WrittenSegment[]): Promise<void> {
    await Promise.all(
      written.flatMap((w) =>
        [w.ref.key, w.table.key].map((k) => this.artifacts.delete(k).catch(() => undefined)),
      ),
    );
  }

  /**
   * Swaps rewritten segments in, optimistically: only if no other compaction or backfill
   * swapped since `state` was read (its generation); else deletes the new files. Deletes the
   * segments it replaced: a reader that listed them before the swap has already fetched them
   * or fails and retries against the new ones.
   */
  private async swapSegments(
    versionId: string,
    state: CompactionState,
    throughSeq: number,
    compactedRows: number,
    written: WrittenSegment[],
  ): Promise<boolean> {
    const swapped = await this.ds.transaction(async (m) => {
      const claimed = (await m.query(
        `INSERT INTO feature_compaction (version_id, through_seq, compacted_rows, compacted_at, generation)
         VALUES ($1, $2, $3, now(), 1)
         ON CONFLICT (version_id) DO UPDATE
           SET through_seq = EXCLUDED.through_seq, compacted_rows = EXCLUDED.compacted_rows,
               compacted_at = EXCLUDED.compacted_at,
               generation = feature_compaction.generation + 1
           WHERE feature_compaction.generation = $4
         RETURNING version_id`,
        [versionId, throughSeq, compactedRows, state.generation],
      )) as unknown[];
      if (!claimed.length) return false;
      for (const w of written) {
        await m.query(
          'DELETE FROM feature_segment WHERE version_id = $1 AND bucket = $2 AND run = ANY($3)',
          [versionId, w.bucket, w.replaces.map((r) => r.run)],
        );
        await m.query(
          `INSERT INTO feature_segment (version_id, bucket, run, artifact_key, sha256, size,
                                        row_count, parquet_key, parquet_sha256, parquet_size,
                                        parquet_rows)
           VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $7)`,
          [
            versionId,
            w.bucket,
            w.run,
            w.ref.key,
            w.ref.sha256,
            w.ref.size,
            w.rows,
            w.table.key,
            w.table.sha256,
            w.table.size,
          ],
        );
      }
      return true;
    });
    if (!swapped) {
      await this.deleteWritten(written);
      return false;
    }
    for (const old of written.flatMap((w) => w.replaces)) {
      await this.artifacts.delete(old.artifactKey).catch(() => undefined);
      if (old.parquetKey) await this.artifacts.delete(old.parquetKey).catch(() => undefined);
    }
    return true;
  }

  async openTables(versionIds: readonly string[]): Promise<OpenTableFiles[]> {
    if (!versionIds.length) return [];
    const rows = (await this.ds.query(
      `SELECT version_id AS v, bucket, run, parquet_key AS key, parquet_sha256 AS sha256,
              parquet_size::float8 AS size, parquet_rows::float8 AS rows
         FROM feature_segment WHERE version_id = ANY($1::uuid[])
        ORDER BY version_id, bucket, run`,
      [versionIds],
    )) as {
      v: string;
      bucket: number;
      run: number;
      key: string | null;
      sha256: string | null;
      size: number | null;
      rows: number | null;
    }[];
    const base = this.artifacts.location.replace(/\/+$/, '');
    return versionIds.map((id) => {
      const mine = rows.filter((r) => r.v === id);
      return {
        location: base,
        complete: mine.every((r) => r.key !== null),
        files: mine
          .filter((r) => r.key !== null)
          .map((r) => ({
            bucket: r.bucket,
            run: r.run,
            key: r.key as string,
            uri: `${base}/${r.key as string}`,
            rows: r.rows ?? 0,
            sha256: r.sha256 as string,
            size: r.size ?? 0,
          })),
      };
    });
  }

  async historySnapshot(
    version: FeatureViewVersion,
    buckets: ReadonlySet<number>,
  ): ReturnType<OfflineStore['historySnapshot']> {
    const st = await this.compactionState(version.id);
    const mine = st.segments.filter((x) => buckets.has(x.bucket));
    const files = mine.every((x) => x.parquetKey && x.parquetSha256)
      ? mine.map((x) => ({
          bucket: x.bucket,
          run: x.run,
          key: x.parquetKey as string,
          sha256: x.parquetSha256 as string,
        }))
      : null;
    const pages = this.pagesAfter(version, st.throughSeq);
    async function* tail(): AsyncGenerator<{ entityKey: string; event: FeatureEvent }[]> {
      if (!files) return;
      for await (const page of pages) yield page.filter((r) => buckets.has(bucketOf(r.entityKey)));
    }
    return { files, tail: tail() };
  }

  async compactionStatus(versionIds: readonly string[]): Promise<CompactionStatus[]> {
    if (!versionIds.length) return [];
    const rows = (await this.ds.query(
      `SELECT v.id, c.compacted_rows::float8 AS n, c.compacted_at AS at,
              (SELECT count(*)::float8 FROM feature_event e
                WHERE e.version_id = v.id AND e.seq > coalesce(c.through_seq, 0)) AS pending
         FROM unnest($1::uuid[]) AS v(id)
         LEFT JOIN feature_compaction c ON c.version_id = v.id`,
      [versionIds],
    )) as { id: string; n: number | null; at: Date | null; pending: number }[];
    const byId = new Map(rows.map((r) => [r.id, r]));
    return versionIds.map((id) => {
      const r = byId.get(id);
      return { compactedRows: r?.n ?? 0, pendingRows: r?.pending ?? 0, compactedAt: r?.at ?? null };
    });
  }

  private async hasRowsAfter(versionId: string, through: number): Promise<boolean> {
    const rows = (await this.ds.query(
      'SELECT 1 FROM feature_event WHERE version_id = $1 AND seq > $2 LIMIT 1',
      [versionId, through],
    )) as unknown[];
    return rows.length > 0;
  }

  /** The highest sequence number no uncommitted append can be below (see appendChunk). */
  private async watermark(versionId: string): Promise<number> {
    return this.ds.transaction(async (m) => {
      await m.query('SELECT pg_advisory_xact_lock($1, $2)', COMPACTION_LOCK);
      const [r] = (await m.query(
        'SELECT coalesce(max(seq), 0)::float8 AS s FROM feature_event WHERE version_id = $1',
        [versionId],
      )) as { s: number }[];
      return r.s;
    });
  }

  private async compactionState(versionId: string): Promise<CompactionState> {
    // One statement, so the watermark and the segments come from the same swap.
    const rows = (await this.ds.query(
      `SELECT c.through_seq::float8 AS t, c.compacted_rows::float8 AS n,
              c.generation::float8 AS g, s.bucket, s.run, s.row_count::float8 AS rows,
              s.artifact_key AS "artifactKey", s.sha256,
              s.parquet_key AS "parquetKey", s.parquet_sha256 AS "parquetSha256"
         FROM (SELECT 1) one
         LEFT JOIN feature_compaction c ON c.version_id = $1
         LEFT JOIN feature_segment s ON s.version_id = $1
        ORDER BY s.bucket, s.run`,
      [versionId],
    )) as {
      t: number | null;
      n: number | null;
      g: number | null;
      bucket: number | null;
      run: number;
      rows: number;
      artifactKey: string;
      sha256: string;
      parquetKey: string | null;
      parquetSha256: string | null;
    }[];
    return {
      throughSeq: rows[0]?.t ?? 0,
      compactedRows: rows[0]?.n ?? 0,
      generation: rows[0]?.g ?? 0,
      segments: rows
        .filter((r) => r.bucket !== null)
        .map((r) => ({
          bucket: r.bucket as number,
          run: r.run,
          rows: r.rows,
          artifactKey: r.artifactKey,
          sha256: r.sha256,
          parquetKey: r.parquetKey,
          parquetSha256: r.parquetSha256,
        })),
    };
  }

  /** Log rows after a watermark in sequence order: every one (see pagesAfter). */
  private async allRowsAfter(
    version: FeatureViewVersion,
    through: number,
  ): Promise<{ entityKey: string; seq: number; event: FeatureEvent }[]> {
    const out: { entityKey: string; seq: number; event: FeatureEvent }[] = [];
    for await (const page of this.pagesAfter(version, through)) for (const r of page) out.push(r);
    return out;
  }

  /**
   * Log rows after a watermark in sequence order, in pages of at most
   * BACKGROUND_ROWS_PER_STATEMENT with a turn for the event loop between them.
   */
  private async *pagesAfter(
    version: FeatureViewVersion,
    through: number,
  ): AsyncGenerator<{ entityKey: string; seq: number; event: FeatureEvent }[]> {
    for (let after = through; ;) {
      const page = await this.rowsAfter(
        version,
        after,
        null,
        undefined,
        BACKGROUND_ROWS_PER_STATEMENT,
      );
      if (!page.length) return;
      yield page;
      after = page[page.length - 1].seq;
      await yieldToEventLoop();
    }
  }

  /**
   * Rows with through < seq <= upto in sequence order: without entities, a page of at most
   * `limit` rows (fewer when other versions' rows interleave; empty only when none is left);
   * with entities, every such row of theirs (at most `limit`).
   */
  private async rowsAfter(
    version: FeatureViewVersion,
    through: number,
    entityKeys: readonly string[] | null,
    upto = Number.MAX_SAFE_INTEGER,
    limit: number | null = null,
  ): Promise<{ entityKey: string; seq: number; event: FeatureEvent }[]> {
    const { sources } = eventLayout(version.schema);
    const rows = await this.logRows(version, through, entityKeys, upto, limit, 'json');
    return rows.map((r) => logRowEvent(r, sources));
  }

  /**
   * Log rows after `through` (up to `upto`, at most `limit`), in sequence order: of some
   * entities, or a page of all. `fields` comes parsed (`json`) or as text, for a reader that
   * parses it elsewhere (compaction, on its worker thread).
   */
  private async logRows(
    version: FeatureViewVersion,
    through: number,
    entityKeys: readonly string[] | null,
    upto: number,
    limit: number | null,
    fields: 'json' | 'text',
  ): Promise<LogRow[]> {
    const columns = `entity_key AS k, event_id AS e, seq::float8 AS s,
              (extract(epoch FROM event_ts) * 1000)::float8 AS ts,
              (extract(epoch FROM created_ts) * 1000)::float8 AS cts,
              fields${fields === 'text' ? '::text' : ''} AS f`;
    // For some entities, `seq + 0` keeps the planner off the seq index: with the few-rows
    // estimates of a table nobody ANALYZEd since a bulk load (PGlite has no autovacuum) it
    // scanned the whole backlog by seq for each chunk. Without entities, a page is a window
    // of at most `limit` sequence numbers from the first row after `through`, found first, so
    // the page's statement has both bounds as values: a short range of the seq index whatever
    // the estimates. (With the first row found in the same statement, PostgreSQL could not
    // bound the index by it and scanned the whole table per page: 2 s a page of 2,000 rows on
    // 8M rows, a compaction of 3M rows taking most of an hour.)
    let window: [number, number] | null = null;
    if (entityKeys === null) {
      const [{ m }] = (await this.ds.query(
        `SELECT min(seq)::float8 AS m FROM feature_event
          WHERE version_id = $1 AND seq > $2 AND seq <= $3`,
        [version.id, through, upto],
      )) as { m: number | null }[];
      if (m === null) return [];
      window = [m, limit === null ? upto : Math.min(upto, m + limit - 1)];
    }
    return (await (window !== null
      ? this.ds.query(
          `SELECT ${columns}
             FROM feature_event
            WHERE version_id = $1 AND seq >= $2 AND seq <= $3
            ORDER BY seq`,
          [version.id, window[0], window[1]],
        )
      : this.ds.query(
          `SELECT ${columns}
             FROM feature_event
            WHERE version_id = $1 AND entity_key = ANY($2::text[])
              AND seq + 0 > $3 AND seq + 0 <= $4
            ORDER BY feature_event.seq
            LIMIT $5`,
          [version.id, entityKeys, through, upto, limit],
        ))) as LogRow[];
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
       SELECT * FROM unnest($1::uuid[], $2::text[], $3::text[], $4::text[], $5::jsonb[], $6::jsonb[])
       ON CONFLICT (version_id, source, md5(record::text)) WHERE replayed_at IS NULL DO NOTHING`,
      [
        rows.map((r) => r.versionId),
        rows.map((r) => r.source),
        // A quarantined record may hold what no database text can (a NUL): kept as escapes.
        rows.map((r) =>
          typeof r.record.entityKey === 'string' ? storableText(r.record.entityKey) : null,
        ),
        rows.map((r) =>
          typeof r.record.eventId === 'string' ? storableText(r.record.eventId) : null,
        ),
        rows.map((r) => storableJson(r.record)),
        rows.map((r) => storableJson(r.violations)),
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

interface CompactionState {
  throughSeq: number;
  compactedRows: number;
  /** Advanced by every swap of segments (compaction or backfill): what a swap compares. */
  generation: number;
  /** Every segment of every bucket, by bucket then run (0 the base, then deltas oldest first). */
  segments: {
    bucket: number;
    run: number;
    rows: number;
    artifactKey: string;
    sha256: string;
    parquetKey: string | null;
    parquetSha256: string | null;
  }[];
}

/** A bucket's new segment and its open-table file, stored, not yet swapped in. */
interface WrittenSegment {
  bucket: number;
  /** Its run once swapped in, and the segments it replaces then (their files deleted). */
  run: number;
  replaces: CompactionState['segments'];
  ref: ArtifactRef;
  table: ArtifactRef;
  rows: number;
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

/** A timestamp parameter (epoch ms) at the columns' millisecond precision, so equal is equal. */
function msTime(param: string): string {
  return `to_timestamp(${param} / 1000.0)::timestamptz(3)`;
}

/** (entity, event id, known time): one stored version. */
function versionKey(r: {
  entityKey: string;
  event: Pick<FeatureEvent, 'eventId' | 'createdTs'>;
}): string {
  return `${r.entityKey}\u0000${r.event.eventId}\u0000${r.event.createdTs}`;
}

/**
 * A bucket's rows (`wanted`, indexes into `rows`, in order) gathered into columns of their
 * own, to hand to the segment worker; the event loop gets its turns between columns.
 */
async function bucketRows(
  rows: BackfillRows,
  wanted: Int32Array,
  local: Int32Array,
): Promise<BackfillBucket> {
  const slice = new TimeSlice();
  const n = wanted.length;
  const entities: string[] = [];
  const entity = new Int32Array(n);
  const eventTs = new Float64Array(n);
  const createdTs = new Float64Array(n);
  for (let k = 0; k < n; k++) {
    const i = wanted[k];
    const global = rows.entity[i];
    if (local[global] < 0) {
      local[global] = entities.length;
      entities.push(rows.entityKeys[global]);
    }
    entity[k] = local[global];
    eventTs[k] = rows.eventTs[i];
    createdTs[k] = rows.createdTs[i];
  }
  // Bytes, not strings, so they are moved to the worker rather than copied one by one.
  const ids = utf8Strings(n, (k) => rows.eventId(wanted[k]));
  const values: (Float64Array | FeatureValue[])[] = [];
  for (const col of rows.values) {
    if (slice.due()) await slice.pause();
    if (col instanceof Float64Array) {
      const v = new Float64Array(n);
      for (let k = 0; k < n; k++) v[k] = col[wanted[k]];
      values.push(v);
    } else {
      const v = new Array<FeatureValue>(n);
      for (let k = 0; k < n; k++) v[k] = col[wanted[k]];
      values.push(v);
    }
  }
  return { entities, entity, ids, eventTs, createdTs, values };
}
