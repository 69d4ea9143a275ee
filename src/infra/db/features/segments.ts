import { isAscii } from 'node:buffer';
import {
  Field,
  Float64,
  Int32,
  Schema,
  Table,
  Utf8,
  makeData,
  makeVector,
  tableFromIPC,
  tableToIPC,
  vectorFromArray,
  type Vector,
} from 'apache-arrow';
import {
  eventLayout,
  type FeatureType,
  type FeatureValue,
  type FeatureViewSchema,
  numberOf,
  valueOfNumber,
} from '../../../domain/features/feature-definition';
import {
  compareEvents,
  type EventSeries,
  type FeatureEvent,
  supersession,
} from '../../../domain/features/point-in-time';

/**
 * Columnar segments of a view version's offline history: Arrow IPC files, a base and a few
 * deltas per entity bucket (`planRuns`), rows (every version of every event) sorted by
 * (entity, eventTs, createdTs, eventId) so an entity's history in a segment is one contiguous
 * slice. Numeric and boolean sources are Float64
 * columns (null as NaN: validation admits only finite numbers), others JSON text;
 * `superseded_ts` is when the next version of the row's event became known (Infinity for the
 * newest). Point-in-time reads evaluate straight on these columns (`SegmentSeries`), without
 * building an object per event. Format 1 (before corrections were kept) had one version per
 * event and no `superseded_ts`: it still reads, every row its event's newest version.
 */
export const SEGMENT_FORMAT = '2';

/** Entity buckets per view version: each is a base segment and a few deltas (`planRuns`). */
export const SEGMENT_BUCKETS = 16;

/**
 * How a bucket's segments are merged (docs/adr/0035): run 0 is the base, runs 1… are deltas,
 * oldest first. A compaction writes its rows for the bucket as a new delta, merged with the
 * newest deltas while it is at least 1/DELTA_FANOUT the size of the one before (so deltas
 * shrink geometrically from oldest to newest, and a row is rewritten once per level), and into
 * the base when the deltas would hold more than DELTA_SHARE of the base's rows, or there would
 * be more than MAX_DELTAS of them.
 */
export const DELTA_FANOUT = 4;
export const DELTA_SHARE = 0.25;
export const MAX_DELTAS = 6;

/** A stored segment of a bucket, as the merge policy sees it. */
export interface SegmentRun {
  run: number;
  rows: number;
  /** Its open-table Parquet file; null for a segment written before open tables. */
  parquetKey: string | null;
}

/**
 * What a compaction writes for a bucket given its runs (any order) and its new rows: the runs
 * its new segment replaces (merged with the new rows) and the new segment's run number.
 */
export function planRuns(
  runs: readonly SegmentRun[],
  newRows: number,
): { replaces: number[]; run: number } {
  const base = runs.find((r) => r.run === 0);
  const deltas = runs.filter((r) => r.run > 0).sort((a, b) => a.run - b.run);
  const deltaRows = deltas.reduce((n, d) => n + d.rows, 0) + newRows;
  const next = (deltas.length ? deltas[deltas.length - 1].run : 0) + 1;
  // A segment without its Parquet file (written before open tables) is rewritten at once.
  if (!base || deltaRows > DELTA_SHARE * base.rows || runs.some((r) => r.parquetKey === null))
    return { replaces: runs.map((r) => r.run), run: 0 };
  let merged = 0;
  let size = newRows;
  while (merged < deltas.length && size * DELTA_FANOUT >= deltas[deltas.length - 1 - merged].rows)
    size += deltas[deltas.length - 1 - merged++].rows;
  if (deltas.length - merged + 1 > MAX_DELTAS) return { replaces: runs.map((r) => r.run), run: 0 };
  return { replaces: deltas.slice(deltas.length - merged).map((d) => d.run), run: next };
}

/** FNV-1a of the entity key: a stable bucket, independent of the database's hash functions. */
export function bucketOf(entityKey: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < entityKey.length; i++) {
    h ^= entityKey.charCodeAt(i);
    h = Math.imul(h, 0x01000193);
  }
  return (h >>> 0) % SEGMENT_BUCKETS;
}

/**
 * A bucket's rows in segment order: by entity (UTF-16 code units), then `compareEvents`.
 * A counting sort by entity, then each entity's few rows sorted on their own (usually already
 * in order): a comparison sort of millions of rows would cost seconds.
 */
