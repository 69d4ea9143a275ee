import fs from 'node:fs';
import path from 'node:path';
import { Worker } from 'node:worker_threads';
import {
  eventLayout,
  type FeatureType,
  type FeatureValue,
  type FeatureViewSchema,
  numberOf,
  valueOfNumber,
} from '../../../domain/features/feature-definition';
import {
  type CandidateVersion,
  judgeVersions,
  type StoredVersion,
  VersionVerdict,
} from '../../../domain/features/event-versions';
import { compareEvents, type FeatureEvent } from '../../../domain/features/point-in-time';
import { openTableParquet } from './open-table-writer';
import {
  bucketOf,
  decodeSegment,
  encodeSegment,
  encodeSegmentColumns,
  entityRanges,
  RepeatedIds,
  type SegmentRows,
  SegmentSeries,
  sortBucketRows,
  sortEntityRows,
  stringsOf,
  type Utf8Strings,
} from './segments';

/** A row of the append log as the page query returns it, `fields` still JSON text. */
export interface LogRow {
  k: string;
  e: string;
  s: number;
  ts: number;
  cts: number;
  f: string | Record<string, FeatureValue>;
}

/** A log row as an event, its values in the layout's source order. */
export function logRowEvent(
  r: LogRow,
  sources: readonly string[],
): { entityKey: string; seq: number; event: FeatureEvent } {
  const f = (typeof r.f === 'string' ? JSON.parse(r.f) : r.f) as Record<string, FeatureValue>;
  return {
    entityKey: r.k,
    seq: r.s,
    event: {
      eventId: r.e,
      eventTs: Math.round(r.ts),
      createdTs: Math.round(r.cts),
      values: sources.map((x) => f[x] ?? null),
    },
  };
}

/**
 * One bucket of a backfill's accepted rows, in columns, as the worker takes it: what the
 * offline store's `BackfillRows` hold for the bucket's rows, in their order.
 */
export interface BackfillBucket {
  /** The bucket's entity keys; `entity[i]` is row i's index into them. */
  entities: string[];
  entity: Int32Array;
  ids: Utf8Strings;
  eventTs: Float64Array;
  createdTs: Float64Array;
  /** Per source position: numbers (`EventLayout.numeric`) or values. */
  values: (Float64Array | FeatureValue[])[];
}

/** What the worker makes of a backfill's bucket. */
export interface BackfilledBucket {
  /** Per row of the bucket, its verdict, as an index into VERDICTS. */
  verdicts: Uint8Array;
  /** The bucket's new segment; null when no row is a new version (nothing to rewrite). */
  bytes: Uint8Array | null;
  /** The same rows as the bucket's open-table Parquet file (null with `bytes`). */
  parquet: Uint8Array | null;
  /** Rows of the new segment, and how many of them are the bucket's new versions. */
  rows: number;
  added: number;
}

/** A bucket's new segment, and the same rows as its open-table Parquet file. */
export interface EncodedBucket {
  bytes: Uint8Array;
  parquet: Uint8Array;
  rows: number;
}

/** Verdicts as the worker codes them. */
export const VERDICTS: readonly VersionVerdict[] = [
  VersionVerdict.NEW,
  VersionVerdict.CORRECTION,
  VersionVerdict.DUPLICATE,
  VersionVerdict.SUPERSEDED,
  VersionVerdict.CONFLICT,
];

type Request =
  | { kind: 'add'; rows: LogRow[] }
  | { kind: 'encode'; id: number; bucket: number; old: Uint8Array[] }
  | {
      kind: 'backfill';
      id: number;
      rows: BackfillBucket;
      old: Uint8Array[];
      pending: { entityKey: string; event: FeatureEvent }[];
    };
type Reply =
  | ({ id: number } & EncodedBucket)
  | ({ id: number } & BackfilledBucket)
  | { id: number; error: string };

/**
 * Writes a compaction's segments on a thread of its own (docs/adr/0020). The api's thread
 * only reads the log in short pages and hands each page over as it comes; the worker holds
 * the backlog (up to 2M rows: its garbage collections pause the worker, not the requests),
 * merges each bucket with its old segment, sorts and encodes it, and hands the bytes back.
 */
export class SegmentBuilder {
  private readonly worker: Worker;
  private readonly pending = new Map<
    number,
    { resolve: (r: never) => void; reject: (e: Error) => void }
  >();
  /** New rows per bucket. */
  private readonly touched = new Map<number, number>();
  private nextId = 0;
  private failure: Error | null = null;

  constructor(schema: FeatureViewSchema) {
    this.worker = new Worker(workerScript(), { workerData: { schema } });
    this.worker.on('message', (m: Reply) => {
      const p = this.pending.get(m.id);
      if (!p) return;
      this.pending.delete(m.id);
      if ('error' in m) p.reject(new Error(`segment worker: ${m.error}`));
      else p.resolve(m as never);
    });
    const fail = (e: Error) => {
      this.failure = e;
      for (const p of this.pending.values()) p.reject(e);
      this.pending.clear();
    };
    this.worker.on('error', fail);
    this.worker.on('exit', (code) => fail(new Error(`segment worker exited (${code})`)));
  }

  /** Hands a page of log rows over (copied to the worker; nothing waits). */
  add(rows: LogRow[]): void {
    if (this.failure) throw this.failure;
    for (const r of rows) {
      const b = bucketOf(r.k);
      this.touched.set(b, (this.touched.get(b) ?? 0) + 1);
    }
    this.worker.postMessage({ kind: 'add', rows } satisfies Request);
  }

  /** The buckets the rows handed over fall in, and how many rows each. */
  buckets(): [bucket: number, rows: number][] {
    return [...this.touched];
  }

  /**
   * The bucket's new segment: the rows of the old segments it replaces (none for a new delta
   * of only the new rows) and the new ones, in order; with the same rows as an open-table
   * Parquet file (docs/adr/0033).
   */
  encode(bucket: number, old: Uint8Array[]): Promise<EncodedBucket> {
    if (this.failure) return Promise.reject(this.failure);
    const id = this.nextId++;
    return new Promise<EncodedBucket>((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      // The old segments' bytes are copied (a memcpy): they may share a buffer with others.
      this.worker.postMessage({ kind: 'encode', id, bucket, old } satisfies Request);
    });
  }

  /**
   * A backfill's bucket, judged against the stored versions of its events (every segment of
   * the bucket, whose bytes are copied over, and the log rows after its watermark) and, where
   * any row is a new version, merged with all of the old segments' rows into a new base and
   * encoded. The rows' typed arrays are moved to the worker (transferred): `rows` is unusable
   * after the call.
   */
  backfill(
    rows: BackfillBucket,
    old: Uint8Array[],
    pending: { entityKey: string; event: FeatureEvent }[],
  ): Promise<BackfilledBucket> {
    if (this.failure) return Promise.reject(this.failure);
    const id = this.nextId++;
    return new Promise<BackfilledBucket>((resolve, reject) => {
      this.pending.set(id, { resolve, reject });
      const moved = [
        rows.entity,
        rows.ids.bytes,
        rows.ids.offsets,
        rows.eventTs,
        rows.createdTs,
        ...rows.values,
      ]
        .filter((c) => ArrayBuffer.isView(c))
        .map((c) => (c as Float64Array | Int32Array).buffer as ArrayBuffer);
      this.worker.postMessage({ kind: 'backfill', id, rows, old, pending } satisfies Request, [
        ...new Set(moved),
      ]);
    });
  }

  async close(): Promise<void> {
    this.worker.removeAllListeners('exit');
    await this.worker.terminate();
  }
}

/**
 * The worker's side: holds the rows by bucket and answers `encode` requests. Runs in the
 * worker thread (`segment-worker.ts` calls it).
 */