export function sortBucketRows<T extends { entityKey: string; event: FeatureEvent }>(
  rows: readonly T[],
): T[] {
  const keys = [...new Set(rows.map((r) => r.entityKey))].sort();
  const rank = new Map(keys.map((k, i) => [k, i]));
  const start = new Int32Array(keys.length + 1);
  const ranks = new Int32Array(rows.length);
  for (let i = 0; i < rows.length; i++) {
    ranks[i] = rank.get(rows[i].entityKey) as number;
    start[ranks[i] + 1]++;
  }
  for (let k = 0; k < keys.length; k++) start[k + 1] += start[k];
  const out = new Array<T>(rows.length);
  const cursor = start.slice(0, keys.length);
  for (let i = 0; i < rows.length; i++) out[cursor[ranks[i]]++] = rows[i];
  for (let k = 0; k < keys.length; k++)
    sortEntityRows(out, start[k], start[k + 1], (a, b) => compareEvents(a.event, b.event));
  return out;
}

/**
 * One entity's rows `lo..hi` of `rows` in order (`compare`: `compareEvents` of their events),
 * in place: a stable sort, done only when they are not in order already (they usually are).
 */
export function sortEntityRows<T>(
  rows: T[],
  lo: number,
  hi: number,
  compare: (a: T, b: T) => number,
): void {
  let sorted = true;
  for (let i = lo + 1; i < hi && sorted; i++) sorted = compare(rows[i - 1], rows[i]) <= 0;
  if (sorted) return;
  const part = rows.slice(lo, hi).sort(compare);
  for (let i = 0; i < part.length; i++) rows[lo + i] = part[i];
}

/**
 * Finds the rows whose event id repeats within one entity's rows, for millions of rows spread
 * over many small entities: an open-addressing table of the ids' hashes, reused from entity to
 * entity (stamped, never cleared), the ids themselves compared only where hashes meet. A map per
 * entity, or one for a whole bucket, cost several times more.
 */
export class RepeatedIds {
  private slots = new Int32Array(0);
  private hashes = new Int32Array(0);
  private stamps = new Int32Array(0);
  private stamp = 0;

  constructor(private readonly idOf: (row: number) => string) {}

  /** Calls `mark` (once or more) for each row of `rowAt(lo..hi)` whose id another has too. */
  find(lo: number, hi: number, rowAt: (k: number) => number, mark: (row: number) => void): void {
    let size = 8;
    while (size < 2 * (hi - lo)) size *= 2;
    if (size > this.slots.length) {
      this.slots = new Int32Array(size);
      this.hashes = new Int32Array(size);
      this.stamps = new Int32Array(size);
      this.stamp = 0;
    }
    const stamp = ++this.stamp;
    const mask = size - 1;
    for (let k = lo; k < hi; k++) {
      const row = rowAt(k);
      const id = this.idOf(row);
      let h = 0x811c9dc5;
      for (let c = 0; c < id.length; c++) h = Math.imul(h ^ id.charCodeAt(c), 0x01000193);
      for (let slot = h & mask; ; slot = (slot + 1) & mask) {
        if (this.stamps[slot] !== stamp) {
          this.stamps[slot] = stamp;
          this.slots[slot] = row;
          this.hashes[slot] = h;
          break;
        }
        if (this.hashes[slot] === h && this.idOf(this.slots[slot]) === id) {
          mark(this.slots[slot]);
          mark(row);
          break;
        }
      }
    }
  }
}

/** Strings as UTF-8 in one buffer: string i is `bytes[offsets[i]..offsets[i + 1]]`. */
export interface Utf8Strings {
  bytes: Uint8Array;
  offsets: Int32Array;
}

/**
 * Strings written straight into one buffer and its offsets, ASCII byte by byte (ids and keys
 * usually are: no call per string), others by the encoder: the generic Arrow builder costs
 * several times more on a million ids.
 */
export function utf8Strings(length: number, stringAt: (i: number) => string): Utf8Strings {
  const offsets = new Int32Array(length + 1);
  let data = Buffer.allocUnsafe(Math.max(64, length * 16));
  let at = 0;
  for (let i = 0; i < length; i++) {
    const s = stringAt(i);
    if (at + s.length * 3 > data.length) {
      const grown = Buffer.allocUnsafe(Math.max(data.length * 2, at + s.length * 3));
      data.copy(grown, 0, 0, at);
      data = grown;
    }
    let ascii = true;
    for (let c = 0; c < s.length && ascii; c++) {
      const code = s.charCodeAt(c);
      if (code < 0x80) data[at + c] = code;
      else ascii = false;
    }
    at += ascii ? s.length : data.write(s, at, 'utf8');
    offsets[i + 1] = at;
  }
  return { bytes: new Uint8Array(data.buffer, data.byteOffset, at), offsets };
}

/**
 * The strings back (valid UTF-8, as `utf8Strings` writes for well-formed strings): all ASCII,
 * one decode and a substring each; else a decode each.
 */