export function serveSegmentWorker(
  schema: FeatureViewSchema,
  port: {
    on(e: 'message', f: (m: Request) => void): void;
    postMessage(m: unknown, t?: ArrayBuffer[]): void;
  },
): void {
  const { sources } = eventLayout(schema);
  const byBucket = new Map<number, { entityKey: string; event: FeatureEvent }[]>();
  port.on('message', async (m) => {
    if (m.kind === 'backfill') {
      try {
        const judged = backfillBucket(schema, m.rows, mergedSegment(schema, m.old), m.pending);
        const done: BackfilledBucket = {
          ...judged,
          parquet: judged.bytes
            ? await openTableParquet(schema, decodeSegment(schema, judged.bytes))
            : null,
        };
        port.postMessage(
          { id: m.id, ...done } satisfies Reply,
          done.bytes && done.parquet
            ? [
                done.verdicts.buffer as ArrayBuffer,
                done.bytes.buffer as ArrayBuffer,
                done.parquet.buffer as ArrayBuffer,
              ]
            : [done.verdicts.buffer as ArrayBuffer],
        );
      } catch (e) {
        port.postMessage({ id: m.id, error: e instanceof Error ? e.message : String(e) });
      }
      return;
    }
    if (m.kind === 'add') {
      for (const raw of m.rows) {
        const r = logRowEvent(raw, sources);
        const b = bucketOf(r.entityKey);
        const list = byBucket.get(b);
        const row = { entityKey: r.entityKey, event: r.event };
        if (list) list.push(row);
        else byBucket.set(b, [row]);
      }
      return;
    }
    try {
      const rows = byBucket.get(m.bucket) ?? [];
      byBucket.delete(m.bucket);
      const kept = m.old.flatMap((b) => segmentEvents(schema, b, sources.length));
      const sorted = sortBucketRows(kept.length ? [...kept, ...rows] : rows);
      const bytes = encodeSegment(schema, sorted);
      const parquet = await openTableParquet(schema, decodeSegment(schema, bytes));
      port.postMessage({ id: m.id, bytes, parquet, rows: sorted.length } satisfies Reply, [
        bytes.buffer as ArrayBuffer,
        parquet.buffer as ArrayBuffer,
      ]);
    } catch (e) {
      port.postMessage({ id: m.id, error: e instanceof Error ? e.message : String(e) });
    }
  });
}

/** A bucket's segments as one (null for none): merged and encoded again when several. */
function mergedSegment(schema: FeatureViewSchema, old: Uint8Array[]): Uint8Array | null {
  if (old.length <= 1) return old[0] ?? null;
  const positions = eventLayout(schema).sources.length;
  return encodeSegment(
    schema,
    sortBucketRows(old.flatMap((b) => segmentEvents(schema, b, positions))),
  );
}

/** A decoded segment's rows as events, in its order. */
export function segmentEvents(
  schema: FeatureViewSchema,
  bytes: Uint8Array,
  positions: number,
): { entityKey: string; event: FeatureEvent }[] {
  const decoded = decodeSegment(schema, bytes);
  const out: { entityKey: string; event: FeatureEvent }[] = [];
  for (const [entityKey, [lo, hi]] of entityRanges(decoded))
    for (const event of new SegmentSeries(decoded, lo, hi).events(positions))
      out.push({ entityKey, event });
  return out;
}

/**
 * The compiled worker script. Under `tsc` output it sits next to this file; when this file
 * runs from source (jest), the build's copy is used (`npm run build` first), as for the
 * embedded PGlite's server script.
 */
function workerScript(): string {
  const beside = path.join(__dirname, 'segment-worker.js');
  if (fs.existsSync(beside)) return beside;
  const built = path.resolve(
    __dirname,
    '..',
    '..',
    '..',
    '..',
    'dist',
    'src',
    'infra',
    'db',
    'features',
  );
  const script = path.join(built, 'segment-worker.js');
  if (!fs.existsSync(script)) throw new Error(`${script} is missing: run \`npm run build\` first`);
  return script;
}

/** Row i of a backfill's bucket: its values, as records hold them. */
function bucketValues(
  rows: BackfillBucket,
  types: readonly FeatureType[],
  i: number,
): FeatureValue[] {
  return rows.values.map((col, p) =>
    col instanceof Float64Array ? valueOfNumber(col[i], types[p]) : col[i],
  );
}

/**
 * A row of a backfill's bucket as an event, read from its columns: `row` may be moved, so two
 * of them compare any two rows without an object per row.
 */
class BucketEvent implements FeatureEvent {
  constructor(
    private readonly rows: BackfillBucket,
    private readonly types: readonly FeatureType[],
    private readonly ids: readonly string[],
    public row: number,
  ) {}

  get eventId(): string {
    return this.ids[this.row];
  }

  get eventTs(): number {
    return this.rows.eventTs[this.row];
  }

  get createdTs(): number {
    return this.rows.createdTs[this.row];
  }

  get values(): FeatureValue[] {
    return bucketValues(this.rows, this.types, this.row);
  }
}

/** A segment's row as an event, read from its columns; values only when asked. */
class SegmentEvent implements FeatureEvent {
  private held: FeatureValue[] | null = null;

  constructor(
    private readonly segment: SegmentRows,
    readonly row: number,
  ) {}

  get eventId(): string {
    return this.segment.eventId(this.row);
  }

  get eventTs(): number {
    return this.segment.eventTs[this.row];
  }

  get createdTs(): number {
    return this.segment.createdTs[this.row];
  }

  get values(): FeatureValue[] {
    return (this.held ??= Array.from({ length: this.segment.positions }, (_, p) =>
      this.segment.value(this.row, p),
    ));
  }
}

/**
 * The worker's side of a backfill's bucket (see `SegmentBuilder.backfill`). Entity by entity in
 * segment order: the entity's rows in `compareEvents` order; the rows of its events that repeat
 * in the file or have stored versions judged with judgeVersions (every other row is the first
 * version of its event: NEW, and a file of millions of rows is nearly all such rows); its new
 * versions written straight into the new segment's columns, after (and sorted with) its old
 * segment's rows. The rows stay in columns: objects are made only for the rows judged and for
 * entities merged with old rows.
 */