export function stringsOf(utf8: Utf8Strings): string[] {
  const { bytes, offsets } = utf8;
  const n = offsets.length - 1;
  const out = new Array<string>(n);
  const buf = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.length);
  if (isAscii(buf)) {
    const text = buf.toString('latin1');
    for (let i = 0; i < n; i++) out[i] = text.substring(offsets[i], offsets[i + 1]);
  } else for (let i = 0; i < n; i++) out[i] = buf.toString('utf8', offsets[i], offsets[i + 1]);
  return out;
}

function utf8Vector(length: number, stringAt: (i: number) => string): Vector {
  const { bytes, offsets } = utf8Strings(length, stringAt);
  return makeVector(
    makeData({ type: new Utf8(), length, nullCount: 0, valueOffsets: offsets, data: bytes }),
  );
}

/** Rows of one bucket in columns; `entity` holds indexes into `entities`. */
export class SegmentRows {
  constructor(
    readonly entities: string[],
    readonly entity: Int32Array,
    readonly eventTs: Float64Array,
    readonly createdTs: Float64Array,
    readonly supersededTs: Float64Array,
    private readonly ids: Vector,
    /** Per source position: its Float64 column, or null for a JSON text column. */
    private readonly numbers: (Float64Array | null)[],
    private readonly types: readonly FeatureType[],
    private readonly texts: (Vector | null)[],
  ) {}

  get length(): number {
    return this.eventTs.length;
  }

  /** Source positions of the layout the rows were written with. */
  get positions(): number {
    return this.numbers.length;
  }

  eventId(i: number): string {
    return this.ids.get(i) as string;
  }

  /** Source position p's Float64 column (null as NaN), or null where it is JSON text. */
  numbersAt(p: number): Float64Array | null {
    return this.numbers[p];
  }

  value(i: number, p: number): FeatureValue {
    const col = this.numbers[p];
    if (col !== null) return valueOfNumber(col[i], this.types[p]);
    const raw = (this.texts[p] as Vector).get(i) as string | null;
    return raw === null ? null : (JSON.parse(raw) as FeatureValue);
  }
}

/**
 * One bucket's rows in segment order, in columns: what `encodeSegmentColumns` writes. Entity
 * `entities[k]` is the k-th run of rows (`entity` counts up from 0 with each new entity).
 */
export interface SegmentColumns {
  readonly length: number;
  readonly entities: readonly string[];
  readonly entity: Int32Array;
  eventId(i: number): string;
  readonly eventTs: Float64Array;
  readonly createdTs: Float64Array;
  /** Per source position: numbers where the layout holds it so (`EventLayout.numeric`), else values. */
  readonly values: readonly (Float64Array | readonly FeatureValue[])[];
  /** Row i as an event: only asked for entities whose events have several versions. */
  event(i: number): FeatureEvent;
}

/** Encodes events (already sorted by entity, then compareEvents) of one bucket. */
export function encodeSegment(
  schema: FeatureViewSchema,
  rows: readonly { entityKey: string; event: FeatureEvent }[],
): Uint8Array {
  const { numeric } = eventLayout(schema);
  const n = rows.length;
  const entities: string[] = [];
  const entity = new Int32Array(n);
  const eventTs = new Float64Array(n);
  const createdTs = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    const r = rows[i];
    if (entities[entities.length - 1] !== r.entityKey) entities.push(r.entityKey);
    entity[i] = entities.length - 1;
    eventTs[i] = r.event.eventTs;
    createdTs[i] = r.event.createdTs;
  }
  const values = numeric.map((isNumber, p) => {
    if (!isNumber) return rows.map((r) => r.event.values[p]);
    const col = new Float64Array(n);
    for (let i = 0; i < n; i++) col[i] = numberOf(rows[i].event.values[p]);
    return col;
  });
  return encodeSegmentColumns(schema, {
    length: n,
    entities,
    entity,
    eventId: (i) => rows[i].event.eventId,
    eventTs,
    createdTs,
    values,
    event: (i) => rows[i].event,
  });
}

/** Encodes one bucket's rows, in columns and in segment order. */
export function encodeSegmentColumns(schema: FeatureViewSchema, rows: SegmentColumns): Uint8Array {
  const { numeric } = eventLayout(schema);
  const n = rows.length;
  const supersededTs = new Float64Array(n).fill(Infinity);
  // Per entity, when each version was superseded by its event's next: only the rows of events
  // with several versions need the work (the others stay Infinity).
  const several = new Uint8Array(n);
  const repeated = new RepeatedIds((i) => rows.eventId(i));
  let marked = 0;
  const mark = (i: number) => {
    marked += 1 - several[i];
    several[i] = 1;
  };
  for (let start = 0, i = 1; i <= n; i++) {
    if (i < n && rows.entity[i] === rows.entity[start]) continue;
    const before = marked;
    repeated.find(start, i, (k) => k, mark);
    if (marked > before) {
      const at: number[] = [];
      for (let k = start; k < i; k++) if (several[k]) at.push(k);
      const until = supersession(at.map((k) => rows.event(k)));
      at.forEach((k, j) => (supersededTs[k] = until[j]));
    }
    start = i;
  }
  const fields = [
    new Field('entity', new Int32(), false),
    new Field('event_id', new Utf8(), false),
    new Field('event_ts', new Float64(), false),
    new Field('created_ts', new Float64(), false),
    new Field('superseded_ts', new Float64(), false),
  ];
  const vectors: Record<string, Vector> = {
    entity: makeVector(rows.entity),
    event_id: utf8Vector(n, (i) => rows.eventId(i)),
    event_ts: makeVector(rows.eventTs),
    created_ts: makeVector(rows.createdTs),
    superseded_ts: makeVector(supersededTs),
  };
  numeric.forEach((isNumber, p) => {
    const name = `s${p}`;
    const col = rows.values[p];
    if (isNumber) {
      fields.push(new Field(name, new Float64(), false));
      vectors[name] = makeVector(col as Float64Array);
    } else {
      const texts = new Array<string | null>(n);
      for (let i = 0; i < n; i++) {
        const v = col[i];
        texts[i] = v === null || v === undefined ? null : JSON.stringify(v);
      }
      fields.push(new Field(name, new Utf8(), true));
      vectors[name] = vectorFromArray(texts, new Utf8());
    }
  });
  const metadata = new Map([
    ['aether.segment', SEGMENT_FORMAT],
    ['aether.entities', JSON.stringify(rows.entities)],
  ]);
  return tableToIPC(new Table(new Schema(fields, metadata), vectors), 'file');
}

export function decodeSegment(schema: FeatureViewSchema, bytes: Uint8Array): SegmentRows {
  const table = tableFromIPC(bytes);
  const format = table.schema.metadata.get('aether.segment');
  if (format !== SEGMENT_FORMAT && format !== '1')
    throw new Error(`offline segment in unknown format ${format}`);
  const entities = JSON.parse(table.schema.metadata.get('aether.entities') ?? '[]') as string[];
  const column = (name: string): Vector => {
    const c = table.getChild(name);
    if (!c) throw new Error(`offline segment has no column ${name}`);
    return c;
  };
  const { numeric, types } = eventLayout(schema);
  return new SegmentRows(
    entities,
    column('entity').toArray() as Int32Array,
    column('event_ts').toArray() as Float64Array,
    column('created_ts').toArray() as Float64Array,
    format === '1'
      ? new Float64Array(table.numRows).fill(Infinity)
      : (column('superseded_ts').toArray() as Float64Array),
    column('event_id'),
    numeric.map((isNumber, p) => (isNumber ? (column(`s${p}`).toArray() as Float64Array) : null)),
    types,
    numeric.map((isNumber, p) => (isNumber ? null : column(`s${p}`))),
  );
}

/** Where each entity's rows start and end in a decoded segment. */
export function entityRanges(rows: SegmentRows): Map<string, [number, number]> {
  const ranges = new Map<string, [number, number]>();
  let start = 0;
  for (let i = 1; i <= rows.length; i++) {
    if (i === rows.length || rows.entity[i] !== rows.entity[start]) {
      ranges.set(rows.entities[rows.entity[start]], [start, i]);
      start = i;
    }
  }
  return ranges;
}

/** One entity's slice of a segment, evaluated in place. */
export class SegmentSeries implements EventSeries {
  readonly length: number;

  constructor(
    private readonly rows: SegmentRows,
    private readonly lo: number,
    hi: number,
  ) {
    this.length = hi - lo;
  }

  eventTs(i: number): number {
    return this.rows.eventTs[this.lo + i];
  }

  createdTs(i: number): number {
    return this.rows.createdTs[this.lo + i];
  }

  supersededTs(i: number): number {
    return this.rows.supersededTs[this.lo + i];
  }

  value(i: number, position: number): FeatureValue {
    return this.rows.value(this.lo + i, position);
  }

  /** The slice as event objects: for merging with rows appended since the compaction. */
  events(positions: number): FeatureEvent[] {
    const out: FeatureEvent[] = [];
    for (let i = 0; i < this.length; i++) {
      const at = this.lo + i;
      out.push({
        eventId: this.rows.eventId(at),
        eventTs: this.rows.eventTs[at],
        createdTs: this.rows.createdTs[at],
        values: Array.from({ length: positions }, (_, p) => this.rows.value(at, p)),
      });
    }
    return out;
  }
}