export function backfillBucket(
  schema: FeatureViewSchema,
  rows: BackfillBucket,
  old: Uint8Array | null,
  pending: readonly { entityKey: string; event: FeatureEvent }[],
): Omit<BackfilledBucket, 'parquet'> {
  const { types, numeric } = eventLayout(schema);
  const ids = stringsOf(rows.ids);
  const n = ids.length;
  const verdicts = new Uint8Array(n); // 0: NEW
  const NEW = VERDICTS.indexOf(VersionVerdict.NEW);
  const CORRECTION = VERDICTS.indexOf(VersionVerdict.CORRECTION);
  verdicts.fill(NEW);
  const kept = old ? decodeSegment(schema, old) : null;
  const keptRanges = kept ? entityRanges(kept) : new Map<string, [number, number]>();
  const logged = new Map<string, FeatureEvent[]>();
  for (const r of pending) {
    const list = logged.get(r.entityKey);
    if (list) list.push(r.event);
    else logged.set(r.entityKey, [r.event]);
  }
  // Each entity's rows, in row order (a counting sort by entity).
  const start = new Int32Array(rows.entities.length + 1);
  for (let i = 0; i < n; i++) start[rows.entity[i] + 1]++;
  for (let e = 0; e < rows.entities.length; e++) start[e + 1] += start[e];
  const byEntity = new Int32Array(n);
  const cursor = start.slice(0, rows.entities.length);
  for (let i = 0; i < n; i++) byEntity[cursor[rows.entity[i]]++] = i;
  const local = new Map(rows.entities.map((k, e) => [k, e]));
  const keys = [...new Set([...rows.entities, ...keptRanges.keys()])].sort();
  const a = new BucketEvent(rows, types, ids, 0);
  const b = new BucketEvent(rows, types, ids, 0);
  const compareRows = (x: number, y: number) => {
    a.row = x;
    b.row = y;
    return compareEvents(a, b);
  };
  const event = (i: number) => new BucketEvent(rows, types, ids, i);

  // The new segment: rows from the old one (as -1 - its row) and from the file (as its row).
  const capacity = n + (kept?.length ?? 0);
  const out = {
    entities: [] as string[],
    entity: new Int32Array(capacity),
    source: new Int32Array(capacity),
    length: 0,
  };
  const put = (source: number) => {
    const o = out.length++;
    out.entity[o] = out.entities.length - 1;
    out.source[o] = source;
  };
  let added = 0;
  const repeated = new RepeatedIds((i) => ids[i]);
  const several = new Uint8Array(n);
  const mark = (i: number) => (several[i] = 1);
  for (const entityKey of keys) {
    const e = local.get(entityKey);
    const order = e === undefined ? [] : Array.from(byEntity.subarray(start[e], start[e + 1]));
    sortEntityRows(order, 0, order.length, compareRows);
    const range = keptRanges.get(entityKey);
    const keptEvents: SegmentEvent[] = [];
    for (let i = range?.[0] ?? 0; range && i < range[1]; i++)
      keptEvents.push(new SegmentEvent(kept as SegmentRows, i));
    const known: FeatureEvent[] = [...keptEvents, ...(logged.get(entityKey) ?? [])];
    // Judged: the rows of events that repeat in the file or have stored versions (judgeVersions
    // decides each event's versions on their own, so the others' presence changes nothing).
    repeated.find(0, order.length, (k) => order[k], mark);
    const storedIds = known.length ? new Set(known.map((k) => k.eventId)) : null;
    const judged = order.filter((i) => several[i] === 1 || storedIds?.has(ids[i]) === true);
    if (judged.length) {
      const candidates: CandidateVersion[] = judged.map((i) => ({
        entityKey,
        event: event(i),
        explicitKnownAt: true,
      }));
      judgeVersions(candidates, previousIn(known, candidates)).forEach(
        (j, k) => (verdicts[judged[k]] = VERDICTS.indexOf(j.verdict)),
      );
    }
    const fresh = order.filter((i) => verdicts[i] === NEW || verdicts[i] === CORRECTION);
    added += fresh.length;
    if (!keptEvents.length && !fresh.length) continue;
    out.entities.push(entityKey);
    if (!keptEvents.length) {
      for (const i of fresh) put(i);
      continue;
    }
    const merged: (BucketEvent | SegmentEvent)[] = [...keptEvents, ...fresh.map(event)];
    sortEntityRows(merged, 0, merged.length, compareEvents);
    for (const x of merged) put(x instanceof SegmentEvent ? -1 - x.row : x.row);
  }
  if (!added) return { verdicts, bytes: null, rows: 0, added: 0 };

  const length = out.length;
  const from = out.source.subarray(0, length);
  const segment = kept as SegmentRows;
  const column = (own: ArrayLike<number>, theirs: ArrayLike<number> | undefined) => {
    const v = new Float64Array(length);
    for (let o = 0; o < length; o++)
      v[o] = from[o] >= 0 ? own[from[o]] : (theirs as ArrayLike<number>)[-1 - from[o]];
    return v;
  };
  const values = numeric.map((isNumber, p) => {
    const col = rows.values[p];
    if (isNumber) {
      const v = new Float64Array(length);
      for (let o = 0; o < length; o++)
        v[o] =
          from[o] >= 0 ? (col as Float64Array)[from[o]] : numberOf(segment.value(-1 - from[o], p));
      return v;
    }
    const v = new Array<FeatureValue>(length);
    for (let o = 0; o < length; o++)
      v[o] = from[o] >= 0 ? (col as FeatureValue[])[from[o]] : segment.value(-1 - from[o], p);
    return v;
  });
  const bytes = encodeSegmentColumns(schema, {
    length,
    entities: out.entities,
    entity: out.entity.subarray(0, length),
    eventId: (o) => (from[o] >= 0 ? ids[from[o]] : segment.eventId(-1 - from[o])),
    eventTs: column(rows.eventTs, kept?.eventTs),
    createdTs: column(rows.createdTs, kept?.createdTs),
    values,
    event: (o) => (from[o] >= 0 ? event(from[o]) : new SegmentEvent(segment, -1 - from[o])),
  });
  return { verdicts, bytes, rows: length, added };
}

/**
 * Per candidate, the newest version of its event in `history` known at or before the
 * candidate's known time (what ingestion's previousVersions gives, from memory).
 */
function previousIn(
  history: readonly FeatureEvent[],
  candidates: readonly CandidateVersion[],
): (StoredVersion | null)[] {
  if (!history.length) return candidates.map(() => null);
  const wanted = new Set(candidates.map((c) => c.event.eventId));
  const versions = new Map<string, FeatureEvent[]>();
  for (const h of history) {
    if (!wanted.has(h.eventId)) continue;
    const list = versions.get(h.eventId) ?? [];
    list.push(h);
    versions.set(h.eventId, list);
  }
  for (const list of versions.values()) list.sort((a, b) => a.createdTs - b.createdTs);
  return candidates.map((c) => {
    const list = versions.get(c.event.eventId);
    let found: FeatureEvent | null = null;
    for (const e of list ?? []) if (e.createdTs <= c.event.createdTs) found = e;
    return found;
  });
}
